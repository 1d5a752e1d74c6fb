"""The repository every front door talks to: interviews, gradings, API tokens and LLM calls.

One `Store` holds one SQLAlchemy Engine and opens a short transaction per call, so one store
is shared by every thread of a process. Interviews are saved with optimistic locking: a save
names the version it started from and fails with `InterviewConflictError` when someone else
saved first, so no answer is ever silently overwritten.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import uuid
from collections.abc import Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    ProgrammingError,
)

from coach.config import Settings
from coach.content.models import PhaseId
from coach.engine import Session, Status
from coach.errors import (
    CoachError,
    GradingNotFoundError,
    InputError,
    InterviewConflictError,
    InterviewNotFoundError,
    InterviewStateError,
    StoreUnavailableError,
    shown_id,
)
from coach.grading.models import Report
from coach.store import migrate
from coach.store.database import (
    WRITE_OPTION,
    is_sqlite,
    make_engine,
    normalize_url,
    single_read_options,
)
from coach.store.tables import (
    NAME_LENGTH,
    ApiToken,
    Candidate,
    Grading,
    Interview,
    LLMCall,
    PhaseGradeRow,
    SlackDelivery,
    SlackGrading,
    SlackTeam,
    SlackThread,
    SlackUser,
    TurnRow,
)

GradingStatus = Literal["pending", "running", "done", "failed"]
TOKEN_PREFIX = "coach_"
MAX_FILENAME = 255
# Slack retries a delivery for minutes, not days: a week of handled keys is plenty.
SLACK_DELIVERY_KEEP = timedelta(days=7)


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


def hash_secret(secret: str) -> str:
    """What is stored for an API token: the sha256 of its secret, as hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _findable(key: str | None) -> bool:
    """Could a row hold this id or name? Not with a NUL byte: PostgreSQL text cannot store one
    (and refuses it even in a WHERE clause), so no stored value has one on either backend."""
    return key is None or "\x00" not in key


def _clean_name(name: str | None, limit: int) -> str | None:
    """A display name as it can be stored: no NUL bytes, at most `limit` characters."""
    cleaned = (name or "").replace("\x00", "")[:limit]
    return cleaned or None


def _owned_by(column: Any, owner: str | None) -> ColumnElement[bool]:
    """Owner scoping: a token sees its own rows; local mode (None) sees unowned rows only."""
    return column.is_(None) if owner is None else column == owner


# --- the hot path's statements, built once ----------------------------------------------------
# Every answer and advance loads and saves an interview. Building a SQLAlchemy statement (and its
# cache key) on each call cost 0.5-0.9 ms a statement, more than the database's own work; these
# take their values as bind parameters, so a call only looks up the compiled form (~0.1 ms).

_interviews = Interview.__table__
_turns = TurnRow.__table__
_grades = PhaseGradeRow.__table__
_SESSION_OF_UNOWNED = select(_interviews.c.session_json).where(
    _interviews.c.id == bindparam("interview_id"), _interviews.c.owner.is_(None)
)
_SESSION_OF_OWNER = select(_interviews.c.session_json).where(
    _interviews.c.id == bindparam("interview_id"), _interviews.c.owner == bindparam("owner")
)
_NO_PROGRESS = {"steps_done": 0, "steps_total": None, "step": None}
_SAVED_COLUMNS = ("status", "phase", "version", "overall", "session_json", "updated_at")
_SAVE_INTERVIEW = (
    _interviews.update()
    .where(
        _interviews.c.id == bindparam("saved_id"),
        _interviews.c.version == bindparam("expected_version"),
    )
    .values({name: bindparam(name) for name in _SAVED_COLUMNS})
)
_INSERT_INTERVIEW = _interviews.insert()
_LAST_TURN = select(func.max(_turns.c.seq)).where(
    _turns.c.interview_id == bindparam("interview_id")
)
_INSERT_TURNS = _turns.insert()
_GRADED_PHASES = select(_grades.c.phase).where(_grades.c.interview_id == bindparam("interview_id"))
_INSERT_GRADES = _grades.insert()
_TURN_COLUMNS = ("seq", "role", "kind", "phase", "text", "at")
_GRADE_COLUMNS = ("phase", "score", "source", "model", "grade_json")


