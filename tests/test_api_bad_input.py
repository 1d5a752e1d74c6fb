"""Hostile and broken input over real HTTP: each gets a 4xx JSON error that names the problem
and the field, never a 500, and the interview it was meant for is left exactly as it was.

One server (SQLite) for the module: these are checks of the API's edges, not of storage.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from coach.store import Store
from pdf_samples import aes256_encrypted_pdf, text_pdf
from server_process import ServerProcess

MAX_REQUEST_BYTES = 200_000
MAX_UPLOAD_BYTES = 100_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("bad-input")
    database_url = f"sqlite:///{folder / 'coach.db'}"
    Store(database_url).upgrade()
    env = {
        "COACH_DATABASE_URL": database_url,
        "COACH_DATA_DIR": str(folder / "data"),
        "COACH_RATE_LIMIT": "10000/minute",
        "COACH_MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES),
        "COACH_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
    }
    with ServerProcess(env, log_dir=folder) as running:
        yield running


@pytest.fixture()
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


STORED = ("turns", "version", "phase", "status")  # what a request could change or lose


def stored(api: httpx.Client, iid: str) -> dict[str, Any]:
    interview = api.get(f"/v1/interviews/{iid}").json()
    return {key: interview[key] for key in STORED}


def new_interview(api: httpx.Client) -> tuple[str, dict[str, Any]]:
    created = api.post("/v1/interviews", json={"question_id": "twitter"})
    assert created.status_code == 201, created.text
    iid = created.json()["id"]
    return iid, stored(api, iid)


def raw_json(api: httpx.Client, path: str, body: bytes) -> httpx.Response:
    """POST bytes as they are (httpx's json= cannot send a lone surrogate escape)."""
    return api.post(path, content=body, headers={"Content-Type": "application/json"})


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "field"}, body
    return body


@pytest.mark.parametrize("route", ["answers", "clarify"])
def test_a_broken_character_is_refused_and_the_interview_is_unchanged(
    api: httpx.Client, route: str
) -> None:
    iid, before = new_interview(api)
    # A lone UTF-16 surrogate: valid JSON, but no character; it could be neither stored nor
    # sent to an LLM (this used to answer 500).
    refused = raw_json(api, f"/v1/interviews/{iid}/{route}", b'{"text": "200M users \\ud800?"}')
    error = error_of(refused, 422)
    assert error["code"] == "invalid_text" and error["field"] == "text"
    assert "unpaired UTF-16 surrogate" in error["message"]
    assert stored(api, iid) == before


@pytest.mark.parametrize(
    "text",
    ["\u200b\u200c\u200d", "\u00a0\u2003\u3000\ufeff", "\x01\x02\x03\x1b", " \u2060\t\u00ad "],
)
def test_text_with_nothing_visible_in_it_is_empty(api: httpx.Client, text: str) -> None:
    iid, before = new_interview(api)
    error = error_of(api.post(f"/v1/interviews/{iid}/answers", json={"text": text}), 422)
    assert error["code"] == "empty_input" and "no visible characters" in error["message"]
    assert stored(api, iid) == before
    graded = api.post("/v1/gradings", json={"text": text})
    assert error_of(graded, 422)["code"] == "empty_input"


def test_real_text_in_any_script_is_taken(api: httpx.Client) -> None:
    iid, _ = new_interview(api)
    for text in ("Benutzer: 200 Mio. täglich", "每天两亿用户", "users 😀", "\u00a0200M DAU"):
        taken = api.post(f"/v1/interviews/{iid}/answers", json={"text": text})
        assert taken.status_code == 200, taken.text


