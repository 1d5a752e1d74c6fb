"""The one place coach talks to an LLM: the openai client, its timeouts and its error mapping.

Everything that can go wrong on the wire or in the reply becomes one of two coach errors,
in `_exchange` below: `LLMUnavailableError` (timeout, connection, rate limit, server error)
or `LLMInvalidOutputError` (the reply is not JSON matching the schema). Callers fall back to
the offline grader on either, so no openai or httpx exception leaks past this module.

Two hooks let the service watch calls without threading arguments through the grader:
`streaming_tokens(sink)` streams the reply's text to `sink` as it is generated, and
`add_call_observer(fn)` hands `fn` an `LLMCallRecord` for every HTTP call made.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

import httpx2  # openai's own fork of httpx, which its client is built on
import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel, ValidationError

from coach.config import Settings
from coach.errors import LLMInvalidOutputError, LLMUnavailableError
from coach.grading.models import TokenUsage

log = logging.getLogger(__name__)

JsonMode = Literal["json_schema", "json_object"]
Message = dict[str, str]
Outcome = Literal["ok", "invalid_output", "timeout", "unavailable", "rate_limited", "error"]
TokenSink = Callable[[str], None]

_CONNECTION_LIMITS = httpx2.Limits(
    max_connections=1000, max_keepalive_connections=100, keepalive_expiry=2.0
)

# Statuses that say nothing about the response_format, so auto mode must not switch on them.
_NOT_ABOUT_FORMAT = {401, 403, 408, 429}


# --- token streaming ---------------------------------------------------------------------

token_sink: ContextVar[TokenSink | None] = ContextVar("coach_llm_token_sink", default=None)
"""Where `complete_json` sends reply text as it arrives; None (the default) means no streaming."""

_stream_purposes: ContextVar[frozenset[str]] = ContextVar(
    "coach_llm_stream_purposes", default=frozenset({"grade"})
)


@contextmanager
def streaming_tokens(sink: TokenSink, *, purposes: Collection[str] = ("grade",)) -> Iterator[None]:
    """Stream the text of every LLM call made inside the block, as it is generated, to `sink`.

    A context variable instead of a parameter, because the call happens deep inside
    engine.advance -> grader -> client. Only calls whose purpose is in `purposes` stream, so
    the interviewer voice's reply (made in the same advance) does not leak into a feedback
    stream. Every such call streams, including the grader's retry after an unusable reply.
    The sink gets the raw text (JSON), in order; the validated result is still what
    `complete_json` returns. A sink that raises is logged and ignored for the rest of the call:
    a broken display must not cost the grade.

    Context variables do not follow work into a new thread: enter this block in the thread
    that grades (e.g. inside the worker thread's function, not around `run_in_threadpool`).

    Example::

        with streaming_tokens(queue.put_nowait):
            result = engine.advance(session)   # tokens reach the queue while it grades
    """
    sink_token = token_sink.set(sink)
    purposes_token = _stream_purposes.set(frozenset(purposes))
    try:
        yield
    finally:
        _stream_purposes.reset(purposes_token)
        token_sink.reset(sink_token)


# --- call records --------------------------------------------------------------------------


@dataclass(frozen=True)
class LLMCallRecord:
    """One HTTP call to the LLM and how it went, for the llm_calls table and metrics.

    Token counts are 0 when the server did not report them or the call failed before a
    reply; `error` is the coach error message when `outcome` is not "ok".
    """

    purpose: str
    model: str
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    latency_ms: float
    outcome: Outcome
    error: str | None


CallObserver = Callable[[LLMCallRecord], None]
_observers: list[CallObserver] = []
_observers_lock = threading.Lock()


def add_call_observer(fn: CallObserver) -> Callable[[], None]:
    """Have `fn` called with a record of every LLM call, in the calling thread; returns a remover.

    Observers run after each HTTP call (the auto-mode retry and failed calls included). An
    observer that raises is logged and skipped, so metrics can never break grading.
    """
    with _observers_lock:
        _observers.append(fn)

    def remove() -> None:
        with _observers_lock:
            if fn in _observers:
                _observers.remove(fn)

    return remove


def _notify(record: LLMCallRecord) -> None:
    with _observers_lock:
        observers = tuple(_observers)
    for observer in observers:
        try:
            observer(record)
        except Exception:
            log.exception("LLM call observer %r failed; the call itself is unaffected", observer)


# --- the client ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LLMReply:
    """A parsed JSON reply and what it cost."""

    data: dict[str, Any]
    usage: TokenUsage
    model: str
    raw: str
    parsed: BaseModel | None = None


@dataclass(frozen=True)
class _Completion:
    """What a plain or a streamed completion came to, so both are checked by the same code."""

    raw: str
    finish_reason: str | None
    model: str | None
    usage: dict[str, Any] | None  # the reply's "usage" object; None when not reported
    has_choice: bool


class LLMClient:
    """Asks an OpenAI-compatible endpoint for JSON, with our own timeouts and no hidden retries.

    Example::

        client = LLMClient(Settings(llm_base_url="http://127.0.0.1:8080/v1"))
        reply = client.complete_json(messages, schema, max_tokens=400)
        reply.data, reply.usage.prompt_tokens

    JSON mode. `json_schema` is OpenAI's structured outputs; llama.cpp servers refuse it
    (HTTP 500) but accept `{"type": "json_object", "schema": ...}` and constrain the output
    with a grammar. In `auto` the client tries json_schema first. If the endpoint answers
    with an HTTP error that could be about the format (any 4xx/5xx but auth, 408 and 429), it
    retries the same request once with json_object; if that works it keeps json_object for
    the life of the client, and if json_schema ever works it keeps json_schema. A transient
    outage therefore never locks in the wrong mode: a mode is remembered only once it worked.

    Streaming. Inside `streaming_tokens(sink)` the request is sent with `stream=True` (and
    `stream_options.include_usage`), the text goes to the sink chunk by chunk, and the whole
    reply is then checked exactly like a plain one. The read timeout applies between chunks.
    """

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.perf_counter):
        if not settings.llm_enabled:
            raise LLMUnavailableError(
                "No LLM is configured: set COACH_LLM_BASE_URL (or COACH_LLM_API_KEY for OpenAI)."
            )
        self._settings = settings
        self._clock = clock
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else ""
        self._client = openai.OpenAI(
            base_url=settings.llm_base_url,
            api_key=key or "not-needed",
            # openai>=3 ships its own httpx fork; its Timeout type is re-exported as openai.Timeout.
            timeout=openai.Timeout(settings.llm_read_timeout, connect=settings.llm_connect_timeout),
            max_retries=0,  # one retry policy, ours: the client's default would multiply the wait
            # uvicorn-based servers (vLLM, llama-cpp-python) close idle connections after 5 s,
            # httpx keeps them 5 s too: reusing one they just closed fails the call, so
            # connections idle for 2 s are dropped on our side first.
            http_client=openai.DefaultHttpxClient(limits=_CONNECTION_LIMITS),
        )
        self.model = settings.llm_model
        self.endpoint = str(self._client.base_url)
        self._mode: JsonMode | None = (
            None if settings.llm_json_mode == "auto" else settings.llm_json_mode
        )
        self._strict_schemas: dict[int, tuple[dict[str, Any], Any]] = {}

    @property
    def json_mode(self) -> JsonMode | None:
        """The JSON mode in use; None while auto mode has not yet seen a call succeed."""
        return self._mode

    def complete_json(
        self,
        messages: Sequence[Message],
        schema: dict[str, Any],
        *,
        max_tokens: int,
        name: str = "reply",
        validate: type[BaseModel] | None = None,
        purpose: str = "grade",
    ) -> LLMReply:
        """One chat completion that must come back as a JSON object matching `schema`.

        `validate`, when given, is the pydantic model the reply must also satisfy; a mismatch
        is an `LLMInvalidOutputError` like broken JSON. `purpose` labels the call's records
        (and decides whether it streams into a `streaming_tokens` sink).
        """
        max_tokens = min(max_tokens, self._settings.llm_max_tokens)
        sink = token_sink.get()
        if sink is not None and purpose not in _stream_purposes.get():
            sink = None
        call = _Call(messages, schema, name, max_tokens, validate, purpose, sink)
        if self._mode is not None:
            return self._call(call, self._mode)
        try:
            reply = self._call(call, "json_schema")
        except _FormatRefused:
            reply = self._call(call, "json_object")
            self._mode = "json_object"
            return reply
        self._mode = "json_schema"
        return reply

    # -- internals ------------------------------------------------------------------------

    def _response_format(self, mode: JsonMode, schema: dict[str, Any], name: str) -> Any:
        if mode == "json_schema":
            # The graders pass the same few schema objects on every call: strip each once.
            kept = self._strict_schemas.get(id(schema))
            if kept is None or kept[0] is not schema:
                if len(self._strict_schemas) >= _STRICT_CACHE_SIZE:  # a caller that builds anew
                    self._strict_schemas.clear()
                kept = self._strict_schemas[id(schema)] = (schema, _strict_schema(schema))
            return {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": kept[1], "strict": True},
            }
        return {"type": "json_object", "schema": schema}

    def _call(self, call: _Call, mode: JsonMode) -> LLMReply:
        """One HTTP call, reported to the observers whatever its outcome."""
        started = self._clock()
        try:
            reply = self._exchange(call, mode, started)
        except Exception as exc:
            _notify(self._failure_record(call.purpose, started, exc))
            raise
        usage = reply.usage
        _notify(
            LLMCallRecord(
                purpose=call.purpose,
                model=reply.model,
                prompt_tokens=usage.prompt_tokens,
                cached_tokens=usage.cached_tokens,
                completion_tokens=usage.completion_tokens,
                latency_ms=usage.latency_ms,
                outcome="ok",
                error=None,
            )
        )
        return reply

    def _exchange(self, call: _Call, mode: JsonMode, started: float) -> LLMReply:
        """Send one request and translate every failure into a coach error (the only place)."""
        settings = self._settings
        try:
            completion = self._request(call, mode)
        except openai.APITimeoutError as exc:
            raise LLMUnavailableError(
                f"LLM timed out after {settings.llm_read_timeout:g}s ({self.endpoint}); "
                "raise COACH_LLM_READ_TIMEOUT or use a faster model."
            ) from exc
        except openai.APIConnectionError as exc:
            raise LLMUnavailableError(
                f"LLM endpoint unreachable at {self.endpoint} ({_cause(exc)}); check "
                "COACH_LLM_BASE_URL and that the server is running."
            ) from exc
        except openai.RateLimitError as exc:
            wait = exc.response.headers.get("retry-after")
            hint = f"; it asks to retry after {wait}s" if wait else ""
            raise LLMUnavailableError(
                f"LLM rate limit hit (HTTP 429 from {self.endpoint}){hint}."
            ) from exc
        except openai.APIStatusError as exc:
            detail = _status_detail(exc)
            if "context" in detail.lower():
                hint = (
                    " The prompt does not fit the model's context window: set "
                    "COACH_LLM_PROMPT_DETAIL=compact or use a model with a longer context."
                )
            elif exc.status_code in (401, 403):
                hint = " Check COACH_LLM_API_KEY."
            elif exc.status_code < 500:
                hint = " Check COACH_LLM_MODEL and COACH_LLM_JSON_MODE."
            else:
                hint = ""
            message = f"LLM endpoint returned HTTP {exc.status_code}: {detail.rstrip('.')}.{hint}"
            if (
                settings.llm_json_mode == "auto"
                and self._mode is None
                and mode == "json_schema"
                and exc.status_code not in _NOT_ABOUT_FORMAT
            ):
                raise _FormatRefused(message) from exc
            raise LLMUnavailableError(message) from exc
        except openai.APIError as exc:  # an error event in the middle of a stream
            raise LLMUnavailableError(
                f"LLM endpoint reported an error mid-reply ({self.endpoint}): "
                f"{_clip(exc.message).rstrip('.')}."
            ) from exc
        except openai.OpenAIError as exc:  # anything else the client can raise
            raise LLMUnavailableError(f"LLM call failed: {exc}") from exc
        latency_ms = (self._clock() - started) * 1000
        return self._parse(completion, latency_ms, call.validate)

    def _request(self, call: _Call, mode: JsonMode) -> _Completion:
        """The HTTP exchange itself; openai errors propagate to `_exchange` for mapping."""
        settings = self._settings
        messages: Any = list(call.messages)
        response_format = self._response_format(mode, call.schema, call.name)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": settings.llm_temperature,
            "max_tokens": call.max_tokens,
            "response_format": response_format,
        }
        # The client's generic `post` (openai's README: "Undocumented endpoints") rather than
        # `chat.completions.create`: create() first runs openai's request transform, which walks
        # every message against its type annotations (about a tenth of the server's CPU under
        # load) and would leave this plain-JSON body unchanged. The reply is taken as bytes and
        # read as plain JSON: building openai's typed ChatCompletion, of which four fields are
        # read, cost about 0.3 ms of CPU per call. The body goes as ready-made JSON `content`
        # (sent with the client's JSON Content-Type): the client's own encoder writes non-ASCII
        # text as is and then encodes it, 0.17 ms for a 34 KB grade prompt against 0.07 ms
        # for ASCII JSON; with its request building, 0.25 ms of CPU per grade call. The HTTP
        # request and the errors raised for an error status are the client's own either way.
        if call.sink is None:
            reply = self._client.post("/chat/completions", content=_json_bytes(body), cast_to=bytes)
            return _completion_of(reply)
        stream = self._client.post(
            "/chat/completions",
            content=_json_bytes(body | {"stream": True, "stream_options": {"include_usage": True}}),
            cast_to=ChatCompletion,
            stream=True,
            stream_cls=openai.Stream[ChatCompletionChunk],
        )
        feed = _SafeSink(call.sink)
        parts: list[str] = []
        finish_reason: str | None = None
        model: str | None = None
        usage: dict[str, Any] | None = None
        has_choice = False
        with stream:
            for chunk in stream:
                model = getattr(chunk, "model", None) or model
                if chunk_usage := getattr(chunk, "usage", None):
                    usage = chunk_usage.model_dump()
                for choice in chunk.choices or []:
                    if choice.index != 0:
                        continue
                    has_choice = True
                    text = choice.delta.content if choice.delta else None
                    if text:
                        parts.append(text)
                        feed(text)
                    finish_reason = choice.finish_reason or finish_reason
        return _Completion(
            raw="".join(parts),
            finish_reason=finish_reason,
            model=model,
            usage=usage,
            has_choice=has_choice,
        )

    def _failure_record(self, purpose: str, started: float, exc: Exception) -> LLMCallRecord:
        """The record of a failed call: what it cost, when known, and why it failed."""
        latency_ms = (self._clock() - started) * 1000
        usage = getattr(exc, "usage", None)
        if not isinstance(usage, TokenUsage):
            usage = TokenUsage(latency_ms=latency_ms)
        return LLMCallRecord(
            purpose=purpose,
            model=self.model,
            prompt_tokens=usage.prompt_tokens,
            cached_tokens=usage.cached_tokens,
            completion_tokens=usage.completion_tokens,
            latency_ms=usage.latency_ms,
            outcome=_outcome(exc),
            error=str(exc),
        )

    def _parse(
        self, completion: _Completion, latency_ms: float, validate: type[BaseModel] | None
    ) -> LLMReply:
        usage = _usage(completion.usage, latency_ms)
        try:
            return self._decode(completion, usage, validate)
        except LLMInvalidOutputError as exc:
            exc.usage = usage  # the tokens were spent even though the reply is unusable
            raise

    def _decode(
        self, completion: _Completion, usage: TokenUsage, validate: type[BaseModel] | None
    ) -> LLMReply:
        model = completion.model or self.model
        if not completion.has_choice:
            seen = f" (it sent: {_clip(completion.raw)})" if completion.raw.strip() else ""
            raise LLMInvalidOutputError(
                f"LLM reply had no choices{seen}; is COACH_LLM_BASE_URL an OpenAI-compatible "
                "endpoint (ending in /v1)?"
            )
        raw = completion.raw
        if completion.finish_reason == "length":
            raise LLMInvalidOutputError(
                f"LLM reply was cut off at max_tokens ({usage.completion_tokens} tokens); "
                "raise COACH_LLM_MAX_TOKENS."
            )
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise LLMInvalidOutputError(
                f"LLM reply is not valid JSON ({exc.msg} at char {exc.pos}): {_clip(raw)}"
            ) from exc
        if not isinstance(data, dict):
            raise LLMInvalidOutputError(f"LLM reply is JSON but not an object: {_clip(raw)}")
        parsed = None
        if validate is not None:
            try:
                parsed = validate.model_validate(data)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "(top level)"
                raise LLMInvalidOutputError(
                    f"LLM reply does not match the schema ({exc.error_count()} problem(s); "
                    f"first at '{where}': {first['msg']})."
                ) from exc
        return LLMReply(data=data, usage=usage, model=model, raw=raw, parsed=parsed)


@dataclass(frozen=True)
class _Call:
    """One `complete_json` request, kept together so the auto-mode retry can resend it."""

    messages: Sequence[Message]
    schema: dict[str, Any]
    name: str
    max_tokens: int
    validate: type[BaseModel] | None
    purpose: str
    sink: TokenSink | None


class _SafeSink:
    """Calls the sink until it first raises, then logs once and stops: display is best effort."""

    def __init__(self, sink: TokenSink):
        self._sink: TokenSink | None = sink

    def __call__(self, text: str) -> None:
        if self._sink is None:
            return
        try:
            self._sink(text)
        except Exception:
            log.exception("LLM token sink %r failed; streaming to it stops", self._sink)
            self._sink = None


class _FormatRefused(Exception):
    """Internal: the endpoint rejected json_schema in auto mode; retry with json_object."""


def _outcome(exc: BaseException) -> Outcome:
    """The record's outcome for a failed call, read from the error and the openai cause."""
    if isinstance(exc, LLMInvalidOutputError):
        return "invalid_output"
    cause = exc.__cause__
    if isinstance(cause, openai.APITimeoutError):  # before APIConnectionError, its base
        return "timeout"
    if isinstance(cause, openai.RateLimitError):
        return "rate_limited"
    if isinstance(cause, openai.APIConnectionError):
        return "unavailable"
    if isinstance(cause, openai.APIStatusError):
        return "unavailable" if cause.status_code >= 500 else "error"
    if isinstance(cause, openai.APIError):  # an error event mid-stream
        return "unavailable"
    return "error"


# Length bounds keep a small local model from rambling until max_tokens (llama.cpp turns them
# into its grammar), but OpenAI's strict mode may refuse them; code checks lengths anyway.
_STRICT_CACHE_SIZE = 16
_STRICT_UNSUPPORTED = {"maxLength", "minLength", "maxItems", "minItems"}


def _strict_schema(schema: Any) -> Any:
    """The schema without the keywords OpenAI's strict structured outputs may refuse."""
    if isinstance(schema, dict):
        return {k: _strict_schema(v) for k, v in schema.items() if k not in _STRICT_UNSUPPORTED}
    if isinstance(schema, list):
        return [_strict_schema(v) for v in schema]
    return schema


def _completion_of(body: bytes) -> _Completion:
    """The fields coach reads from a chat.completion body; a body that is not one has no choice."""
    try:
        data = json.loads(body)
    except ValueError:  # not JSON (or not UTF-8): an endpoint that does not speak the protocol
        data = None
    if not isinstance(data, dict):
        text = body[:240].decode("utf-8", "replace") if body else ""
        return _Completion(raw=text, finish_reason=None, model=None, usage=None, has_choice=False)
    choices = data.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    if not isinstance(first, dict):
        first = None
    message = first.get("message") if first is not None else None
    content = message.get("content") if isinstance(message, dict) else None
    finish_reason = first.get("finish_reason") if first is not None else None
    model = data.get("model")
    usage = data.get("usage")
    return _Completion(
        raw=content if isinstance(content, str) else "",
        finish_reason=finish_reason if isinstance(finish_reason, str) else None,
        model=model if isinstance(model, str) else None,
        usage=usage if isinstance(usage, dict) else None,
        has_choice=first is not None,
    )


def _usage(usage: dict[str, Any] | None, latency_ms: float) -> TokenUsage:
    if usage is None:
        return TokenUsage(latency_ms=latency_ms)
    details = usage.get("prompt_tokens_details")
    return TokenUsage(
        prompt_tokens=_count(usage.get("prompt_tokens")),
        cached_tokens=_count(details.get("cached_tokens") if isinstance(details, dict) else None),
        completion_tokens=_count(usage.get("completion_tokens")),
        latency_ms=latency_ms,
    )


def _count(value: Any) -> int:
    """A token count from the reply; anything but a non-negative integer counts as 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _status_detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if message:
            return _clip(str(message))
    return _clip(exc.message)


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return type(cause).__name__ if cause else str(exc)


def _json_bytes(body: dict[str, Any]) -> bytes:
    """A request body as compact ASCII JSON (any JSON parser reads the \\u escapes)."""
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def _clip(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
