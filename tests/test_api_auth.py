"""Token auth, owner scoping and the rate limit, end to end over HTTP.

Tokens are made and revoked with the real `coach tokens` commands; the server is a real
uvicorn process on 127.0.0.1. Every test runs on SQLite and, when configured, PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api_testing import serve
from server_process import ServerProcess

_SCRIPT = Path(sys.executable).with_name("coach")
COACH = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "coach.cli"]

ANSWER = "Users post short messages and read a timeline; 200M daily users, reads dominate."
UPLOAD = "## Requirements\nUsers post and read.\n\n## API\nPOST /v1/posts returns 201."


def coach(database_url: str, tmp_path: Path, *args: str) -> str:
    """Run the `coach` CLI against the test database; its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COACH_")}
    env |= {"COACH_DATABASE_URL": database_url, "COACH_DATA_DIR": str(tmp_path / "cli")}
    done = subprocess.run(
        [*COACH, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def create_token(database_url: str, tmp_path: Path, name: str) -> str:
    """`coach tokens create NAME`; the secret is the last line it prints."""
    out = coach(database_url, tmp_path, "tokens", "create", name)
    secret = out.strip().splitlines()[-1].strip()
    assert secret.startswith("coach_"), out
    return secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture()
def token_server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    server = serve(database_url, tmp_path, auth="token")
    try:
        yield server
    finally:
        server.stop()


# --- authentication ------------------------------------------------------------------------


CALLS = [
    ("GET", "/v1/questions", None),
    ("GET", "/v1/quiz", None),
    ("GET", "/v1/interviews", None),
    ("POST", "/v1/interviews", {"question_id": "twitter"}),
    ("POST", "/v1/gradings", {"text": UPLOAD}),
    ("GET", "/v1/gradings/some-id", None),
]


def test_every_api_call_needs_a_live_bearer_token(
    token_server: ServerProcess, database_url: str, tmp_path: Path
) -> None:
    secret = create_token(database_url, tmp_path, "alice")
    with httpx.Client(base_url=token_server.url, timeout=30) as api:
        for method, path, body in CALLS:
            missing = api.request(method, path, json=body)
            assert missing.status_code == 401, (path, missing.text)
            assert missing.json()["code"] == "unauthorized"
            assert "coach tokens create" in missing.json()["message"]
            assert missing.headers["www-authenticate"] == "Bearer"

            wrong = api.request(method, path, json=body, headers=bearer("coach_not-a-token"))
            assert wrong.status_code == 401, (path, wrong.text)
            assert wrong.json()["code"] == "invalid_token"
            assert wrong.headers["www-authenticate"].startswith("Bearer")

        basic = api.get("/v1/interviews", headers={"Authorization": f"Basic {secret}"})
        assert basic.status_code == 401 and basic.json()["code"] == "unauthorized"
        empty = api.get("/v1/interviews", headers={"Authorization": "Bearer"})
        assert empty.status_code == 401

        assert api.get("/v1/questions", headers=bearer(secret)).status_code == 200
        assert api.get("/v1/interviews", headers=bearer(secret)).json() == []
        # Probes and docs stay open: a load balancer or HEALTHCHECK has no token.
        assert api.get("/healthz").status_code == 200
        assert api.get("/readyz").status_code == 200
        assert api.get("/openapi.json").status_code == 200


def test_a_token_never_sees_another_tokens_interviews_or_gradings(
    token_server: ServerProcess, database_url: str, tmp_path: Path
) -> None:
    alice = bearer(create_token(database_url, tmp_path, "alice"))
    bob = bearer(create_token(database_url, tmp_path, "bob"))
    with httpx.Client(base_url=token_server.url, timeout=30) as api:
        created = api.post("/v1/interviews", json={"question_id": "twitter"}, headers=alice)
        assert created.status_code == 201, created.text
        iid = created.json()["id"]
        assert api.post(
            f"/v1/interviews/{iid}/answers", json={"text": ANSWER}, headers=alice
        ).is_success
        bobs_own = api.post("/v1/interviews", json={"question_id": "chat"}, headers=bob).json()

        base = f"/v1/interviews/{iid}"
        for method, path, body in [
            ("GET", base, None),
            ("POST", f"{base}/answers", {"text": "Bob writes into Alice's interview."}),
            ("POST", f"{base}/clarify", {"text": "How many users?"}),
            ("POST", f"{base}/pushback", {"text": "A reply."}),
            ("POST", f"{base}/advance", None),
            ("POST", f"{base}/advance/stream", None),
            ("POST", f"{base}/finish", None),
            ("GET", f"{base}/report", None),
            ("GET", f"{base}/report.md", None),
        ]:
            seen = api.request(method, path, json=body, headers=bob)
            assert seen.status_code == 404, (path, seen.text)
            assert seen.json()["code"] == "interview_not_found"

        assert [i["id"] for i in api.get("/v1/interviews", headers=bob).json()] == [bobs_own["id"]]
        assert [i["id"] for i in api.get("/v1/interviews", headers=alice).json()] == [iid]
        state = api.get(base, headers=alice).json()
        assert state["phase"] == "requirements", "Bob's advance did not touch it"
        assert [t["text"] for t in state["turns"] if t["role"] == "candidate"] == [ANSWER]

        graded = api.post("/v1/gradings", json={"text": UPLOAD}, headers=alice)
        assert graded.status_code == 200, graded.text
        gid = graded.json()["grading_id"]
        assert api.get(f"/v1/gradings/{gid}", headers=alice).json()["status"] == "done"
        for method, path in [
            ("GET", f"/v1/gradings/{gid}"),
            ("POST", f"/v1/gradings/{gid}/retry"),
            ("GET", f"/v1/gradings/{gid}/report.md"),
        ]:
            seen = api.request(method, path, headers=bob)
            assert seen.status_code == 404, (path, seen.text)
            assert seen.json()["code"] == "grading_not_found"


def test_a_revoked_token_is_refused_at_once(
    token_server: ServerProcess, database_url: str, tmp_path: Path
) -> None:
    secret = create_token(database_url, tmp_path, "ci")
    with httpx.Client(base_url=token_server.url, timeout=30, headers=bearer(secret)) as api:
        iid = api.post("/v1/interviews", json={"question_id": "twitter"}).json()["id"]
        assert api.get(f"/v1/interviews/{iid}").status_code == 200

        assert "Revoked" in coach(database_url, tmp_path, "tokens", "revoke", "ci")

        refused = api.get(f"/v1/interviews/{iid}")
        assert refused.status_code == 401
        assert refused.json()["code"] == "invalid_token"
        assert "revoked" in refused.json()["message"]
    assert "revoked" in coach(database_url, tmp_path, "tokens", "list")


def test_local_mode_needs_no_token(database_url: str, tmp_path: Path) -> None:
    server = serve(database_url, tmp_path)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as api:
            iid = api.post("/v1/interviews", json={"question_id": "twitter"}).json()["id"]
            assert api.post(f"/v1/interviews/{iid}/answers", json={"text": ANSWER}).is_success
            # A stray header changes nothing: local mode has one user.
            listed = api.get("/v1/interviews", headers=bearer("coach_whatever")).json()
            assert [i["id"] for i in listed] == [iid]
    finally:
        server.stop()


# --- the rate limit ------------------------------------------------------------------------


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit() and 0 < int(retry_after) <= 60
    body = response.json()
    assert body["code"] == "rate_limited"
    assert "3 per 1 minute" in body["message"] and f"{retry_after} s" in body["message"]


def test_llm_backed_calls_are_limited_and_reads_are_not(database_url: str, tmp_path: Path) -> None:
    server = serve(database_url, tmp_path, rate_limit="3/minute")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as api:
            iid = api.post("/v1/interviews", json={"question_id": "twitter"}).json()["id"]
            base = f"/v1/interviews/{iid}"
            for n in range(5):  # answers are not LLM-backed
                assert api.post(f"{base}/answers", json={"text": f"{ANSWER} ({n})"}).is_success
            assert api.post(f"{base}/clarify", json={"text": "How many users?"}).is_success
            assert api.post(f"{base}/advance", json={"phase": "requirements"}).is_success
            assert api.post("/v1/gradings", json={"text": UPLOAD}).is_success

            for method, path, body in [
                ("POST", f"{base}/advance", None),
                ("POST", f"{base}/advance/stream", None),
                ("POST", f"{base}/finish", None),
                ("POST", "/v1/gradings", {"text": UPLOAD}),
            ]:
                assert_rate_limited(api.request(method, path, json=body))
            # A request that could not be served anyway still gets its own answer.
            wrong_phase = api.post(f"{base}/clarify", json={"text": "Read/write ratio?"})
            assert wrong_phase.status_code == 409, wrong_phase.text

            for _ in range(10):
                for path in (base, "/v1/interviews", "/v1/questions", "/healthz"):
                    assert api.get(path).status_code == 200, path
            state = api.get(base).json()
            assert state["phase"] == "estimation", "refused calls changed nothing"
            assert state["status"] != "finished"
            metrics = api.get("/metrics").text
            assert 'route="/v1/interviews/{interview_id}/advance",status="429"' in metrics
    finally:
        server.stop()


def test_refused_requests_do_not_spend_the_limit(database_url: str, tmp_path: Path) -> None:
    server = serve(database_url, tmp_path, rate_limit="3/minute")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as api:
            iid = api.post("/v1/interviews", json={"question_id": "twitter"}).json()["id"]
            base = f"/v1/interviews/{iid}"
            refused = [
                ("/v1/gradings", {"text": "   "}, 422),
                ("/v1/gradings", {"text": UPLOAD, "question_id": "no-such-question"}, 404),
                (f"{base}/clarify", {"text": ""}, 422),
                ("/v1/interviews/" + "0" * 32 + "/advance", None, 404),
                (f"{base}/advance", {"phase": "api"}, 409),  # not reached yet
                (f"{base}/advance", {"phase": "nonsense"}, 422),
            ]
            for _ in range(2):
                for path, body, status in refused:
                    response = api.post(path, json=body)
                    assert response.status_code == status, (path, response.text)
            # every unit of the budget is still there for real work
            assert api.post(f"{base}/clarify", json={"text": "How many users?"}).is_success
            assert api.post(f"{base}/advance", json={"phase": "requirements"}).is_success
            assert api.post("/v1/gradings", json={"text": UPLOAD}).is_success
            assert_rate_limited(api.post(f"{base}/advance"))
    finally:
        server.stop()


def test_the_limit_is_per_token(database_url: str, tmp_path: Path) -> None:
    server = serve(database_url, tmp_path, auth="token", rate_limit="3/minute")
    try:
        alice = bearer(create_token(database_url, tmp_path, "alice"))
        bob = bearer(create_token(database_url, tmp_path, "bob"))
        with httpx.Client(base_url=server.url, timeout=30) as api:
            for _ in range(3):
                assert api.post("/v1/gradings", json={"text": UPLOAD}, headers=alice).is_success
            assert_rate_limited(api.post("/v1/gradings", json={"text": UPLOAD}, headers=alice))
            assert api.get("/v1/interviews", headers=alice).status_code == 200

            assert api.post("/v1/gradings", json={"text": UPLOAD}, headers=bob).is_success
            # No token is a 401 before any budget is looked at.
            assert api.post("/v1/gradings", json={"text": UPLOAD}).status_code == 401
    finally:
        server.stop()
