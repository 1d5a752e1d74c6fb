"""The `coach` command: a thin terminal front door over the content, the engine and the graders.

Every command parses its input, calls one core function and formats the result. Any
CoachError becomes one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer
from pydantic import SecretStr, ValidationError
from rich.markup import escape

from coach.config import Settings, settings_help
from coach.content.loader import Content, load_content
from coach.content.models import PHASE_IDS, Question
from coach.engine import InterviewEngine, Session, Turn
from coach.errors import CoachError, InputError, InterviewStateError
from coach.grading.port import Progress
from coach.render import duration, grade_text, report_markdown, report_text
from coach.sessions_file import SessionFiles
from coach.slack.cli import slack_app
from coach.text_input import upload_text

if TYPE_CHECKING:
    from coach.store import Store

P = ParamSpec("P")
R = TypeVar("R")

EXIT_ERROR = 2
_URL_PASSWORD = re.compile(r"(://[^:/@]+:)[^@]+@")


def _settings_epilog() -> str:
    """settings_help() as an indented list; escaped so Rich prints '[default: ...]' as is."""
    lines = ["Settings (environment variables; `coach settings` shows the values in effect):", ""]
    for raw in settings_help().splitlines():
        name, _, rest = raw.partition("  ")
        lines.append(f"  {name}")
        for chunk in textwrap.wrap(" ".join(rest.split()), width=74):
            lines.append(f"      {chunk}")
    return escape("\n".join(lines))


app = typer.Typer(
    name="coach",
    help="Practise system design interviews: study the six phases, run a mock interview, "
    "or grade a written answer. Works offline; set COACH_LLM_BASE_URL or COACH_LLM_API_KEY "
    "to grade with an LLM.",
    epilog=_settings_epilog(),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


# --- shared plumbing ------------------------------------------------------------------------


def _fail(message: str) -> typer.Exit:
    typer.echo("error: " + " ".join(message.split()), err=True)
    return typer.Exit(EXIT_ERROR)


def _friendly(func: Callable[P, R]) -> Callable[P, R]:
    """Turn coach's own errors into one clean line on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except CoachError as exc:
            raise _fail(str(exc)) from None

    return wrapper


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "COACH_" + "_".join(str(p) for p in err["loc"]).upper()
        raise CoachError(
            f"{name}: {err['msg']} (got {err.get('input')!r}). Fix or unset that variable."
        ) from None


def _content(settings: Settings) -> Content:
    return load_content(settings)


def _grader_description(settings: Settings) -> str:
    if not settings.llm_enabled:
        return "offline grader (no LLM configured)"
    where = settings.llm_base_url or "the OpenAI API"
    return f"LLM {settings.llm_model} at {where}, offline grader as fallback"


def _stdin_is_tty() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


# --- coach questions --------------------------------------------------------------------------


class Difficulty(StrEnum):
    easy = "easy"
    medium = "medium"
    hard = "hard"


def _table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [head, ["-" * w for w in widths], *rows]
    )


@app.command("questions")
@_friendly
def questions_command(
    tag: Annotated[str | None, typer.Option(help="Only questions with this tag.")] = None,
    difficulty: Annotated[
        Difficulty | None, typer.Option(help="Only questions of this difficulty.")
    ] = None,
) -> None:
    """List the question bank: id, title, difficulty and tags, canonical questions first."""
    content = _content(_settings())
    chosen = [
        q
        for q in content.questions.values()
        if (tag is None or tag.lower() in (t.lower() for t in q.tags))
        and (difficulty is None or q.difficulty == difficulty.value)
    ]
    if not chosen:
        typer.echo("No questions match those filters. Run `coach questions` to see them all.")
        return
    rows = [
        [q.id + (" *" if q.canonical else ""), q.title, q.difficulty, ", ".join(q.tags)]
        for q in chosen
    ]
    typer.echo(_table(["id", "title", "difficulty", "tags"], rows))
    if any(q.canonical for q in chosen):
        typer.echo("\n* canonical question (from the course's simulator)")


