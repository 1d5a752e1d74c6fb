"""LLMClient through the real openai client over HTTP: JSON modes, usage, and error mapping."""

from __future__ import annotations

import time

import openai
import pytest
from pydantic import BaseModel

from coach.breaker import CircuitBreaker
from coach.config import Settings
from coach.errors import LLMInvalidOutputError, LLMUnavailableError
from coach.llm import LLMClient
from llm_double import LLMDouble, Reply, double_settings, free_port

SCHEMA = {
    "type": "object",
    "properties": {"line": {"type": "string", "maxLength": 50}},
    "required": ["line"],
    "additionalProperties": False,
}
MESSAGES = [{"role": "system", "content": "Say hi."}, {"role": "user", "content": "hi"}]


class Line(BaseModel):
    line: str


def test_json_reply_is_parsed_with_usage_and_settings_sent(llm: LLMDouble) -> None:
    llm.script(Reply.json({"line": "hello"}))
    client = LLMClient(double_settings(llm, llm_max_tokens=300))

    reply = client.complete_json(MESSAGES, SCHEMA, max_tokens=1000, validate=Line)

    assert reply.data == {"line": "hello"}
    assert reply.parsed == Line(line="hello")
    assert reply.model == "double-model"
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    assert reply.usage.latency_ms > 0
    sent = llm.requests[0]
    assert sent["temperature"] == 0
    assert sent["max_tokens"] == 300  # capped by COACH_LLM_MAX_TOKENS
    assert sent["response_format"] == {"type": "json_object", "schema": SCHEMA}
    assert sent["messages"] == MESSAGES


def test_any_text_reaches_the_llm_unchanged_in_a_json_request(llm: LLMDouble) -> None:
    text = "Naïve fan-out ≈ 3× the writes — «ок», 東京, 🚀, a\u2028line and \\u00e9 typed out"
    llm.script(Reply.json({"line": "ok"}))

    LLMClient(double_settings(llm)).complete_json(
        [{"role": "user", "content": text}], SCHEMA, max_tokens=50
    )

    assert llm.requests[0]["messages"] == [{"role": "user", "content": text}]
    assert llm.content_types[0] == "application/json"


def test_cached_tokens_are_read_from_prompt_token_details(llm: LLMDouble) -> None:
    long_prefix = [{"role": "system", "content": "rubric " * 1200}]
    llm.script(Reply.json({"line": "a"}), Reply.json({"line": "b"}))
    client = LLMClient(double_settings(llm))

    first = client.complete_json([*long_prefix, MESSAGES[1]], SCHEMA, max_tokens=50)
    second = client.complete_json(
        [*long_prefix, {"role": "user", "content": "other"}], SCHEMA, max_tokens=50
    )

    assert first.usage.cached_tokens == 0
    assert second.usage.cached_tokens >= 1024


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply.text("Sure! Here is the JSON: {"), "not valid JSON"),
        (Reply.text('["a list"]'), "not an object"),
        (Reply.json({"wrong": 1}), "does not match the schema"),
        (Reply.cut_off('{"line": "hel'), "cut off at max_tokens"),
        # A base URL pointing at the wrong server answers 200 with something else entirely.
        (Reply.raw(b"<html><body>Sign in</body></html>", "text/html"), "no choices.*Sign in"),
        (Reply.raw(b'{"choices": [{"message": {"content": "{\\"li'), "no choices.*/v1"),
        (Reply.raw(b'{"object": "list", "data": []}'), "no choices.*OpenAI-compatible"),
    ],
    ids=[
        "broken",
        "list",
        "schema",
        "cut-off",
        "html-page",
        "broken-json-body",
        "not-a-completion",
    ],
)
def test_unusable_replies_are_invalid_output(llm: LLMDouble, reply: Reply, message: str) -> None:
    llm.script(reply)
    client = LLMClient(double_settings(llm))

    with pytest.raises(LLMInvalidOutputError, match=message):
        client.complete_json(MESSAGES, SCHEMA, max_tokens=50, validate=Line)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply.error(500, "boom"), "HTTP 500: boom"),
        (Reply.error(503, "overloaded"), "HTTP 503"),
        (Reply.rate_limited(retry_after=7), "429.*retry after 7s"),
        (Reply.error(401, "bad key"), "HTTP 401.*COACH_LLM_API_KEY"),
    ],
    ids=["500", "503", "429", "401"],
)
def test_http_errors_are_unavailable_and_never_retried_by_the_client(
    llm: LLMDouble, reply: Reply, message: str
) -> None:
    llm.script(reply)
    client = LLMClient(double_settings(llm))

    with pytest.raises(LLMUnavailableError, match=message):
        client.complete_json(MESSAGES, SCHEMA, max_tokens=50)
    assert len(llm.requests) == 1  # the openai client's own retries are off


def test_slow_server_times_out_at_the_read_timeout(llm: LLMDouble) -> None:
    llm.script(Reply.slow(3, {"line": "late"}))
    client = LLMClient(double_settings(llm, llm_read_timeout=1.0))

    started = time.monotonic()
    with pytest.raises(LLMUnavailableError, match="timed out after 1s"):
        client.complete_json(MESSAGES, SCHEMA, max_tokens=50)
    assert time.monotonic() - started < 2.5


