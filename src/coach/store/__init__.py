"""Persistence: tables, shipped migrations and the `Store` repository the front doors use."""

from coach.store.call_log import LLMCallLog
from coach.store.database import redact
from coach.store.repository import (
    GradingRecord,
    InterviewSummary,
    SlackMember,
    SlackPractice,
    SlackThreadInfo,
    Store,
    TokenInfo,
)

__all__ = [
    "GradingRecord",
    "InterviewSummary",
    "LLMCallLog",
    "SlackMember",
    "SlackPractice",
    "SlackThreadInfo",
    "Store",
    "TokenInfo",
    "redact",
]
