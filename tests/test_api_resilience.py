"""Nothing a candidate wrote is lost: server processes SIGKILLed mid-grade, restarted on the
same database, and failed gradings retried, all over HTTP against real uvicorn processes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from api_testing import server_env, wait_for_grading, wait_until
from coach.content import Content
from coach.content.models import PHASE_IDS
from coach.store import GradingRecord, Store
from llm_double import LLMDouble
from llm_script import ScriptedLLM
from server_process import ServerProcess

UPLOAD = """\
## Requirements
Users post short messages and read a home timeline; 200M daily active users.

## Estimation
200M DAU x 5 posts/day = 1B posts/day, about 11,600 writes/s.

## API
POST /v1/posts returns 201; GET /v1/timeline?cursor=abc returns a page.

## Data model
posts(post_id, user_id, text, created_at) partitioned by user_id.

## Architecture
App servers, a timeline cache in Redis and a fan-out queue.

## Deep dive
Celebrities: fan-out on read for accounts over 1M followers, on write for the rest.
"""
ANSWERS = [
    "Users post short tweets and read a home timeline of the accounts they follow.",
    "Out of scope: search and ads. Reads dominate: about 100 reads per write.",
]
SLOW = 60.0  # seconds the LLM takes while a test kills the server; never waited out
LEASE = 2.0  # seconds before a killed server's running job is taken over by a live one


@pytest.fixture()
def double(llm: LLMDouble) -> LLMDouble:
    """The shared double, reset for this test."""
    return llm


class Servers:
    """Start server processes on one database, one after another; stops what is left."""

    def __init__(self, database_url: str, tmp_path: Path, double: LLMDouble) -> None:
        Store(database_url).upgrade()
        self.database_url, self.tmp_path, self.double = database_url, tmp_path, double
        self.started: list[ServerProcess] = []

    def start(self, **env: str) -> ServerProcess:
        settings = {
            "llm_base_url": self.double.base_url,
            "llm_json_mode": "json_object",
            "llm_model": "double-model",
            "llm_read_timeout": str(SLOW * 2),
            "job_lease_seconds": str(LEASE),
        } | env
        server = ServerProcess(
            server_env(self.database_url, self.tmp_path, **settings), log_dir=self.tmp_path
        )
        self.started.append(server)
        return server.start()

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()


@pytest.fixture()
def servers(database_url: str, tmp_path: Path, double: LLMDouble) -> Iterator[Servers]:
    running = Servers(database_url, tmp_path, double)
    try:
        yield running
    finally:
        running.stop_all()


def stored_grading(database_url: str, grading_id: str) -> GradingRecord:
    """The grading as the database holds it, read with no server running."""
    with Store(database_url) as store:
        return store.get_grading(grading_id, owner=None)


# --- (a) a grading job killed mid-grade completes exactly once ------------------------------


def test_a_job_killed_mid_grade_completes_exactly_once_after_a_restart(
    servers: Servers, scripted: ScriptedLLM, database_url: str
) -> None:
    scripted.grade_delay = SLOW
    first = servers.start()
    with httpx.Client(base_url=first.url, timeout=30) as api:
        accepted = api.post("/v1/gradings", json={"text": UPLOAD, "wait": False})
        assert accepted.status_code == 202, accepted.text
        gid = accepted.json()["grading_id"]
        assert accepted.json()["status"] == "pending"
        wait_until(lambda: scripted.calls["grade"] >= 1, what="the first grade request")
        assert api.get(f"/v1/gradings/{gid}").json()["status"] == "running"
    first.kill()

    killed = stored_grading(database_url, gid)
    assert (killed.status, killed.attempts, killed.text) == ("running", 1, UPLOAD)

    scripted.grade_delay = 0.0
    before = scripted.calls["grade"]
    second = servers.start()
    with httpx.Client(base_url=second.url, timeout=30) as api:
        done = wait_for_grading(api, gid)
        assert done["status"] == "done", done
        assert done["attempts"] == 2, "one interrupted attempt, one that finished"
        report = done["report"]
        assert isinstance(report, dict)
        assert [p["phase"] for p in report["phases"]] == list(PHASE_IDS)
        assert all(p["source"] == "llm" for p in report["phases"])
        time.sleep(0.5)  # a second grading run, if there were one, would show by now
        assert scripted.calls["grade"] - before == len(PHASE_IDS), "each phase graded once"
        assert api.get(f"/v1/gradings/{gid}").json()["attempts"] == 2
    assert stored_grading(database_url, gid).text == UPLOAD


# --- (b) an interview's answers survive the process ---------------------------------------


def test_answers_survive_a_kill_even_in_the_middle_of_grading(
    servers: Servers, scripted: ScriptedLLM
) -> None:
    first = servers.start()
    with httpx.Client(base_url=first.url, timeout=30) as api:
        iid = api.post("/v1/interviews", json={"question_id": "twitter"}).json()["id"]
        for text in ANSWERS:
            assert api.post(f"/v1/interviews/{iid}/answers", json={"text": text}).is_success
    first.kill()

    second = servers.start()
    with httpx.Client(base_url=second.url, timeout=30) as api:
        state = api.get(f"/v1/interviews/{iid}").json()
        assert [t["text"] for t in state["turns"] if t["role"] == "candidate"] == ANSWERS

        scripted.grade_delay = SLOW
        impatient = httpx.Client(base_url=second.url, timeout=1)
        with impatient, pytest.raises(httpx.ReadTimeout):  # the grade is on its way to the LLM
            impatient.post(f"/v1/interviews/{iid}/advance", json={"phase": "requirements"})
        wait_until(lambda: scripted.calls["grade"] >= 1, what="the grade request")
    second.kill()

    scripted.grade_delay = 0.0
    third = servers.start()
    with httpx.Client(base_url=third.url, timeout=30) as api:
        state = api.get(f"/v1/interviews/{iid}").json()
        assert [t["text"] for t in state["turns"] if t["role"] == "candidate"] == ANSWERS
        assert state["phase"] == "requirements" and state["phases"][0]["grade"] is None
        advanced = api.post(f"/v1/interviews/{iid}/advance", json={"phase": "requirements"})
        assert advanced.status_code == 200, advanced.text
        grade = advanced.json()["grade"]
        assert grade["source"] == "llm"
        assert all(c["evidence"] in "\n\n".join(ANSWERS) for c in grade["criteria"] if c["met"])


# --- (c) a failed grading can be retried ------------------------------------------------


def house_question(content: Content, folder: Path) -> Path:
    """A question of our own (COACH_EXTRA_QUESTIONS_DIR), a copy of `chat` under a new id."""
    data = content.question("chat").model_dump(mode="json")
    data |= {"id": "house-chat", "title": "Design our chat", "aliases": [], "canonical": False}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "house-chat.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def test_a_failed_grading_keeps_its_text_and_can_be_retried(
    servers: Servers, scripted: ScriptedLLM, content: Content, tmp_path: Path, database_url: str
) -> None:
    """The question an upload was for disappears between accepting and grading it (the
    server restarted without the folder): the job fails honestly, and once the question is
    back a retry grades it."""
    extra = {"extra_questions_dir": str(house_question(content, tmp_path / "questions"))}
    scripted.grade_delay = SLOW
    first = servers.start(**extra)
    with httpx.Client(base_url=first.url, timeout=30) as api:
        accepted = api.post(
            "/v1/gradings", json={"text": UPLOAD, "question_id": "house-chat", "wait": False}
        )
        assert accepted.status_code == 202, accepted.text
        gid = accepted.json()["grading_id"]
        wait_until(lambda: scripted.calls["grade"] >= 1, what="the first grade request")
    first.kill()

    scripted.grade_delay = 0.0
    without = servers.start()
    with httpx.Client(base_url=without.url, timeout=30) as api:
        failed = wait_for_grading(api, gid)
        assert failed["status"] == "failed", failed
        assert "house-chat" in str(failed["error"]) and failed["report"] is None
        not_yet = api.get(f"/v1/gradings/{gid}/report.md")
        assert not_yet.status_code == 409 and "failed" in not_yet.json()["message"]
    without.stop()
    assert stored_grading(database_url, gid).text == UPLOAD

    again = servers.start(**extra)
    with httpx.Client(base_url=again.url, timeout=30) as api:
        assert api.get(f"/v1/gradings/{gid}").json()["status"] == "failed", "not retried alone"
        retried = api.post(f"/v1/gradings/{gid}/retry")
        assert retried.status_code == 202, retried.text
        assert retried.json()["status"] in ("pending", "running", "done")
        done = wait_for_grading(api, gid)
        assert done["status"] == "done" and done["error"] is None, done
        assert done["attempts"] == 3
        assert isinstance(done["report"], dict) and done["report"]["question_id"] == "house-chat"

        refused = api.post(f"/v1/gradings/{gid}/retry")
        assert refused.status_code == 409
        assert refused.json()["code"] == "invalid_state"
        assert "only a failed grading can be retried" in refused.json()["message"]
        unknown = api.post("/v1/gradings/no-such-grading/retry")
        assert unknown.status_code == 404 and unknown.json()["code"] == "grading_not_found"


def test_a_second_instance_starting_does_not_grade_a_running_job_again(
    servers: Servers, scripted: ScriptedLLM, database_url: str
) -> None:
    """Scale-out: an instance (re)starting next to a live one leaves the live one's job be."""
    scripted.grade_delay = 3.0
    first = servers.start()
    with httpx.Client(base_url=first.url, timeout=30) as api:
        gid = api.post("/v1/gradings", json={"text": UPLOAD, "wait": False}).json()["grading_id"]
        wait_until(lambda: scripted.calls["grade"] >= 1, what="the first grade request")
        second = servers.start()  # starts while the first instance is mid-grade
        scripted.grade_delay = 0.0
        done = wait_for_grading(api, gid)
    assert done["status"] == "done", done
    time.sleep(1.0)
    assert done["attempts"] == 1, "only the first instance graded it"
    assert scripted.calls["grade"] == len(PHASE_IDS), "each phase graded once"
    second.stop()
