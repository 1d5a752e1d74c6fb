"""Token streaming and call records, through the real openai client over HTTP to the double.

The service streams feedback as the LLM writes it and records every call; both must leave
the grade itself exactly as trustworthy as a plain call does.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from collections.abc import Iterator

import pytest
from pydantic import BaseModel

from coach.config import Settings
from coach.content import Content
from coach.errors import LLMError, LLMInvalidOutputError, LLMUnavailableError
from coach.grading.llm import LLMGrader
from coach.llm import LLMCallRecord, LLMClient, add_call_observer, streaming_tokens, token_sink
from coach.llm_voice import LLMVoice
from llm_double import LLMDouble, Reply, double_settings, free_port, grader_on
from test_llm_grader import API_TEXT, api_request, good, grade_reply

SCHEMA = {
    "type": "object",
    "properties": {"line": {"type": "string"}},
    "required": ["line"],
    "additionalProperties": False,
}
MESSAGES = [{"role": "system", "content": "Say hi."}, {"role": "user", "content": "hi"}]
LINE = {"line": "a reply long enough to arrive in several chunks"}


class Line(BaseModel):
    line: str


class Tokens:
    """A sink that remembers each piece of text and when it arrived."""

    def __init__(self) -> None:
        self.items: list[tuple[float, str]] = []

    def __call__(self, text: str) -> None:
        self.items.append((time.monotonic(), text))

    @property
    def texts(self) -> list[str]:
        return [text for _, text in self.items]


@pytest.fixture()
def records() -> Iterator[list[LLMCallRecord]]:
    """Every call record made during the test (the registry is global, so always removed)."""
    seen: list[LLMCallRecord] = []
    remove = add_call_observer(seen.append)
    yield seen
    remove()


def make_grader(content: Content, llm: LLMDouble) -> LLMGrader:
    return grader_on(llm, content)


def failure(client: LLMClient, *, sink: Tokens | None = None) -> LLMError:
    """The coach error one call raises, streamed when `sink` is given."""
    with pytest.raises(LLMError) as caught:
        if sink is None:
            client.complete_json(MESSAGES, SCHEMA, max_tokens=50, validate=Line)
        else:
            with streaming_tokens(sink):
                client.complete_json(MESSAGES, SCHEMA, max_tokens=50, validate=Line)
    return caught.value


# --- streaming ------------------------------------------------------------------------------


def test_tokens_arrive_in_order_and_before_the_reply_is_complete(llm: LLMDouble) -> None:
    llm.script(Reply.json(LINE, chunk_size=6, chunk_delay=0.05))
    client = LLMClient(double_settings(llm))
    tokens = Tokens()

    with streaming_tokens(tokens):
        reply = client.complete_json(MESSAGES, SCHEMA, max_tokens=100, validate=Line)
    done = time.monotonic()

    assert "".join(tokens.texts) == reply.raw == json.dumps(LINE)
    assert len(tokens.texts) == -(-len(reply.raw) // 6)  # one call per chunk, none merged
    first_token_at = tokens.items[0][0]
    assert done - first_token_at > 0.3  # the rest of the ~9 chunks were still on their way
    assert reply.parsed == Line(**LINE)
    sent = llm.requests[0]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_streamed_reply_equals_the_plain_reply(llm: LLMDouble) -> None:
    client = LLMClient(double_settings(llm))
    llm.script(Reply.json(LINE))
    plain = client.complete_json(MESSAGES, SCHEMA, max_tokens=100, validate=Line)
    llm.reset()  # forget the prompt, so the second call reports no cached prefix either
    llm.script(Reply.json(LINE))

    with streaming_tokens(Tokens()):
        streamed = client.complete_json(MESSAGES, SCHEMA, max_tokens=100, validate=Line)

    assert (streamed.data, streamed.parsed, streamed.raw, streamed.model) == (
        plain.data,
        plain.parsed,
        plain.raw,
        plain.model,
    )
    assert streamed.usage.model_dump(exclude={"latency_ms"}) == plain.usage.model_dump(
        exclude={"latency_ms"}
    )
    assert streamed.usage.prompt_tokens > 0 and streamed.usage.completion_tokens > 0
    assert streamed.usage.latency_ms > 0


def test_streamed_usage_includes_cached_tokens(llm: LLMDouble) -> None:
    long_prefix = [{"role": "system", "content": "rubric " * 1200}]
    llm.script(Reply.json({"line": "a"}), Reply.json({"line": "b"}))
    client = LLMClient(double_settings(llm))

    with streaming_tokens(Tokens()):
        first = client.complete_json([*long_prefix, MESSAGES[1]], SCHEMA, max_tokens=50)
        second = client.complete_json(
            [*long_prefix, {"role": "user", "content": "other"}], SCHEMA, max_tokens=50
        )

    assert first.usage.cached_tokens == 0
    assert second.usage.cached_tokens >= 1024


def test_stream_without_usage_reports_zero_tokens_and_the_latency(llm: LLMDouble) -> None:
    llm.script(Reply(content=json.dumps(LINE), send_usage=False))  # ignores include_usage
    client = LLMClient(double_settings(llm))

    with streaming_tokens(Tokens()):
        reply = client.complete_json(MESSAGES, SCHEMA, max_tokens=100)

    assert reply.data == LINE
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (0, 0)
    assert reply.usage.cached_tokens == 0 and reply.usage.latency_ms > 0


def test_without_a_sink_nothing_streams(llm: LLMDouble) -> None:
    llm.default = Reply.json(LINE)
    client = LLMClient(double_settings(llm))
    tokens = Tokens()

    with streaming_tokens(tokens):
        pass
    client.complete_json(MESSAGES, SCHEMA, max_tokens=100)

    assert token_sink.get() is None  # the block reset it
    assert "stream" not in llm.requests[0] and "stream_options" not in llm.requests[0]
    assert tokens.items == []


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply.text("Sure! Here is the JSON: {"), "not valid JSON"),
        (Reply.text('["a list"]'), "not an object"),
        (Reply.json({"wrong": 1}), "does not match the schema"),
        (Reply.cut_off('{"line": "hel'), "cut off at max_tokens"),
    ],
    ids=["broken", "list", "schema", "cut-off"],
)
def test_unusable_streamed_replies_are_invalid_output_like_plain_ones(
    llm: LLMDouble, reply: Reply, message: str
) -> None:
    llm.script(reply, reply)
    client = LLMClient(double_settings(llm))
    tokens = Tokens()

    plain = failure(client)
    streamed = failure(client, sink=tokens)

    assert isinstance(streamed, LLMInvalidOutputError) and message in str(streamed)
    assert str(streamed) == str(plain)
    assert "".join(tokens.texts) == reply.content  # the user saw what the model wrote
    assert streamed.usage is not None  # the tokens it cost are still known


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply.error(500, "boom"), "HTTP 500: boom"),
        (Reply.rate_limited(retry_after=7), "429.*retry after 7s"),
        (Reply.slow(2, LINE), "timed out after 1s"),
    ],
    ids=["500", "429", "timeout"],
)
def test_http_errors_on_a_stream_say_what_they_say_without_one(
    llm: LLMDouble, reply: Reply, message: str
) -> None:
    llm.script(reply, reply)
    client = LLMClient(double_settings(llm, llm_read_timeout=1.0))
    tokens = Tokens()

    plain = failure(client)
    streamed = failure(client, sink=tokens)

    assert isinstance(streamed, LLMUnavailableError) and re.search(message, str(streamed))
    assert str(streamed) == str(plain)
    assert len(llm.requests) == 2 and llm.requests[1]["stream"] is True
    assert tokens.items == []


def test_unreachable_endpoint_on_a_stream_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    client = LLMClient(Settings(llm_base_url=url, llm_json_mode="json_object"))

    with (
        streaming_tokens(Tokens()),
        pytest.raises(LLMUnavailableError, match=r"unreachable at http://127\.0\.0\.1"),
    ):
        client.complete_json(MESSAGES, SCHEMA, max_tokens=50)


def test_a_stream_that_stalls_mid_reply_times_out(llm: LLMDouble) -> None:
    llm.script(Reply(content=json.dumps(LINE), chunk_size=10, chunk_delay=1.5))
    client = LLMClient(double_settings(llm, llm_read_timeout=1.0))

    started = time.monotonic()
    with (
        streaming_tokens(Tokens()),
        pytest.raises(LLMUnavailableError, match="timed out after 1s"),
    ):
        client.complete_json(MESSAGES, SCHEMA, max_tokens=100)
    assert time.monotonic() - started < 2.5


def test_an_error_event_mid_stream_is_unavailable(llm: LLMDouble) -> None:
    llm.script(Reply.stream_error(json.dumps(LINE), after_chunks=2, message="model crashed"))
    client = LLMClient(double_settings(llm))
    tokens = Tokens()

    with (
        streaming_tokens(tokens),
        pytest.raises(LLMUnavailableError, match=r"error mid-reply.*model crashed"),
    ):
        client.complete_json(MESSAGES, SCHEMA, max_tokens=100)
    assert "".join(tokens.texts) == json.dumps(LINE)[:16]  # the two chunks before the error


def test_an_endpoint_that_refuses_stream_options_is_an_http_error(llm: LLMDouble) -> None:
    llm.refuse_stream_options = True
    client = LLMClient(double_settings(llm))

    with (
        streaming_tokens(Tokens()),
        pytest.raises(LLMUnavailableError, match="HTTP 400: Unrecognized request argument"),
    ):
        client.complete_json(MESSAGES, SCHEMA, max_tokens=100)


def test_a_failing_sink_costs_the_display_not_the_reply(
    llm: LLMDouble, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def broken(text: str) -> None:
        calls.append(text)
        raise ConnectionResetError("client went away")

    llm.script(Reply.json(LINE, chunk_size=4))
    client = LLMClient(double_settings(llm))

    with caplog.at_level(logging.ERROR, logger="coach.llm"), streaming_tokens(broken):
        reply = client.complete_json(MESSAGES, SCHEMA, max_tokens=100, validate=Line)

    assert reply.parsed == Line(**LINE)
    assert len(calls) == 1  # dropped after its first failure, not retried per token
    assert "token sink" in caplog.text


# --- streaming through the grader -------------------------------------------------------------


def test_grading_inside_streaming_tokens_streams_and_still_verifies(
    content: Content, llm: LLMDouble
) -> None:
    scripted = grade_reply(good(content))
    llm.script(Reply.json(scripted, chunk_size=40))
    tokens = Tokens()

    with streaming_tokens(tokens):
        grade = make_grader(content, llm).grade_phase(api_request(content))

    assert json.loads("".join(tokens.texts)) == scripted
    assert len(tokens.texts) > 3
    assert grade.source == "llm" and grade.fallback_reason is None
    assert grade.score == 4
    assert all(c.met and c.evidence and c.evidence in API_TEXT for c in grade.criteria)
    assert grade.usage is not None and grade.usage.prompt_tokens > 0


def test_a_worker_thread_that_sets_the_sink_streams_to_the_caller(
    content: Content, llm: LLMDouble
) -> None:
    """The API's pattern: grade in a worker thread, set the sink there, read tokens outside."""
    llm.script(Reply.json(grade_reply(good(content)), chunk_size=40, chunk_delay=0.02))
    grader = make_grader(content, llm)
    pieces: queue.Queue[str | None] = queue.Queue()
    grades = []

    def work() -> None:
        with streaming_tokens(pieces.put):
            grades.append(grader.grade_phase(api_request(content)))
        pieces.put(None)

    worker = threading.Thread(target=work)
    worker.start()
    first = pieces.get(timeout=5)
    grade_done_at_first_token = bool(grades)
    rest = list(iter(lambda: pieces.get(timeout=5), None))
    worker.join(timeout=5)

    assert not grade_done_at_first_token
    assert json.loads("".join([first or "", *rest])) == grade_reply(good(content))
    assert grades[0].source == "llm"