# --- coach study ------------------------------------------------------------------------------


def _indent(text: str, prefix: str = "    ", width: int = 96) -> str:
    out = []
    for para in text.strip().splitlines():
        if not para.strip():
            out.append("")
            continue
        lead = len(para) - len(para.lstrip())
        body = " ".join(para.split())
        bullet = body[:2] if body[:2] in ("- ", "* ") else ""
        out += textwrap.wrap(
            body,
            width=width,
            initial_indent=prefix + " " * lead,
            subsequent_indent=prefix + " " * (lead + len(bullet)),
        )
    return "\n".join(out)


def _bullet(text: str, width: int = 96) -> str:
    return textwrap.fill(
        " ".join(text.split()), width=width, initial_indent="    - ", subsequent_indent="      "
    )


def _study_page(content: Content, question: Question, index: int) -> str:
    phase = content.phases[index]
    minutes = f"{phase.time_budget_minutes:g}"
    lines = [
        f"== Phase {phase.order} of {len(content.phases)}: {phase.title}  "
        f"(time budget: about {minutes} min) ==",
        "",
        _indent(phase.purpose, "  "),
        "",
        "  The interviewer asks:",
        _indent(phase.opening_question),
        "",
        "  Prompts to hit:",
        *[_bullet(p) for p in phase.prompts_to_hit],
        "",
        f"  Model answer for {question.title}:",
        _indent(question.model_answers[phase.id]),
    ]
    return "\n".join(lines)


@app.command("study")
@_friendly
def study_command(
    question: Annotated[str, typer.Argument(help="Question id, e.g. twitter.")],
    show_all: Annotated[
        bool, typer.Option("--all", help="Print every phase at once, without pausing.")
    ] = False,
) -> None:
    """Walk a question through the six phases: budget, prompts to hit, model answer."""
    content = _content(_settings())
    q = content.question(question)
    typer.echo(f"{q.title}  [{q.difficulty}; {', '.join(q.tags)}]\n")
    typer.echo(_indent(q.prompt, "  ") + "\n")
    if show_all or not _stdin_is_tty():
        for index in range(len(content.phases)):
            typer.echo(_study_page(content, q, index) + "\n")
        return
    index = 0
    while True:
        typer.echo(_study_page(content, q, index) + "\n")
        try:
            choice = input("[Enter/n] next  [p] previous  [q] quit > ").strip().lower()
        except EOFError:
            choice = "q"
        if choice == "q":
            return
        if choice == "p":
            index = max(0, index - 1)
        elif index == len(content.phases) - 1:
            typer.echo("That was the last phase. Try it for real: coach practice " + q.id)
            return
        else:
            index += 1


# --- coach practice ---------------------------------------------------------------------------

PRACTICE_HELP = """\
Type your answer; a blank line sends it (paste as many paragraphs as you like, one per send).
Commands:
  /clarify <question>   ask a clarifying question (requirements phase); or start a line with ?
  /next                 get this phase graded and move on
  /time                 time used per phase against its budget
  /finish               end now and get the report
  /quit                 save and stop; resume later with --resume
  /help                 this list"""


COMMANDS = frozenset({"/clarify", "/next", "/time", "/finish", "/quit", "/help"})
LIKELY_MEANT = {"/exit": "/quit", "/q": "/quit", "/bye": "/quit", "/done": "/finish"}
LineReader = Callable[[str], str | None]


def _is_command(line: str) -> bool:
    """A known command ends an answer being typed, so '/next' needs no blank line first."""
    return line.strip().split(" ", 1)[0].lower() in COMMANDS


def _mistyped_command(line: str) -> str | None:
    """The command a lone '/nxt' was meant to be, if any; other lines that start with '/'
    ('/v1/tweets POST ...', '/users') are answer text, as an API design often begins."""
    word = line.strip().lower()
    if not re.fullmatch(r"/[a-z]+", word):
        return None
    if word in LIKELY_MEANT:
        return LIKELY_MEANT[word]
    close = difflib.get_close_matches(word, sorted(COMMANDS), n=1, cutoff=0.6)
    return close[0] if close else None


