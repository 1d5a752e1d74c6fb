"""The one place a Redis client is made: short timeouts, so a dead Redis fails fast."""

from __future__ import annotations

from typing import TYPE_CHECKING

from coach.config import Settings

if TYPE_CHECKING:
    from redis import Redis

# A request that touches Redis (rate limit, breaker) waits at most this long for it.
TIMEOUT_SECONDS = 2.0


def connect(settings: Settings) -> Redis:
    """A client for COACH_REDIS_URL (connections are made lazily, on first use)."""
    from redis import Redis

    if not settings.redis_url:
        raise ValueError("COACH_REDIS_URL is not set; scale-out needs a Redis to share state.")
    return Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=TIMEOUT_SECONDS,
        socket_timeout=TIMEOUT_SECONDS,
        health_check_interval=30,
    )
