"""An in-process circuit breaker, so a dead LLM costs one timeout per cool-down, not one per call.

closed    -> calls go through; `failure_threshold` consecutive failures open it.
open      -> calls are refused until `cooldown` seconds have passed.
half_open -> one trial call goes through; success closes, failure opens again.

The interface (allow / record_success / record_failure / state) is kept small so a shared
(e.g. Redis-backed) breaker can replace this one without touching callers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from coach.config import Settings

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
