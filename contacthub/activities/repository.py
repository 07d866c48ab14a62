"""Queries for activity types, and the bulk insert of activities."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from contacthub.storage.models import ActivityType, Contact
from contacthub.storage.types import sqlite_datetime


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
SQLITE_INSERT = f"INSERT INTO activities ({INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608 - constant


def type_by_code(session: Session, code_name: str) -> ActivityType | None:
    return session.scalar(select(ActivityType).where(ActivityType.code_name == code_name))


def all_types(session: Session) -> Sequence[ActivityType]:
    return session.scalars(select(ActivityType).order_by(ActivityType.code_name)).all()


def contact_ids_by_guid(session: Session, guids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Contact GUID -> id for the GUIDs that exist, in one query."""
    wanted = set(guids)
    if not wanted:
        return {}
    rows = session.execute(select(Contact.guid, Contact.id).where(Contact.guid.in_(wanted)))
    return dict(rows.all())


def insert_activities(session: Session, rows: Sequence[ActivityRow]) -> None:
    """Insert many activities at once, the fastest way each database offers.

    This is the hot path: it bypasses the ORM and hands tuples straight to the driver —
    executemany on SQLite, COPY on PostgreSQL.
    """
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        # The rows of one request share their time: format each time once.
        times = {moment: sqlite_datetime(moment) for moment in {row.created_at for row in rows}}
        connection.exec_driver_sql(
            SQLITE_INSERT, [(*row[:7], times[row.created_at]) for row in rows]
        )
        return
    driver_connection = connection.connection.driver_connection
    with (
        driver_connection.cursor() as cursor,  # type: ignore[union-attr]
        cursor.copy(f"COPY activities ({INSERT_COLUMNS}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)