def test_a_sink_set_in_another_thread_is_not_used(content: Content, llm: LLMDouble) -> None:
    """Context variables do not cross into new threads, so the sink must be set in the worker."""
    llm.script(Reply.json(grade_reply(good(content))))
    grader = make_grader(content, llm)
    tokens = Tokens()

    with streaming_tokens(tokens):
        worker = threading.Thread(target=lambda: grader.grade_phase(api_request(content)))
        worker.start()
        worker.join(timeout=5)

    assert tokens.items == []
    assert "stream" not in llm.requests[0]


def test_the_interviewer_voice_does_not_stream_into_a_feedback_sink(
    content: Content, llm: LLMDouble
) -> None:
    llm.script(Reply.json({"line": "Let's push on fan-out for celebrities."}))
    settings = double_settings(llm)
    voice = LLMVoice(content=content, settings=settings, client=LLMClient(settings))
    tokens = Tokens()

    with streaming_tokens(tokens):
        voice.speak(
            kind="pushback",
            question=content.question("twitter"),
            phase="deep_dive",
            draft="What happens when a celebrity with 50 million followers tweets?",
            candidate_text="We fan out on write to every follower's cached timeline.",
        )

    assert tokens.items == []
    assert "stream" not in llm.requests[0]


# --- call records -----------------------------------------------------------------------------