def _enable_line_editing() -> None:
    """Arrow keys, Backspace and history at the prompt: importing readline makes input() use
    it. Without it a Left arrow is stored in the answer as escape characters."""
    with suppress(ImportError):  # Windows has no readline: its console edits lines itself
        import readline  # noqa: F401


def _line_reader(interactive: bool) -> LineReader:
    def read(prompt: str) -> str | None:
        if interactive:
            try:
                return input(prompt)
            except EOFError:
                return None
        line = sys.stdin.readline()
        return line if line else None

    return read


class UnsentAnswerKept(KeyboardInterrupt):
    """Ctrl+C while an answer was being typed: the lines typed so far were sent first."""


def _entries(read: LineReader) -> Iterator[tuple[str, str]]:
    """(command, argument) pairs; a multi-line answer ends at a blank line or end of input.

    Ctrl+C in the middle of an answer sends the lines typed so far before stopping, so
    nothing typed is lost (the practice loop saves the session after each entry).
    """
    while True:
        line = read("> ")
        if line is None:
            return
        stripped = line.strip()
        if not stripped:
            continue
        if _is_command(stripped):
            name, _, arg = stripped.partition(" ")
            yield name.lower(), arg.strip()
            continue
        if (meant := _mistyped_command(stripped)) is not None:
            yield "mistyped", f"{stripped} {meant}"
            continue
        if stripped.startswith("?"):
            yield "/clarify", stripped[1:].strip()
            continue
        lines = [line.rstrip("\n")]
        more: str | None = None
        try:
            while True:
                more = read("  ")
                if more is None or not more.strip() or _is_command(more):
                    break
                lines.append(more.rstrip("\n"))
        except KeyboardInterrupt:
            yield "answer", "\n".join(lines)
            raise UnsentAnswerKept from None
        yield "answer", "\n".join(lines)
        if more is None:
            return
        if _is_command(more):
            name, _, arg = more.strip().partition(" ")
            yield name.lower(), arg.strip()


def _say(turn: Turn) -> None:
    typer.echo("\n" + _fit_to_terminal(f"Interviewer: {turn.text}") + "\n")


def _fit_to_terminal(text: str) -> str:
    """Wrap at the terminal's width, between words; a pipe or file gets the lines as they are."""
    if not sys.stdout.isatty():
        return text
    width = max(20, min(shutil.get_terminal_size().columns, 100) - 1)
    return "\n".join(textwrap.fill(line, width) if line else "" for line in text.splitlines())


def _answer_kept(session: Session) -> str:
    """Said after each answer at a keyboard: a bare new prompt left people unsure it counted."""
    words = sum(
        len(t.text.split())
        for t in session.turns
        if t.phase == session.phase and t.kind in ("answer", "pushback_reply")
    )
    return f"  (saved; {words} words in this phase so far. Add more, or /next to be graded.)"


def _resume_hint(session: Session) -> str:
    return f"Interview saved. Resume it with: coach practice --resume {session.id}"


def _time_table(engine: InterviewEngine, session: Session) -> str:
    rows = []
    for t in engine.time_per_phase(session):
        if session.phases[PHASE_IDS.index(t.phase)].started_at is None:
            continue
        marker = "  (now)" if t.phase == session.phase and not session.finished else ""
        over = "  over budget" if t.over_budget else ""
        title = engine.content.phase(t.phase).title
        rows.append(
            f"  {title:<28} {duration(t.used_seconds):>6} of {duration(t.budget_seconds)}"
            f"{over}{marker}"
        )
    return "Time used per phase:\n" + "\n".join(rows)


def _show_report(session: Session, content: Content, store: SessionFiles) -> None:
    assert session.report is not None
    typer.echo("\n" + report_text(session.report, content))
    closing = next((t for t in reversed(session.turns) if t.kind == "closing"), None)
    if closing:
        _say(closing)
    typer.echo(f"Session saved in {store.path(session.id)}")


