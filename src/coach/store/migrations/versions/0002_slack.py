"""slack: workspaces, members as candidates, interview threads, gradings, handled deliveries

Revision ID: 0002
Revises: 0001
Create Date: 2025-03-08 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types of coach.store.tables at this revision.
ID = sa.String(64)
NAME = sa.String(120)
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "slack_teams",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", NAME, nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_slack_teams"),
    )
    op.create_table(
        "slack_users",
        sa.Column("team_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("display_name", NAME, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["slack_teams.id"], name="fk_slack_users_team_id_slack_teams"
        ),
        sa.ForeignKeyConstraint(
            ["candidate_id"], ["candidates.id"], name="fk_slack_users_candidate_id_candidates"
        ),
        sa.PrimaryKeyConstraint("team_id", "user_id", name="pk_slack_users"),
        sa.UniqueConstraint("candidate_id", name="uq_slack_users_candidate_id"),
    )
    op.create_table(
        "slack_threads",
        sa.Column("channel_id", ID, nullable=False),
        sa.Column("thread_ts", ID, nullable=False),
        sa.Column("team_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("interview_id", ID, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["slack_teams.id"], name="fk_slack_threads_team_id_slack_teams"
        ),
        sa.ForeignKeyConstraint(
            ["interview_id"],
            ["interviews.id"],
            name="fk_slack_threads_interview_id_interviews",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("channel_id", "thread_ts", name="pk_slack_threads"),
        sa.UniqueConstraint("interview_id", name="uq_slack_threads_interview_id"),
    )
    op.create_table(
        "slack_gradings",
        sa.Column("grading_id", ID, nullable=False),
        sa.Column("team_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["grading_id"],
            ["gradings.id"],
            name="fk_slack_gradings_grading_id_gradings",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["slack_teams.id"], name="fk_slack_gradings_team_id_slack_teams"
        ),
        sa.PrimaryKeyConstraint("grading_id", name="pk_slack_gradings"),
    )
    op.create_index("ix_slack_gradings_team_id_user_id", "slack_gradings", ["team_id", "user_id"])
    op.create_table(
        "slack_deliveries",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("received_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_slack_deliveries"),
    )
    op.create_index("ix_slack_deliveries_received_at", "slack_deliveries", ["received_at"])


def downgrade() -> None:
    for table in (
        "slack_deliveries",
        "slack_gradings",
        "slack_threads",
        "slack_users",
        "slack_teams",
    ):
        op.drop_table(table)
