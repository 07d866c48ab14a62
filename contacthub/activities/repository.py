"""Queries for activity types, and the bulk insert of activities."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from contacthub.storage.database import driver_cursor
from contacthub.storage.models import ActivityType
from contacthub.storage.types import guid_from_driver, sqlite_datetime


class ActivityRow(NamedTuple):
    """One activity to insert, in the column order of INSERT_COLUMNS."""

    contact_id: int
    channel_id: int | None
    type: str
    title: str
    value: str | None
    url: str | None
    referrer: str | None
    created_at: datetime


INSERT_COLUMNS = ", ".join(ActivityRow._fields)
_ROW_PLACEHOLDERS = "(" + ", ".join("?" * len(ActivityRow._fields)) + ")"
# SQLite inserts many rows fastest as one multi-row INSERT (one statement step, not one per
# row as executemany does). Chunks are powers of two, so that only a few statement texts
# exist and each stays in the driver's prepared-statement cache.
_SQLITE_CHUNKS = tuple(2**n for n in range(8, -1, -1))
_SQLITE_INSERTS = {
    size: f"INSERT INTO activities ({INSERT_COLUMNS}) VALUES "  # noqa: S608 - constant text
    + ", ".join([_ROW_PLACEHOLDERS] * size)
    for size in _SQLITE_CHUNKS
}


def type_by_code(session: Session, code_name: str) -> ActivityType | None:
    return session.scalar(select(ActivityType).where(ActivityType.code_name == code_name))


def all_types(session: Session) -> Sequence[ActivityType]:
    return session.scalars(select(ActivityType).order_by(ActivityType.code_name)).all()


# Once per batch on the ingest hot path: straight to the driver (see keys_by_hash).
# On PostgreSQL the rows are locked FOR KEY SHARE until the batch commits: an erasure (which
# locks the contact FOR UPDATE) then waits for the batch and deletes its activities too, instead
# of committing between this lookup and the insert and leaving them behind. Key-share locks
# never conflict with each other or with data input's updates. SQLite needs none: the batch's
# transaction holds the one write lock from its start.
_CONTACT_IDS_BY_GUID = {
    "sqlite": "SELECT guid, id FROM contacts WHERE guid IN (SELECT value FROM json_each(?))",
    "postgresql": "SELECT guid, id FROM contacts WHERE guid = ANY(%s) FOR KEY SHARE",
}


def contact_ids_by_guid(session: Session, guids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Contact GUID -> id for the GUIDs that exist, in one query."""
    wanted = set(guids)
    if not wanted:
        return {}
    dialect = session.get_bind().dialect.name
    # SQLite stores a GUID as its 32 hex digits.
    parameter = json.dumps([g.hex for g in wanted]) if dialect == "sqlite" else list(wanted)
    with driver_cursor(session) as cursor:
        cursor.execute(_CONTACT_IDS_BY_GUID[dialect], (parameter,))
        return {guid_from_driver(guid): contact_id for guid, contact_id in cursor.fetchall()}


def insert_activities(session: Session, rows: Sequence[ActivityRow]) -> None:
    """Insert many activities at once, the fastest way each database offers.

    This is the hot path: it bypasses the ORM and hands values straight to the driver —
    multi-row INSERTs on SQLite, COPY on PostgreSQL.
    """
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        _insert_sqlite(connection.connection.driver_connection, rows)
        return
    driver_connection = connection.connection.driver_connection
    with (
        driver_connection.cursor() as cursor,  # type: ignore[union-attr]
        cursor.copy(f"COPY activities ({INSERT_COLUMNS}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


def _insert_sqlite(driver_connection: Any, rows: Sequence[ActivityRow]) -> None:
    # The rows of one request share their time: format each time once.
    times: dict[datetime, str] = {}
    start = 0
    cursor = driver_connection.cursor()
    try:
        while start < len(rows):
            size = next(size for size in _SQLITE_CHUNKS if size <= len(rows) - start)
            values: list[Any] = []
            for row in rows[start : start + size]:
                moment = times.get(row.created_at)
                if moment is None:
                    moment = times[row.created_at] = sqlite_datetime(row.created_at)
                values.extend(row[:7])
                values.append(moment)
            cursor.execute(_SQLITE_INSERTS[size], values)
            start += size
    finally:
        cursor.close()
