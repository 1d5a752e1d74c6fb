"""Written answers the end-to-end tests upload (the shipped questions' model answers cover
interviews)."""

# A strong, headed answer to the Twitter question: every phase has real content.
STRONG_UPLOAD = """\
## Requirements
Who uses it and what must it do? Users post short messages and read a home timeline of the
people they follow. Out of scope: search and ads. Non-functional: timeline reads under 200 ms
at p99, and availability over strict consistency, since a post showing up a few seconds late
is fine. Scale: 200M daily active users.

## Estimation
200M DAU x 5 posts/day = 1B posts/day / 86,400 s = about 11,600 writes/s, peak 3x = 35K/s.
Reads are 100x writes: about 1.2M reads/s, so this is read-heavy and we cache timelines.
Storage: 1B posts x 1 KB = 1 TB/day, so about 365 TB/year.

## API
POST /v1/posts with {text} returns 201 and the post id; it takes an Idempotency-Key header.
GET /v1/timeline?cursor=abc&limit=50 returns posts plus next_cursor for pagination.
Every call carries an OAuth bearer token.

## Data model
posts(post_id bigint primary key, user_id bigint, text varchar(280), created_at timestamp),
partitioned by user_id with an index on (user_id, created_at). follows(follower_id,
followee_id) with the primary key on both. A wide-column store fits the write rate.

## Architecture
Start simple: one app server and one database. Then, because reads dominate, add a cache of
each user's timeline in Redis; because writes spike, put a queue in front of fan-out workers.
Write path: post -> posts table -> queue -> fan-out workers -> follower timelines in cache.
Read path: timeline service reads the cached list, then hydrates posts.

## Deep dive
The hard part is fan-out for celebrities. Option A, fan-out on write, makes reads cheap but a
user with 50M followers costs 50M writes. Option B, fan-out on read, costs nothing at post
time but makes every read slower. I would choose a hybrid: push for normal users and pull for
accounts over 1M followers, trading some read latency for bounded write cost. We would watch
the p99 timeline latency and the fan-out queue lag to know if the threshold is right.
"""
