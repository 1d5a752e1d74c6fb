"""The `coach` console script, run as a real subprocess with no LLM and a throwaway data folder."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coach.config import Settings
from coach.content import PHASE_IDS, Content
from llm_double import LLMDouble, free_port
from llm_script import ScriptedLLM
from pdf_samples import text_pdf

_SCRIPT = Path(sys.executable).with_name("coach")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "coach.cli"]

GOOD_ANSWER = """\
## Requirements
Users shorten a long URL and get a short code; anyone with the code is redirected. Out of scope:
analytics dashboards. Redirects must be fast (p99 under 50 ms) and highly available, because a
broken link is worse than a slightly stale one.

## Estimation
100M new URLs a day is about 1,200 writes per second; reads are 100x that, so about 120k
redirects per second at peak. Each record is about 500 bytes, so 50 GB a day.

## API
POST /urls {long_url} returns {code}. GET /{code} answers with a 301 redirect.

## Data model
urls(code PRIMARY KEY, long_url, created_at) in a key-value store, because every read is a
lookup by code.

## Architecture
Start with one app server and one database. Reads break first, so we add a cache in front.

## Deep dive
Codes come from a counter in base62 rather than random hashes, because it avoids collisions,
at the cost of a coordination point that we shard by range.
"""


@pytest.fixture()
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COACH_")}
    clean.update(COACH_DATA_DIR=str(tmp_path / "data"), COLUMNS="120", PYTHONIOENCODING="utf-8")
    return clean


@pytest.fixture()
def llm_env(env: dict[str, str], llm: LLMDouble) -> dict[str, str]:
    """`env` with the LLM double as the grader (its replies scripted by the `scripted` fixture)."""
    return {
        **env,
        "COACH_LLM_BASE_URL": llm.base_url,
        "COACH_LLM_MODEL": "double-model",
        "COACH_LLM_JSON_MODE": "json_object",
    }


def coach(
    *args: str, env: dict[str, str], stdin: str | bytes | None = None
) -> subprocess.CompletedProcess[str]:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    proc = subprocess.run(
        [*COMMAND, *args],
        input=data,
        stdin=None if data is not None else subprocess.DEVNULL,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode()
    )


def flat(text: str) -> str:
    return " ".join(text.split())


# --- help, questions, study, settings ---------------------------------------------------------


def test_help_lists_every_command_and_setting(env: dict[str, str]) -> None:
    result = coach("--help", env=env)
    assert result.returncode == 0
    for command in ("questions", "study", "practice", "grade", "eval", "settings"):
        assert re.search(rf"^\W*{command}\s", result.stdout, re.MULTILINE), command
    for name in Settings.model_fields:
        assert f"COACH_{name.upper()}" in result.stdout
    assert "[default: 60000]" in result.stdout  # Rich markup must not eat the brackets


def test_questions_lists_canonical_first_and_filters(env: dict[str, str], content: Content) -> None:
    result = coach("questions", env=env)
    assert result.returncode == 0
    rows = [line.split()[0] for line in result.stdout.splitlines()[2:] if line.strip()][:-1]
    assert rows[:5] == [q.id for q in content.questions.values() if q.canonical]
    assert set(rows) == set(content.questions)

    easy = coach("questions", "--difficulty", "easy", env=env)
    listed = [line for line in easy.stdout.splitlines()[2:] if line and not line.startswith("*")]
    assert listed and all(" easy " in line for line in listed)
    assert "No questions match" in coach("questions", "--tag", "no-such-tag", env=env).stdout


def test_study_prints_six_phases_with_model_answers(env: dict[str, str], content: Content) -> None:
    result = coach("study", "twitter", env=env)
    assert result.returncode == 0
    out = flat(result.stdout)
    question = content.question("twitter")
    for phase in content.phases:
        assert f"== Phase {phase.order} of 6: {phase.title}" in out
        assert flat(phase.prompts_to_hit[0]) in out
        first_line = question.model_answers[phase.id].strip().splitlines()[0]
        assert flat(first_line) in out


def test_settings_masks_secrets(env: dict[str, str]) -> None:
    result = coach("settings", env={**env, "COACH_LLM_API_KEY": "sk-very-secret"})
    assert result.returncode == 0
    assert "sk-very-secret" not in result.stdout
    assert "COACH_LLM_API_KEY=******** (set)" in result.stdout
    assert f"COACH_DATA_DIR={env['COACH_DATA_DIR']}" in result.stdout


def test_a_bad_setting_is_one_clean_line(env: dict[str, str]) -> None:
    result = coach("settings", env={**env, "COACH_LLM_READ_TIMEOUT": "soon"})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "COACH_LLM_READ_TIMEOUT" in result.stderr and "Traceback" not in result.stderr


# --- grade ------------------------------------------------------------------------------------


def test_grade_json_has_the_contract_keys(env: dict[str, str], tmp_path: Path) -> None:
    answer = tmp_path / "answer.md"
    answer.write_text(GOOD_ANSWER)
    result = coach("grade", str(answer), "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert 0 <= report["overall"] <= 100
    assert [p["phase"] for p in report["phases"]] == list(PHASE_IDS)
    for phase in report["phases"]:
        assert 0 <= phase["score"] <= 4
        assert phase["source"] == "offline"
        for criterion in phase["criteria"]:
            assert {"id", "met", "evidence"} <= set(criterion)
            if criterion["met"]:
                assert flat(criterion["evidence"]) in flat(GOOD_ANSWER)
    assert isinstance(report["mistakes"], list)
    assert all("id" in m for m in report["mistakes"])
    assert report["phases"][1]["score"] >= 2  # the estimation is there and sound


def test_grade_markdown_by_default(env: dict[str, str], tmp_path: Path) -> None:
    answer = tmp_path / "answer.md"
    answer.write_text(GOOD_ANSWER)
    result = coach("grade", str(answer), "--question", "url-shortener", env=env)
    assert result.returncode == 0
    assert result.stdout.startswith("# Interview report: Design a URL shortener")
    assert "Graded by: offline grader" in result.stdout


@pytest.mark.parametrize("args", [["-"], []], ids=["dash", "no-file"])
def test_grade_reads_stdin(env: dict[str, str], tmp_path: Path, args: list[str]) -> None:
    answer = tmp_path / "answer.md"
    answer.write_text(GOOD_ANSWER)
    from_file = json.loads(coach("grade", str(answer), "--json", env=env).stdout)
    result = coach("grade", *args, "--json", env=env, stdin=GOOD_ANSWER)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == from_file


def test_grade_with_an_llm_says_each_step_on_stderr_and_only_the_report_on_stdout(
    llm_env: dict[str, str], tmp_path: Path, content: Content, scripted: ScriptedLLM
) -> None:
    answer = tmp_path / "answer.md"
    answer.write_text(GOOD_ANSWER)

    result = coach("grade", str(answer), "--json", env=llm_env)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [p["source"] for p in report["phases"]] == ["llm"] * 6
    steps = result.stderr.splitlines()
    titles = [content.phase(p).title for p in PHASE_IDS]
    assert steps == [
        "[0/8 done] Splitting the answer into phases\u2026",
        *(f"[{n}/8 done] Grading phase {n} of 6: {t}\u2026" for n, t in enumerate(titles, 1)),
        "[7/8 done] Looking for common mistakes\u2026",
        "[8/8 done] Writing the report\u2026",
    ]


def test_grade_offline_prints_no_steps(env: dict[str, str], tmp_path: Path) -> None:
    answer = tmp_path / "answer.md"
    answer.write_text(GOOD_ANSWER)
    result = coach("grade", str(answer), env=env)
    assert result.returncode == 0 and result.stderr == ""


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.md", b"", "is empty"),
        ("blank.md", b"  \n\n \t\n", "is empty"),
        ("binary.md", b"# Answer\x00\x01\x02\x00 binary", "binary"),
        ("latin1.md", "café crème".encode("latin-1"), "not UTF-8"),
        ("missing.md", None, "no such file"),
        ("folder", "dir", "is a folder"),
        ("scan.pdf", text_pdf([]), "a PDF with no text in it that can be read"),
        ("cut.pdf", text_pdf(["## Requirements"])[:300], "The PDF could not be read"),
    ],
)
def test_grade_bad_input_is_one_line_on_stderr(
    env: dict[str, str], tmp_path: Path, name: str, content: bytes | str | None, message: str
) -> None:
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    result = coach("grade", str(path), "--json", env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and message in lines[0]


def test_grade_oversized_input_names_the_limit(env: dict[str, str]) -> None:
    result = coach("grade", "-", env={**env, "COACH_MAX_UPLOAD_BYTES": "100"}, stdin="x " * 200)
    assert result.returncode == 2
    assert "COACH_MAX_UPLOAD_BYTES" in result.stderr and len(result.stderr.splitlines()) == 1
    assert "is 400 bytes; the limit is 100 bytes" in result.stderr
    # Past what coach reads (one byte over the request limit) it says "over", not a made-up size
    small = {**env, "COACH_MAX_UPLOAD_BYTES": "100", "COACH_MAX_REQUEST_BYTES": "150"}
    result = coach("grade", "-", env=small, stdin="x " * 200)
    assert result.returncode == 2
    assert "is over 100 bytes; the limit is 100 bytes" in result.stderr


def test_grade_reads_a_pdf_as_the_api_does(env: dict[str, str], tmp_path: Path) -> None:
    answer = tmp_path / "answer.pdf"
    answer.write_bytes(
        text_pdf(
            [
                "## Requirements",
                "Users shorten long URLs. Out of scope: analytics. Redirects under 50 ms p99.",
                "## Estimation",
                "100M new URLs a day is about 1,200 writes per second; reads are 100x.",
            ]
        )
    )
    result = coach("grade", str(answer), "--json", env=env)
    assert result.returncode == 0, result.stderr
    phases = {grade["phase"]: grade for grade in json.loads(result.stdout)["phases"]}
    quotes = [c["evidence"] for grade in phases.values() for c in grade["criteria"] if c["met"]]
    assert any("1,200 writes per second" in quote for quote in quotes), quotes
    assert phases["requirements"]["score"] > 0 and phases["estimation"]["score"] > 0


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_grade_reads_text_saved_as_utf16_or_utf32_with_a_byte_order_mark(
    env: dict[str, str], tmp_path: Path, encoding: str
) -> None:
    utf8, wide = tmp_path / "utf8.md", tmp_path / "wide.md"
    utf8.write_text(GOOD_ANSWER, encoding="utf-8")
    mark = "\ufeff" if encoding == "utf-16-be" else ""  # the -be codec writes no mark itself
    wide.write_bytes((mark + GOOD_ANSWER).encode(encoding))
    assert b"\x00" in wide.read_bytes()
    expected = coach("grade", str(utf8), "--json", env=env)
    result = coach("grade", str(wide), "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["phases"] == json.loads(expected.stdout)["phases"]


# --- practice ---------------------------------------------------------------------------------

PHASE_ANSWERS = [
    "Users shorten long URLs and get a short code. Out of scope: analytics. Redirects must be\n"
    "fast (p99 under 50 ms) and highly available.",
    "100M new URLs a day is about 1,200 writes per second; reads are 100x, so 120k redirects\n"
    "per second at peak.",
    "POST /urls {long_url} returns {code}. GET /{code} returns a 301 redirect.",
    "urls(code PRIMARY KEY, long_url, created_at) in a key-value store because every read is\n"
    "a lookup by code.",
    "Start with one app server and one database. Reads break first, so add a cache.",
    "The hard part is unique codes: a counter in base62 versus random codes with collision\n"
    "checks. I'd take counter ranges per server because it avoids coordination.",
]


def script(*parts: str) -> str:
    return "\n".join(parts) + "\n"


def test_practice_finish_with_an_llm_says_each_step_on_stderr(
    llm_env: dict[str, str], content: Content, scripted: ScriptedLLM
) -> None:
    result = coach(
        "practice", "url-shortener", env=llm_env, stdin=script(PHASE_ANSWERS[0], "/finish")
    )

    assert result.returncode == 0, result.stderr
    assert "Interview report: Design a URL shortener" in result.stdout
    titles = [content.phase(p).title for p in PHASE_IDS]
    assert result.stderr.splitlines() == [
        *(f"[{n - 1}/7 done] Grading phase {n} of 6: {t}\u2026" for n, t in enumerate(titles, 1)),
        "[6/7 done] Looking for common mistakes\u2026",
        "[7/7 done] Writing the report\u2026",
    ]


def test_practice_next_with_an_llm_says_the_phase_being_graded_on_stderr(
    llm_env: dict[str, str], content: Content, scripted: ScriptedLLM
) -> None:
    result = coach(
        "practice", "url-shortener", env=llm_env, stdin=script(PHASE_ANSWERS[0], "/next", "/quit")
    )

    assert result.returncode == 0, result.stderr
    assert "Interview saved. Resume it with" in result.stdout
    title = content.phase("requirements").title
    assert result.stderr.splitlines() == [f"Grading phase 1 of 6: {title}\u2026"]


def test_practice_runs_a_whole_interview_from_stdin(
    env: dict[str, str], content: Content, tmp_path: Path
) -> None:
    lines = ["? How many new links are created, and is a custom alias in scope?"]
    lines += [PHASE_ANSWERS[0], "", "/clarify What is the read/write ratio?", "/next"]
    for answer in PHASE_ANSWERS[1:5]:
        lines += [answer, "/next"]  # a command line also ends the answer
    lines += [
        PHASE_ANSWERS[5],
        "",
        "A central counter is a single point of failure, so ranges.",
        "",
        "/time",
        "/next",
    ]
    result = coach("practice", "url-shortener", "--candidate", "Ana", env=env, stdin=script(*lines))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    question = content.question("url-shortener")
    facts = {f.topic: f.answer for f in question.facts}
    assert facts["scale"] in out and facts["functional scope"] in out
    assert facts["traffic mix"] in out
    pushback = next(p for p in question.pushbacks if p.prompt in out)
    assert pushback.id == "code-collision"
    for phase in content.phases:
        assert re.search(
            rf"^{re.escape(phase.title)}: [0-4]/4 +\[graded by offline grader", out, re.MULTILINE
        ), phase.id
    assert "Time used per phase:" in out
    assert "Interview report: Design a URL shortener" in out
    assert re.search(r"Overall \d+/100", out)
    saved = list((tmp_path / "data" / "sessions").glob("*.json"))
    assert len(saved) == 1
    session = json.loads(saved[0].read_text())
    assert session["status"] == "finished" and session["candidate"] == "Ana"
    assert session["report"]["split_method"] == "interview"
    assert session["pushbacks_asked"] == ["code-collision"]


def test_practice_bad_input_is_reported_and_the_interview_goes_on(env: dict[str, str]) -> None:
    stdin = script("/clarify", "/nxt", PHASE_ANSWERS[0], "/next", "? How many users?", "/finish")
    result = coach("practice", "url-shortener", env=env, stdin=stdin)
    assert result.returncode == 0
    errors = result.stderr.splitlines()
    assert len(errors) == 3
    assert "clarifying question is empty" in errors[0]
    assert "unknown command /nxt; did you mean /next?" in errors[1]
    assert "belong in the requirements phase" in errors[2]
    assert "Interview report" in result.stdout


def test_practice_keeps_an_answer_whose_first_line_starts_with_a_slash(
    env: dict[str, str], tmp_path: Path
) -> None:
    endpoint = "/v1/urls POST {long_url, idempotency_key} -> 201 {short_code}"
    stdin = script(PHASE_ANSWERS[0], "/next", PHASE_ANSWERS[1], "/next", endpoint, "/quit")
    result = coach("practice", "url-shortener", env=env, stdin=stdin)
    assert result.returncode == 0 and "unknown command" not in result.stderr
    (saved,) = (tmp_path / "data" / "sessions").glob("*.json")
    answers = [t["text"] for t in json.loads(saved.read_text())["turns"] if t["kind"] == "answer"]
    assert answers[-1] == endpoint


class Terminal:
    """`coach` on a pseudo-terminal, as a person at a keyboard runs it (line editing on)."""

    def __init__(self, *args: str, env: dict[str, str], columns: int = 100) -> None:
        import pty

        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [*COMMAND, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**env, "TERM": "xterm", "COLUMNS": str(columns)},
        )
        os.close(slave)
        self.seen = ""

    def wait_for(self, pattern: str, timeout: float = 30.0) -> str:
        """Read the screen until `pattern` (a regex) shows, e.g. the prompt after a line."""
        import select

        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.seen):
            left = deadline - time.monotonic()
            assert left > 0, f"{pattern!r} never showed; the screen:\n{self.seen}"
            if select.select([self.master], [], [], left)[0]:
                try:
                    self.seen += os.read(self.master, 65536).decode(errors="replace")
                except OSError:  # the program ended and closed the terminal
                    assert re.search(pattern, self.seen), self.seen
        return self.seen

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def finish(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout)
        with contextlib.suppress(OSError):
            self.seen += os.read(self.master, 65536).decode(errors="replace")
        os.close(self.master)
        return code


def saved_turns(tmp_path: Path, kind: str) -> list[str]:
    (saved,) = (tmp_path / "data" / "sessions").glob("*.json")
    return [t["text"] for t in json.loads(saved.read_text())["turns"] if t["kind"] == kind]


def test_ctrl_c_while_typing_an_answer_keeps_the_lines_typed(
    env: dict[str, str], tmp_path: Path
) -> None:
    term = Terminal("practice", "url-shortener", env=env)
    term.wait_for(r"\n> $")
    term.type("Users shorten links and get a short code.\n")
    term.wait_for(r"short code\.\r?\n  $")  # the prompt for the answer's next line
    term.type("Redirects must be fast.\n")
    term.wait_for(r"fast\.\r?\n  $")
    term.proc.send_signal(signal.SIGINT)
    assert term.finish() == 130
    assert "The answer you were typing was sent before stopping." in term.seen
    assert saved_turns(tmp_path, "answer") == [
        "Users shorten links and get a short code.\nRedirects must be fast."
    ]


def test_arrow_keys_and_backspace_edit_the_line_being_typed(
    env: dict[str, str], tmp_path: Path
) -> None:
    term = Terminal("practice", "url-shortener", env=env)
    term.wait_for(r"\n> $")
    left, backspace = "\x1b[D", "\x7f"
    term.type(f"Users shortenX links{left * 6}{backspace}\n")  # the X goes, "links" stays
    term.wait_for(r"\n  $")
    term.type("\n")
    term.wait_for(r"\(saved; 3 words in this phase so far\. Add more, or /next to be graded\.\)")
    term.type("/quit\n")
    assert term.finish() == 0
    assert saved_turns(tmp_path, "answer") == ["Users shorten links"]


def test_the_interviewer_is_wrapped_to_a_narrow_terminal(env: dict[str, str]) -> None:
    term = Terminal("practice", "url-shortener", env=env, columns=50)
    screen = term.wait_for(r"\n> $")
    term.type("/quit\n")
    term.finish()
    said = screen[screen.index("Interviewer:") :].split("\r\n\r\n", 1)[0].split("\r\n")
    assert len(said) > 2 and all(len(line) <= 49 for line in said), said


def test_a_session_open_in_one_terminal_is_refused_in_another(
    env: dict[str, str], tmp_path: Path
) -> None:
    first = Terminal("practice", "url-shortener", env=env)
    screen = first.wait_for(r"\n> $")
    session_id = re.search(r"Session ([0-9a-f]{32})", screen).group(1)  # type: ignore[union-attr]
    second = coach("practice", "--resume", session_id, env=env, stdin="An answer.\n/next\n")
    assert second.returncode == 2
    assert f"Interview {session_id} is open in another `coach practice`" in second.stderr
    first.type("Users shorten links.\n\n/quit\n")
    assert first.finish() == 0
    assert saved_turns(tmp_path, "answer") == ["Users shorten links."]
    resumed = coach("practice", "--resume", session_id, env=env, stdin="/quit\n")
    assert resumed.returncode == 0, resumed.stderr


def test_practice_saves_on_eof_and_resumes(env: dict[str, str], tmp_path: Path) -> None:
    first = coach("practice", "url-shortener", env=env, stdin=script(PHASE_ANSWERS[0]))
    assert first.returncode == 0
    match = re.search(r"coach practice --resume ([0-9a-f]{32})", first.stdout)
    assert match, first.stdout
    session_id = match.group(1)
    saved = tmp_path / "data" / "sessions" / f"{session_id}.json"
    data = json.loads(saved.read_text())
    assert data["status"] == "active"
    assert [t["kind"] for t in data["turns"]] == ["opening", "answer"]

    rest = ["/next", *[x for answer in PHASE_ANSWERS[1:] for x in (answer, "/next")], "/next"]
    second = coach("practice", "--resume", session_id, env=env, stdin=script(*rest))
    assert second.returncode == 0, second.stderr
    assert f"Resuming interview {session_id}" in second.stdout
    assert "Interview report" in second.stdout
    # The requirements grade quotes what was typed before the break.
    assert "\u201cOut of scope: analytics.\u201d" in second.stdout
    assert json.loads(saved.read_text())["status"] == "finished"

    again = coach("practice", "--resume", session_id, env=env)
    assert again.returncode == 0 and "already finished" in again.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["practice", "design-a-toaster"], "No question with id 'design-a-toaster'"),
        (["practice", "--resume", "0" * 32], "No saved session"),
        (["practice", "--resume", "../../etc/passwd"], "is not a session id"),
        (["practice"], "Name a question to practise"),
        (["study", "nope"], "No question with id 'nope'"),
        (["eval", "/definitely/not/here"], "not a folder"),
        (["worker"], "coach worker takes jobs from Redis: set COACH_REDIS_URL"),
    ],
)
def test_errors_are_one_clean_line(env: dict[str, str], args: list[str], message: str) -> None:
    result = coach(*args, env=env)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_broken_content_names_the_file_and_field(env: dict[str, str], tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    content_dir = tmp_path / "content"
    for folder in ("rubrics", "questions", "prompts"):
        (content_dir / folder).mkdir(parents=True)
        for path in (root / folder).iterdir():
            (content_dir / folder / path.name).write_bytes(path.read_bytes())
    broken = content_dir / "questions" / "twitter.yaml"
    broken.write_text(broken.read_text().replace("difficulty: medium", "difficulty: extreme"))
    result = coach("questions", env={**env, "COACH_CONTENT_DIR": str(content_dir)})
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert "twitter.yaml" in result.stderr and "difficulty" in result.stderr


def _get_healthz(sock: socket.socket) -> bytes:
    """One keep-alive GET /healthz on `sock`: the whole response's head, or b"" when the
    server had closed the connection."""
    sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:  # the head and the body may come in separate reads
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE)
    assert length is not None, head
    while len(body) < int(length.group(1)) and (chunk := sock.recv(65536)):
        body += chunk
    return head


def test_serve_prints_its_url_and_keeps_idle_connections_as_configured(
    env: dict[str, str],
) -> None:
    """`coach serve` (the README's main command) answers at the URL it prints, and holds an
    idle connection open for COACH_KEEP_ALIVE_SECONDS (uvicorn alone closes it after 5 s)."""
    port = free_port()
    server = subprocess.Popen(
        [*COMMAND, "serve", "--port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**env, "COACH_KEEP_ALIVE_SECONDS": "2"},
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline().decode()
        assert f"coach is serving at http://127.0.0.1:{port}/" in first, first
        deadline = time.monotonic() + 30
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, "coach serve did not listen within 30 s"
                time.sleep(0.1)
        with sock:
            assert _get_healthz(sock).startswith(b"HTTP/1.1 200")
            time.sleep(1)  # idle for less than the keep-alive: the same connection serves
            assert _get_healthz(sock).startswith(b"HTTP/1.1 200")
            time.sleep(3.5)  # idle for longer: the server has closed it
            try:
                answered = _get_healthz(sock)
            except ConnectionError:
                answered = b""
            assert answered == b"", "an idle connection outlived COACH_KEEP_ALIVE_SECONDS=2"
    finally:
        server.terminate()
        server.wait(15)


def test_serve_refuses_a_port_out_of_range_before_claiming_to_serve(env: dict[str, str]) -> None:
    result = coach("serve", "--port", "70000", env=env)
    assert result.returncode == 2
    assert "Invalid value for '--port'" in result.stderr and "65535" in result.stderr
    assert "serving at" not in result.stdout and "Traceback" not in result.stderr


def test_serve_on_a_taken_port_says_so_and_how_to_pick_another(env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = coach("serve", "--port", str(port), env=env)
    assert result.returncode == 2
    assert "serving at" not in result.stdout, "no URL is promised for a server that cannot start"
    assert result.stderr.splitlines() == [
        f"error: Port {port} on 127.0.0.1 is already in use (another coach serve?). Stop that, "
        f"or pick a free port: coach serve --port {port + 1} (or COACH_PORT)."
    ]


def test_tokens_create_works_on_a_fresh_data_folder(env: dict[str, str]) -> None:
    created = coach("tokens", "create", "ci", env=env)  # no coach serve or db upgrade before
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("coach_"), created.stdout
    listed = coach("tokens", "list", env=env)
    assert listed.returncode == 0 and " ci " in listed.stdout and "active" in listed.stdout