def test_a_good_call_is_recorded_with_its_usage(
    llm: LLMDouble, records: list[LLMCallRecord]
) -> None:
    llm.script(Reply.json(LINE), Reply.json(LINE))
    client = LLMClient(double_settings(llm))

    plain = client.complete_json(MESSAGES, SCHEMA, max_tokens=100, purpose="voice")
    with streaming_tokens(Tokens(), purposes=["voice"]):
        streamed = client.complete_json(MESSAGES, SCHEMA, max_tokens=100, purpose="voice")

    assert len(records) == 2
    for record, reply in zip(records, [plain, streamed], strict=True):
        assert record == LLMCallRecord(
            purpose="voice",
            model="double-model",
            prompt_tokens=reply.usage.prompt_tokens,
            cached_tokens=reply.usage.cached_tokens,
            completion_tokens=reply.usage.completion_tokens,
            latency_ms=reply.usage.latency_ms,
            outcome="ok",
            error=None,
        )
    assert records[1].completion_tokens > 0


FAILURES = [
    ("invalid", Reply.text("not json {"), "invalid_output", True),
    ("500", Reply.error(500, "boom"), "unavailable", False),
    ("429", Reply.rate_limited(), "rate_limited", False),
    ("timeout", Reply.slow(2, LINE), "timeout", False),
    ("401", Reply.error(401, "bad key"), "error", False),
]


