"""The five canonical questions ship complete, and their pushbacks fire on what candidates say."""

from __future__ import annotations

import re

import pytest

from coach.content import Content
from coach.content.models import PHASE_IDS, Question

CANONICAL_IDS = ("twitter", "url-shortener", "image-sharing", "chat", "ride-hailing")

ALIASES = [
    ("twitter-timeline", "twitter"),
    ("home-timeline", "twitter"),
    ("url", "url-shortener"),
    ("tinyurl", "url-shortener"),
    ("bitly", "url-shortener"),
    ("instagram", "image-sharing"),
    ("whatsapp", "chat"),
    ("messenger", "chat"),
    ("chat-app", "chat"),
    ("uber", "ride-hailing"),
    ("ridehail", "ride-hailing"),
    ("lyft", "ride-hailing"),
]

# (question, something a candidate would plausibly say, the pushback it should make available)
CANDIDATE_LINES = [
    (
        "twitter",
        "On each tweet we fan out on write, pushing the id into every follower's timeline.",
        "celebrity-fanout",
    ),
    ("twitter", "Tweet bodies are cached in Redis keyed by tweet_id.", "hot-tweet"),
    ("twitter", "Fan-out runs asynchronously through Kafka.", "read-your-own-tweet"),
    (
        "url-shortener",
        "Each server leases a counter range and base62-encodes it.",
        "code-collision",
    ),
    ("url-shortener", "Redirects read through a Redis cache before the DB.", "viral-link"),
    ("url-shortener", "Anonymous users can also pick a custom alias.", "abuse"),
    ("image-sharing", "Uploads land in S3 and resize workers create thumbnails.", "upload-spike"),
    ("image-sharing", "Images are served from a CDN close to the user.", "viral-post"),
    ("image-sharing", "We keep a like counter per post.", "hot-like-counter"),
    ("chat", "Each phone keeps a WebSocket open to a gateway server.", "reconnect-storm"),
    ("chat", "Messages carry a per-conversation sequence number.", "ordering"),
    ("chat", "We persist the message before we ack the sender.", "message-loss"),
    ("ride-hailing", "Driver positions live in geohash cells in memory.", "hotspot"),
    ("ride-hailing", "Dispatch offers the trip to the nearest driver.", "double-dispatch"),
    ("ride-hailing", "At the end of the trip we charge the card via Stripe.", "double-charge"),
]


def _fired(question: Question, text: str) -> set[str]:
    return {p.id for p in question.pushbacks if any(re.search(t, text, re.I) for t in p.triggers)}


@pytest.mark.parametrize("question_id", CANONICAL_IDS)
def test_canonical_question_is_complete(content: Content, question_id: str) -> None:
    question = content.question(question_id)
    assert question.id == question_id
    assert question.canonical
    assert set(question.model_answers) == set(PHASE_IDS)
    assert all(answer.strip() for answer in question.model_answers.values())
    assert len(question.facts) >= 6
    assert len(question.pushbacks) >= 4


def test_exactly_the_five_are_canonical(content: Content) -> None:
    canonical = {q.id for q in content.questions.values() if q.canonical}
    assert canonical == set(CANONICAL_IDS)


@pytest.mark.parametrize(("alias", "question_id"), ALIASES)
def test_alias_resolves(content: Content, alias: str, question_id: str) -> None:
    assert content.question(alias).id == question_id


@pytest.mark.parametrize(("question_id", "text", "pushback_id"), CANDIDATE_LINES)
def test_candidate_words_trigger_pushback(
    content: Content, question_id: str, text: str, pushback_id: str
) -> None:
    assert pushback_id in _fired(content.question(question_id), text)


@pytest.mark.parametrize("question_id", CANONICAL_IDS)
def test_mentioning_regions_triggers_region_failure(content: Content, question_id: str) -> None:
    text = "We deploy to two regions behind GeoDNS."
    assert "region-failure" in _fired(content.question(question_id), text)


def test_celebrity_pushback_does_not_fire_on_unrelated_words(content: Content) -> None:
    text = "Users sign in with OAuth and we keep accounts in Postgres."
    assert "celebrity-fanout" not in _fired(content.question("twitter"), text)
