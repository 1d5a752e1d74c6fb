"""The one place coach talks to an LLM: the openai client, its timeouts and its error mapping.

Everything that can go wrong on the wire or in the reply becomes one of two coach errors,
in `_call` below: `LLMUnavailableError` (timeout, connection, rate limit, server error) or
`LLMInvalidOutputError` (the reply is not JSON matching the schema). Callers fall back to
the offline grader on either, so no openai or httpx exception leaks past this module.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import openai
from pydantic import BaseModel, ValidationError

from coach.config import Settings
from coach.errors import LLMInvalidOutputError, LLMUnavailableError
from coach.grading.models import TokenUsage

JsonMode = Literal["json_schema", "json_object"]
Message = dict[str, str]

# Statuses that say nothing about the response_format, so auto mode must not switch on them.
_NOT_ABOUT_FORMAT = {401, 403, 408, 429}


@dataclass(frozen=True)
class LLMReply:
    """A parsed JSON reply and what it cost."""

    data: dict[str, Any]
    usage: TokenUsage
    model: str
    raw: str
    parsed: BaseModel | None = None


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
        )
        self.model = settings.llm_model
        self.endpoint = str(self._client.base_url)
        self._mode: JsonMode | None = (
            None if settings.llm_json_mode == "auto" else settings.llm_json_mode
        )

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
    ) -> LLMReply:
        """One chat completion that must come back as a JSON object matching `schema`.

        `validate`, when given, is the pydantic model the reply must also satisfy; a mismatch
        is an `LLMInvalidOutputError` like broken JSON.
        """
        max_tokens = min(max_tokens, self._settings.llm_max_tokens)
        if self._mode is not None:
            return self._call(messages, schema, name, self._mode, max_tokens, validate)
        try:
            reply = self._call(messages, schema, name, "json_schema", max_tokens, validate)
        except _FormatRefused:
            reply = self._call(messages, schema, name, "json_object", max_tokens, validate)
            self._mode = "json_object"
            return reply
        self._mode = "json_schema"
        return reply

    # -- internals ------------------------------------------------------------------------

    def _response_format(self, mode: JsonMode, schema: dict[str, Any], name: str) -> Any:
        if mode == "json_schema":
            return {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": _strict_schema(schema), "strict": True},
            }
        return {"type": "json_object", "schema": schema}

    def _call(
        self,
        messages: Sequence[Message],
        schema: dict[str, Any],
        name: str,
        mode: JsonMode,
        max_tokens: int,
        validate: type[BaseModel] | None,
    ) -> LLMReply:
        """Send one request and translate every failure into a coach error (the only place)."""
        settings = self._settings
        started = self._clock()
        try:
            completion = self._client.chat.completions.create(
                model=self.model,
                messages=list(messages),  # type: ignore[arg-type]
                temperature=settings.llm_temperature,
                max_tokens=max_tokens,
                response_format=self._response_format(mode, schema, name),
            )
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
            if (
                settings.llm_json_mode == "auto"
                and self._mode is None
                and mode == "json_schema"
                and exc.status_code not in _NOT_ABOUT_FORMAT
            ):
                raise _FormatRefused(detail) from exc
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
            raise LLMUnavailableError(
                f"LLM endpoint returned HTTP {exc.status_code}: {detail.rstrip('.')}.{hint}"
            ) from exc
        except openai.OpenAIError as exc:  # anything else the client can raise
            raise LLMUnavailableError(f"LLM call failed: {exc}") from exc
        latency_ms = (self._clock() - started) * 1000
        return self._parse(completion, latency_ms, validate)

    def _parse(
        self, completion: Any, latency_ms: float, validate: type[BaseModel] | None
    ) -> LLMReply:
        usage = _usage(completion, latency_ms)
        try:
            return self._decode(completion, usage, validate)
        except LLMInvalidOutputError as exc:
            exc.usage = usage  # the tokens were spent even though the reply is unusable
            raise

    def _decode(
        self, completion: Any, usage: TokenUsage, validate: type[BaseModel] | None
    ) -> LLMReply:
        model = getattr(completion, "model", None) or self.model
        choices = getattr(completion, "choices", None) or []
        if not choices:
            raise LLMInvalidOutputError("LLM reply had no choices.")
        choice = choices[0]
        raw = (choice.message.content if choice.message else None) or ""
        if choice.finish_reason == "length":
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


class _FormatRefused(Exception):
    """Internal: the endpoint rejected json_schema in auto mode; retry with json_object."""


# Length bounds keep a small local model from rambling until max_tokens (llama.cpp turns them
# into its grammar), but OpenAI's strict mode may refuse them; code checks lengths anyway.
_STRICT_UNSUPPORTED = {"maxLength", "minLength", "maxItems", "minItems"}


def _strict_schema(schema: Any) -> Any:
    """The schema without the keywords OpenAI's strict structured outputs may refuse."""
    if isinstance(schema, dict):
        return {k: _strict_schema(v) for k, v in schema.items() if k not in _STRICT_UNSUPPORTED}
    if isinstance(schema, list):
        return [_strict_schema(v) for v in schema]
    return schema


def _usage(completion: Any, latency_ms: float) -> TokenUsage:
    usage = getattr(completion, "usage", None)
    if usage is None:
        return TokenUsage(latency_ms=latency_ms)
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) if details is not None else None
    return TokenUsage(
        prompt_tokens=usage.prompt_tokens or 0,
        cached_tokens=cached or 0,
        completion_tokens=usage.completion_tokens or 0,
        latency_ms=latency_ms,
    )


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


def _clip(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
