"""The database tables, as SQLAlchemy 2.0 typed declarative models.

The interview itself lives in `interviews.session_json` (the engine's `Session` as JSON), so
the engine stays the only place that knows its shape. The other interview tables (`turns`,
`phase_grades`) are written alongside it so transcripts and scores can be queried without
parsing JSON. Migrations under `migrations/versions/` must match these models; a test
compares the two.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Fixed constraint names, so migrations name them the same way on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID_LENGTH = 64
NAME_LENGTH = 120


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass a timezone-aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Candidate(Base):
    """A person practising, by the name they gave; interviews point here."""

    __tablename__ = "candidates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Interview(Base):
    """One mock interview: the engine's whole session as JSON plus the columns we filter on."""

    __tablename__ = "interviews"
    __table_args__ = (Index("ix_interviews_owner_created_at", "owner", "created_at"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    question_id: Mapped[str] = mapped_column(String(NAME_LENGTH))
    candidate_id: Mapped[int | None] = mapped_column(ForeignKey("candidates.id"), index=True)
    owner: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    status: Mapped[str] = mapped_column(String(20))
    phase: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer)
    overall: Mapped[int | None] = mapped_column(Integer)
    session_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TurnRow(Base):
    """One line of an interview's transcript; `seq` is its index in `Session.turns`."""

    __tablename__ = "turns"
    __table_args__ = (UniqueConstraint("interview_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    interview_id: Mapped[str] = mapped_column(ForeignKey("interviews.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(20))
    phase: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class PhaseGradeRow(Base):
    """The latest grade of one phase of one interview (the full `PhaseGrade` as JSON)."""

    __tablename__ = "phase_grades"
    __table_args__ = (UniqueConstraint("interview_id", "phase"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    interview_id: Mapped[str] = mapped_column(ForeignKey("interviews.id", ondelete="CASCADE"))
    phase: Mapped[str] = mapped_column(String(20))
    score: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(20))
    model: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    grade_json: Mapped[str] = mapped_column(Text)


class Grading(Base):
    """A whole-answer upload; the text is stored before grading starts so none is lost."""

    __tablename__ = "gradings"
    __table_args__ = (Index("ix_gradings_owner_created_at", "owner", "created_at"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    status: Mapped[str] = mapped_column(String(20), index=True)
    filename: Mapped[str | None] = mapped_column(String(255))
    question_id: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    # Set when the job finishes an interview (its final report) rather than grading an upload.
    interview_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), index=True)
    text: Mapped[str] = mapped_column(Text)
    report_json: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    # How far a running job has got, for whoever polls it: steps done of steps_total, and
    # what it is doing now. steps_total stays unset for work that reports no steps.
    steps_done: Mapped[int] = mapped_column(Integer, server_default="0")
    steps_total: Mapped[int | None] = mapped_column(Integer)
    step: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LLMCall(Base):
    """One request to the LLM, for cost and latency reports.

    `interview_id` and `grading_id` are plain columns, not foreign keys: recording a call
    must never fail because of what it was for.
    """

    __tablename__ = "llm_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    purpose: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(NAME_LENGTH))
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    cached_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(40))
    error: Mapped[str | None] = mapped_column(Text)
    interview_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), index=True)
    grading_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), index=True)


class ApiToken(Base):
    """An API token; only the sha256 of its secret is kept, so a leaked table grants nothing."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked: Mapped[bool] = mapped_column(Boolean)


# --- the Slack bot ----------------------------------------------------------------------------


class SlackTeam(Base):
    """A Slack workspace the bot has heard from: the team its members practise in."""

    __tablename__ = "slack_teams"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SlackUser(Base):
    """A Slack member and the candidate their interviews are stored under (one each way)."""

    __tablename__ = "slack_users"

    team_id: Mapped[str] = mapped_column(ForeignKey("slack_teams.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id"), unique=True)
    display_name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SlackThread(Base):
    """The Slack thread an interview runs in: replies there are the candidate's answers."""

    __tablename__ = "slack_threads"

    channel_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    thread_ts: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("slack_teams.id"))
    user_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    interview_id: Mapped[str] = mapped_column(
        ForeignKey("interviews.id", ondelete="CASCADE"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SlackGrading(Base):
    """A whole-answer grading a Slack member asked for (modal or file in a DM)."""

    __tablename__ = "slack_gradings"
    __table_args__ = (Index("ix_slack_gradings_team_id_user_id", "team_id", "user_id"),)

    grading_id: Mapped[str] = mapped_column(
        ForeignKey("gradings.id", ondelete="CASCADE"), primary_key=True
    )
    team_id: Mapped[str] = mapped_column(ForeignKey("slack_teams.id"))
    user_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SlackDelivery(Base):
    """A Slack event already taken by some process, so a retry of it is never handled twice."""

    __tablename__ = "slack_deliveries"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
