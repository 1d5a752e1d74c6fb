"""The store on a real database: SQLite, and PostgreSQL when COACH_TEST_POSTGRES_URL is set.

Every test gets an empty database (see `database_url` in conftest.py), runs the shipped
migrations and works through the public `Store` interface with real engine sessions.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, func, inspect, select, text
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from api_testing import wait_until
from coach.cli import app
from coach.config import Settings
from coach.content import Content
from coach.engine import InterviewEngine
from coach.errors import (
    CoachError,
    GradingNotFoundError,
    InterviewConflictError,
    InterviewNotFoundError,
    InterviewStateError,
    StoreUnavailableError,
)
from coach.grading.offline import OfflineGrader
from coach.llm import LLMCallRecord
from coach.store import LLMCallLog, Store
from coach.store.database import make_engine, normalize_url
from coach.store.migrate import alembic_config, head_revision
from coach.store.tables import ApiToken, Base, LLMCall, PhaseGradeRow, TurnRow

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
TABLES = {
    "candidates",
    "interviews",
    "turns",
    "phase_grades",
    "gradings",
    "llm_calls",
    "api_tokens",
    "slack_teams",
    "slack_users",
    "slack_threads",
    "slack_gradings",
    "slack_deliveries",
}
REQUIREMENTS = (
    "Users post tweets, follow people and read a home timeline. Out of scope: search and DMs. "
    "Timeline p99 under 200 ms; availability over consistency."
)
ESTIMATION = "200M DAU and 100M tweets a day is about 1,200 writes per second."

R = TypeVar("R")


class FakeClock:
    """Each call is one minute after the previous one, so creation order is unambiguous."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture()
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    store.upgrade()
    yield store
    store.close()


@pytest.fixture()
def engine(content: Content) -> InterviewEngine:
    return InterviewEngine(content, OfflineGrader(content), clock=FakeClock())


def run_threads(count: int, work: Callable[[int], R]) -> list[R]:
    """Run work(0..count-1) on real threads released together; re-raise any failure."""
    barrier = threading.Barrier(count)
    results: list[R | None] = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results  # type: ignore[return-value]