def _steps_on_stderr(settings: Settings) -> Progress | None:
    """With an LLM every grading step is a call that may take seconds: say each on stderr
    (stdout stays the report). Offline the whole grading takes a blink, so nothing."""
    if not settings.llm_enabled:
        return None

    def progress(done: int, total: int, step: str) -> None:
        counted = f"[{done}/{total} done] " if total > 1 else ""  # /next grades one phase
        typer.echo(f"{counted}{step}\u2026", err=True)

    return progress


def _practice_loop(
    engine: InterviewEngine,
    session: Session,
    store: SessionFiles,
    interactive: bool,
    progress: Progress | None = None,
) -> None:
    content = engine.content
    for command, arg in _entries(_line_reader(interactive)):
        try:
            if command == "answer":
                replies = engine.answer(session, arg)
                for turn in replies:
                    _say(turn)
                if interactive and not replies:
                    typer.echo(_answer_kept(session))
            elif command == "/clarify":
                _say(engine.clarify(session, arg))
            elif command == "/next":
                result = engine.advance(session, progress=progress)
                if result.outcome == "pushback":
                    typer.echo("\nBefore we leave the deep dive, one challenge.")
                    _say(result.turns[0])
                else:
                    assert result.grade is not None
                    typer.echo("\n" + grade_text(result.grade, content))
                    if result.outcome == "finished":
                        store.save(session)
                        _show_report(session, content, store)
                        return
                    _say(result.turns[-1])
            elif command == "/time":
                typer.echo(_time_table(engine, session))
                continue
            elif command == "/finish":
                engine.finish(session, progress=progress)
                store.save(session)
                _show_report(session, content, store)
                return
            elif command == "/quit":
                typer.echo(_resume_hint(session))
                return
            elif command == "/help":
                typer.echo(PRACTICE_HELP)
                continue
            elif command == "mistyped":
                typed, meant = arg.rsplit(" ", 1)
                typer.echo(
                    f"error: unknown command {typed}; did you mean {meant}? Type /help for the "
                    "list. (Nothing was sent.)",
                    err=True,
                )
                continue
        except (InputError, InterviewStateError) as exc:
            typer.echo(f"error: {exc}", err=True)
            continue
        store.save(session)
    typer.echo("\nEnd of input. " + _resume_hint(session))


@app.command("practice")
@_friendly
def practice_command(
    question: Annotated[
        str | None, typer.Argument(help="Question id, e.g. url-shortener (omit with --resume).")
    ] = None,
    candidate: Annotated[str | None, typer.Option(help="Your name, for the record.")] = None,
    resume: Annotated[
        str | None, typer.Option(help="Continue a saved interview by its session id.")
    ] = None,
) -> None:
    """Run a mock interview in the terminal, phase by phase, with a grade after each."""
    settings = _settings()
    content = _content(settings)
    from coach.grading.factory import make_grader, make_voice

    engine = InterviewEngine(
        content,
        make_grader(settings, content),
        voice=make_voice(settings, content),
        max_answer_chars=settings.max_answer_chars,
    )
    store = SessionFiles(settings.data_dir / "sessions")
    interactive = _stdin_is_tty()
    if interactive:
        _enable_line_editing()
    with ExitStack() as held:
        if resume:
            store.load(resume)  # a clear error for an unknown id before any lock file is made
            held.enter_context(store.open_exclusively(resume))
            session = store.load(resume)  # read again under the lock: the latest save
            if question and content.question(question).id != session.question_id:
                raise CoachError(
                    f"Session {session.id} is an interview on {session.question_id!r}, not "
                    f"{question!r}. Drop the question id when resuming."
                )
            title = content.question(session.question_id).title
            if session.finished:
                typer.echo(f"Interview {session.id} ({title}) is already finished.")
                _show_report(session, content, store)
                return
            phase = content.phase(session.phase)
            typer.echo(
                f"Resuming interview {session.id}: {title}, phase {phase.order} of "
                f"{len(PHASE_IDS)} ({phase.title})."
            )
            kinds = ("opening", "pushback")
            last = next((t for t in reversed(session.turns) if t.kind in kinds), None)
            if last:
                _say(last)
        else:
            if not question:
                raise CoachError(
                    "Name a question to practise (see `coach questions`), or pass --resume ID."
                )
            session = engine.start(question, candidate)
            held.enter_context(store.open_exclusively(session.id))
            store.save(session)
            title = content.question(session.question_id).title
            typer.echo(f"Mock interview: {title}. Grading: {_grader_description(settings)}.")
            typer.echo(f"Session {session.id}\n")
            typer.echo(PRACTICE_HELP)
            _say(session.turns[0])
        try:
            _practice_loop(engine, session, store, interactive, _steps_on_stderr(settings))
        except KeyboardInterrupt as stop:
            store.save(session)  # the engine commits whole changes, so this copy is consistent
            if isinstance(stop, UnsentAnswerKept):
                typer.echo("\nThe answer you were typing was sent before stopping.")
            typer.echo("\n" + _resume_hint(session))
            raise typer.Exit(130) from None


