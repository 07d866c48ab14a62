"""The text UTCDateTime stores on SQLite is the text the raw bulk inserts write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert

from contacthub.storage.types import UTCDateTime, sqlite_datetime


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 6, 30, 18, 0, tzinfo=UTC),
        datetime(2026, 6, 30, 18, 0, 1, 5, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=timezone(timedelta(hours=-5))),
    ],
    ids=["whole second", "microseconds", "another zone"],
)
def test_raw_inserts_store_times_as_the_column_type_does(moment: datetime) -> None:
    table = Table(
        "times", MetaData(), Column("id", Integer, primary_key=True), Column("at", UTCDateTime)
    )
    engine = create_engine("sqlite://")
    with engine.begin() as connection:
        table.create(connection)
        connection.execute(insert(table).values(id=1, at=moment))
        stored = connection.exec_driver_sql("SELECT at FROM times").scalar()
    assert sqlite_datetime(moment) == stored
