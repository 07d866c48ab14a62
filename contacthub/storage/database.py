"""Engines and units of work, the same interface on SQLite and PostgreSQL.

Services add and flush; a unit of work (`Database.write()`) commits once at the boundary: the
request, the CLI command or the job. Reads use `Database.read()`, which never commits.

SQLite allows one writer at a time. A transaction that reads and then writes would fail at once
(SQLITE_BUSY_SNAPSHOT) if another connection committed in between, so write units of work start
with `BEGIN IMMEDIATE` and wait their turn (busy timeout) instead; reads start a plain `BEGIN`
and, thanks to WAL, never wait for the writer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalise_url(url: str) -> URL:
    """Map plain `postgresql://` URLs to the psycopg 3 driver contacthub ships with."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names (relative to the working directory, as SQLite opens it);
    None for other databases and in-memory ones."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    if parsed.query.get("uri") in ("true", "1") or parsed.database.startswith("file:"):
        return None  # a SQLite URI filename: its path and mode are SQLite's business
    return Path(parsed.database).absolute()


class Database:
    """The store: a read engine, a write engine and units of work on them."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL") -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            self.engine = self._sqlite_engine(sqlite_synchronous, begin="BEGIN")
            self.write_engine = self._sqlite_engine(sqlite_synchronous, begin="BEGIN IMMEDIATE")
        else:
            self.engine = create_engine(self.url, pool_pre_ping=True, pool_size=10)
            self.write_engine = self.engine
        self._read_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self.write_engine, expire_on_commit=False)

    def _sqlite_engine(self, synchronous: str, *, begin: str) -> Engine:
        engine = create_engine(
            self.url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=10,
        )

        @event.listens_for(engine, "connect")
        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own is late and
            # deferred), and set the pragmas every connection needs.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def on_begin(connection: Connection) -> None:
            connection.exec_driver_sql(begin)

        return engine

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work: always rolled back."""
        with self._read_sessions() as session:
            try:
                yield session
            finally:
                session.rollback()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A unit of work that commits on success and rolls back on any exception."""
        with self._write_sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
        if self.write_engine is not self.engine:
            self.write_engine.dispose()


@contextmanager
def driver_cursor(session: Session) -> Iterator[Any]:
    """A DB-API cursor on the session's connection, inside its transaction.

    For the few hot-path queries where SQLAlchemy's statement execution costs more than the
    query itself; everything else goes through SQLAlchemy.
    """
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        yield cursor
    finally:
        cursor.close()


def insert_or_ignore(session: Session, table: Any, index: list[str]) -> Any:
    """An INSERT into `table` that skips rows whose `index` columns already exist (`ON CONFLICT
    DO NOTHING`), in the session's dialect; add `.values()` and `.returning()` as needed."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing(index_elements=index)