def stored_turns(store: Store, interview_id: str) -> list[tuple[int, str, str]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(TurnRow.seq, TurnRow.kind, TurnRow.text)
            .where(TurnRow.interview_id == interview_id)
            .order_by(TurnRow.seq)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


# --- migrations -------------------------------------------------------------------------------


def test_upgrade_creates_every_table_and_running_it_again_changes_nothing(
    database_url: str,
) -> None:
    with Store(database_url) as store:
        assert store.revision() is None
        store.upgrade()
        assert store.revision() == head_revision() == "0004"
        assert set(inspect(store.engine).get_table_names()) == TABLES | {"alembic_version"}
        token_id, secret = store.create_token("before-second-upgrade")

        store.upgrade()
        assert store.revision() == "0004"
        assert store.token_id_for(secret) == token_id


def test_an_upload_stored_before_finish_jobs_existed_survives_the_upgrade(
    database_url: str,
) -> None:
    with Store(database_url) as store:
        config = alembic_config(database_url)
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0002")
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO gradings (id, owner, status, filename, question_id, text, "
                "report_json, error, attempts, created_at, updated_at) VALUES ('g-old', NULL, "
                "'pending', 'old.md', NULL, 'Users post tweets.', NULL, NULL, 0, "
                "'2025-03-01 09:00:00+00:00', '2025-03-01 09:00:00+00:00')"
            )
        store.upgrade()
        kept = store.get_grading("g-old", owner=None)
    assert (kept.text, kept.status, kept.interview_id) == ("Users post tweets.", "pending", None)
    assert (kept.steps_done, kept.steps_total, kept.step) == (0, None, None)  # no steps yet


def test_migrations_build_exactly_the_tables_the_models_describe(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_a_store_whose_tables_are_missing_says_to_run_db_upgrade(database_url: str) -> None:
    with Store(database_url) as store, pytest.raises(StoreUnavailableError) as err:
        store.create_token("ci")
    assert "no coach tables yet" in str(err.value)
    assert "coach db upgrade" in str(err.value)


# --- interviews -------------------------------------------------------------------------------


def test_interview_round_trips_and_answers_and_grades_land_in_their_tables(
    store: Store, engine: InterviewEngine
) -> None:
    session = engine.start("twitter", candidate="Ana")
    store.create_interview(session, owner=None)
    assert store.get_interview(session.id, owner=None) == session

    loaded = store.get_interview(session.id, owner=None)
    version = loaded.version
    engine.clarify(loaded, "How many daily active users?")
    engine.answer(loaded, REQUIREMENTS)
    result = engine.advance(loaded)
    assert result.grade is not None
    store.save_interview(loaded, expected_version=version)

    again = store.get_interview(session.id, owner=None)
    assert again == loaded
    assert again.phase == "estimation"
    assert stored_turns(store, session.id) == [
        (seq, turn.kind, turn.text) for seq, turn in enumerate(loaded.turns)
    ]
    assert [kind for _, kind, _ in stored_turns(store, session.id)] == [
        "opening",
        "clarify",
        "clarify_reply",
        "answer",
        "feedback",
        "opening",
    ]
    with store.engine.connect() as conn:
        grades = conn.execute(
            select(PhaseGradeRow.phase, PhaseGradeRow.score, PhaseGradeRow.source)
        ).all()
    assert [tuple(g) for g in grades] == [("requirements", result.grade.score, "offline")]
    [summary] = store.list_interviews(owner=None)
    assert (summary.id, summary.candidate, summary.phase, summary.status) == (
        session.id,
        "Ana",
        "estimation",
        "active",
    )


def test_processes_taking_turns_on_one_interview_keep_every_turn_and_grade_row(
    store: Store, database_url: str, engine: InterviewEngine
) -> None:
    """Two stores on one database, as two server processes behind a load balancer: each
    save writes exactly the new turn and grade rows, whichever process loaded the version."""
    first = store
    with Store(database_url) as second, Store(database_url) as reader:
        session = engine.start("twitter")
        first.create_interview(session, owner=None)
        texts = [REQUIREMENTS, "Reads dominate writes about a hundred to one.", "More."]
        for n, text in enumerate(texts):
            loader, saver = (first, second) if n % 2 else (second, first)
            current = loader.get_interview(session.id, owner=None)
            version = current.version
            engine.answer(current, text)
            if n < 2:
                engine.advance(current)
            saver.save_interview(current, expected_version=version)
            # saves 2 and 3 come from a store that never loaded the version they change
            stored = reader.get_interview(session.id, owner=None)
            assert stored == current
            assert stored_turns(first, session.id) == [
                (seq, turn.kind, turn.text) for seq, turn in enumerate(stored.turns)
            ]
        with first.engine.connect() as conn:
            phases = conn.scalars(
                select(PhaseGradeRow.phase)
                .where(PhaseGradeRow.interview_id == session.id)
                .order_by(PhaseGradeRow.id)
            ).all()
        assert phases == ["requirements", "estimation"]


def test_list_interviews_is_newest_first_filters_by_candidate_and_shows_the_score(
    store: Store, engine: InterviewEngine
) -> None:
    first = engine.start("twitter", candidate="Ana")
    store.create_interview(first, owner=None)
    second = engine.start("url-shortener", candidate="Bo")
    store.create_interview(second, owner=None)
    third = engine.start("twitter", candidate="Ana")
    store.create_interview(third, owner=None)

    version = third.version
    engine.answer(third, REQUIREMENTS)
    report = engine.finish(third)
    store.save_interview(third, expected_version=version)

    listed = store.list_interviews(owner=None)
    assert [s.id for s in listed] == [third.id, second.id, first.id]
    assert [(s.status, s.overall) for s in listed] == [
        ("finished", report.overall),
        ("active", None),
        ("active", None),
    ]
    assert [s.id for s in store.list_interviews(owner=None, candidate="Ana")] == [
        third.id,
        first.id,
    ]
    assert store.list_interviews(owner=None, candidate="Nobody") == []


def test_a_stale_save_is_refused_and_the_first_save_is_kept(
    store: Store, engine: InterviewEngine
) -> None:
    session = engine.start("twitter")
    store.create_interview(session, owner=None)
    tab_a = store.get_interview(session.id, owner=None)
    tab_b = store.get_interview(session.id, owner=None)
    engine.answer(tab_a, "Answer typed in tab A.")
    engine.answer(tab_b, "Answer typed in tab B.")

    store.save_interview(tab_a, expected_version=session.version)
    with pytest.raises(InterviewConflictError, match="Reload the interview and try again"):
        store.save_interview(tab_b, expected_version=session.version)

    stored = store.get_interview(session.id, owner=None)
    assert stored == tab_a
    assert [text for _, _, text in stored_turns(store, session.id)] == [
        session.turns[0].text,
        "Answer typed in tab A.",
    ]


def test_concurrent_answers_on_one_interview_are_all_kept(
    store: Store, engine: InterviewEngine
) -> None:
    session = engine.start("twitter")
    store.create_interview(session, owner="tok")
    writers = 8

    def answer(i: int) -> int:
        """Load, answer, save; on a conflict reload and answer again, as a client would."""
        conflicts = 0
        while True:
            current = store.get_interview(session.id, owner="tok")
            version = current.version
            engine.answer(current, f"Answer number {i} from thread {i}.")
            try:
                store.save_interview(current, expected_version=version)
                return conflicts
            except InterviewConflictError:
                conflicts += 1

    run_threads(writers, answer)

    stored = store.get_interview(session.id, owner="tok")
    answers = sorted(t.text for t in stored.turns if t.kind == "answer")
    assert answers == sorted(f"Answer number {i} from thread {i}." for i in range(writers))
    assert stored.version == session.version + writers
    rows = stored_turns(store, session.id)
    assert [seq for seq, _, _ in rows] == list(range(writers + 1))
    assert [text for _, _, text in rows] == [t.text for t in stored.turns]


@pytest.mark.parametrize(
    ("action", "error"),
    [
        ("save a never-created interview", InterviewNotFoundError),
        ("create the same interview twice", InterviewConflictError),
    ],
)
def test_interview_writes_that_cannot_apply_are_refused(
    store: Store, engine: InterviewEngine, action: str, error: type[CoachError]
) -> None:
    session = engine.start("twitter")
    version = session.version
    if action.startswith("create"):
        store.create_interview(session, owner=None)
        with pytest.raises(error):
            store.create_interview(session, owner=None)
    else:
        engine.answer(session, "An answer.")
        with pytest.raises(error):
            store.save_interview(session, expected_version=version)


def test_each_token_sees_only_its_own_interviews_and_gradings(
    store: Store, engine: InterviewEngine
) -> None:
    mine = engine.start("twitter")
    store.create_interview(mine, owner="token-a")
    local = engine.start("twitter")
    store.create_interview(local, owner=None)
    grading = store.create_grading(text="My answer.", owner="token-a")

    assert store.get_interview(mine.id, owner="token-a") == mine
    for owner in ("token-b", None):
        with pytest.raises(InterviewNotFoundError, match=mine.id):
            store.get_interview(mine.id, owner=owner)
        with pytest.raises(GradingNotFoundError, match=grading.id):
            store.get_grading(grading.id, owner=owner)
        with pytest.raises(GradingNotFoundError):
            store.retry_grading(grading.id, owner=owner)
    with pytest.raises(InterviewNotFoundError):
        store.get_interview(local.id, owner="token-a")
    assert [s.id for s in store.list_interviews(owner="token-a")] == [mine.id]
    assert [s.id for s in store.list_interviews(owner=None)] == [local.id]
    assert store.list_interviews(owner="token-b") == []


# --- gradings ---------------------------------------------------------------------------------


def test_grading_goes_pending_running_done_and_keeps_the_text(store: Store) -> None:
    created = store.create_grading(
        text="## Requirements\n...", owner="tok", filename="a.md", question_id="twitter"
    )
    assert (created.status, created.attempts, created.report_json) == ("pending", 0, None)
    assert store.get_grading(created.id, owner="tok") == created

    claimed = store.claim_grading(created.id)
    assert claimed is not None
    assert (claimed.status, claimed.attempts, claimed.text) == ("running", 1, created.text)
    assert claimed.question_id == "twitter"
    assert store.claim_grading(created.id) is None

    store.finish_grading(created.id, '{"overall": 71}')
    done = store.get_grading(created.id, owner="tok")
    assert (done.status, done.report_json, done.filename) == ("done", '{"overall": 71}', "a.md")
    with pytest.raises(InterviewStateError, match="only a failed grading can be retried"):
        store.retry_grading(created.id, owner="tok")


def test_failed_grading_can_be_retried_and_claimed_again(store: Store) -> None:
    grading = store.create_grading(text="answer", owner=None)
    assert store.claim_grading(grading.id) is not None
    store.fail_grading(grading.id, "LLM timed out")
    failed = store.get_grading(grading.id, owner=None)
    assert (failed.status, failed.error) == ("failed", "LLM timed out")

    retried = store.retry_grading(grading.id, owner=None)
    assert (retried.status, retried.error) == ("pending", None)
    again = store.claim_grading(grading.id)
    assert again is not None and again.attempts == 2


def test_a_running_grading_records_its_progress_and_a_new_attempt_starts_over(
    store: Store,
) -> None:
    grading = store.create_grading(text="answer", owner=None)
    store.record_progress(grading.id, done=1, total=8, step="Grading API design")
    assert store.get_grading(grading.id, owner=None).steps_total is None  # not running yet

    assert store.claim_grading(grading.id) is not None
    store.record_progress(grading.id, done=3, total=8, step="Grading API design")
    running = store.get_grading(grading.id, owner=None)
    assert (running.steps_done, running.steps_total, running.step) == (3, 8, "Grading API design")
    store.record_progress(grading.id, done=4, total=8, step="x" * 500)  # kept to the column
    assert store.get_grading(grading.id, owner=None).step == "x" * 120

    store.fail_grading(grading.id, "LLM timed out")
    store.retry_grading(grading.id, owner=None)
    again = store.claim_grading(grading.id)
    assert again is not None
    assert (again.steps_done, again.steps_total, again.step) == (0, None, None)


def test_each_grading_is_claimed_by_exactly_one_of_many_threads(store: Store) -> None:
    ids = [store.create_grading(text=f"answer {i}", owner=None).id for i in range(5)]
    for grading_id in ids:
        claims = run_threads(8, lambda _i, gid=grading_id: store.claim_grading(gid))
        winners = [c for c in claims if c is not None]
        assert len(winners) == 1
        assert winners[0].attempts == 1


def test_pending_gradings_resumes_ones_a_dead_process_left_running(store: Store) -> None:
    waiting = store.create_grading(text="a", owner=None)
    interrupted = store.create_grading(text="b", owner=None)
    done = store.create_grading(text="c", owner=None)
    failed = store.create_grading(text="d", owner=None)
    for record in (interrupted, done, failed):
        store.claim_grading(record.id)
    store.finish_grading(done.id, "{}")
    store.fail_grading(failed.id, "boom")

    assert list(store.pending_gradings()) == [waiting.id, interrupted.id]
    resumed = store.claim_grading(interrupted.id)
    assert resumed is not None and resumed.attempts == 2


def test_a_running_grading_with_a_live_lease_is_left_to_its_process(store: Store) -> None:
    live = store.create_grading(text="a", owner=None)
    store.claim_grading(live.id)
    graded_now = store.create_grading(text="b", owner=None, claimed=True)
    assert (graded_now.status, graded_now.attempts) == ("running", 1)

    assert list(store.pending_gradings(stale_after=60)) == [], "renewed just now: still running"
    time.sleep(0.3)
    store.touch_gradings([live.id, graded_now.id])
    assert list(store.pending_gradings(stale_after=0.25)) == [], "the touch renewed the leases"
    time.sleep(0.3)
    store.touch_gradings([graded_now.id])
    assert list(store.pending_gradings(stale_after=0.25)) == [live.id], "lease ran out: abandoned"
    assert list(store.pending_gradings()) == [live.id, graded_now.id], "0: every running one"
    assert store.get_grading(live.id, owner=None).status == "pending"


def test_unknown_grading_ids_are_reported(store: Store) -> None:
    for call in (
        lambda: store.get_grading("nope", owner=None),
        lambda: store.finish_grading("nope", "{}"),
        lambda: store.fail_grading("nope", "x"),
    ):
        with pytest.raises(GradingNotFoundError, match="No grading nope"):
            call()
    assert store.claim_grading("nope") is None


# --- API tokens and LLM calls -----------------------------------------------------------------


def test_tokens_are_stored_hashed_and_revoked_or_unknown_ones_do_not_authenticate(
    store: Store,
) -> None:
    token_id, secret = store.create_token("ci")
    assert secret.startswith("coach_") and len(secret) > 40
    assert store.token_id_for(secret) == token_id

    with store.engine.connect() as conn:
        rows = conn.execute(select(ApiToken.__table__)).all()
    assert len(rows) == 1
    assert all(secret not in str(value) for value in rows[0])
    assert rows[0].token_hash == hashlib.sha256(secret.encode()).hexdigest()

    assert store.token_id_for(secret + "x") is None
    assert store.token_id_for("") is None
    with pytest.raises(CoachError, match="A token named 'ci' already exists"):
        store.create_token("ci")

    assert store.revoke_token("ci") is True
    assert store.token_id_for(secret) is None
    assert [(t.name, t.revoked) for t in store.list_tokens()] == [("ci", True)]
    assert store.revoke_token(token_id) is False  # already revoked: nothing changed
    with pytest.raises(CoachError, match="No token named 'nope'"):
        store.revoke_token("nope")


def test_llm_calls_are_recorded(store: Store) -> None:
    store.record_llm_calls(
        [
            {
                "purpose": "grade_phase",
                "model": "gpt-4o-mini",
                "prompt_tokens": 7000,
                "cached_tokens": 6000,
                "completion_tokens": 300,
                "latency_ms": 812.5,
                "outcome": "ok",
                "interview_id": "abc",
            },
            {
                "purpose": "grade_phase",
                "model": "gpt-4o-mini",
                "prompt_tokens": 7000,
                "cached_tokens": 0,
                "completion_tokens": 0,
                "latency_ms": 20000.0,
                "outcome": "timeout",
                "error": "read timeout",
                "grading_id": "g1",
            },
        ]
    )
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(
                LLMCall.outcome, LLMCall.cached_tokens, LLMCall.error, LLMCall.grading_id
            ).order_by(LLMCall.id)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("ok", 6000, None, None),
        ("timeout", 0, "read timeout", "g1"),
    ]


def test_call_log_stores_every_queued_record_with_the_time_it_was_made(store: Store) -> None:
    """The batching writer: records queued from many threads all land, stamped when queued
    (not when written), and close() writes what is still waiting."""
    log = LLMCallLog(store)

    def call(n: int) -> LLMCallRecord:
        return LLMCallRecord(
            purpose="grade",
            model="m",
            prompt_tokens=n,
            cached_tokens=0,
            completion_tokens=1,
            latency_ms=1.0,
            outcome="ok",
            error=None,
        )

    before = datetime.now(UTC)
    threads = [
        threading.Thread(target=lambda k=k: [log.add(call(k * 100 + i)) for i in range(50)])
        for k in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queued_by = datetime.now(UTC)
    log.close()
    with store.engine.connect() as conn:
        rows = conn.execute(select(LLMCall.prompt_tokens, LLMCall.at)).all()
    assert sorted(r.prompt_tokens for r in rows) == sorted(
        k * 100 + i for k in range(4) for i in range(50)
    )
    assert all(before <= r.at <= queued_by for r in rows)


def test_call_log_survives_a_database_error_and_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Usage records must never stop grading: a failed write is logged, later ones land."""
    with Store(f"sqlite:///{tmp_path / 'c.db'}") as store:
        log = LLMCallLog(store)
        record = LLMCallRecord("grade", "m", 1, 0, 1, 1.0, "ok", None)
        log.add(record)  # no tables yet: this write fails
        wait_until(lambda: "could not store" in caplog.text, what="the failed write's log line")
        store.upgrade()
        log.add(record)
        log.close()
        with store.engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(LLMCall)) == 1


# --- connections ------------------------------------------------------------------------------


def test_sqlite_file_is_created_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "does" / "not" / "exist" / "coach.db"
    with Store(f"sqlite:///{path}") as store:
        store.upgrade()
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 5000
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_pooled_postgresql_connection_killed_while_idle_is_replaced_unnoticed(
    database_url: str,
) -> None:
    """A server restart or an idle timeout kills pooled connections; the next use works."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no server to drop its connections")
    engine, other = make_engine(database_url, idle_ping_seconds=0.05), make_engine(database_url)
    try:
        with engine.connect() as conn:
            first_pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with other.connect() as admin:  # the first now idles in its pool
            assert admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first_pid})
            admin.commit()
        time.sleep(0.1)
        with engine.connect() as conn:  # the pool's only connection is the killed one
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != first_pid
    finally:
        engine.dispose()
        other.dispose()


