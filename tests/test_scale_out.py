"""Scale-out end to end: two `coach serve` instances and a `coach worker` on one PostgreSQL
database and one Redis (real ones, each test under its own key prefix), driven over HTTP.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from api_testing import read_events, server_env, wait_for_grading, wait_until
from coach.content.models import PHASE_IDS
from coach.store import Store
from conftest import POSTGRES_URL_ENV, empty_database
from llm_double import LLMDouble, Reply, free_port
from llm_script import ScriptedLLM
from sample_answers import STRONG_UPLOAD as UPLOAD
from server_process import ChildProcess, ServerProcess

REDIS_URL = os.environ.get("COACH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
LEASE = 2.0  # seconds before a dead worker's job is queued again


def _redis_answers() -> bool:
    from redis import Redis

    try:
        return bool(Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except Exception:
        return False


if not _redis_answers() and os.environ.get("COACH_TEST_REQUIRE_REDIS"):
    pytest.fail(
        f"COACH_TEST_REQUIRE_REDIS is set but Redis does not answer at {REDIS_URL} "
        "(start it, or point COACH_TEST_REDIS_URL at one)",
        pytrace=False,
    )

pytestmark = [
    pytest.mark.skipif(not _redis_answers(), reason=f"Redis does not answer at {REDIS_URL}"),
    pytest.mark.skipif(
        not os.environ.get(POSTGRES_URL_ENV), reason=f"{POSTGRES_URL_ENV} is not set"
    ),
]


class WorkerProcess(ChildProcess):
    """`coach worker` in its own process, configured by env vars like ServerProcess."""

    def __init__(self, env: dict[str, str], *, log_dir: Path, name: str) -> None:
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COACH_")} | self.env
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from coach.cli import app; app()", "worker"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self


class Cluster:
    """Instances and workers on one database and one Redis prefix; stops all at the end."""

    def __init__(self, database_url: str, tmp_path: Path, double: LLMDouble) -> None:
        Store(database_url).upgrade()
        self.database_url, self.tmp_path = database_url, tmp_path
        self.prefix = f"coach-test-{uuid.uuid4().hex[:12]}"
        self.settings = {
            "llm_base_url": double.base_url,
            "llm_json_mode": "json_object",
            "llm_model": "double-model",
            "llm_read_timeout": "30",
            "job_lease_seconds": str(LEASE),
            "redis_url": REDIS_URL,
            "redis_prefix": self.prefix,
        }
        self.servers: list[ServerProcess] = []
        self.workers: list[WorkerProcess] = []

    def env(self, **env: str) -> dict[str, str]:
        return server_env(self.database_url, self.tmp_path, **(self.settings | env))

    def instance(self, **env: str) -> ServerProcess:
        server = ServerProcess(self.env(**env), log_dir=self.tmp_path)
        self.servers.append(server)
        return server.start()

    def worker(self, **env: str) -> WorkerProcess:
        name = f"worker-{len(self.workers) + 1}"
        worker = WorkerProcess(self.env(**env), log_dir=self.tmp_path, name=name)
        self.workers.append(worker)
        return worker.start()

    def wait_for_workers(self, api: httpx.Client, count: int = 1) -> None:
        wait_until(
            lambda: api.get("/readyz").json()["checks"]["queue"]["workers"] >= count,
            what=f"{count} worker(s) listening on the queue",
        )

    def close(self) -> None:
        from redis import Redis

        for process in [*self.servers, *self.workers]:
            process.stop()
        redis = Redis.from_url(REDIS_URL)
        keys = [
            *redis.scan_iter(f"{self.prefix}:*"),
            *redis.scan_iter(f"rq:*{self.prefix}*"),
            *redis.scan_iter(f"LIMITS:*{self.prefix}*"),  # the rate limit's counters
        ]
        if keys:
            redis.delete(*keys)
        redis.srem("rq:queues", f"rq:queue:{self.prefix}:gradings")


@pytest.fixture()
def cluster(request: pytest.FixtureRequest, tmp_path: Path, llm: LLMDouble) -> Iterator[Cluster]:
    running = Cluster(empty_database(request, "postgresql", tmp_path / "db"), tmp_path, llm)
    try:
        yield running
    finally:
        running.close()


def candidate_texts(api: httpx.Client, iid: str) -> list[str]:
    turns = api.get(f"/v1/interviews/{iid}").json()["turns"]
    return [t["text"] for t in turns if t["role"] == "candidate"]


OFFLINE = {"llm_base_url": ""}  # no LLM: grading offline, nothing to script


def test_an_interview_moves_between_instances_and_concurrent_answers_all_land(
    cluster: Cluster,
) -> None:
    a, b = cluster.instance(**OFFLINE), cluster.instance(**OFFLINE)
    with (
        httpx.Client(base_url=a.url, timeout=30) as on_a,
        httpx.Client(base_url=b.url, timeout=30) as on_b,
    ):
        iid = on_a.post("/v1/interviews", json={"question_id": "twitter"}).json()["id"]
        assert on_b.post(f"/v1/interviews/{iid}/answers", json={"text": "Users post."}).is_success
        texts = [f"Answer number {n}: users post and read timelines." for n in range(12)]
        codes: list[int] = []

        def send(n: int, text: str) -> None:
            url = (a if n % 2 else b).url
            with httpx.Client(base_url=url, timeout=30) as client:
                reply = client.post(f"/v1/interviews/{iid}/answers", json={"text": text})
                codes.append(reply.status_code)

        run_all([lambda n=n, t=t: send(n, t) for n, t in enumerate(texts)])
        assert codes == [200] * len(texts)
        assert sorted(candidate_texts(on_a, iid)) == sorted(["Users post.", *texts])

        advances: list[httpx.Response] = []

        def advance(url: str) -> None:
            with httpx.Client(base_url=url, timeout=30) as client:
                body = {"phase": "requirements"}
                advances.append(client.post(f"/v1/interviews/{iid}/advance", json=body))

        run_all([lambda url=server.url: advance(url) for server in (a, b, a, b)])
        statuses = sorted(r.status_code for r in advances)
        assert statuses == [200, 409, 409, 409], [r.text for r in advances]
        state = on_b.get(f"/v1/interviews/{iid}").json()
        assert state["phase"] == "estimation"
        assert len([t for t in state["turns"] if t["kind"] == "feedback"]) == 1

        finished = on_b.post(f"/v1/interviews/{iid}/finish")
        assert finished.status_code == 200, finished.text
        report = on_a.get(f"/v1/interviews/{iid}/report")
        assert report.status_code == 200
        assert report.json()["phases"][0]["phase"] == "requirements"


def run_all(calls: list[Callable[[], None]]) -> None:
    threads = [threading.Thread(target=call) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_the_rate_limit_holds_across_instances(cluster: Cluster) -> None:
    limits = {"rate_limit": "3/minute", "auth": "token", **OFFLINE}
    a, b = cluster.instance(**limits), cluster.instance(**limits)
    with Store(cluster.database_url) as store:
        _, ada = store.create_token("ada")
        _, bob = store.create_token("bob")
    answer = {"text": UPLOAD}

    def grade(server: ServerProcess, token: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.post(f"{server.url}/v1/gradings", json=answer, headers=headers, timeout=30)

    codes = [grade(server, ada) for server in (a, b, a)]
    assert [r.status_code for r in codes] == [200, 200, 200], [r.text for r in codes]
    for server in (b, a):  # the 4th call is refused whichever instance receives it
        refused = grade(server, ada)
        assert refused.status_code == 429, refused.text
        assert refused.json()["code"] == "rate_limited"
        assert int(refused.headers["retry-after"]) >= 1
    assert grade(b, bob).status_code == 200, "each token has its own limit"


def test_a_breaker_opened_on_one_instance_is_open_on_the_other(
    cluster: Cluster, llm: LLMDouble
) -> None:
    llm.default = Reply.error(500, "the model is down")
    a = cluster.instance(llm_breaker_failures="2")
    b = cluster.instance(llm_breaker_failures="2")
    with httpx.Client(base_url=b.url, timeout=30) as on_b:
        assert on_b.get("/readyz").json()["checks"]["grader"]["breaker"] == "closed"
    with httpx.Client(base_url=a.url, timeout=30) as on_a:
        iid = on_a.post("/v1/interviews", json={"question_id": "twitter"}).json()["id"]  # 1
        on_a.post(f"/v1/interviews/{iid}/answers", json={"text": "Users post tweets."})
        # The grade and the next opening's voice call go out at the same time: whichever
        # fails first is failure 2 and opens the breaker. The grade then failed itself, or
        # found the breaker open before sending (the voice call won the race).
        first = on_a.post(f"/v1/interviews/{iid}/advance").json()
        assert first["grade"]["source"] == "offline"
        assert re.search(r"HTTP 500|breaker open after 2", first["grade"]["fallback_reason"])

    sent = len(llm.requests)
    with httpx.Client(base_url=b.url, timeout=30) as on_b:
        ready = on_b.get("/readyz")
        assert ready.status_code == 200, "offline grading keeps the service ready"
        assert ready.json()["checks"]["grader"]["breaker"] == "open"
        iid = on_b.post("/v1/interviews", json={"question_id": "twitter"}).json()["id"]
        on_b.post(f"/v1/interviews/{iid}/answers", json={"text": "Users post tweets."})
        grade = on_b.post(f"/v1/interviews/{iid}/advance").json()["grade"]
        assert grade["source"] == "offline"
        assert re.match(r"LLM circuit breaker open after [23] failures", grade["fallback_reason"])
    assert len(llm.requests) == sent, "B sent nothing to the LLM: A's breaker is shared"


def test_a_job_whose_accepting_instance_is_killed_completes_once_on_the_worker(
    cluster: Cluster, scripted: ScriptedLLM
) -> None:
    a, b = cluster.instance(), cluster.instance()
    cluster.worker()
    with httpx.Client(base_url=b.url, timeout=30) as on_b:
        cluster.wait_for_workers(on_b)
        scripted.grade_delay = 3.0
        accepted = httpx.post(f"{a.url}/v1/gradings", json={"text": UPLOAD, "wait": False})
        assert accepted.status_code == 202, accepted.text
        gid = accepted.json()["grading_id"]
        wait_until(lambda: scripted.calls["grade"] >= 1, what="the worker's first grade request")
        scripted.grade_delay = 0.0
        a.kill()
        assert on_b.get(f"/v1/gradings/{gid}").json()["status"] == "running"

        done = wait_for_grading(on_b, gid)
        assert (done["status"], done["attempts"]) == ("done", 1), done
        report = done["report"]
        assert isinstance(report, dict)
        assert all(p["source"] == "llm" for p in report["phases"])
        time.sleep(1.0)  # a second grading run, if there were one, would show by now
        assert scripted.calls["grade"] == len(PHASE_IDS), "each phase graded once"
        assert on_b.get(f"/v1/gradings/{gid}").json()["attempts"] == 1


def test_a_streamed_advance_and_a_queued_finish_work_on_any_instance(
    cluster: Cluster, scripted: ScriptedLLM
) -> None:
    scripted.chunk_delay, scripted.chunk_size = 0.01, 16
    a, b = cluster.instance(), cluster.instance()
    cluster.worker()
    with (
        httpx.Client(base_url=a.url, timeout=30) as on_a,
        httpx.Client(base_url=b.url, timeout=30) as on_b,
    ):
        iid = on_a.post("/v1/interviews", json={"question_id": "twitter"}).json()["id"]
        said = "Users post short messages and read a home timeline of people they follow."
        on_a.post(f"/v1/interviews/{iid}/answers", json={"text": said})
        with on_b.stream("POST", f"/v1/interviews/{iid}/advance/stream") as response:
            assert response.status_code == 200
            events = read_events(response)
        assert events[-1].event == "grade" and {e.event for e in events[:-1]} == {"token"}
        assert json.loads(events[-1].data)["grade"]["source"] == "llm"
        assert on_a.get(f"/v1/interviews/{iid}").json()["phase"] == "estimation"

        cluster.wait_for_workers(on_a)
        grades_before = scripted.calls["grade"]
        queued = on_a.post(f"/v1/interviews/{iid}/finish", json={"wait": False})
        assert queued.status_code == 202, queued.text
        done = wait_for_grading(on_b, queued.json()["grading_id"])
        assert (done["status"], done["attempts"]) == ("done", 1), done
        # the worker graded the five phases left, once each, and stored the report
        assert scripted.calls["grade"] - grades_before == len(PHASE_IDS) - 1
        report = on_b.get(f"/v1/interviews/{iid}/report").json()
        assert report == done["report"]
        assert report["phases"][0]["source"] == "llm"
        worker_log = cluster.workers[0].log_path.read_text()
        assert queued.json()["grading_id"] in worker_log, "the worker, not an instance, ran it"


def test_a_job_whose_worker_is_killed_is_queued_again_and_graded_once_more(
    cluster: Cluster, scripted: ScriptedLLM
) -> None:
    a = cluster.instance()
    first = cluster.worker()
    with httpx.Client(base_url=a.url, timeout=30) as on_a:
        cluster.wait_for_workers(on_a)
        scripted.grade_delay = 30.0
        accepted = on_a.post("/v1/gradings", json={"text": UPLOAD, "wait": False})
        gid = accepted.json()["grading_id"]
        wait_until(lambda: scripted.calls["grade"] >= 1, what="the worker's first grade request")
        first.kill()
        scripted.grade_delay = 0.0
        cluster.worker()
        done = wait_for_grading(on_a, gid)
        assert (done["status"], done["attempts"]) == ("done", 2), done
        time.sleep(1.0)
        assert scripted.calls["grade"] == 1 + len(PHASE_IDS), "one lost call, then each once"


def test_readyz_names_a_dead_redis(cluster: Cluster) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    server = cluster.instance(redis_url=dead, **OFFLINE)
    with httpx.Client(base_url=server.url, timeout=30) as api:
        ready = api.get("/readyz")
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["database"] == {"ok": True}
        assert checks["redis"]["ok"] is False
        assert dead.removeprefix("redis://").removesuffix("/0") in checks["redis"]["reason"]
        assert checks["queue"]["ok"] is False
        limited = api.post("/v1/gradings", json={"text": UPLOAD})
        assert limited.status_code == 503 and limited.json()["code"] == "rate_limit_unavailable"


def test_two_deployments_on_one_redis_each_queue_the_same_grading_once() -> None:
    """rq's job keys are shared by everything on a Redis database, so a job id without the
    deployment's prefix made the second deployment skip its own grading as already queued."""
    from redis import Redis

    from coach.config import Settings
    from coach.jobs import GradingQueue

    prefixes = [f"coach-test-{uuid.uuid4().hex[:12]}" for _ in range(2)]
    queues = [GradingQueue(Settings(redis_url=REDIS_URL, redis_prefix=p)) for p in prefixes]
    try:
        assert [q.submit("g-same-id", attempt=0) for q in queues] == [True, True]
        assert [q.queue.count for q in queues] == [1, 1]
        assert queues[0].submit("g-same-id", attempt=0) is False, "one deployment queues it once"
    finally:
        redis = Redis.from_url(REDIS_URL)
        for prefix in prefixes:
            keys = [*redis.scan_iter(f"{prefix}:*"), *redis.scan_iter(f"rq:*{prefix}*")]
            if keys:
                redis.delete(*keys)
            redis.srem("rq:queues", f"rq:queue:{prefix}:gradings")
