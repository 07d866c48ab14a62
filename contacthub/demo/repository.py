"""Bulk inserts for the demo: many rows at once, straight to the driver.

The ORM would build an object per row and spend more time on that than the database spends
storing it. Activities go through `activities.repository.insert_activities` (the ingest path);
every other table through `bulk_insert`: one `executemany` on SQLite, `COPY` on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Boolean, Date, Table, Uuid, select
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from contacthub.storage.types import UTCDateTime, sqlite_datetime

Converter = Callable[[Any], Any]


def _sqlite_converter(column_type: TypeEngine[Any]) -> Converter | None:
    """How the column's SQLAlchemy type stores a Python value on SQLite, for the raw driver."""
    if isinstance(column_type, UTCDateTime):
        return sqlite_datetime
    if isinstance(column_type, Uuid):
        return lambda value: value.hex  # 32 hex digits, as the Uuid type stores them
    if isinstance(column_type, Date):
        return lambda value: value.isoformat()
    if isinstance(column_type, Boolean):
        return int
    return None


def bulk_insert(
    session: Session, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert `rows` (values in the order of `columns`) into `table`, in the session's
    transaction. Values are Python values of the columns' types (aware datetimes, UUIDs ...)."""
    if not rows:
        return
    connection = session.connection()
    driver = connection.connection.driver_connection
    names = ", ".join(columns)
    if connection.dialect.name == "sqlite":
        converters = [_sqlite_converter(table.c[name].type) for name in columns]
        if any(converters):
            rows = [
                tuple(
                    value if value is None or convert is None else convert(value)
                    for value, convert in zip(row, converters, strict=True)
                )
                for row in rows
            ]
        marks = ", ".join("?" * len(columns))
        cursor = driver.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(
                f"INSERT INTO {table.name} ({names}) VALUES ({marks})",  # noqa: S608 - schema names
                rows,
            )
        finally:
            cursor.close()
        return
    with (
        driver.cursor() as cursor,  # type: ignore[union-attr]
        cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


def ids_in_order(session: Session, table: Table, *where: Any) -> list[int]:
    """The ids of `table`'s rows, ascending: the order bulk_insert inserted them in."""
    return list(session.scalars(select(table.c.id).where(*where).order_by(table.c.id)))
