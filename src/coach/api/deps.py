"""Request dependencies: who is calling (auth) and whether they may spend an LLM call now."""

from __future__ import annotations

import math
import time
from typing import Annotated

import anyio
from fastapi import Depends, Request
from limits import parse
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from coach.api.errors import APIError
from coach.config import Settings
from coach.service import CoachService

LOCAL = "local"  # the rate-limit key for everyone in local single-user mode

# The web app's sign-in keeps the token in this HttpOnly cookie, so the browser (not page
# script) sends it. A cookie rides along on requests other sites trigger too, so calls that
# change something only accept it with the header below, which a cross-site form cannot set.
TOKEN_COOKIE = "coach_token"
WEB_CLIENT_HEADER = "X-Coach-Client"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# The dependencies are `async def`: FastAPI runs a plain `def` dependency in a worker thread,
# one thread hop each per request, which under load cost more than the work they do. The
# ones that may block (a token lookup, a Redis-backed limit) hop to a thread themselves.


async def get_service(request: Request) -> CoachService:
    return request.app.state.service  # type: ignore[no-any-return]


async def get_settings(request: Request) -> Settings:
    return request.app.state.service.settings  # type: ignore[no-any-return]


async def get_owner(request: Request) -> str | None:
    """The caller's token id under COACH_AUTH=token; None in local mode (no login)."""
    service: CoachService = request.app.state.service
    if service.settings.auth == "none":
        return None
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if not header:
        secret = cookie_token(request) or ""
    elif scheme.lower() != "bearer":
        secret = ""
    if not secret.strip():
        raise APIError(
            401,
            "unauthorized",
            "This server needs a bearer token: send 'Authorization: Bearer <token>' "
            "(make one with `coach tokens create NAME`), or sign in on the web app.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token_id = await anyio.to_thread.run_sync(service.store.token_id_for, secret.strip())
    if token_id is None:
        raise APIError(
            401,
            "invalid_token",
            "The bearer token is unknown or revoked; make a new one with `coach tokens create`.",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return token_id


def cookie_token(request: Request) -> str | None:
    """The web sign-in cookie's token: on reads always, on writes only from the web app."""
    secret = request.cookies.get(TOKEN_COOKIE)
    if not secret:
        return None
    if request.method in SAFE_METHODS or request.headers.get(WEB_CLIENT_HEADER) == "web":
        return secret
    return None


Service = Annotated[CoachService, Depends(get_service)]
Owner = Annotated[str | None, Depends(get_owner)]


class RateLimiter:
    """Per-caller limit on LLM-backed calls, on the well-kept `limits` library.

    In-process storage by default; with COACH_REDIS_URL the counts live in Redis, so the
    limit holds across every instance together (`from_settings`).
    """

    def __init__(self, rule: str, storage: Storage | None = None, *, namespace: str = "") -> None:
        self.rule = parse(rule)
        self.shared = storage is not None and not isinstance(storage, MemoryStorage)
        self.limiter = MovingWindowRateLimiter(storage or MemoryStorage())
        self.namespace = f"{namespace}:llm" if namespace else "llm"

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        if not settings.redis_url:
            return cls(settings.rate_limit)
        # `limits` names its Redis storage by the URL scheme: redis://, rediss://, ...
        storage = storage_from_string(
            settings.redis_url, socket_connect_timeout=2.0, socket_timeout=2.0
        )
        return cls(settings.rate_limit, storage, namespace=settings.redis_prefix)

    def check(self, key: str) -> None:
        try:
            allowed = self.limiter.hit(self.rule, self.namespace, key)
        except Exception as exc:  # the shared store is down: refuse rather than spend freely
            raise APIError(
                503,
                "rate_limit_unavailable",
                f"The shared rate-limit store (Redis) cannot be reached ({type(exc).__name__}); "
                "check COACH_REDIS_URL and that Redis is up, then try again.",
                headers={"Retry-After": "5"},
            ) from exc
        if allowed:
            return
        reset_at, _ = self.limiter.get_window_stats(self.rule, self.namespace, key)
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise APIError(
            429,
            "rate_limited",
            f"Too many grading calls: the limit is {self.rule} per caller. "
            f"Try again in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )


class LLMBudget:
    """One request's claim on its caller's rate limit, for routes that may call the LLM.

    The service calls `spend` once the input and the interview's state are checked, just
    before the work: a request refused for what it asks (empty text, an unknown id, a phase
    already graded) costs nothing, and keeps getting its own 4xx rather than 429 once the
    limit is reached. `spend` runs in the request's worker thread, so a shared limiter's
    round trip to Redis never blocks the event loop.
    """

    def __init__(self, limiter: RateLimiter, key: str, owner: str | None) -> None:
        self.limiter = limiter
        self.key = key
        self.owner = owner
        self.spent = False

    def spend(self) -> None:
        if not self.spent:  # a retried save must not spend twice
            self.spent = True
            self.limiter.check(self.key)


async def llm_budget(request: Request, owner: Owner) -> LLMBudget:
    """Async only to stay on the event loop: FastAPI runs a sync dependency in a thread."""
    key = owner or (request.client.host if request.client else LOCAL)
    return LLMBudget(request.app.state.rate_limiter, key, owner)


Budget = Annotated[LLMBudget, Depends(llm_budget)]
