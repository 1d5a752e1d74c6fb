"""The LLM path through the real server: uvicorn in its own process, grading against an LLM
server over the OpenAI protocol (the scripted double, and llama.cpp with SmolLM2).

The double answers from each request (tests/llm_script.py): grade requests with a grade that
quotes the candidate, interviewer-voice requests with the draft line unchanged.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select

from api_testing import metric, metric_values, read_events, serve, serve_with_llm, wait_until
from coach.grading.models import PhaseGrade
from coach.store.tables import LLMCall
from llama_server import LlamaServer, assert_honest, running_llama_server
from llm_double import LLMDouble, Reply
from llm_script import ScriptedLLM, kind_of

ANSWER = (
    "Users post short tweets and read a home timeline of the accounts they follow. "
    "Out of scope: search and ads. Timeline reads under 200 ms at p99; availability over "
    "consistency. About 200M daily active users, and reads dominate writes."
)
ESTIMATE = "200M DAU x 5 posts = 1B posts/day, about 11,600 writes/s; reads are 100x that."


@pytest.fixture()
def double(llm: LLMDouble) -> LLMDouble:
    """The shared double, reset for this test."""
    return llm


@pytest.fixture()
def api(
    database_url: str, tmp_path: Path, double: LLMDouble, scripted: ScriptedLLM
) -> Iterator[httpx.Client]:
    server = serve_with_llm(database_url, tmp_path, double)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield client
    finally:
        server.stop()


def start_interview(api: httpx.Client, *answers: str) -> str:
    created = api.post("/v1/interviews", json={"question_id": "twitter"})
    assert created.status_code == 201, created.text
    iid: str = created.json()["id"]
    for text in answers:
        answered = api.post(f"/v1/interviews/{iid}/answers", json={"text": text})
        assert answered.status_code == 200, answered.text
    return iid


def candidate_texts(api: httpx.Client, iid: str) -> list[str]:
    turns = api.get(f"/v1/interviews/{iid}").json()["turns"]
    return [t["text"] for t in turns if t["role"] == "candidate"]


def opening_question(api: httpx.Client, phase: str) -> str:
    """The phase's opening question as the question endpoint shows it, spaces normalised."""
    phases = api.get("/v1/questions/twitter").json()["phases"]
    return " ".join(next(p["opening_question"] for p in phases if p["id"] == phase).split())


def test_advance_grades_with_the_llm_and_keeps_only_quoted_evidence(
    api: httpx.Client, scripted: ScriptedLLM, double: LLMDouble, database_url: str
) -> None:
    iid = start_interview(api, ANSWER)
    before = metric_values(api)

    reply = api.post(f"/v1/interviews/{iid}/advance", json={"phase": "requirements"})

    assert reply.status_code == 200, reply.text
    body = reply.json()
    grade = PhaseGrade.model_validate(body["grade"])
    assert grade.source == "llm" and grade.model == "double-model"
    assert grade.fallback_reason is None
    met = [c for c in grade.criteria if c.met]
    assert met, "the scripted LLM marks every criterion met with a true quote"
    assert all(c.evidence and c.evidence in ANSWER for c in met)
    assert grade.feedback == "Scripted feedback for requirements."
    assert grade.usage is not None and grade.usage.prompt_tokens > 0
    assert body["outcome"] == "advanced" and body["phase"] == "estimation"
    assert " ".join(body["opening"].split()).endswith(opening_question(api, "estimation"))

    grade_requests = [r for r in double.requests if kind_of(r) == "grade"]
    assert len(grade_requests) == 1
    assert grade_requests[0]["model"] == "double-model"
    assert grade_requests[0]["response_format"]["type"] == "json_object"
    assert scripted.calls["voice"] >= 2, "the opening lines went through the LLM voice too"

    after = metric_values(api)
    calls = "coach_llm_calls_total"
    assert metric(after, calls, purpose="grade", outcome="ok") == 1
    assert metric(after, calls, purpose="voice", outcome="ok") > metric(
        before, calls, purpose="voice", outcome="ok"
    )
    for kind in ("prompt", "completion"):
        assert metric(after, "coach_llm_tokens_total", kind=kind) > metric(
            before, "coach_llm_tokens_total", kind=kind
        )
    assert metric(after, "coach_grades_total", source="llm") == 1
    assert metric(after, "coach_llm_breaker_open") == 0

    stored = api.get(f"/v1/interviews/{iid}").json()
    assert stored["phases"][0]["grade"]["source"] == "llm"
    engine = create_engine(database_url)
    rows: list[Any] = []

    def grade_call_stored() -> bool:  # the server writes call records from a background thread
        with engine.connect() as conn:
            rows[:] = conn.execute(select(LLMCall).where(LLMCall.purpose == "grade")).all()
        return bool(rows)

    try:
        wait_until(grade_call_stored, timeout=10, what="the grade call's llm_calls row")
    finally:
        engine.dispose()
    assert [(r.model, r.outcome) for r in rows] == [("double-model", "ok")]
    assert rows[0].prompt_tokens > 0 and rows[0].completion_tokens > 0


