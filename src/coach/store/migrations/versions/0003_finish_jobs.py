"""finish jobs: a grading job may finish an interview instead of grading an upload

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the column type of coach.store.tables at this revision.
ID = sa.String(64)


def upgrade() -> None:
    with op.batch_alter_table("gradings") as batch:
        batch.add_column(sa.Column("interview_id", ID, nullable=True))
        batch.create_index("ix_gradings_interview_id", ["interview_id"])


def downgrade() -> None:
    with op.batch_alter_table("gradings") as batch:
        batch.drop_index("ix_gradings_interview_id")
        batch.drop_column("interview_id")