@pytest.mark.parametrize(
    ("stream", "reply", "outcome", "spent_tokens"),
    [
        *[pytest.param(False, *row[1:], id=f"plain-{row[0]}") for row in FAILURES],
        *[pytest.param(True, *row[1:], id=f"stream-{row[0]}") for row in FAILURES],
        pytest.param(
            True, Reply.stream_error(json.dumps(LINE)), "unavailable", False, id="stream-event"
        ),
    ],
)
def test_a_failed_call_is_recorded_with_its_outcome(
    llm: LLMDouble,
    records: list[LLMCallRecord],
    stream: bool,
    reply: Reply,
    outcome: str,
    spent_tokens: bool,
) -> None:
    llm.script(reply)
    client = LLMClient(double_settings(llm, llm_read_timeout=1.0))

    error = failure(client, sink=Tokens() if stream else None)

    (record,) = records
    assert (record.purpose, record.model, record.outcome) == ("grade", "double-model", outcome)
    assert record.error == str(error)
    assert (record.completion_tokens > 0) is spent_tokens
    assert (record.prompt_tokens > 0) is spent_tokens
    assert record.latency_ms > 0


def test_an_unreachable_endpoint_is_recorded_as_unavailable(
    records: list[LLMCallRecord],
) -> None:
    client = LLMClient(
        Settings(llm_base_url=f"http://127.0.0.1:{free_port()}/v1", llm_json_mode="json_object")
    )

    with pytest.raises(LLMUnavailableError):
        client.complete_json(MESSAGES, SCHEMA, max_tokens=50, purpose="split")

    assert [(r.purpose, r.outcome) for r in records] == [("split", "unavailable")]


def test_the_auto_mode_retry_is_a_second_record(
    llm: LLMDouble, records: list[LLMCallRecord]
) -> None:
    llm.refuse_json_schema = True
    llm.script(Reply.json(LINE))
    client = LLMClient(double_settings(llm, llm_json_mode="auto"))

    client.complete_json(MESSAGES, SCHEMA, max_tokens=50)

    assert [r.outcome for r in records] == ["unavailable", "ok"]
    assert records[0].error is not None and "HTTP 500" in records[0].error


def test_the_graders_retry_after_bad_output_is_recorded_too(
    content: Content, llm: LLMDouble, records: list[LLMCallRecord]
) -> None:
    llm.script(Reply.text("I think it is a 4"), Reply.json(grade_reply(good(content))))

    grade = make_grader(content, llm).grade_phase(api_request(content))

    assert grade.source == "llm"
    assert [(r.purpose, r.outcome) for r in records] == [
        ("grade", "invalid_output"),
        ("grade", "ok"),
    ]
    assert grade.usage is not None
    assert grade.usage.prompt_tokens == sum(r.prompt_tokens for r in records)


def test_a_removed_observer_hears_nothing_more(llm: LLMDouble) -> None:
    llm.default = Reply.json(LINE)
    client = LLMClient(double_settings(llm))
    seen: list[LLMCallRecord] = []
    remove = add_call_observer(seen.append)

    client.complete_json(MESSAGES, SCHEMA, max_tokens=50)
    remove()
    remove()  # removing twice is harmless
    client.complete_json(MESSAGES, SCHEMA, max_tokens=50)

    assert len(seen) == 1


def test_a_raising_observer_does_not_break_grading(
    content: Content,
    llm: LLMDouble,
    records: list[LLMCallRecord],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(record: LLMCallRecord) -> None:
        raise RuntimeError("metrics backend down")

    remove = add_call_observer(broken)
    try:
        llm.script(Reply.json(grade_reply(good(content))))
        with caplog.at_level(logging.ERROR, logger="coach.llm"):
            grade = make_grader(content, llm).grade_phase(api_request(content))
    finally:
        remove()

    assert grade.source == "llm" and grade.score == 4
    assert [r.outcome for r in records] == ["ok"]  # the other observers still heard it
    assert "metrics backend down" in caplog.text