UPLOAD = "\n\n".join(
    f"## {title}\n{text}"
    for title, text in [
        ("Requirements", ANSWER),
        ("Estimation", ESTIMATE),
        ("API", "POST /v1/posts returns 201; GET /v1/timeline?cursor=abc returns a page."),
        ("Data model", "posts(post_id, user_id, text, created_at), partitioned by user_id."),
        ("Architecture", "App servers, a timeline cache in Redis and a fan-out queue."),
        ("Deep dive", "Celebrities: fan-out on read above 1M followers, on write below."),
    ]
)


def follow_job(api: httpx.Client, poll: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Poll a job until it ends: its last status, and every progress seen on the way."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while (status := api.get(poll).json())["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline, f"still {status['status']} after 30 s"
        if status["progress"] is not None:
            seen.append(status["progress"])
        time.sleep(0.05)
    return status, seen


def test_a_grading_job_shows_how_far_it_has_got_while_the_llm_grades(
    api: httpx.Client, scripted: ScriptedLLM
) -> None:
    scripted.grade_delay = 0.3  # each of the six phase grades: slow enough to watch
    accepted = api.post("/v1/gradings", json={"text": UPLOAD, "wait": False})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["progress"] is None  # not started yet
    poll = accepted.json()["poll"]
    status, seen = follow_job(api, poll)
    assert status["status"] == "done", status
    assert status["progress"] == {"done": 8, "total": 8, "step": "Writing the report"}
    grading = [p for p in seen if p["step"].startswith("Grading ")]
    assert grading and all(1 <= p["done"] <= 6 and p["total"] == 8 for p in grading)
    assert len({p["step"] for p in grading}) >= 3, "several phases were seen under way"
    assert [p["done"] for p in seen] == sorted(p["done"] for p in seen)  # never goes back


def test_a_finish_job_shows_the_phases_it_grades_then_the_review(
    api: httpx.Client, scripted: ScriptedLLM
) -> None:
    iid = start_interview(api, ANSWER)
    advanced = api.post(f"/v1/interviews/{iid}/advance")  # requirements is graded now
    assert advanced.status_code == 200, advanced.text
    api.post(f"/v1/interviews/{iid}/answers", json={"text": ESTIMATE})
    scripted.grade_delay = 0.3  # each of the five phases left: slow enough to watch

    accepted = api.post(f"/v1/interviews/{iid}/finish", json={"wait": False})

    assert accepted.status_code == 202, accepted.text
    poll = accepted.json()["poll"]
    status, seen = follow_job(api, poll)
    assert status["status"] == "done", status
    # Five phases were left to grade (requirements had its grade), then the mistake review.
    assert status["progress"] == {"done": 6, "total": 6, "step": "Writing the report"}
    assert not [p for p in seen if p["step"].startswith("Grading phase 1 of 6")]
    grading = sorted({p["step"] for p in seen if p["step"].startswith("Grading ")})
    assert len(grading) >= 3, "several phases were seen under way"
    assert all(p["total"] == 6 for p in seen)
    assert [p["done"] for p in seen] == sorted(p["done"] for p in seen)  # never goes back
    report = api.get(f"/v1/interviews/{iid}/report").json()
    assert [p["source"] for p in report["phases"]] == ["llm"] * 6
    assert report["phases"][0] == advanced.json()["grade"]  # kept, not graded again


def test_a_failing_llm_grades_offline_with_a_reason_and_loses_nothing(
    api: httpx.Client, scripted: ScriptedLLM
) -> None:
    scripted.grade_status = 500
    iid = start_interview(api, ANSWER, "Out of scope: direct messages.")

    reply = api.post(f"/v1/interviews/{iid}/advance", json={"phase": "requirements"})

    assert reply.status_code == 200, reply.text
    grade = PhaseGrade.model_validate(reply.json()["grade"])
    assert grade.source == "offline"
    assert grade.fallback_reason and "HTTP 500" in grade.fallback_reason
    said = [ANSWER, "Out of scope: direct messages."]
    assert all(c.evidence in "\n\n".join(said) for c in grade.criteria if c.met and c.evidence)
    assert candidate_texts(api, iid) == said
    state = api.get(f"/v1/interviews/{iid}").json()
    assert state["phase"] == "estimation"
    assert state["phases"][0]["grade"]["fallback_reason"] == grade.fallback_reason

    values = metric_values(api)
    assert metric(values, "coach_llm_calls_total", purpose="grade", outcome="unavailable") == 1
    assert metric(values, "coach_grades_total", source="offline") == 1
    assert metric(values, "coach_grade_fallbacks_total") == 1


def test_streamed_advance_sends_tokens_as_the_llm_writes_then_the_grade(
    api: httpx.Client, scripted: ScriptedLLM
) -> None:
    scripted.chunk_delay, scripted.chunk_size = 0.02, 16
    iid = start_interview(api, ANSWER)

    with api.stream(
        "POST", f"/v1/interviews/{iid}/advance/stream", json={"phase": "requirements"}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = read_events(response)

    kinds = [e.event for e in events]
    assert kinds[-1] == "grade" and set(kinds[:-1]) == {"token"}, kinds
    tokens = [e for e in events if e.event == "token"]
    assert len(tokens) >= 10
    assert "".join(e.data for e in tokens) == scripted.grade_replies[-1]
    assert events[-1].at - tokens[0].at > 0.2, "tokens arrived while the LLM was still writing"
    final = json.loads(events[-1].data)
    assert final["outcome"] == "advanced" and final["grade"]["source"] == "llm"
    assert final["grade"]["feedback"] == "Scripted feedback for requirements."
    assert api.get(f"/v1/interviews/{iid}").json()["phase"] == "estimation"


def test_repeated_failures_open_the_breaker_and_ops_endpoints_say_so(
    database_url: str, tmp_path: Path, double: LLMDouble, scripted: ScriptedLLM
) -> None:
    double.default = Reply.error(500, "the model is down")
    server = serve_with_llm(database_url, tmp_path, double, llm_breaker_failures="2")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as api:
            iid = start_interview(api, ANSWER)  # the opening's voice call fails: 1
            # the grade fails: 2; the next opening's voice call, made at the same time, may
            # be sent before the breaker opens, and fail as a third
            first = api.post(f"/v1/interviews/{iid}/advance").json()
            assert first["grade"]["source"] == "offline"
            assert "HTTP 500" in first["grade"]["fallback_reason"]

            ready = api.get("/readyz")
            assert ready.status_code == 200, "offline grading keeps the service ready"
            assert ready.json()["checks"]["grader"] == {
                "ok": True,
                "mode": "llm",
                "model": "double-model",
                "breaker": "open",
            }
            assert metric(metric_values(api), "coach_llm_breaker_open") == 1

            sent = len(double.requests)
            api.post(f"/v1/interviews/{iid}/answers", json={"text": ESTIMATE})
            second = api.post(f"/v1/interviews/{iid}/advance").json()
            assert second["grade"]["source"] == "offline"
            assert re.match(
                r"LLM circuit breaker open after [23] failures", second["grade"]["fallback_reason"]
            )
            assert len(double.requests) == sent, "an open breaker sends nothing to the LLM"
            assert candidate_texts(api, iid) == [ANSWER, ESTIMATE]
    finally:
        server.stop()


# --- the real model ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llama() -> Iterator[LlamaServer]:
    with running_llama_server() as server:
        yield server


@pytest.mark.llama
def test_llama_grades_a_phase_through_the_api(llama: LlamaServer, tmp_path: Path) -> None:
    """One grade (plus the voice's short lines) from SmolLM2: valid whatever the model says."""
    server = serve(
        f"sqlite:///{tmp_path / 'db' / 'coach.db'}",
        tmp_path,
        llm_base_url=llama.base_url,
        llm_model=llama.model,
        llm_json_mode="json_object",
        llm_prompt_detail="compact",
        llm_read_timeout="120",
        llm_max_tokens="400",
    )
    try:
        with httpx.Client(base_url=server.url, timeout=300) as api:
            iid = start_interview(api, ANSWER)
            started = time.monotonic()
            reply = api.post(f"/v1/interviews/{iid}/advance", json={"phase": "requirements"})
            took = time.monotonic() - started
            assert reply.status_code == 200, reply.text
            grade = PhaseGrade.model_validate(reply.json()["grade"])
            assert grade.phase == "requirements"
            assert_honest(grade, ANSWER)
            if grade.source == "llm":
                assert grade.model
            assert reply.json()["opening"], "the next phase opens whatever the voice said"
            assert candidate_texts(api, iid) == [ANSWER]
            print(f"\nrequirements via API: {grade.source} score={grade.score} {took:.1f}s")
    finally:
        server.stop()