@lru_cache(maxsize=64)
def _one_statement_save(new_turns: int, new_grades: int) -> Select[tuple[int]]:
    """PostgreSQL: save an interview with its new turn and grade rows as one statement.

    The versioned UPDATE runs in a CTE whose RETURNING row the INSERTs select from, so when
    the version no longer matches nothing at all is written, and the count it returns (1 or
    0) says which. One statement is atomic by itself: the four or five round trips of a
    transaction (BEGIN, UPDATE, INSERTs, COMMIT) become one, and psycopg's and SQLAlchemy's
    work per statement (over half of a request's CPU in process on PostgreSQL) shrinks with
    them. Built once per shape (how many new turns and grades), with bound parameters named
    turn0_seq, grade0_phase...
    """
    saved = _SAVE_INTERVIEW.returning(_interviews.c.id).cte("saved")
    statement = select(func.count()).select_from(saved)
    for table, prefix, count, names in (
        (_turns, "turn", new_turns, _TURN_COLUMNS),
        (_grades, "grade", new_grades, _GRADE_COLUMNS),
    ):
        # One SELECT of bound parameters per row, joined by UNION ALL: values() would read
        # better, but SQLAlchemy cannot cache a statement holding it and compiled it anew
        # on every save (a millisecond of CPU).
        rows = [
            select(
                saved.c.id,
                *(bindparam(f"{prefix}{i}_{n}", type_=table.c[n].type).label(n) for n in names),
            )
            for i in range(count)
        ]
        if rows:
            added = insert(table).from_select(["interview_id", *names], union_all(*rows))
            statement = statement.add_cte(added.cte(f"{table.name}_added"))
    return statement


_INSERT_LLM_CALL = LLMCall.__table__.insert()
_TOKEN_FOR_HASH = select(ApiToken.__table__.c.id).where(
    ApiToken.__table__.c.token_hash == bindparam("token_hash"),
    ApiToken.__table__.c.revoked.is_(False),
)


# --- what the store returns ------------------------------------------------------------------


class StoreModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InterviewSummary(StoreModel):
    """One line of an interview list: enough to show and pick one without loading it."""

    id: str
    question_id: str
    candidate: str | None
    status: Status
    phase: PhaseId
    created_at: datetime
    updated_at: datetime
    overall: int | None = None


class GradingRecord(StoreModel):
    """A whole-answer upload and where its grading is: pending, running, done or failed."""

    id: str
    owner: str | None
    status: GradingStatus
    filename: str | None
    question_id: str | None = None
    interview_id: str | None = None
    text: str
    report_json: str | None
    error: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    steps_done: int = 0
    steps_total: int | None = None
    step: str | None = None


class TokenInfo(StoreModel):
    """An API token as listed: never its secret, which is not stored."""

    id: str
    name: str
    created_at: datetime
    revoked: bool


class SlackMember(StoreModel):
    """A Slack member and the candidate name their practice is stored under."""

    team_id: str
    user_id: str
    display_name: str
    candidate: str


class SlackThreadInfo(StoreModel):
    """Where a Slack interview runs: its thread, and the member who started it."""

    team_id: str
    channel_id: str
    thread_ts: str
    user_id: str
    interview_id: str


class SlackPractice(StoreModel):
    """One practice by a team member: an interview, or a whole answer graded from Slack."""

    user_id: str
    display_name: str
    kind: Literal["interview", "grading"]
    id: str
    created_at: datetime
    overall: int | None = None
    phase_scores: dict[PhaseId, int] = {}


# --- the store -------------------------------------------------------------------------------


_Stored = tuple[int, frozenset[str]]  # the next turn number, and the phases graded


class _StoredRows:
    """What the turns and phase-grade tables hold for an interview at a given version.

    Each version of an interview is saved exactly once (the version check), together with its
    turn and grade rows, so (id, version) -> (turn count, graded phases) never goes stale and
    holds for every process. A save that finds the version it started from here skips two
    queries (the last turn's number, the graded phases); one that does not asks the tables.
    Bounded: the oldest entries go first.
    """

    LIMIT = 4096

    def __init__(self) -> None:
        self._rows: dict[tuple[str, int], _Stored] = {}
        self._lock = threading.Lock()

    def remember(self, session: Session) -> None:
        graded = frozenset(state.phase for state in session.phases if state.grade is not None)
        with self._lock:
            self._rows[(session.id, session.version)] = (len(session.turns), graded)
            while len(self._rows) > self.LIMIT:
                del self._rows[next(iter(self._rows))]

    def at(self, interview_id: str, version: int) -> _Stored | None:
        return self._rows.get((interview_id, version))