def test_nothing_listening_is_unavailable_with_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    client = LLMClient(Settings(llm_base_url=url, llm_json_mode="json_object"))

    with pytest.raises(LLMUnavailableError, match=r"unreachable at http://127\.0\.0\.1"):
        client.complete_json(MESSAGES, SCHEMA, max_tokens=50)


def test_client_refuses_to_build_without_an_endpoint() -> None:
    with pytest.raises(LLMUnavailableError, match="COACH_LLM_BASE_URL"):
        LLMClient(Settings(llm_base_url=None, llm_api_key=None))


def test_auto_mode_switches_to_json_object_when_json_schema_is_refused(llm: LLMDouble) -> None:
    llm.refuse_json_schema = True  # what llama.cpp's server does
    llm.script(Reply.json({"line": "a"}), Reply.json({"line": "b"}))
    client = LLMClient(double_settings(llm, llm_json_mode="auto"))

    assert client.complete_json(MESSAGES, SCHEMA, max_tokens=50).data == {"line": "a"}
    assert client.complete_json(MESSAGES, SCHEMA, max_tokens=50).data == {"line": "b"}

    kinds = [r["response_format"]["type"] for r in llm.requests]
    assert kinds == ["json_schema", "json_object", "json_object"]  # remembered after one try
    assert client.json_mode == "json_object"


def test_auto_mode_keeps_json_schema_when_it_works(llm: LLMDouble) -> None:
    llm.script(Reply.json({"line": "a"}), Reply.json({"line": "b"}))
    client = LLMClient(double_settings(llm, llm_json_mode="auto"))

    client.complete_json(MESSAGES, SCHEMA, max_tokens=50, name="line")
    client.complete_json(MESSAGES, SCHEMA, max_tokens=50, name="line")

    formats = [r["response_format"] for r in llm.requests]
    assert all(f["type"] == "json_schema" for f in formats)
    strict = formats[0]["json_schema"]
    assert strict["name"] == "line" and strict["strict"] is True
    # Length bounds help llama.cpp's grammar but OpenAI's strict mode may refuse them.
    assert "maxLength" not in strict["schema"]["properties"]["line"]


def test_auto_mode_does_not_switch_on_a_rate_limit(llm: LLMDouble) -> None:
    llm.script(Reply.rate_limited())
    client = LLMClient(double_settings(llm, llm_json_mode="auto"))

    with pytest.raises(LLMUnavailableError, match="429"):
        client.complete_json(MESSAGES, SCHEMA, max_tokens=50)
    assert len(llm.requests) == 1
    assert client.json_mode is None  # still undecided: the 429 said nothing about the format


def test_auto_mode_remembers_nothing_when_both_modes_fail(llm: LLMDouble) -> None:
    llm.script(Reply.error(500), Reply.error(500), Reply.json({"line": "ok"}))
    client = LLMClient(double_settings(llm, llm_json_mode="auto"))

    with pytest.raises(LLMUnavailableError, match="HTTP 500"):
        client.complete_json(MESSAGES, SCHEMA, max_tokens=50)
    client.complete_json(MESSAGES, SCHEMA, max_tokens=50)

    kinds = [r["response_format"]["type"] for r in llm.requests]
    assert kinds == ["json_schema", "json_object", "json_schema"]
    assert client.json_mode == "json_schema"


def test_double_streams_server_sent_events_like_the_real_api(llm: LLMDouble) -> None:
    """The double speaks the streaming wire format too (chunks, then [DONE])."""
    llm.script(Reply.text("a streamed reply"))
    raw = openai.OpenAI(base_url=llm.base_url, api_key="x", max_retries=0)

    stream = raw.chat.completions.create(model="double-model", messages=MESSAGES, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)

    assert text == "a streamed reply"


# --- the circuit breaker -------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_failures_and_half_opens_after_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, cooldown=10, clock=clock)

    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_success()  # a success resets the count
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    assert breaker.retry_in() == 10

    clock.now = 9.9
    assert not breaker.allow()
    clock.now = 10
    assert breaker.state == "half_open"
    assert breaker.allow()  # one trial call...
    assert not breaker.allow()  # ...at a time
    breaker.record_failure()  # the trial failed: open again for a full cool-down
    assert breaker.state == "open" and breaker.retry_in() == 10

    clock.now = 20
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow()

    stats = breaker.stats()
    assert (stats.times_opened, stats.total_failures, stats.total_successes) == (2, 6, 2)
    assert stats.rejected_calls == 3
    assert stats.consecutive_failures == 0


def test_breaker_takes_its_limits_from_settings() -> None:
    breaker = CircuitBreaker.from_settings(Settings(llm_breaker_failures=1, llm_breaker_cooldown=5))
    breaker.record_failure()
    assert breaker.state == "open"
    assert 0 < breaker.retry_in() <= 5