def test_busy_threads_reuse_the_pooled_connections_instead_of_opening_new_ones(
    database_url: str, engine: InterviewEngine
) -> None:
    """COACH_DB_POOL_SIZE connections stay open: as many threads as that never open more."""
    settings = Settings(database_url=database_url, db_pool_size=6)
    with Store.from_settings(settings) as store:
        store.upgrade()
        assert store.engine.pool.size() == 6  # type: ignore[attr-defined]
        session = engine.start("twitter")
        store.create_interview(session, owner=None)
        opened = [0]
        event.listen(store.engine, "connect", lambda *_: opened.__setitem__(0, opened[0] + 1))
        run_threads(6, lambda _: [store.get_interview(session.id, owner=None) for _ in range(40)])
        # one was open already; a pool of 5 (SQLAlchemy's default) would open and close an
        # extra connection for every transaction the sixth thread makes
        assert opened[0] <= 5
    defaults = {"sqlite": 32, "postgresql": 10}
    with Store.from_settings(Settings(database_url=database_url)) as store:
        assert store.engine.pool.size() == defaults[store.engine.dialect.name]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://u:p@db:5432/coach", "postgresql+psycopg://u:***@db:5432/coach"),
        ("postgres://u@db/coach", "postgresql+psycopg://u@db/coach"),
        ("postgresql+psycopg://u@db/coach", "postgresql+psycopg://u@db/coach"),
        ("sqlite:////var/lib/coach.db", "sqlite:////var/lib/coach.db"),
    ],
)
def test_pasted_database_urls_are_pointed_at_the_installed_drivers(given: str, used: str) -> None:
    assert normalize_url(given).render_as_string(hide_password=True) == used


