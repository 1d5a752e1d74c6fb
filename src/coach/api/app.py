"""`create_app(settings)`: the FastAPI app over one CoachService, with its ops endpoints.

No import-time side effects: tests and `coach serve` each build their own app.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from coach import __version__
from coach.api.deps import RateLimiter
from coach.api.errors import install_error_handlers
from coach.api.metrics import Metrics, MetricsAndLimitsMiddleware
from coach.api.routes_content import router as content_router
from coach.api.routes_gradings import router as gradings_router
from coach.api.routes_interviews import router as interviews_router
from coach.config import Settings
from coach.errors import CoachError
from coach.llm import LLMCallRecord, add_call_observer
from coach.service import CoachService
from coach.slack.routes import slack_router
from coach.web.routes import page_error
from coach.web.routes import router as web_router

log = logging.getLogger(__name__)

GC_THRESHOLDS = (10_000, 20, 20)  # the garbage collector's generations, in a serving process


def _serve_api_docs(app: FastAPI) -> None:
    """/docs: Swagger UI from files installed with coach (the fastapi-swagger package ships
    a current Swagger UI, which reads OpenAPI 3.1), so the docs work with no network."""
    assets = files("fastapi_swagger") / "resources"
    app.mount("/docs/assets", StaticFiles(directory=str(assets)), name="swagger-assets")

    @app.get("/docs", include_in_schema=False)
    def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="coach API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )


def _redis_reason(settings: Settings, exc: Exception) -> str:
    """Why Redis failed, without the URL's password."""
    from redis.connection import parse_url

    where = parse_url(settings.redis_url or "")
    address = f"{where.get('host', '?')}:{where.get('port', 6379)}"
    return f"Redis at {address} did not answer: {type(exc).__name__}: {exc}"


def create_app(settings: Settings | None = None, *, service: CoachService | None = None) -> FastAPI:
    """Build the app; `service` lets a test share one it already holds."""
    settings = settings or (service.settings if service else Settings())
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Sync routes run in anyio's thread pool (40 threads by default). With an LLM each
        # waiting call holds a thread, so a small pool would queue every request behind slow
        # grades; offline, 200 threads only take turns at the interpreter lock (at 200 busy
        # sessions, 16 threads gave about half the p99 of 200). COACH_REQUEST_THREADS.
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = settings.resolved_request_threads
        svc = app.state.service
        if settings.uses_sqlite:
            svc.store.upgrade()  # the embedded default migrates itself
        resumed = svc.start_jobs()
        if resumed:
            log.info("resumed %d unfinished grading job(s)", resumed)

        call_log = svc.start_call_log()

        def on_llm_call(record: LLMCallRecord) -> None:
            metrics.observe_llm_call(record)
            call_log.add(record)

        remove_observer = add_call_observer(on_llm_call)
        # What is alive now (modules, content, schemas, the app) lives as long as the
        # process. Frozen, it is left out of the collector's full passes, which otherwise
        # rescan it all and stopped every request for 60-100 ms a few times a minute. A
        # request allocates thousands of short-lived objects, so the youngest generation is
        # collected every 10,000 allocations instead of 700: measured offline on 2 cores,
        # server CPU per request fell from 2.0 to 1.7 ms.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        try:
            yield
        finally:
            gc.unfreeze()  # a process that builds many apps (the tests) can free old ones
            remove_observer()
            svc.close()  # after its jobs, it writes the call records still queued

    app = FastAPI(
        title="coach",
        version=__version__,
        summary="A system design interview coach: mock interviews, graded answers, a quiz.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's own pages load Swagger UI from a CDN: served locally below
        redoc_url=None,
    )
    app.state.service = service or CoachService(settings)
    app.state.metrics = metrics
    app.state.rate_limiter = RateLimiter.from_settings(settings)
    install_error_handlers(app, page_error=page_error)
    app.add_middleware(
        MetricsAndLimitsMiddleware, metrics=metrics, max_body=settings.max_request_bytes
    )
    app.include_router(content_router)
    app.include_router(interviews_router)
    app.include_router(gradings_router)
    app.include_router(slack_router(app.state.service))  # POST /slack/events
    app.include_router(web_router)

    _serve_api_docs(app)

    # HEAD too: load balancers and uptime checkers often probe with it.
    @app.api_route("/healthz", methods=["GET", "HEAD"], tags=["ops"])
    def healthz() -> dict[str, str]:
        """The process is up (no dependency is checked)."""
        return {"status": "ok"}

    @app.api_route("/readyz", methods=["GET", "HEAD"], tags=["ops"])
    def readyz(request: Request) -> JSONResponse:
        """Ready to serve: the database (and Redis and its job queue, when set) answer."""
        svc: CoachService = request.app.state.service
        checks: dict[str, Any] = {}
        ready = True
        try:
            svc.store.ping()
            checks["database"] = {"ok": True}
        except CoachError as exc:
            ready = False
            checks["database"] = {"ok": False, "reason": str(exc)}
        if svc.job_queue is not None:
            for name, check in (("redis", svc.job_queue.redis.ping), ("queue", svc.job_queue.ping)):
                try:
                    found = check()
                except Exception as exc:  # redis-py's errors: refused, timeout, auth, ...
                    ready = False
                    checks[name] = {"ok": False, "reason": _redis_reason(svc.settings, exc)}
                else:
                    checks[name] = {"ok": True} | (found if isinstance(found, dict) else {})
        breaker = getattr(svc.grader, "breaker", None)
        if svc.settings.llm_enabled:
            state = getattr(breaker, "state", "closed")
            metrics.breaker_open.set(1 if state == "open" else 0)
            checks["grader"] = {
                "ok": True,
                "mode": "llm",
                "model": svc.settings.llm_model,
                "breaker": state,
            }
        else:
            checks["grader"] = {"ok": True, "mode": "offline"}
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def metrics_endpoint(request: Request) -> Response:
        """Prometheus text format: requests, latency, grades by source, LLM tokens, errors."""
        breaker = getattr(request.app.state.service.grader, "breaker", None)
        metrics.breaker_open.set(1 if getattr(breaker, "state", "") == "open" else 0)
        return metrics.render()

    return app
