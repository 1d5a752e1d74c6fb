"""A throwaway PostgreSQL database: several test and benchmark runs share one server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from coach.store.database import normalize_url


@contextmanager
def fresh_postgres_database(admin_url: str, *, prefix: str = "coach_test") -> Iterator[str]:
    """A new, uniquely named database on the server at `admin_url`, dropped afterwards."""
    server = normalize_url(admin_url)
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'"))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