def test_ping_on_an_unreachable_database_names_the_host_but_not_the_password() -> None:
    with (
        Store("postgresql://coach:s3cret-pw@127.0.0.1:1/coach") as store,
        pytest.raises(StoreUnavailableError) as err,
    ):
        store.ping()
    message = str(err.value)
    assert "127.0.0.1" in message
    assert "s3cret-pw" not in message
    assert "COACH_DATABASE_URL" in message


def test_ping_on_a_reachable_database_passes(store: Store) -> None:
    store.ping()


# --- CLI --------------------------------------------------------------------------------------


def test_cli_upgrades_the_database_and_creates_a_token_shown_once(
    database_url: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    env = {"COACH_DATABASE_URL": database_url, "COACH_DATA_DIR": str(tmp_path / "data")}

    first = runner.invoke(app, ["db", "upgrade"], env=env)
    assert first.exit_code == 0, first.output
    assert f"upgraded from revision (none) to {head_revision()}" in first.output
    again = runner.invoke(app, ["db", "upgrade"], env=env)
    assert again.exit_code == 0 and f"is up to date (revision {head_revision()})" in again.output

    created = runner.invoke(app, ["tokens", "create", "ci"], env=env)
    assert created.exit_code == 0, created.output
    assert "cannot be shown again" in created.output
    secret = created.output.strip().splitlines()[-1]
    with Store(database_url) as store:
        assert store.token_id_for(secret) is not None

    listed = runner.invoke(app, ["tokens", "list"], env=env)
    assert listed.exit_code == 0 and "ci" in listed.output and secret not in listed.output
    duplicate = runner.invoke(app, ["tokens", "create", "ci"], env=env)
    assert duplicate.exit_code == 2
    assert "A token named 'ci' already exists" in duplicate.output


def test_cli_reports_an_unreachable_database_in_one_line(tmp_path: Path) -> None:
    env = {"COACH_DATABASE_URL": "postgresql://coach:s3cret-pw@127.0.0.1:1/coach"}
    result = CliRunner().invoke(app, ["db", "upgrade"], env=env)
    assert result.exit_code == 2
    assert result.output.startswith("error: Cannot use the database at postgresql+psycopg://")
    assert "s3cret-pw" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_failed_write_after_a_read_on_the_same_connection_leaves_nothing_half_written(
    database_url: str, engine: InterviewEngine
) -> None:
    """Loading an interview is one statement outside a transaction (no BEGIN/COMMIT round
    trips). The pooled connection must come back transactional: a write of several statements
    that fails halfway on it keeps none of them."""
    with Store(database_url, pool_size=1) as store:  # every step below uses one connection
        store.upgrade()
        first = engine.start("twitter")
        store.create_interview(first, owner=None)
        store.get_interview(first.id, owner=None)
        second = engine.start("twitter")

        def fail_on_turns(_conn: object, _cursor: object, statement: str, *_: object) -> None:
            if statement.lstrip().upper().startswith("INSERT INTO TURNS"):
                raise RuntimeError("the disk filled up")

        event.listen(store.engine, "before_cursor_execute", fail_on_turns)
        try:
            with pytest.raises(RuntimeError, match="disk filled up"):
                store.create_interview(second, owner=None)  # the interview row, then its turns
        finally:
            event.remove(store.engine, "before_cursor_execute", fail_on_turns)

        with pytest.raises(InterviewNotFoundError):
            store.get_interview(second.id, owner=None)  # the interview row was not kept
        assert stored_turns(store, second.id) == []


def test_a_save_refused_by_the_database_partway_keeps_none_of_its_writes(
    database_url: str, engine: InterviewEngine
) -> None:
    """The session's UPDATE comes first, its new turn rows after it (on PostgreSQL in the same
    statement): a turn row the database refuses must take the UPDATE down with it."""
    with Store(database_url) as store:
        store.upgrade()
        session = engine.start("twitter")
        store.create_interview(session, owner=None)
        loaded = store.get_interview(session.id, owner=None)
        version, turns = loaded.version, len(loaded.turns)
        with store.engine.begin() as conn:  # a row where the next turn is about to go
            conn.execute(
                TurnRow.__table__.insert().values(
                    interview_id=session.id,
                    seq=turns,
                    role="candidate",
                    kind="answer",
                    phase="requirements",
                    text="written by someone else",
                    at=datetime.now(UTC),
                )
            )
        engine.answer(loaded, "Users post short messages; reads outnumber writes 100 to 1.")

        with pytest.raises(IntegrityError):
            store.save_interview(loaded, expected_version=version)

        again = store.get_interview(session.id, owner=None)
        assert (again.version, len(again.turns)) == (version, turns), "the update was kept"
        assert [text for _, _, text in stored_turns(store, session.id)][-1] == (
            "written by someone else"
        )
