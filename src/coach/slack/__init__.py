"""The Slack bot: team practice in threads, graded answers by DM, a leaderboard (slack-bolt).

`routes.slack_router` mounts it at /slack/events; `bot.py` holds the listeners, `coach.py`
what they do, `blocks.py` the Block Kit, `summary.py` the leaderboard and weekly summary.
"""
