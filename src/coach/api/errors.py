"""Every error the API returns is JSON with a stable `code`, a message and the field at fault.

Coach's own errors map to a status here, in one table; request validation errors become 422
with the first offending field named. A bug still answers 500 with a JSON body, but bad
input never reaches one: the schemathesis run in CI checks that.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, get_args

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from coach import errors

log = logging.getLogger(__name__)

STATUS_FOR: list[tuple[type[errors.CoachError], int]] = [
    (errors.InputTooLargeError, 413),
    (errors.InputError, 422),
    (errors.UnknownQuestionError, 404),
    (errors.InterviewNotFoundError, 404),
    (errors.GradingNotFoundError, 404),
    (errors.InterviewConflictError, 409),
    (errors.InterviewStateError, 409),
    (errors.StoreUnavailableError, 503),
]

# Which request field a coach error is about, for clients that highlight it (an InputError
# names its own: the text of an answer, a candidate name, an uploaded file).
FIELD_FOR: dict[type[errors.CoachError], str] = {
    errors.UnknownQuestionError: "question_id",
}


class APIError(errors.CoachError):
    """An error raised by a route itself, with its own status, code and field."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.field, self.headers = status, code, field, headers


def error_body(code: str, message: str, field: str | None = None) -> dict[str, str | None]:
    return {"code": code, "message": message, "field": field}


def status_of(exc: errors.CoachError) -> int:
    return next((status for kind, status in STATUS_FOR if isinstance(exc, kind)), 400)


def _send_json(request: Request) -> str:
    """How to send this route's body, e.g. 'send a JSON object such as {"text": "..."} ...'."""
    model: Any = None
    body_field = getattr(request.scope.get("route"), "body_field", None)
    if body_field is not None:
        annotation = body_field.field_info.annotation
        # `Model | None` for an optional body: the model is the member that has fields.
        members = get_args(annotation) or (annotation,)
        model = next((m for m in members if hasattr(m, "model_fields")), None)
    if model is None:
        example = '{"text": "..."}'
    else:
        fields = model.model_fields
        shown = [name for name, info in fields.items() if info.is_required()] or list(fields)
        example = "{" + ", ".join(f'"{name}": "..."' for name in shown) + "}"
    return f"send a JSON object such as {example} with Content-Type: application/json."


def _unreadable_body(problem: Mapping[str, Any], request: Request) -> str | None:
    """What is wrong with a body that is no JSON object at all, or None when it is one.

    Pydantic's own words for these ("0: JSON decode error", "Input should be a valid
    dictionary") name neither the body nor the fix."""
    if problem.get("type") == "json_invalid":
        where = problem.get("loc", ())[-1:]
        error = str((problem.get("ctx") or {}).get("error", ""))
        # json's messages end in "at" ("Unterminated string starting at"), some do not
        at = "" if error.endswith(" at") else " at"
        detail = f" ({error}{at} character {where[0]})" if error and where else ""
        return f"The request body is not valid JSON{detail}; {_send_json(request)}"
    if tuple(problem.get("loc", ())) != ("body",):
        return None  # a field inside the object: the usual message names it
    if problem.get("type") == "missing":
        return f"The request has no body; {_send_json(request)}"
    return f"The request body is not a JSON object; {_send_json(request)}"


def _unparsable_body(cause: BaseException | None, request: Request) -> str:
    """Why FastAPI could not even parse the body (its bare "error parsing the body")."""
    if isinstance(cause, UnicodeDecodeError):
        why = f"is not UTF-8 text (bad byte at offset {cause.start})"
    elif isinstance(cause, RecursionError):
        why = "is nested too deeply to read"
    elif isinstance(cause, ValueError) and "digits" in str(cause):
        why = "holds a number too long to read"
    else:
        why = "could not be read as JSON"
    return f"The request body {why}; {_send_json(request)}"


def _wants_a_page(request: Request) -> bool:
    """A browser asking for a page (not an API, Slack or static path): it gets HTML."""
    path = request.url.path
    return (
        request.method in ("GET", "HEAD")
        and "text/html" in request.headers.get("accept", "")
        and not path.startswith(("/v1/", "/slack/", "/static/"))
    )


def install_error_handlers(
    app: FastAPI, *, page_error: Callable[[Request, int, str], Response] | None = None
) -> None:
    """`page_error(request, status, message)`, when given (the web app), answers a browser
    asking for a page that does not exist, or with an address a page cannot use."""

    @app.exception_handler(APIError)
    async def api_error(_: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, str(exc), exc.field), status_code=exc.status, headers=exc.headers
        )

    @app.exception_handler(errors.CoachError)
    async def coach_error(_: Request, exc: errors.CoachError) -> JSONResponse:
        field = getattr(exc, "field", None) or next(
            (f for kind, f in FIELD_FOR.items() if isinstance(exc, kind)), None
        )
        return JSONResponse(error_body(exc.code, str(exc), field), status_code=status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        problems = exc.errors()
        first = problems[0] if problems else {"loc": (), "msg": "invalid request"}
        if (why := _unreadable_body(first, request)) is not None:
            return JSONResponse(error_body("invalid_body", why), status_code=422)
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or None
        message = f"{field}: {first.get('msg')}" if field else str(first.get("msg"))
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more problem(s))"
        if page_error is not None and _wants_a_page(request):  # e.g. /quiz?q=abc
            return page_error(
                request,
                422,
                f"This address holds a value the page cannot use ({message}). Follow a link "
                "from the home page instead.",
            )
        return JSONResponse(error_body("validation_error", message, field), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # FastAPI's "error parsing the body": bytes that are not JSON
            return JSONResponse(
                error_body("invalid_body", _unparsable_body(exc.__cause__, request)),
                status_code=422,
            )
        code = {
            404: "not_found",
            405: "method_not_allowed",
            413: "request_too_large",  # a body over COACH_MAX_REQUEST_BYTES, sent in chunks
        }.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":  # no route has this path
            if page_error is not None and _wants_a_page(request):
                return page_error(
                    request,
                    404,
                    f"There is no page at {request.url.path}. Pick a question to practise instead.",
                )
            message = (
                f"There is no {request.url.path} here: the API's routes start with /v1/ and "
                "are listed at /docs."
            )
        elif exc.status_code == 405:
            message = (
                f"{request.url.path} does not take {request.method}; /docs lists the methods "
                "each route takes."
            )
        return JSONResponse(
            error_body(code, message),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        # Starlette re-raises after this response and uvicorn then drops the connection, so
        # tell the client not to reuse it (or its next request fails with a reset).
        return JSONResponse(
            error_body("internal_error", "Something went wrong on our side; it was logged."),
            status_code=500,
            headers={"Connection": "close"},
        )