# --- coach grade ------------------------------------------------------------------------------


def _read_answer_bytes(file: str | None, max_bytes: int) -> tuple[bytes, str]:
    if file is None:
        if _stdin_is_tty():
            raise CoachError(
                "Nothing to grade: give a FILE (coach grade answer.md), pipe an answer on stdin, "
                "or paste one after `coach grade -`."
            )
        file = "-"
    if file == "-":
        if _stdin_is_tty():  # someone about to paste: say how to end it
            typer.echo(
                "Paste the answer, then press Ctrl+D on a new line (Ctrl+Z, Enter on Windows).",
                err=True,
            )
        return sys.stdin.buffer.read(max_bytes + 1), "answer on stdin"
    path = Path(file)
    try:
        if path.is_dir():
            raise CoachError(
                f"{file} is a folder, not a file. Give one Markdown or text answer "
                "(to grade a labelled folder, use `coach eval`)."
            )
        with path.open("rb") as handle:
            return handle.read(max_bytes + 1), f"file {file}"
    except FileNotFoundError:
        raise CoachError(
            f"{file}: no such file. Check the path, or use '-' to read the answer from stdin."
        ) from None
    except PermissionError:
        raise CoachError(f"{file}: permission denied. Make the file readable.") from None
    except OSError as exc:
        raise CoachError(f"{file}: cannot be read ({exc.strerror}).") from None


