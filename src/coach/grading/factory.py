"""Choose the grader and the interviewer voice from settings: offline unless an LLM is set."""

from __future__ import annotations

from coach.breaker import Breaker, CircuitBreaker
from coach.config import Settings
from coach.content.loader import Content
from coach.grading.port import Grader
from coach.voice import InterviewerVoice, StaticVoice


def make_breaker(settings: Settings) -> Breaker:
    """The LLM circuit breaker: shared through Redis when COACH_REDIS_URL is set."""
    if settings.scale_out:
        from coach.breaker import RedisBreaker
        from coach.redis_client import connect

        return RedisBreaker.from_settings(settings, connect(settings))
    return CircuitBreaker.from_settings(settings)


def make_grader(settings: Settings, content: Content, *, breaker: Breaker | None = None) -> Grader:
    """OfflineGrader with no LLM configured; else an LLMGrader that falls back to it."""
    from coach.grading.offline import OfflineGrader

    offline = OfflineGrader(content)
    if not settings.llm_enabled:
        return offline
    from coach.grading.llm import LLMGrader
    from coach.llm import LLMClient

    return LLMGrader(
        content=content,
        settings=settings,
        client=LLMClient(settings),
        fallback=offline,
        breaker=breaker or make_breaker(settings),
    )


def make_voice(
    settings: Settings, content: Content, *, breaker: Breaker | None = None
) -> InterviewerVoice:
    """StaticVoice with no LLM configured; else an LLMVoice that says the draft on failure.

    Pass the grader's breaker to share it: one dead endpoint then stops both.
    """
    if not settings.llm_enabled:
        return StaticVoice()
    from coach.llm import LLMClient
    from coach.llm_voice import LLMVoice

    return LLMVoice(
        content=content,
        settings=settings,
        client=LLMClient(settings),
        breaker=breaker or make_breaker(settings),
    )
