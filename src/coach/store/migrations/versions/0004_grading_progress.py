"""grading progress: how far a running grading job has got, for whoever polls it

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 13:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the column type of coach.store.tables at this revision.
NAME = sa.String(120)


def upgrade() -> None:
    with op.batch_alter_table("gradings") as batch:
        batch.add_column(sa.Column("steps_done", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("steps_total", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("step", NAME, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gradings") as batch:
        batch.drop_column("step")
        batch.drop_column("steps_total")
        batch.drop_column("steps_done")