@app.command("grade")
@_friendly
def grade_command(
    file: Annotated[
        str | None,
        typer.Argument(
            help="Answer file (Markdown, text or PDF), or - for stdin.", show_default=False
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    question: Annotated[
        str | None,
        typer.Option(
            help="Question id the answer is for: its title in the report, the question shown "
            "to an LLM grader, and a check that the answer is about it."
        ),
    ] = None,
) -> None:
    """Grade a whole written answer: split into phases, score each, list mistakes."""
    settings = _settings()
    # A PDF may be larger than the text it holds: read as much as the API would accept.
    read_limit = max(settings.max_upload_bytes, settings.max_request_bytes)
    data, what = _read_answer_bytes(file, read_limit)
    # _read_answer_bytes stops one byte past its limit: past it, the true size is unknown
    text = upload_text(
        data, what=what, max_bytes=settings.max_upload_bytes, whole=len(data) <= read_limit
    )
    content = _content(settings)
    from coach.grading.factory import make_grader
    from coach.grading.upload import grade_answer

    report = grade_answer(
        text,
        content=content,
        grader=make_grader(settings, content),
        question_id=question,
        progress=_steps_on_stderr(settings),
    )
    if json_out:
        typer.echo(json.dumps(report.model_dump(mode="json"), indent=2, ensure_ascii=False))
    else:
        typer.echo(report_markdown(report, content), nl=False)


# --- coach eval -------------------------------------------------------------------------------


@app.command("eval")
@_friendly
def eval_command(
    folder: Annotated[Path, typer.Argument(help="Folder with labels.json and the answers.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    runs: Annotated[
        int, typer.Option(min=1, help="Grade each answer this many times (LLM stability).")
    ] = 1,
) -> None:
    """Measure the configured grader against a labelled folder of answers."""
    from coach.evaluation import evaluate_folder, render_table
    from coach.grading.factory import make_grader

    settings = _settings()
    content = _content(settings)
    if not folder.is_dir():
        raise CoachError(f"{folder}: not a folder. Give the folder that holds labels.json.")

    def progress(done: int, total: int, name: str) -> None:
        typer.echo(f"[{done}/{total}] {name}", err=True)

    result = evaluate_folder(
        folder,
        content=content,
        grader=make_grader(settings, content),
        runs=runs,
        progress=progress,
    )
    if json_out:
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        typer.echo(render_table(result))


# --- coach db, coach tokens -------------------------------------------------------------------

# --- coach serve ------------------------------------------------------------------------------


@app.command("serve")
@_friendly
def serve_command(
    host: Annotated[str | None, typer.Option(help="Address (default COACH_HOST).")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port (default COACH_PORT).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Processes (default COACH_WORKERS; >1 needs PostgreSQL)."),
    ] = None,
) -> None:
    """Start the web service (API, docs at /docs) on the configured database."""
    import os

    import uvicorn

    from coach.store import Store

    given = {"host": host, "port": port, "workers": workers}
    overrides = {name: value for name, value in given.items() if value is not None}
    settings = _settings().model_copy(update=overrides)
    if settings.workers > 1 and settings.uses_sqlite:
        raise CoachError(
            "Several workers need a shared database: set COACH_DATABASE_URL to PostgreSQL, "
            "or run one worker with SQLite."
        )
    _check_can_listen(settings.host, settings.port)
    store = Store.from_settings(settings)
    try:
        store.upgrade()  # the embedded default migrates itself; PostgreSQL is a no-op if current
    finally:
        store.close()
    for name, value in overrides.items():  # worker processes read their settings from the env
        os.environ[f"COACH_{name.upper()}"] = str(value)
    grading = "an LLM (" + settings.llm_model + ")" if settings.llm_enabled else "offline"
    shown = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    typer.echo(f"coach is serving at http://{shown}:{settings.port}/  (API docs: /docs)")
    typer.echo(f"  database: {store.display_url}; grading: {grading}; Ctrl+C stops it")
    uvicorn.run(
        "coach.api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        timeout_keep_alive=settings.keep_alive_seconds,
        log_level="warning",
    )


def _check_can_listen(host: str, port: int) -> None:
    """Bind the address once before saying "serving at": uvicorn would print the URL's
    promise first, then a raw bind error that names neither --port nor COACH_PORT."""
    import errno
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise CoachError(
            f"Cannot listen on {host!r} ({exc.strerror}); set --host or COACH_HOST to an "
            "address of this machine, e.g. 127.0.0.1."
        ) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CoachError(
                    f"Port {port} on {host} is already in use (another coach serve?). Stop "
                    f"that, or pick a free port: coach serve --port {port + 1} (or COACH_PORT)."
                ) from None
            low = " (ports under 1024 need root)" if port < 1024 else ""
            raise CoachError(
                f"Cannot listen on {host}:{port}: {exc.strerror}{low}. Pick another address "
                "or port with --host/--port (or COACH_HOST/COACH_PORT)."
            ) from None


@app.command("worker")
@_friendly
def worker_command(
    burst: Annotated[
        bool, typer.Option(help="Grade what is queued, then exit (default: run until stopped).")
    ] = False,
) -> None:
    """Grade queued jobs from the shared queue (needs COACH_REDIS_URL and a shared database)."""
    import logging

    from coach.jobs import queue_name, run_worker

    settings = _settings()
    if not settings.redis_url:
        raise CoachError(
            "coach worker takes jobs from Redis: set COACH_REDIS_URL (e.g. "
            "redis://127.0.0.1:6379/0) here and on every `coach serve` instance."
        )
    if settings.uses_sqlite:
        raise CoachError(
            "coach worker shares the database with the serving instances: set "
            "COACH_DATABASE_URL to the same PostgreSQL database they use."
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its plugin set-up, at every start
    grading = "an LLM (" + settings.llm_model + ")" if settings.llm_enabled else "offline"
    typer.echo(f"coach worker: queue {queue_name(settings)}; grading: {grading}; Ctrl+C stops it")
    run_worker(settings, burst=burst)


db_app = typer.Typer(
    help="The database behind the service (COACH_DATABASE_URL; default: a SQLite file in the "
    "data folder).",
    no_args_is_help=True,
)
tokens_app = typer.Typer(
    help="API tokens for the service: create one per client, list them, revoke one.",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")
app.add_typer(tokens_app, name="tokens")
app.add_typer(slack_app, name="slack")


def _store() -> Store:
    """The configured store; the embedded SQLite default migrates itself first, as `coach
    serve` does, so `coach tokens create` works on a fresh data folder. PostgreSQL is
    migrated only by `coach db upgrade`, a step its operator runs on purpose."""
    from coach.store import Store

    settings = _settings()
    store = Store.from_settings(settings)
    if settings.uses_sqlite:
        try:
            store.upgrade()
        except BaseException:
            store.close()
            raise
    return store


@db_app.command("upgrade")
@_friendly
def db_upgrade_command() -> None:
    """Create or migrate coach's tables in the configured database (safe to run again)."""
    from coach.store import Store

    with Store.from_settings(_settings()) as store:
        before = store.revision()
        store.upgrade()
        after = store.revision()
    if before == after:
        typer.echo(f"Database {store.display_url} is up to date (revision {after}).")
    else:
        typer.echo(
            f"Database {store.display_url} upgraded from revision {before or '(none)'} to {after}."
        )


@tokens_app.command("create")
@_friendly
def tokens_create_command(
    name: Annotated[str, typer.Argument(help="Who or what the token is for, e.g. ci.")],
) -> None:
    """Create an API token and print its secret (once: only a hash of it is kept)."""
    with _store() as store:
        token_id, secret = store.create_token(name)
    typer.echo(f"Created API token {name.strip()!r} (id {token_id}).")
    typer.echo("Its secret is below. Copy it now: it cannot be shown again.\n")
    typer.echo(secret)


@tokens_app.command("list")
@_friendly
def tokens_list_command() -> None:
    """List the API tokens: id, name, when created, and whether revoked (never secrets)."""
    with _store() as store:
        tokens = store.list_tokens()
    if not tokens:
        typer.echo("No API tokens yet. Create one with: coach tokens create NAME")
        return
    rows = [
        [
            t.id,
            t.name,
            t.created_at.strftime("%Y-%m-%d %H:%M UTC"),
            "revoked" if t.revoked else "active",
        ]
        for t in tokens
    ]
    typer.echo(_table(["id", "name", "created", "status"], rows))


@tokens_app.command("revoke")
@_friendly
def tokens_revoke_command(
    name: Annotated[str, typer.Argument(help="The token's name (or id).")],
) -> None:
    """Revoke an API token for good; requests with its secret are refused from now on."""
    with _store() as store:
        changed = store.revoke_token(name)
    done = "Revoked API token" if changed else "Nothing to do: already revoked, API token"
    typer.echo(f"{done} {name!r}.")


# --- coach settings ---------------------------------------------------------------------------


@app.command("settings")
@_friendly
def settings_command() -> None:
    """Show the effective settings (secrets masked) and which grader they select."""
    settings = _settings()
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            shown = "******** (set)"
        elif value is None:
            shown = "(not set)"
        elif name == "database_url":
            shown = _URL_PASSWORD.sub(r"\1****@", str(value))
        else:
            shown = str(value)
        typer.echo(f"COACH_{name.upper()}={shown}")
    typer.echo(f"\nGrader: {_grader_description(settings)}")


if __name__ == "__main__":
    app()
