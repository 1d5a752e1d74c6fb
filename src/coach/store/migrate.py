"""Run the Alembic migrations shipped inside the package, with no alembic.ini needed.

The migrations live in `coach/store/migrations/`, so they travel with a plain
`pip install .`. Upgrades run in one transaction that first takes a lock (a PostgreSQL
advisory lock, or SQLite's write lock), so two processes starting at once cannot both try to
create the tables.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from coach.store.database import WRITE_OPTION

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any fixed number: the key of the PostgreSQL advisory lock that serializes upgrades.
_UPGRADE_LOCK_KEY = 0x636F616368  # "coach"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic Config pointing at the shipped migrations (and at `url`, when given)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    """The newest migration shipped with this version of coach."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at (None before the first upgrade)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, *, url: str) -> None:
    """Bring the database to the newest migration; does nothing when it already is."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _UPGRADE_LOCK_KEY})
            config = alembic_config(url)
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
