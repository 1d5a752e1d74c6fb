"""An in-process circuit breaker, so a dead LLM costs one timeout per cool-down, not one per call.

closed    -> calls go through; `failure_threshold` consecutive failures open it.
open      -> calls are refused until `cooldown` seconds have passed.
half_open -> one trial call goes through; success closes, failure opens again.

The interface (allow / record_success / record_failure / state) is kept small so the shared
RedisBreaker (several instances, COACH_REDIS_URL) replaces this one without touching callers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from coach.config import Settings

if TYPE_CHECKING:
    from redis import Redis

log = logging.getLogger(__name__)

BreakerState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class BreakerStats:
    """Counters for /metrics."""

    state: BreakerState
    consecutive_failures: int
    total_failures: int
    total_successes: int
    times_opened: int
    rejected_calls: int
    open_until: float | None


class Breaker(Protocol):
    """What the LLM grader needs from a breaker."""

    @property
    def state(self) -> BreakerState: ...

    @property
    def consecutive_failures(self) -> int: ...

    def retry_in(self) -> float: ...

    def allow(self) -> bool: ...

    def record_success(self) -> None: ...

    def record_failure(self) -> None: ...


class CircuitBreaker:
    """Thread-safe breaker with an injectable clock (monotonic seconds) for tests.

    Example::

        breaker = CircuitBreaker(failure_threshold=3, cooldown=60)
        if breaker.allow():
            try:
                call()
            except LLMError:
                breaker.record_failure()
            else:
                breaker.record_success()
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        cooldown: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._state: BreakerState = "closed"
        self._consecutive = 0
        self._opened_at = 0.0
        self._trial_in_flight = False
        self.total_failures = 0
        self.total_successes = 0
        self.times_opened = 0
        self.rejected_calls = 0

    @classmethod
    def from_settings(
        cls, settings: Settings, *, clock: Callable[[], float] = time.monotonic
    ) -> CircuitBreaker:
        return cls(
            failure_threshold=settings.llm_breaker_failures,
            cooldown=settings.llm_breaker_cooldown,
            clock=clock,
        )

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._current_state()

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive

    @property
    def open_until(self) -> float | None:
        """Clock time at which an open breaker lets a trial call through; None unless open."""
        with self._lock:
            if self._current_state() != "open":
                return None
            return self._opened_at + self.cooldown

    def retry_in(self) -> float:
        """Seconds until the next trial call is allowed (0 when calls go through)."""
        until = self.open_until
        return 0.0 if until is None else max(0.0, until - self._clock())

    def allow(self) -> bool:
        """May a call go through now? In half-open state only one trial call at a time."""
        with self._lock:
            state = self._current_state()
            if state == "closed":
                return True
            if state == "half_open" and not self._trial_in_flight:
                self._trial_in_flight = True
                return True
            self.rejected_calls += 1
            return False

    def record_success(self) -> None:
        with self._lock:
            self.total_successes += 1
            self._consecutive = 0
            self._trial_in_flight = False
            self._state = "closed"

    def record_failure(self) -> None:
        with self._lock:
            self.total_failures += 1
            self._consecutive += 1
            trial_failed = self._trial_in_flight
            self._trial_in_flight = False
            if trial_failed or (
                self._state == "closed" and self._consecutive >= self.failure_threshold
            ):
                self._state = "open"
                self._opened_at = self._clock()
                self.times_opened += 1

    def stats(self) -> BreakerStats:
        with self._lock:
            state = self._current_state()
            return BreakerStats(
                state=state,
                consecutive_failures=self._consecutive,
                total_failures=self.total_failures,
                total_successes=self.total_successes,
                times_opened=self.times_opened,
                rejected_calls=self.rejected_calls,
                open_until=self._opened_at + self.cooldown if state == "open" else None,
            )

    def _current_state(self) -> BreakerState:
        # Open turns half-open by the clock alone, so no timer thread is needed.
        if self._state == "open" and self._clock() - self._opened_at >= self.cooldown:
            self._state = "half_open"
        return self._state


class RedisBreaker:
    """The same breaker with its state in Redis, so one opened by any instance is open for all.

    Keys (under COACH_REDIS_PREFIX, each with a TTL so nothing lingers): `failures`, the
    consecutive failure count; `open_until`, the wall-clock time the cool-down ends (after it,
    half-open); `trial`, held by the one instance making the half-open trial call. If Redis
    cannot be reached the breaker stays out of the way (calls go through).

    Example::

        breaker = RedisBreaker(Redis.from_url(url), prefix="coach", failure_threshold=3)
        if breaker.allow():
            ...
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        failure_threshold: int = 3,
        cooldown: float = 60.0,
        trial_timeout: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.redis = redis
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = f"{prefix}:breaker:failures"
        self._open_until = f"{prefix}:breaker:open_until"
        self._trial = f"{prefix}:breaker:trial"
        # State older than this is forgotten: a day, or ten cool-downs if longer.
        self._ttl = max(86_400, int(cooldown * 10) + 1)
        self._trial_ttl = max(1, int(trial_timeout) + 1)
        self.rejected_calls = 0  # this instance's, for its own metrics

    @classmethod
    def from_settings(cls, settings: Settings, redis: Redis) -> RedisBreaker:
        return cls(
            redis,
            prefix=settings.redis_prefix,
            failure_threshold=settings.llm_breaker_failures,
            cooldown=settings.llm_breaker_cooldown,
            trial_timeout=settings.llm_connect_timeout + settings.llm_read_timeout,
        )

    @property
    def state(self) -> BreakerState:
        try:
            until = self.redis.get(self._open_until)
        except Exception:  # a Redis outage must not stop grading
            log.warning("the shared circuit breaker is unreachable; taking it as closed")
            return "closed"
        if until is None:
            return "closed"
        return "open" if self._clock() < float(until) else "half_open"

    @property
    def consecutive_failures(self) -> int:
        try:
            return int(self.redis.get(self._failures) or 0)
        except Exception:
            return 0

    @property
    def open_until(self) -> float | None:
        """Wall-clock time at which the open breaker lets a trial call through; None unless open."""
        try:
            until = self.redis.get(self._open_until)
        except Exception:
            return None
        if until is None or self._clock() >= float(until):
            return None
        return float(until)

    def retry_in(self) -> float:
        until = self.open_until
        return 0.0 if until is None else max(0.0, until - self._clock())

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half_open":
            try:
                if self.redis.set(self._trial, "1", nx=True, ex=self._trial_ttl):
                    return True
            except Exception:
                return True
        self.rejected_calls += 1
        return False

    def record_success(self) -> None:
        try:
            self.redis.delete(self._failures, self._open_until, self._trial)
        except Exception:
            log.warning("could not record an LLM success in the shared circuit breaker")

    def record_failure(self) -> None:
        try:
            pipe = self.redis.pipeline()
            pipe.incr(self._failures)
            pipe.expire(self._failures, self._ttl)
            pipe.getdel(self._trial)
            pipe.get(self._open_until)
            failures, _, trial, until = pipe.execute()
            if trial is not None or (until is None and int(failures) >= self.failure_threshold):
                self.redis.set(self._open_until, repr(self._clock() + self.cooldown), ex=self._ttl)
        except Exception:
            log.warning("could not record an LLM failure in the shared circuit breaker")
