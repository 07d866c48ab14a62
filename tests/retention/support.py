"""Test helpers for retention: old data, and a database that refuses to delete."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, text

from contacthub.storage.database import Database


@contextmanager
def audit_log_undeletable(database: Database) -> Iterator[None]:
    """A trigger that makes every DELETE of an audit entry fail: a real database error in
    the middle of a retention run (the audit log is the last kind it deletes)."""
    with database.write() as session:
        if session.get_bind().dialect.name == "sqlite":
            session.execute(
                text(
                    "CREATE TRIGGER keep_audit BEFORE DELETE ON audit_events "
                    "BEGIN SELECT RAISE(ABORT, 'audit entries are kept by a trigger'); END"
                )
            )
        else:
            session.execute(
                text(
                    "CREATE FUNCTION keep_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "RAISE EXCEPTION 'audit entries are kept by a trigger'; END $$"
                )
            )
            session.execute(
                text(
                    "CREATE TRIGGER keep_audit BEFORE DELETE ON audit_events "
                    "FOR EACH ROW EXECUTE FUNCTION keep_audit()"
                )
            )
    try:
        yield
    finally:
        with database.write() as session:
            if _sqlite(database):
                session.execute(text("DROP TRIGGER keep_audit"))
            else:
                session.execute(text("DROP TRIGGER keep_audit ON audit_events"))
                session.execute(text("DROP FUNCTION keep_audit()"))


def _sqlite(database: Database) -> bool:
    return database.engine.dialect.name == "sqlite"


@contextmanager
def deletes_counted(database: Database, table: str) -> Iterator[list[int]]:
    """The DELETE statements run on `table` while the block runs, each by its row count."""
    seen: list[int] = []

    def after(*args: Any) -> None:
        cursor, statement = args[1], args[2]
        if [word.lower() for word in statement.split()[:3]] == ["delete", "from", table]:
            seen.append(cursor.rowcount)

    engines = {database.engine, database.write_engine}
    for engine in engines:
        event.listen(engine, "after_cursor_execute", after)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "after_cursor_execute", after)


def days_ago(now: datetime, days: float) -> datetime:
    return now - timedelta(days=days)
