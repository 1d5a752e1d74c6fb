"""Prometheus metrics for /metrics: requests, latency, grades by source, LLM tokens and errors.

Each app gets its own registry, so several apps in one process (tests) never collide.
"""

from __future__ import annotations

import json
import time

from fastapi import Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coach.grading.models import PhaseGrade


class Metrics:
    """The service's counters; `observe_grade` and `observe_llm_call` feed them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "coach_http_requests",
            "HTTP requests answered.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "coach_http_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.grades = Counter(
            "coach_grades",
            "Phase grades given, by who gave them.",
            ["source"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "coach_grade_fallbacks",
            "LLM grades replaced by the offline grader.",
            registry=self.registry,
        )
        self.llm_calls = Counter(
            "coach_llm_calls",
            "LLM HTTP calls, by outcome.",
            ["purpose", "outcome"],
            registry=self.registry,
        )
        self.llm_tokens = Counter(
            "coach_llm_tokens",
            "LLM tokens, by kind (prompt, cached, completion).",
            ["kind"],
            registry=self.registry,
        )
        self.breaker_open = Gauge(
            "coach_llm_breaker_open",
            "1 while the LLM circuit breaker grades offline.",
            registry=self.registry,
        )

    def observe_grade(self, grade: PhaseGrade) -> None:
        self.grades.labels(source=grade.source).inc()
        if grade.fallback_reason:
            self.fallbacks.inc()

    def observe_llm_call(self, record: object) -> None:
        """Feed one `coach.llm.LLMCallRecord`."""
        self.llm_calls.labels(
            purpose=getattr(record, "purpose", "grade"), outcome=getattr(record, "outcome", "ok")
        ).inc()
        for kind in ("prompt", "cached", "completion"):
            self.llm_tokens.labels(kind=kind).inc(getattr(record, f"{kind}_tokens", 0) or 0)

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class MetricsAndLimitsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware copy): counts and times requests, refuses big bodies.

    A body over `max_body` bytes is refused with 413 from its Content-Length alone, or, for a
    chunked upload, as soon as the bytes received pass the limit.
    """

    def __init__(self, app: ASGIApp, *, metrics: Metrics, max_body: int) -> None:
        self.app, self.metrics, self.max_body = app, metrics, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await _too_large(send, self.max_body)
            self._count(scope, 413, started)
            return
        seen = {"bytes": 0}

        async def counted_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen["bytes"] += len(message.get("body", b""))
                if seen["bytes"] > self.max_body:
                    raise _BodyTooLarge(self.max_body)
            return message

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, counted_receive, recording_send)
        except _BodyTooLarge:
            await _too_large(send, self.max_body)
            status["code"] = 413
        finally:
            self._count(scope, status["code"], started)

    def _count(self, scope: Scope, status: int, started: float) -> None:
        route = scope.get("route")
        # The route template (/v1/interviews/{interview_id}) keeps label values bounded.
        path = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "GET")
        self.metrics.requests.labels(method, path, str(status)).inc()
        self.metrics.latency.labels(method, path).observe(time.perf_counter() - started)


def _too_large_message(limit: int) -> str:
    return (
        f"The request body is over the {limit:,}-byte limit (COACH_MAX_REQUEST_BYTES, a server "
        "setting); send a shorter answer."
    )


class _BodyTooLarge(HTTPException):
    """Raised while a chunked body is read. An HTTPException, so FastAPI's body parser passes
    it on (any other error there becomes its 400 "error parsing the body") and the API's
    error handler answers 413, as it does for a route that reads the body itself; the
    middleware answers it only when it escapes the app's handlers."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, detail=_too_large_message(limit))


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        {"code": "request_too_large", "message": _too_large_message(limit), "field": None}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
