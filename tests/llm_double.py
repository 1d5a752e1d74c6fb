"""A scripted OpenAI-compatible HTTP server, so LLM tests go through the real openai client.

Usage::

    with LLMDouble() as llm:
        llm.script(Reply.json({"line": "hi"}), Reply.error(500))
        settings = Settings(llm_base_url=llm.base_url, ...)
        ...
        llm.requests[0]["messages"]   # every request body, as JSON

Each POST /v1/chat/completions takes the next scripted reply (or `llm.default` once the
script is used up). A reply may also be a function of the request body, for doubles that
answer from what they were sent.

Streaming (`stream: true`) answers like the real API: `chat.completion.chunk` events with
the content split into `chunk_size` pieces (each after `chunk_delay` seconds, so a test can
see tokens arrive before the end), a last chunk with the finish_reason, a usage chunk when
the request asks for `stream_options.include_usage`, then `data: [DONE]`. Scripted HTTP
errors and delays apply to streams too; `Reply.stream_error` fails in the middle of one.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

if TYPE_CHECKING:
    from coach.breaker import Breaker
    from coach.content import Content
    from coach.grading.llm import LLMGrader

from coach.config import Settings
from threaded_server import ThreadedServer


def approx_tokens(text: str) -> int:
    """The usual rule of thumb: about four characters per token."""
    return max(1, len(text) // 4)


@dataclass
class Reply:
    """One scripted answer: a message content, or an HTTP error, after an optional delay.

    The streaming fields matter only for `stream: true` requests: `chunk_size` characters per
    chunk, `chunk_delay` seconds before each, and with `error_after_chunks` an error event
    saying `stream_error_message` after that many content chunks instead of the rest.
    `send_usage=False` plays a server that never reports usage.
    """

    content: str = ""
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    finish_reason: str = "stop"
    chunk_size: int = 8
    chunk_delay: float = 0.0
    error_after_chunks: int | None = None
    stream_error_message: str = "scripted stream failure"
    send_usage: bool = True
    raw_body: bytes | None = None  # sent as the whole 200 body instead of a chat.completion
    raw_content_type: str = "application/json"

    @classmethod
    def json(
        cls, data: Any, *, delay: float = 0.0, chunk_size: int = 8, chunk_delay: float = 0.0
    ) -> Reply:
        return cls(
            content=json.dumps(data), delay=delay, chunk_size=chunk_size, chunk_delay=chunk_delay
        )

    @classmethod
    def stream_error(
        cls, content: str, *, after_chunks: int = 2, message: str = "scripted stream failure"
    ) -> Reply:
        """A stream that starts well, then sends an error event (as OpenAI does mid-stream)."""
        return cls(content=content, error_after_chunks=after_chunks, stream_error_message=message)

    @classmethod
    def text(cls, content: str) -> Reply:
        return cls(content=content)

    @classmethod
    def raw(cls, body: bytes, content_type: str = "application/json") -> Reply:
        """A 200 whose body is not a chat completion: a wrong base URL, a broken proxy."""
        return cls(raw_body=body, raw_content_type=content_type)

    @classmethod
    def cut_off(cls, content: str) -> Reply:
        return cls(content=content, finish_reason="length")

    @classmethod
    def slow(cls, seconds: float, data: Any | None = None) -> Reply:
        return cls(content=json.dumps(data or {}), delay=seconds)

    @classmethod
    def error(cls, status: int, message: str = "scripted failure") -> Reply:
        return cls(content=message, status=status)

    @classmethod
    def rate_limited(cls, retry_after: int = 7) -> Reply:
        return cls(content="rate limited", status=429, headers={"retry-after": str(retry_after)})


Responder = Reply | Callable[[dict[str, Any]], Reply]


def _prompt_text(body: dict[str, Any]) -> str:
    return "".join(str(m.get("content") or "") for m in body.get("messages", []))


class LLMDouble:
    """The server; a context manager that runs uvicorn in a background thread."""

    def __init__(
        self,
        *,
        model: str = "double-model",
        refuse_json_schema: bool = False,
        refuse_stream_options: bool = False,
    ):
        self.model = model
        # Answer json_schema requests with a 500, as llama.cpp's server does.
        self.refuse_json_schema = refuse_json_schema
        # Answer requests carrying stream_options with a 400, as some older servers do.
        self.refuse_stream_options = refuse_stream_options
        self.requests: list[dict[str, Any]] = []
        self.content_types: list[str | None] = []  # each request's Content-Type header
        self.default: Responder = Reply.error(500, "no reply scripted")
        self._script: deque[Responder] = deque()
        self._last_prompt = ""
        self._runner = ThreadedServer()

    # -- scripting --------------------------------------------------------------------------

    def script(self, *replies: Responder) -> None:
        self._script.extend(replies)

    def reset(self) -> None:
        self.requests.clear()
        self.content_types.clear()
        self._script.clear()
        self.default = Reply.error(500, "no reply scripted")
        self.refuse_json_schema = False
        self.refuse_stream_options = False
        self._last_prompt = ""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- the app ------------------------------------------------------------------------------

    def _next(self, body: dict[str, Any]) -> Reply:
        fmt = body.get("response_format") or {}
        if self.refuse_json_schema and fmt.get("type") == "json_schema":
            return Reply.error(500, "response_format json_schema is not supported")
        if self.refuse_stream_options and "stream_options" in body:
            return Reply.error(400, "Unrecognized request argument supplied: stream_options")
        responder = self._script.popleft() if self._script else self.default
        return responder(body) if callable(responder) else responder

    def _usage(self, body: dict[str, Any], completion: str) -> dict[str, Any]:
        prompt = _prompt_text(body)
        # Cached tokens as OpenAI reports them: the prefix shared with the previous request,
        # counted only from 1,024 tokens on, in steps of 128.
        shared = 0
        for a, b in zip(prompt, self._last_prompt, strict=False):
            if a != b:
                break
            shared += 1
        self._last_prompt = prompt
        cached_tokens = approx_tokens(prompt[:shared]) if shared else 0
        cached_tokens = cached_tokens // 128 * 128 if cached_tokens >= 1024 else 0
        prompt_tokens = approx_tokens(prompt)
        completion_tokens = approx_tokens(completion)
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens},
        }

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/models")
        async def models() -> dict[str, Any]:
            return {
                "object": "list",
                "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "test"}],
            }

        @app.post("/v1/chat/completions")
        async def completions(request: Request) -> Response:
            body = await request.json()
            self.requests.append(body)
            self.content_types.append(request.headers.get("content-type"))
            reply = self._next(body)
            if reply.delay:
                await asyncio.sleep(reply.delay)
            if reply.status != 200:
                kind = "rate_limit_error" if reply.status == 429 else "server_error"
                return JSONResponse(
                    {"error": {"message": reply.content, "type": kind, "code": None}},
                    status_code=reply.status,
                    headers=reply.headers,
                )
            if reply.raw_body is not None:
                return Response(reply.raw_body, media_type=reply.raw_content_type)
            created = int(time.time())
            usage = self._usage(body, reply.content)
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return StreamingResponse(
                    self._chunks(reply, created, usage if include_usage else None),
                    media_type="text/event-stream",
                )
            return JSONResponse(
                {
                    "id": f"chatcmpl-{len(self.requests)}",
                    "object": "chat.completion",
                    "created": created,
                    "model": self.model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": reply.content},
                            "finish_reason": reply.finish_reason,
                            "logprobs": None,
                        }
                    ],
                    **({"usage": usage} if reply.send_usage else {}),
                }
            )

        return app

    async def _chunks(
        self, reply: Reply, created: int, usage: dict[str, Any] | None
    ) -> AsyncIterator[str]:
        """The reply as OpenAI's SSE events; `usage` given means the request asked for it."""
        ident = f"chatcmpl-{len(self.requests)}"
        with_usage = usage is not None and reply.send_usage

        def event(data: dict[str, Any]) -> str:
            return f"data: {json.dumps(data)}\n\n"

        def chunk(delta: dict[str, Any], finish: str | None) -> str:
            data: dict[str, Any] = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if with_usage:
                data["usage"] = None  # every chunk but the last has "usage": null
            return event(data)

        yield chunk({"role": "assistant", "content": ""}, None)
        size = max(1, reply.chunk_size)
        for n, start in enumerate(range(0, len(reply.content), size)):
            if reply.error_after_chunks is not None and n >= reply.error_after_chunks:
                error = {
                    "message": reply.stream_error_message,
                    "type": "server_error",
                    "code": None,
                }
                yield event({"error": error})
                return
            if reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
            yield chunk({"content": reply.content[start : start + size]}, None)
        yield chunk({}, reply.finish_reason)
        if with_usage:
            yield event(
                {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": self.model,
                    "choices": [],
                    "usage": usage,
                }
            )
        yield "data: [DONE]\n\n"

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> LLMDouble:
        self._runner.start(self._app(), "LLM test double")
        return self

    @property
    def port(self) -> int:
        return self._runner.port

    def __exit__(self, *exc: object) -> None:
        self._runner.stop()


def free_port() -> int:
    """A port nothing listens on (bound and released at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def double_settings(llm: LLMDouble, **overrides: object) -> Settings:
    """Settings pointing coach's LLM client at this double, with short test timeouts."""
    values: dict[str, object] = {
        "llm_base_url": llm.base_url,
        "llm_model": "double-model",
        "llm_json_mode": "json_object",
        "llm_read_timeout": 5.0,
        "llm_breaker_failures": 3,
        "llm_breaker_cooldown": 30.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def grader_on(
    llm: LLMDouble, content: Content, *, breaker: Breaker | None = None, **overrides: object
) -> LLMGrader:
    """coach's LLMGrader talking to this double over HTTP (offline fallback, own breaker)."""
    from coach.breaker import CircuitBreaker
    from coach.grading.llm import LLMGrader
    from coach.grading.offline import OfflineGrader
    from coach.llm import LLMClient

    settings = double_settings(llm, **overrides)
    return LLMGrader(
        content=content,
        settings=settings,
        client=LLMClient(settings),
        fallback=OfflineGrader(content),
        breaker=breaker or CircuitBreaker.from_settings(settings),
    )