class Store:
    """Persistence for coach, on SQLite (embedded default) or PostgreSQL.

    Example::

        store = Store.from_settings(Settings())
        store.upgrade()
        session = engine.start("twitter")
        store.create_interview(session, owner=None)
        session = store.get_interview(session.id, owner=None)
        version = session.version
        engine.answer(session, "Users post tweets ...")
        store.save_interview(session, expected_version=version)   # or InterviewConflictError
    """

    def __init__(self, url: str, *, echo: bool = False, pool_size: int | None = None) -> None:
        self._url = normalize_url(url)
        self.engine = make_engine(url, echo=echo, pool_size=pool_size)
        # SQLite lets one writer in at a time, and a writer that finds the lock taken polls:
        # its busy handler sleeps 1, 2, 5, 10... ms between tries, so under load a short wait
        # turned into many milliseconds. This process's own writers queue on a lock instead and
        # go the moment it is free; other processes still meet the busy timeout.
        self._write_lock: AbstractContextManager[Any] = (
            threading.RLock() if is_sqlite(self._url) else nullcontext()
        )
        self._stored_rows = _StoredRows()
        self._single_read_options = single_read_options(self._url)
        # SQLite has no UPDATE ... RETURNING inside a WITH: it saves in a transaction.
        self._saves_in_one_statement = self._url.get_backend_name() == "postgresql"

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        """The store for `COACH_DATABASE_URL`, or the SQLite file in the data folder."""
        return cls(settings.resolved_database_url, pool_size=settings.resolved_db_pool_size)

    @property
    def display_url(self) -> str:
        """The database URL with its password masked, safe to print."""
        return self._url.render_as_string(hide_password=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- lifecycle ------------------------------------------------------------------------------

    def upgrade(self) -> None:
        """Create or migrate the tables to the newest revision (safe to run every start)."""
        try:
            migrate.upgrade(self.engine, url=self._url.render_as_string(hide_password=False))
        except DBAPIError as exc:
            raise self._unavailable(exc) from exc

    def revision(self) -> str | None:
        """The migration the database is at; None when `upgrade` has never run on it."""
        try:
            return migrate.current_revision(self.engine)
        except DBAPIError as exc:
            raise self._unavailable(exc) from exc

    def ping(self) -> None:
        """Check the database answers (for health checks and start-up)."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except DBAPIError as exc:
            raise self._unavailable(exc) from exc

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    # -- interviews -----------------------------------------------------------------------------

    def create_interview(self, session: Session, *, owner: str | None) -> None:
        """Store a new interview (just started by the engine), owned by `owner`."""
        now = _now()
        try:
            with self._transaction(write=True) as conn:
                candidate_id = (
                    self._candidate_id(conn, session.candidate, now) if session.candidate else None
                )
                conn.execute(
                    _INSERT_INTERVIEW,
                    {
                        "id": session.id,
                        "question_id": session.question_id,
                        "candidate_id": candidate_id,
                        "owner": owner,
                        "created_at": session.created_at,
                        **self._interview_columns(session, now),
                    },
                )
                self._insert_turns(conn, session, start=0)
                self._insert_grades(conn, session, stored=frozenset())
        except IntegrityError:
            raise InterviewConflictError(
                f"Interview {session.id} is already stored. Save changes to it with "
                "save_interview, or start a new interview."
            ) from None
        self._stored_rows.remember(session)

    def get_interview(self, interview_id: str, *, owner: str | None) -> Session:
        """The interview as the engine left it; other owners' interviews do not exist here."""
        raw = None
        if _findable(interview_id) and _findable(owner):
            with self._single_statement() as conn:
                if owner is None:
                    raw = conn.scalar(_SESSION_OF_UNOWNED, {"interview_id": interview_id})
                else:
                    params = {"interview_id": interview_id, "owner": owner}
                    raw = conn.scalar(_SESSION_OF_OWNER, params)
        if raw is None:
            raise InterviewNotFoundError(
                f"No interview {shown_id(interview_id)}. Check the id; an interview is only "
                "visible to the API token that started it."
            )
        try:
            session = Session.model_validate_json(raw)
        except ValidationError as exc:
            raise CoachError(
                f"Stored interview {interview_id} is damaged ({exc.errors()[0]['msg']}). "
                "Start a new interview."
            ) from exc
        self._stored_rows.remember(session)
        return session

    def save_interview(self, session: Session, *, expected_version: int) -> None:
        """Save the engine's changes if nobody saved since `expected_version` was loaded.

        New turns and phase grades are written with it, all or nothing (one transaction, or on
        PostgreSQL one statement), so the tables never disagree with the session JSON.
        """
        if session.version <= expected_version:
            raise ValueError(
                f"session.version ({session.version}) must be above expected_version "
                f"({expected_version}): save only after the engine changed the session"
            )
        params = {
            "saved_id": session.id,
            "expected_version": expected_version,
            **self._interview_columns(session, _now()),
        }
        known = self._stored_rows.at(session.id, expected_version)
        if self._saves_in_one_statement:
            saved = self._save_in_one_statement(session, params, known)
        else:
            saved = self._save_in_transaction(session, params, known)
        if not saved:
            raise self._save_refused(session.id, expected_version)
        self._stored_rows.remember(session)

    def _save_in_transaction(
        self, session: Session, params: dict[str, Any], known: _Stored | None
    ) -> bool:
        """The versioned UPDATE, then the new rows, in one transaction; False: not updated."""
        with self._transaction(write=True) as conn:
            if conn.execute(_SAVE_INTERVIEW, params).rowcount == 0:
                return False
            start, graded = known or self._rows_stored(conn, session.id)
            self._insert_turns(conn, session, start=start)
            self._insert_grades(conn, session, stored=graded)
        return True

    def _save_in_one_statement(
        self, session: Session, params: dict[str, Any], known: _Stored | None
    ) -> bool:
        """`_one_statement_save` with this session's new rows; False: not updated.

        What the tables hold is read first when this process did not save the version it
        started from. Read outside the save, it can be stale only if someone saved since,
        and then the save's version check refuses it anyway.
        """
        if known is None:
            with self._transaction() as conn:
                known = self._rows_stored(conn, session.id)
        start, graded = known
        turns = self._turn_rows(session, start=start)
        grades = self._grade_rows(session, stored=graded)
        params = dict(params)
        for prefix, rows, names in (
            ("turn", turns, _TURN_COLUMNS),
            ("grade", grades, _GRADE_COLUMNS),
        ):
            for i, row in enumerate(rows):
                params.update({f"{prefix}{i}_{name}": row[name] for name in names})
        statement = _one_statement_save(len(turns), len(grades))
        with self._single_statement() as conn:
            return conn.scalar(statement, params) == 1

    def _save_refused(self, interview_id: str, expected_version: int) -> CoachError:
        """Why a save updated nothing: the interview is gone, or someone saved first."""
        with self._single_statement() as conn:
            stored = conn.scalar(select(Interview.version).where(Interview.id == interview_id))
        if stored is None:
            return InterviewNotFoundError(
                f"No interview {shown_id(interview_id)} to save. Create it first "
                "(create_interview)."
            )
        return InterviewConflictError(
            f"Interview {interview_id} was changed by another request (it is at version "
            f"{stored}, this change started from {expected_version}). Reload the "
            "interview and try again."
        )

    def list_interviews(
        self, *, owner: str | None, candidate: str | None = None
    ) -> list[InterviewSummary]:
        """The owner's interviews, newest first (optionally one candidate's only)."""
        query = (
            select(
                Interview.id,
                Interview.question_id,
                Candidate.name.label("candidate"),
                Interview.status,
                Interview.phase,
                Interview.created_at,
                Interview.updated_at,
                Interview.overall,
            )
            .outerjoin(Candidate, Interview.candidate_id == Candidate.id)
            .where(_owned_by(Interview.owner, owner))
            .order_by(Interview.created_at.desc(), Interview.id.desc())
        )
        if candidate is not None:
            if not _findable(candidate):
                return []
            query = query.where(Candidate.name == candidate)
        with self._single_statement() as conn:
            rows = conn.execute(query).mappings().all()
        return [InterviewSummary.model_validate(dict(row)) for row in rows]

    @staticmethod
    def _interview_columns(session: Session, now: datetime) -> dict[str, Any]:
        return {
            "status": session.status,
            "phase": session.phase,
            "version": session.version,
            "overall": session.report.overall if session.report else None,
            "session_json": session.model_dump_json(),
            "updated_at": now,
        }

    @staticmethod
    def _candidate_id(conn: Connection, name: str, now: datetime) -> int:
        """The candidate's row id, creating the row the first time the name is seen."""
        conn.execute(
            _insert_for(conn, Candidate)
            .values(name=name[:NAME_LENGTH], created_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        found = conn.scalar(select(Candidate.id).where(Candidate.name == name[:NAME_LENGTH]))
        assert found is not None
        return found

    @staticmethod
    def _turn_rows(session: Session, *, start: int) -> list[dict[str, Any]]:
        """The turns table's rows for the session's turns from number `start` on."""
        return [
            {
                "interview_id": session.id,
                "seq": seq,
                "role": turn.role,
                "kind": turn.kind,
                "phase": turn.phase,
                "text": turn.text,
                "at": turn.at,
            }
            for seq, turn in enumerate(session.turns)
            if seq >= start
        ]

    @staticmethod
    def _grade_rows(session: Session, *, stored: frozenset[str]) -> list[dict[str, Any]]:
        """The phase_grades rows for the graded phases not in `stored` (a grade never changes)."""
        return [
            {
                "interview_id": session.id,
                "phase": state.phase,
                "score": state.grade.score,
                "source": state.grade.source,
                "model": state.grade.model,
                "grade_json": state.grade.model_dump_json(),
            }
            for state in session.phases
            if state.grade is not None and state.phase not in stored
        ]

    def _insert_turns(self, conn: Connection, session: Session, *, start: int) -> None:
        if rows := self._turn_rows(session, start=start):
            conn.execute(_INSERT_TURNS, rows)

    def _insert_grades(self, conn: Connection, session: Session, *, stored: frozenset[str]) -> None:
        """Insert the phase grades not in `stored`; a phase is graded once, so none changes."""
        if rows := self._grade_rows(session, stored=stored):
            conn.execute(_INSERT_GRADES, rows)

    @staticmethod
    def _rows_stored(conn: Connection, interview_id: str) -> _Stored:
        """What the tables hold for an interview: the next turn number and the graded phases.

        Asked only when this process did not save the version a save starts from.
        """
        last = conn.scalar(_LAST_TURN, {"interview_id": interview_id})
        graded = frozenset(conn.scalars(_GRADED_PHASES, {"interview_id": interview_id}))
        return (0 if last is None else last + 1, graded)

    # -- gradings -------------------------------------------------------------------------------

    def create_grading(
        self,
        *,
        text: str,
        owner: str | None,
        filename: str | None = None,
        question_id: str | None = None,
        interview_id: str | None = None,
        claimed: bool = False,
    ) -> GradingRecord:
        """Keep an uploaded answer, pending, before any grading work starts.

        `question_id` is the question the answer is for, when the uploader named one.
        `interview_id` makes it a job that finishes that interview (its `text` is then the
        candidate's whole transcript, kept with the job).
        `claimed=True` stores it already running (attempt 1) for a caller that grades it at
        once, so no job runner can claim it in between.
        """
        now = _now()
        values = {
            "id": _new_id(),
            "owner": owner,
            "status": "running" if claimed else "pending",
            "filename": _clean_name(filename, MAX_FILENAME),
            "question_id": question_id,
            "interview_id": interview_id,
            "text": text,
            "report_json": None,
            "error": None,
            "attempts": 1 if claimed else 0,
            "steps_done": 0,
            "steps_total": None,
            "step": None,
            "created_at": now,
            "updated_at": now,
        }
        with self._transaction(write=True) as conn:
            conn.execute(Grading.__table__.insert().values(**values))
        return GradingRecord.model_validate(values)

    def open_finish_job(self, interview_id: str, *, owner: str | None) -> GradingRecord | None:
        """The pending or running job finishing this interview, if there is one."""
        with self._transaction() as conn:
            return self._grading(
                conn,
                Grading.interview_id == interview_id,
                _owned_by(Grading.owner, owner),
                Grading.status.in_(("pending", "running")),
            )

    def claim_grading(self, grading_id: str) -> GradingRecord | None:
        """Move a pending grading to running for this worker; None if another got it first."""
        with self._transaction(write=True) as conn:
            result = conn.execute(
                update(Grading)
                .where(Grading.id == grading_id, Grading.status == "pending")
                .values(
                    status="running",
                    attempts=Grading.attempts + 1,
                    updated_at=_now(),
                    **_NO_PROGRESS,  # an attempt starts from the first step
                )
            )
            if result.rowcount == 0:
                return None
            return self._grading(conn, Grading.id == grading_id)

    def record_progress(self, grading_id: str, *, done: int, total: int, step: str) -> None:
        """How far this process's running grading has got; it renews the lease as well."""
        with self._transaction(write=True) as conn:
            conn.execute(
                update(Grading)
                .where(Grading.id == grading_id, Grading.status == "running")
                .values(
                    steps_done=done,
                    steps_total=total,
                    step=_clean_name(step, NAME_LENGTH),
                    updated_at=_now(),
                )
            )

    def finish_grading(self, grading_id: str, report_json: str) -> None:
        """Store the report; the grading is done."""
        self._set_grading(grading_id, status="done", report_json=report_json, error=None)

    def fail_grading(self, grading_id: str, error: str) -> None:
        """Record why grading failed; the text stays, so it can be retried."""
        self._set_grading(grading_id, status="failed", error=error)

    def retry_grading(self, grading_id: str, *, owner: str | None) -> GradingRecord:
        """Put a failed grading back to pending (a pending one is returned unchanged)."""
        if not (_findable(grading_id) and _findable(owner)):
            raise self._grading_not_found(grading_id)
        scope = (Grading.id == grading_id, _owned_by(Grading.owner, owner))
        with self._transaction(write=True) as conn:
            conn.execute(
                update(Grading)
                .where(*scope, Grading.status == "failed")
                .values(status="pending", error=None, updated_at=_now())
            )
            record = self._grading(conn, *scope)
        if record is None:
            raise self._grading_not_found(grading_id)
        if record.status in ("running", "done"):
            raise InterviewStateError(
                f"Grading {grading_id} is {record.status}; only a failed grading can be "
                "retried." + (" Fetch its report instead." if record.status == "done" else "")
            )
        return record

    def get_grading(self, grading_id: str, *, owner: str | None) -> GradingRecord:
        """The grading and, once done, its report; other owners' gradings do not exist here."""
        if not (_findable(grading_id) and _findable(owner)):
            raise self._grading_not_found(grading_id)
        with self._single_statement() as conn:
            record = self._grading(conn, Grading.id == grading_id, _owned_by(Grading.owner, owner))
        if record is None:
            raise self._grading_not_found(grading_id)
        return record

    def pending_gradings(self, *, stale_after: float = 0.0) -> dict[str, int]:
        """Gradings no live process is working on, oldest first, ready for `claim_grading`,
        each with how many times it was claimed so far (a queue names each attempt's job by it).

        A `running` grading whose `updated_at` is more than `stale_after` seconds old was left
        by a process that died (a live one renews it with `touch_gradings`), so it is put back
        to `pending` here. With the default 0, every running grading counts as abandoned:
        right only when no other process shares the database.
        """
        cutoff = _now() - timedelta(seconds=stale_after)
        with self._transaction(write=True) as conn:
            conn.execute(
                update(Grading)
                .where(Grading.status == "running", Grading.updated_at <= cutoff)
                .values(status="pending", updated_at=_now())
            )
            rows = conn.execute(
                select(Grading.id, Grading.attempts)
                .where(Grading.status == "pending")
                .order_by(Grading.created_at, Grading.id)
            ).all()
        return {grading_id: attempts for grading_id, attempts in rows}

    def touch_gradings(self, grading_ids: Collection[str]) -> None:
        """Renew the lease on running gradings: this process is still working on them."""
        if not grading_ids:
            return
        with self._transaction(write=True) as conn:
            conn.execute(
                update(Grading)
                .where(Grading.id.in_(list(grading_ids)), Grading.status == "running")
                .values(updated_at=_now())
            )

    def _set_grading(self, grading_id: str, **values: Any) -> None:
        with self._transaction(write=True) as conn:
            result = conn.execute(
                update(Grading).where(Grading.id == grading_id).values(updated_at=_now(), **values)
            )
        if result.rowcount == 0:
            raise self._grading_not_found(grading_id)

    @staticmethod
    def _grading(conn: Connection, *where: ColumnElement[bool]) -> GradingRecord | None:
        row = conn.execute(select(Grading.__table__).where(*where)).mappings().first()
        return None if row is None else GradingRecord.model_validate(dict(row))

    @staticmethod
    def _grading_not_found(grading_id: str) -> GradingNotFoundError:
        return GradingNotFoundError(
            f"No grading {shown_id(grading_id)}. Check the id; a grading is only visible to the "
            "API token that uploaded it."
        )

    # -- API tokens -----------------------------------------------------------------------------

    def create_token(self, name: str) -> tuple[str, str]:
        """A new API token: (token id, secret). Only the secret's hash is kept."""
        name = name.strip()
        if not name or len(name) > NAME_LENGTH or not name.isprintable():
            raise InputError(
                f"A token name needs 1 to {NAME_LENGTH} printable characters, e.g. 'ci' or "
                "'alice-laptop'.",
                field="name",
            )
        token_id = _new_id()
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        try:
            with self._transaction(write=True) as conn:
                conn.execute(
                    ApiToken.__table__.insert().values(
                        id=token_id,
                        name=name,
                        token_hash=hash_secret(secret),
                        created_at=_now(),
                        revoked=False,
                    )
                )
        except IntegrityError:
            raise CoachError(
                f"A token named {name!r} already exists (names stay taken after a token is "
                "revoked). Choose another name; `coach tokens list` shows the names in use."
            ) from None
        return token_id, secret

    def token_id_for(self, secret: str) -> str | None:
        """The id of the live token with this secret; None for unknown or revoked ones."""
        if not secret.startswith(TOKEN_PREFIX):
            return None
        with self._single_statement() as conn:
            return conn.scalar(_TOKEN_FOR_HASH, {"token_hash": hash_secret(secret)})

    def list_tokens(self) -> list[TokenInfo]:
        """Every token ever created, oldest first, without secrets."""
        with self._transaction() as conn:
            rows = conn.execute(
                select(ApiToken.id, ApiToken.name, ApiToken.created_at, ApiToken.revoked).order_by(
                    ApiToken.created_at, ApiToken.name
                )
            ).mappings()
            return [TokenInfo.model_validate(dict(row)) for row in rows]

    def revoke_token(self, name_or_id: str) -> bool:
        """Stop a token from working, for good (its name stays taken). False when it was
        revoked already, so the caller does not report a change that did not happen."""
        named = or_(ApiToken.name == name_or_id, ApiToken.id == name_or_id)
        with self._transaction(write=True) as conn:
            result = conn.execute(
                update(ApiToken).where(named, ApiToken.revoked.is_(False)).values(revoked=True)
            )
            if result.rowcount:
                return True
            if conn.scalar(select(ApiToken.id).where(named)) is not None:
                return False
        raise CoachError(f"No token named {name_or_id!r}. `coach tokens list` shows the tokens.")

    # -- LLM calls ------------------------------------------------------------------------------

    def record_llm_calls(self, calls: Sequence[dict[str, Any]]) -> None:
        """Keep LLM requests' cost and latency, for usage reports, in one transaction.

        Each call is a dict of the llm_calls columns: purpose, model, prompt_tokens,
        cached_tokens, completion_tokens, latency_ms and outcome; optionally error,
        interview_id, grading_id, and `at` (when the call was made; now if absent).
        """
        if not calls:
            return
        at = _now()
        rows = [
            {"at": at, "error": None, "interview_id": None, "grading_id": None} | dict(call)
            for call in calls
        ]
        with self._transaction(write=True) as conn:
            conn.execute(_INSERT_LLM_CALL, rows)

    # -- Slack ----------------------------------------------------------------------------------

    def slack_member(self, team_id: str, user_id: str) -> SlackMember | None:
        """The member's candidate, once they have been linked."""
        with self._transaction() as conn:
            row = conn.execute(
                select(
                    SlackUser.team_id,
                    SlackUser.user_id,
                    SlackUser.display_name,
                    Candidate.name.label("candidate"),
                )
                .join(Candidate, Candidate.id == SlackUser.candidate_id)
                .where(SlackUser.team_id == team_id, SlackUser.user_id == user_id)
            ).first()
        return None if row is None else SlackMember.model_validate(row._asdict())

    def link_slack_member(
        self,
        team_id: str,
        user_id: str,
        *,
        display_name: str,
        names: Sequence[str],
        team_name: str | None = None,
    ) -> SlackMember:
        """Link a member to the first candidate name in `names` no other member holds.

        Linking is for good (a display name changed later keeps the candidate), and safe
        to race: the member ends up with exactly one candidate either way.
        """
        display = _clean_name(display_name, NAME_LENGTH) or user_id
        for raw in names:
            found = self.slack_member(team_id, user_id)
            if found is not None:
                return found
            name = _clean_name(raw, NAME_LENGTH)
            if name is None:
                continue
            now = _now()
            try:
                with self._transaction(write=True) as conn:
                    self._slack_team(conn, team_id, team_name, now)
                    conn.execute(
                        SlackUser.__table__.insert().values(
                            team_id=team_id,
                            user_id=user_id,
                            candidate_id=self._candidate_id(conn, name, now),
                            display_name=display,
                            created_at=now,
                        )
                    )
            except IntegrityError:
                continue  # another member has this candidate, or this member was just linked
            return SlackMember(
                team_id=team_id, user_id=user_id, display_name=display, candidate=name
            )
        found = self.slack_member(team_id, user_id)
        if found is None:
            raise CoachError(
                f"Could not link Slack member {user_id} to a candidate: every name tried is "
                "taken by another member."
            )
        return found

    def add_slack_thread(self, thread: SlackThreadInfo) -> None:
        """Remember which interview a thread holds (and the team, the first time it is seen)."""
        with self._transaction(write=True) as conn:
            self._slack_team(conn, thread.team_id, None, _now())
            conn.execute(
                SlackThread.__table__.insert().values(**thread.model_dump(), created_at=_now())
            )

    def slack_thread(
        self,
        *,
        channel_id: str | None = None,
        thread_ts: str | None = None,
        interview_id: str | None = None,
    ) -> SlackThreadInfo | None:
        """The interview thread at (channel, thread_ts), or the thread of an interview."""
        if interview_id is not None:
            where = SlackThread.interview_id == interview_id
        else:
            where = and_(SlackThread.channel_id == channel_id, SlackThread.thread_ts == thread_ts)
        columns = [getattr(SlackThread, name) for name in SlackThreadInfo.model_fields]
        with self._transaction() as conn:
            row = conn.execute(select(*columns).where(where)).first()
        return None if row is None else SlackThreadInfo.model_validate(row._asdict())

    def open_slack_thread(self, *, channel_id: str, user_id: str) -> SlackThreadInfo | None:
        """The member's newest interview thread in this channel that is not finished yet."""
        columns = [getattr(SlackThread, name) for name in SlackThreadInfo.model_fields]
        query = (
            select(*columns)
            .join(Interview, Interview.id == SlackThread.interview_id)
            .where(
                SlackThread.channel_id == channel_id,
                SlackThread.user_id == user_id,
                Interview.status != "finished",
            )
            .order_by(SlackThread.created_at.desc())
            .limit(1)
        )
        with self._transaction() as conn:
            row = conn.execute(query).first()
        return None if row is None else SlackThreadInfo.model_validate(row._asdict())

    def add_slack_grading(self, grading_id: str, *, team_id: str, user_id: str) -> None:
        """Count a whole-answer grading as this member's practice."""
        with self._transaction(write=True) as conn:
            self._slack_team(conn, team_id, None, _now())
            conn.execute(
                SlackGrading.__table__.insert().values(
                    grading_id=grading_id, team_id=team_id, user_id=user_id, created_at=_now()
                )
            )

    def claim_slack_delivery(self, key: str) -> bool:
        """True for the first claim of a Slack event key, False for every later one.

        The key is kept in the database, so a retry that reaches another process (or this
        one after a restart) is recognised too. Keys older than a week are dropped here.
        """
        now = _now()
        with self._transaction(write=True) as conn:
            conn.execute(
                delete(SlackDelivery).where(SlackDelivery.received_at < now - SLACK_DELIVERY_KEEP)
            )
            result = conn.execute(
                _insert_for(conn, SlackDelivery)
                .values(key=key[:255], received_at=now)
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(SlackDelivery.key)  # a row back only when this claim inserted it
            )
            return result.first() is not None

    def slack_practice(self, team_id: str, *, since: datetime | None = None) -> list[SlackPractice]:
        """Every practice by the team's members (since `since`), oldest first.

        Interviews count wherever they were started (Slack or web) once the member's
        candidate is linked; whole-answer gradings count when asked for from Slack.
        """
        interviews = (
            select(
                SlackUser.user_id,
                SlackUser.display_name,
                Interview.id,
                Interview.created_at,
                Interview.overall,
            )
            .join(Interview, Interview.candidate_id == SlackUser.candidate_id)
            .where(SlackUser.team_id == team_id)
        )
        gradings = (
            select(
                SlackGrading.user_id,
                SlackUser.display_name,
                Grading.id,
                Grading.created_at,
                Grading.report_json,
            )
            .join(Grading, Grading.id == SlackGrading.grading_id)
            .join(
                SlackUser,
                and_(
                    SlackUser.team_id == SlackGrading.team_id,
                    SlackUser.user_id == SlackGrading.user_id,
                ),
            )
            .where(SlackGrading.team_id == team_id, Grading.status == "done")
        )
        if since is not None:
            interviews = interviews.where(Interview.created_at >= since)
            gradings = gradings.where(Grading.created_at >= since)
        with self._transaction() as conn:
            interview_rows = conn.execute(interviews).all()
            scores: dict[str, dict[str, int]] = {}
            ids = [row.id for row in interview_rows]
            for start in range(0, len(ids), 500):
                for grade in conn.execute(
                    select(
                        PhaseGradeRow.interview_id, PhaseGradeRow.phase, PhaseGradeRow.score
                    ).where(PhaseGradeRow.interview_id.in_(ids[start : start + 500]))
                ):
                    scores.setdefault(grade.interview_id, {})[grade.phase] = grade.score
            grading_rows = conn.execute(gradings).all()
        practice = [
            SlackPractice(
                user_id=row.user_id,
                display_name=row.display_name,
                kind="interview",
                id=row.id,
                created_at=row.created_at,
                overall=row.overall,
                phase_scores=scores.get(row.id, {}),
            )
            for row in interview_rows
        ]
        for row in grading_rows:
            report = Report.model_validate_json(row.report_json)
            practice.append(
                SlackPractice(
                    user_id=row.user_id,
                    display_name=row.display_name,
                    kind="grading",
                    id=row.id,
                    created_at=row.created_at,
                    overall=report.overall,
                    phase_scores={g.phase: g.score for g in report.phases},
                )
            )
        return sorted(practice, key=lambda p: (p.created_at, p.id))

    @staticmethod
    def _slack_team(conn: Connection, team_id: str, name: str | None, now: datetime) -> None:
        """Insert the workspace the first time it is seen; fill in its name once known."""
        conn.execute(
            _insert_for(conn, SlackTeam)
            .values(id=team_id, name=_clean_name(name, NAME_LENGTH), created_at=now)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        if name:
            conn.execute(
                update(SlackTeam)
                .where(SlackTeam.id == team_id, SlackTeam.name.is_(None))
                .values(name=_clean_name(name, NAME_LENGTH))
            )

    # -- plumbing -------------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, *, write: bool = False) -> Iterator[Connection]:
        """One short transaction; database outages become StoreUnavailableError here."""
        lock = self._write_lock if write else nullcontext()
        with self._database_errors(), lock, self.engine.connect() as conn:
            if write:
                conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn

    @contextmanager
    def _single_statement(self) -> Iterator[Connection]:
        """A connection for exactly one statement, outside any explicit transaction.

        One statement is atomic and reads one snapshot by itself: this is for the reads every
        request makes and for PostgreSQL's one-statement save, and saves the BEGIN and COMMIT
        round trips (see `single_read_options`). Never for two statements that must agree.
        """
        with self._database_errors(), self.engine.connect() as conn:
            yield conn.execution_options(**self._single_read_options)

    @contextmanager
    def _database_errors(self) -> Iterator[None]:
        """Outages become StoreUnavailableError; a value the database refuses, InputError."""
        try:
            yield
        except (OperationalError, ProgrammingError) as exc:
            raise self._unavailable(exc) from exc
        except DataError as exc:  # a value this database cannot hold: the caller's input
            reason = str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0]
            raise InputError(
                f"The database refused a value in the request ({reason}); send plain text."
            ) from exc

    def _unavailable(self, exc: DBAPIError) -> StoreUnavailableError:
        """The one place database driver errors become a message that says what to do."""
        lines = str(exc.orig if exc.orig is not None else exc).strip().splitlines()
        reason = lines[0].strip() if lines else type(exc).__name__
        if self._url.password:
            reason = reason.replace(str(self._url.password), "***")
        lowered = reason.lower()
        if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
            return StoreUnavailableError(
                f"The database at {self.display_url} has no coach tables yet ({reason}). "
                "Run `coach db upgrade` to create them."
            )
        return StoreUnavailableError(
            f"Cannot use the database at {self.display_url}: {reason}. Check that it is "
            "running and reachable and that COACH_DATABASE_URL is right."
        )


def _insert_for(conn: Connection, table: type[Any]) -> Any:
    """INSERT with ON CONFLICT support, in the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
