"""Database URLs and engines: the one place that knows SQLite and PostgreSQL differ.

SQLite (the embedded default) gets WAL mode, a busy timeout and enforced foreign keys on every
connection, and real transactions: pysqlite's own implicit BEGIN is switched off and we emit
BEGIN ourselves (BEGIN IMMEDIATE for writes), so concurrent writers queue on the busy timeout
instead of failing halfway through a read-then-write transaction. PostgreSQL goes through
psycopg 3, whatever driver the pasted URL named.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from coach.errors import StoreUnavailableError

SQLITE_BUSY_TIMEOUT_MS = 5000
POSTGRES_CONNECT_TIMEOUT_S = 5
# Execution option that marks a connection whose transaction will write (see module docstring).
WRITE_OPTION = "coach_write"
# Execution option that marks a SQLite connection running one read statement, no transaction.
SINGLE_READ_OPTION = "coach_single_read"
# A PostgreSQL connection back from the pool after this long idle is tested first (see below).
IDLE_PING_SECONDS = 1.0
_IDLE_SINCE = "coach_idle_since"

_POSTGRES_ALIASES = frozenset(
    {"postgres", "postgresql", "postgresql+psycopg2", "postgresql+pg8000"}
)


def normalize_url(raw: str) -> URL:
    """Parse a database URL; plain postgres(ql):// URLs are pointed at the psycopg 3 driver."""
    try:
        url = make_url(raw.strip())
    except ArgumentError:
        raise StoreUnavailableError(
            "The database URL (COACH_DATABASE_URL) is not one coach can read. Use "
            "sqlite:///path/to/coach.db or postgresql://user:password@host:5432/dbname."
        ) from None
    if url.drivername in _POSTGRES_ALIASES:
        url = url.set(drivername="postgresql+psycopg")
    return url


def redact(url: str | URL) -> str:
    """The URL as text with its password masked, for messages and logs."""
    if isinstance(url, str):
        try:
            url = make_url(url.strip())
        except ArgumentError:
            return "(unparseable database URL)"
    return url.render_as_string(hide_password=True)


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def single_read_options(url: URL) -> dict[str, Any]:
    """Execution options for a connection that runs one read statement outside a transaction.

    One SELECT reads a consistent snapshot by itself. On PostgreSQL, autocommit leaves out
    psycopg's BEGIN and the COMMIT: two of the three round trips of a one-query read. On
    SQLite, where pysqlite's implicit BEGIN is off, the option tells the begin hook below to
    emit none (SQLAlchemy's own AUTOCOMMIT would switch pysqlite's back on when reset).
    """
    if is_sqlite(url):
        return {SINGLE_READ_OPTION: True}
    return {"isolation_level": "AUTOCOMMIT"}


def _sqlite_in_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


def make_engine(
    raw_url: str,
    *,
    echo: bool = False,
    pool_size: int | None = None,
    idle_ping_seconds: float = IDLE_PING_SECONDS,
) -> Engine:
    """An Engine for the URL, with the per-backend connection setup described above.

    `pool_size` connections stay open (SQLAlchemy's default is 5) and as many again may be
    opened for a burst. Past the kept ones a connection is opened and closed per transaction,
    and a new SQLite connection runs the setup below: with 16 request threads on the
    default pool, that churn was a visible part of every request's CPU. A PostgreSQL
    connection idle in the pool for `idle_ping_seconds` is tested before use.
    """
    url = normalize_url(raw_url)
    kwargs: dict[str, Any] = {"echo": echo}
    if pool_size is not None and not (is_sqlite(url) and _sqlite_in_memory(url)):
        kwargs.update(pool_size=pool_size, max_overflow=pool_size)
    if is_sqlite(url):
        if _sqlite_in_memory(url):
            # One shared connection, or every thread would see its own empty database.
            kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        elif url.query.get("uri") not in ("true", "1"):
            Path(url.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
    elif url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        kwargs["connect_args"] = {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S}
    try:
        engine = create_engine(url, **kwargs)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise StoreUnavailableError(
            f"Cannot use database {redact(url)}: {exc}. Use a sqlite:/// or postgresql:// URL "
            "(COACH_DATABASE_URL)."
        ) from None
    if is_sqlite(url):
        _configure_sqlite(engine)
    else:
        _ping_idle_connections(engine, idle_ping_seconds)
    return engine


def _ping_idle_connections(engine: Engine, idle_seconds: float) -> None:
    """Test a pooled connection that sat idle before handing it out; replace it if dead.

    A PostgreSQL connection can go stale while it waits in the pool (a server restart, an
    idle timeout on the way). SQLAlchemy's pool_pre_ping tests every checkout, a round trip
    per transaction: under load that was 15% of a request's CPU here (two transactions a
    request), for connections that were in use milliseconds before. This is SQLAlchemy's
    documented checkout-event form of the same check, skipped for recently used connections.
    """

    @event.listens_for(engine, "checkin")
    def on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool drops it and opens a new one (up to 3 tries)
            raise DisconnectionError(f"stale pooled connection: {exc}") from exc


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, see below
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            # In WAL mode NORMAL never corrupts and loses nothing when the process dies; only
            # a power cut can drop the last commits. FULL would fsync every commit (~2 ms).
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front (waiting up to busy_timeout for it), so a
        # writing transaction never has to upgrade a read snapshot, which SQLite refuses.
        options = conn.get_execution_options()
        if options.get(SINGLE_READ_OPTION, False):
            return  # one statement, in SQLite's autocommit mode
        write = options.get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