def test_a_chunked_body_over_the_limit_is_413_not_a_parse_error(api: httpx.Client) -> None:
    iid, before = new_interview(api)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts as it reads
        yield b'{"text": "'
        for _ in range(MAX_REQUEST_BYTES // 10_000 + 2):
            yield b"a" * 10_000
        yield b'"}'

    for path in (f"/v1/interviews/{iid}/answers", "/v1/interviews"):
        refused = api.post(path, content=chunks(), headers={"Content-Type": "application/json"})
        error = error_of(refused, 413)
        assert error["code"] == "request_too_large"
        assert f"{MAX_REQUEST_BYTES:,}-byte limit" in error["message"]
    assert stored(api, iid) == before


def test_a_body_that_cannot_be_parsed_says_why_and_what_this_route_takes(
    api: httpx.Client,
) -> None:
    iid, before = new_interview(api)
    answers = f"/v1/interviews/{iid}/answers"

    not_utf8 = error_of(raw_json(api, answers, b'{"text": "caf\xe9"}'), 422)
    assert not_utf8["code"] == "invalid_body"
    assert "not UTF-8 text (bad byte at offset 13)" in not_utf8["message"]
    assert '{"text": "..."}' in not_utf8["message"]

    too_deep = error_of(raw_json(api, answers, b"[" * 50_000 + b"]" * 50_000), 422)
    assert "nested too deeply" in too_deep["message"]

    cut_short = error_of(raw_json(api, "/v1/interviews", b'{"question_id": "twi'), 422)
    assert "(Unterminated string starting at character 16)" in cut_short["message"]
    assert '{"question_id": "..."}' in cut_short["message"], "the example fits the route"
    assert stored(api, iid) == before


def test_whole_answer_bodies_that_are_no_json_object_get_the_same_code_as_elsewhere(
    api: httpx.Client,
) -> None:
    cases = {
        b'{"text": "ab': "is not valid JSON (EOF while parsing a string",
        b"[1, 2]": "is not a JSON object",
        b'{"text": "a \\ud800"}': "broken \\u escape, such as an unpaired UTF-16 surrogate",
    }
    for body, says in cases.items():
        error = error_of(raw_json(api, "/v1/gradings", body), 422)
        assert error["code"] == "invalid_body" and says in error["message"], error


def test_a_quiz_answer_must_be_a_number(api: httpx.Client) -> None:
    quiz = api.get("/v1/quiz").json()
    first = (quiz if isinstance(quiz, list) else quiz["questions"])[0]["id"]
    for wrong in (True, "1"):
        error = error_of(api.post(f"/v1/quiz/{first}/check", json={"answer": wrong}), 422)
        assert error["field"] == "answer"
    assert api.post(f"/v1/quiz/{first}/check", json={"answer": 1}).status_code == 200


def test_errors_name_the_field_at_fault(api: httpx.Client) -> None:
    named = api.post("/v1/interviews", json={"question_id": "twitter", "candidate": "a\x00b"})
    error = error_of(named, 422)
    assert error["code"] == "binary_input" and error["field"] == "candidate"

    empty_file = api.post("/v1/gradings", files={"file": ("answer.md", b"   \n", "text/markdown")})
    assert error_of(empty_file, 422)["field"] == "file"

    long_id = api.post(
        "/v1/gradings",
        files={"file": ("answer.md", b"We shard by user id.", "text/markdown")},
        data={"question_id": "x" * 5000},
    )
    assert error_of(long_id, 422)["field"] == "question_id"

    maybe = api.post(
        "/v1/gradings",
        files={"file": ("answer.md", b"We shard by user id.", "text/markdown")},
        data={"wait": "maybe"},
    )
    error = error_of(maybe, 422)
    assert error["field"] == "wait" and "send true or false" in error["message"]


def test_a_whole_answer_over_the_upload_limit_is_counted_in_bytes(api: httpx.Client) -> None:
    # Half the limit in characters, but each "é" is two bytes in UTF-8: over the byte limit.
    text = "é" * (MAX_UPLOAD_BYTES // 2 + 10)
    error = error_of(api.post("/v1/gradings", json={"text": text}), 413)
    assert error["code"] == "input_too_large" and error["field"] == "text"
    assert f"{MAX_UPLOAD_BYTES + 20:,} bytes" in error["message"]
    assert "COACH_MAX_UPLOAD_BYTES, a server setting" in error["message"]
    assert "turns" not in error["message"], "a whole answer has no turns to split it into"


AES256_ENCRYPTED = aes256_encrypted_pdf()
HUGE_OFFSET = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\nstartxref\n99999999999999999999\n%%EOF"
)


@pytest.mark.parametrize(
    ("pdf", "says"),
    [(AES256_ENCRYPTED, "is encrypted"), (HUGE_OFFSET, "could not be read")],
    ids=["aes-256-encrypted", "huge-xref-offset"],
)
def test_a_pdf_that_cannot_be_read_is_refused_with_the_reason(
    api: httpx.Client, pdf: bytes, says: str
) -> None:
    refused = api.post("/v1/gradings", files={"file": ("answer.pdf", pdf, "application/pdf")})
    error = error_of(refused, 422)  # both used to answer 500
    assert error["code"] == "binary_input" and error["field"] == "file"
    assert says in error["message"] and "Markdown or text" in error["message"]


def test_the_streaming_advance_refuses_before_it_streams(api: httpx.Client) -> None:
    iid, _ = new_interview(api)
    ahead = api.post(f"/v1/interviews/{iid}/advance/stream", json={"phase": "api"})
    error = error_of(ahead, 409)
    assert error["code"] == "interview_conflict"
    assert "api has not been reached yet" in error["message"]

    api.post(f"/v1/interviews/{iid}/answers", json={"text": "Users post; we fan out reads."})
    finished = api.post(f"/v1/interviews/{iid}/finish")
    assert finished.status_code == 200, finished.text
    after = api.post(f"/v1/interviews/{iid}/advance/stream")
    assert error_of(after, 409)["code"] == "invalid_state"


def test_an_unknown_id_is_not_echoed_back_whole(api: httpx.Client) -> None:
    error = error_of(api.get("/v1/interviews/" + "x" * 20_000), 404)
    assert len(error["message"]) < 300 and "(20,000 characters)" in error["message"]


def test_health_probes_answer_head(api: httpx.Client) -> None:
    for path in ("/healthz", "/readyz"):
        probed = api.head(path)
        assert probed.status_code == 200 and probed.content == b""
    assert json.loads(api.get("/healthz").text) == {"status": "ok"}


def test_a_pdf_larger_than_the_upload_limit_is_read_when_its_text_fits(api: httpx.Client) -> None:
    # The limit is on the answer's text: fonts and images make a PDF file far larger.
    lines = ["## Requirements", "Users post and read timelines; 200M DAU; p99 under 200 ms."]
    pdf = text_pdf(lines, padding=MAX_UPLOAD_BYTES + 20_000)
    assert MAX_UPLOAD_BYTES < len(pdf) < MAX_REQUEST_BYTES
    graded = api.post("/v1/gradings", files={"file": ("answer.pdf", pdf, "application/pdf")})
    assert graded.status_code == 200, graded.text
    assert graded.json()["phases"][0]["score"] > 0  # the report, graded from the PDF's text
