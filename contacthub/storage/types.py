"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Date, DateTime, Dialect, cast, func
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp, stored in UTC, read back timezone-aware on every database.

    SQLite has no timezone type: it stores the naive UTC time and this type puts the zone back.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)


def sqlite_datetime(value: datetime) -> str:
    """The text UTCDateTime stores on SQLite, for the writer's raw executemany."""
    # isoformat is four times faster than strftime, and this runs once per ingest request.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def utc_from_driver(value: datetime | str | None) -> datetime | None:
    """What UTCDateTime reads back, from a raw driver value (SQLite text or a datetime)."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def date_from_driver(value: date | str) -> date:
    """A day as the database computed it (see `utc_day`): SQLite answers text."""
    return value if isinstance(value, date) else date.fromisoformat(value)


def utc_day(session: Session, column: Any) -> ColumnElement[Any]:
    """The UTC day of a UTCDateTime column, as the database computes it (for GROUP BY)."""
    if session.get_bind().dialect.name == "sqlite":
        # SQLite stores "YYYY-MM-DD HH:MM:SS.ffffff" in UTC.
        return func.substr(column, 1, 10)
    return cast(func.timezone("UTC", column), Date)


def guid_from_driver(value: uuid.UUID | str) -> uuid.UUID:
    """What the Uuid type reads back, from a raw driver value (SQLite stores 32 hex digits)."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)
