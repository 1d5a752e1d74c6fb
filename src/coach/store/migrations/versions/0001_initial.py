"""initial tables: interviews, transcripts, grades, gradings, LLM calls, API tokens

Revision ID: 0001
Revises:
Create Date: 2025-03-01 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types of coach.store.tables at this revision: a migration must
# not change when the models change later.
ID = sa.String(64)
NAME = sa.String(120)
SHORT = sa.String(20)
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "candidates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_candidates"),
        sa.UniqueConstraint("name", name="uq_candidates_name"),
    )
    op.create_table(
        "interviews",
        sa.Column("id", ID, nullable=False),
        sa.Column("question_id", NAME, nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=True),
        sa.Column("owner", ID, nullable=True),
        sa.Column("status", SHORT, nullable=False),
        sa.Column("phase", SHORT, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("overall", sa.Integer(), nullable=True),
        sa.Column("session_json", sa.Text(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["candidate_id"], ["candidates.id"], name="fk_interviews_candidate_id_candidates"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_interviews"),
    )
    op.create_index("ix_interviews_candidate_id", "interviews", ["candidate_id"])
    op.create_index("ix_interviews_owner_created_at", "interviews", ["owner", "created_at"])
    op.create_table(
        "turns",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("interview_id", ID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("role", SHORT, nullable=False),
        sa.Column("kind", SHORT, nullable=False),
        sa.Column("phase", SHORT, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["interview_id"],
            ["interviews.id"],
            name="fk_turns_interview_id_interviews",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_turns"),
        sa.UniqueConstraint("interview_id", "seq", name="uq_turns_interview_id"),
    )
    op.create_table(
        "phase_grades",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("interview_id", ID, nullable=False),
        sa.Column("phase", SHORT, nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("source", SHORT, nullable=False),
        sa.Column("model", NAME, nullable=True),
        sa.Column("grade_json", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["interview_id"],
            ["interviews.id"],
            name="fk_phase_grades_interview_id_interviews",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_phase_grades"),
        sa.UniqueConstraint("interview_id", "phase", name="uq_phase_grades_interview_id"),
    )
    op.create_table(
        "gradings",
        sa.Column("id", ID, nullable=False),
        sa.Column("owner", ID, nullable=True),
        sa.Column("status", SHORT, nullable=False),
        sa.Column("filename", sa.String(255), nullable=True),
        sa.Column("question_id", NAME, nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("report_json", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_gradings"),
    )
    op.create_index("ix_gradings_status", "gradings", ["status"])
    op.create_index("ix_gradings_owner_created_at", "gradings", ["owner", "created_at"])
    op.create_table(
        "llm_calls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("purpose", sa.String(40), nullable=False),
        sa.Column("model", NAME, nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(40), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("interview_id", ID, nullable=True),
        sa.Column("grading_id", ID, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_llm_calls"),
    )
    op.create_index("ix_llm_calls_at", "llm_calls", ["at"])
    op.create_index("ix_llm_calls_interview_id", "llm_calls", ["interview_id"])
    op.create_index("ix_llm_calls_grading_id", "llm_calls", ["grading_id"])
    op.create_table(
        "api_tokens",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("name", name="uq_api_tokens_name"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )


def downgrade() -> None:
    for table in (
        "api_tokens",
        "llm_calls",
        "gradings",
        "phase_grades",
        "turns",
        "interviews",
        "candidates",
    ):
        op.drop_table(table)
