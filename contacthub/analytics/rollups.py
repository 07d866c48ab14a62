"""Rollups: activities counted per day, channel and type (and top pages and clicks) as they come.

The activity log is written at full ingest speed with a single index, so the dashboard must not
scan it. Instead a background job (`refresh`, run every `rollup_interval` seconds by each
hub process, and at the end of `contacthub demo`) counts the activities it has not counted yet
into small rollup tables, and remembers in `rollup_state` the highest id it counted.

Reads are exact and fresh: a count is the rollups up to that id plus the few activities after
it, counted live (`activity_counts`, `top_keys`).

Counting by id is only safe if no activity with a lower id can still appear. On SQLite there is
one writer at a time, so every committed id is final. On PostgreSQL several ingest batches
commit concurrently and out of id order, so `refresh` first takes a SHARE lock on the table for
an instant: it waits for the inserts in flight and lets none start, so that the highest id it
then reads has no gap below it that could still fill.

Erasing a contact subtracts its counted activities from the rollups (`forget_contact`) in the
transaction that deletes them. Days are UTC days.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.elements import ColumnElement

from contacthub.activities.rules import CLICK, PAGE_VISIT
from contacthub.storage import leases
from contacthub.storage.database import Database
from contacthub.storage.models import Activity, ActivityRollup, RollupState, TopRollup
from contacthub.storage.types import date_from_driver, utc_day, utcnow

MAX_KEY_LENGTH = 500
# Activities counted per transaction, so that a large backlog commits its progress as it goes.
CHUNK = 100_000
STATE_ID = 1
# The job runs in one hub process at a time (storage/leases.py).
LEASE = "rollups"
# How long the job may wait for the SHARE lock on PostgreSQL (ingest waits behind it meanwhile).
LOCK_TIMEOUT = "200ms"
LOCK_NOT_AVAILABLE = "55P03"
NO_CHANNEL = 0
PAGE = "page"
CLICK_KIND = "click"


@dataclass(frozen=True, slots=True)
class CountRow:
    """Activities of one type on one channel on one day."""

    day: date
    channel_id: int
    type: str
    count: int


def counted_up_to(session: Session) -> int:
    """The highest activity id the rollups include."""
    return (
        session.scalar(select(RollupState.last_activity_id).where(RollupState.id == STATE_ID)) or 0
    )


def final_high_ids(
    database: Database, columns: Sequence[InstrumentedAttribute[int]]
) -> list[int] | None:
    """For each id column (of a table written by group commits: activities, email opens and
    clicks), the highest id below which no row can still be committed.

    On PostgreSQL the tables are locked in SHARE mode for an instant (one statement, in one
    short transaction): the lock waits for the inserts in flight and lets none start, so that
    no id below the highest then read can still appear. None when the lock was not granted in
    time: inserts queue behind a waiting lock request, so the caller gives up after
    `LOCK_TIMEOUT` rather than stall ingest, and tries again at its next run. On SQLite there
    is one writer at a time: every committed id is final.
    """
    with database.write() as session:
        return final_high_ids_now(session, columns)


def final_high_ids_now(
    session: Session, columns: Sequence[InstrumentedAttribute[int]]
) -> list[int] | None:
    """`final_high_ids`, inside the caller's write transaction: on SQLite it holds the one
    write lock, so every id is final; on PostgreSQL the SHARE lock is taken in a savepoint and
    released with it at once (rolling a savepoint back releases the locks taken in it), so the
    caller's transaction does not hold ingest back for the rest of its work. None when the lock
    was not granted in time."""
    if session.get_bind().dialect.name == "sqlite":
        return [session.scalar(select(func.max(column))) or 0 for column in columns]
    savepoint = session.begin_nested()
    try:
        _lock_in_share_mode(session, columns)
        return [session.scalar(select(func.max(column))) or 0 for column in columns]
    except OperationalError as error:
        if getattr(error.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            return None
        raise
    finally:
        savepoint.rollback()


def _lock_in_share_mode(session: Session, columns: Sequence[InstrumentedAttribute[int]]) -> None:
    tables = ", ".join(column.class_.__tablename__ for column in columns)
    session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    session.execute(text(f"LOCK TABLE {tables} IN SHARE MODE"))


def final_high_id(database: Database) -> int | None:
    """The highest activity id below which no activity can still be committed (None: try
    again later); see `final_high_ids`."""
    highs = final_high_ids(database, [Activity.id])
    return None if highs is None else highs[0]


def refresh(
    database: Database, *, lease_seconds: float | None = None, holder: str = leases.PROCESS
) -> int:
    """Count every activity not yet in the rollups; returns how many were counted.

    With `lease_seconds` (the app's periodic job), only while `holder` holds the lease "rollups":
    every hub process runs the job, and without the lease each worker would group the same
    chunk, all but one throwing their work away, for N times the CPU beside ingest.

    Each chunk is grouped in a read-only unit of work, which never blocks ingest (on SQLite a
    write transaction would hold the one write lock for the whole grouping). Only the upsert
    runs in a write transaction, and only if the state row is still as the grouping saw it:
    another process may have counted the chunk meanwhile, or an erasure changed what was
    counted (both move the state row). Then the chunk is grouped again.
    """
    if lease_seconds is not None and not leases.held(database, LEASE, lease_seconds, holder):
        return 0
    high = final_high_id(database)
    if high is None:
        return 0
    counted = 0
    while True:
        with database.read() as session:
            seen = session.execute(
                select(RollupState.last_activity_id, RollupState.updated_at).where(
                    RollupState.id == STATE_ID
                )
            ).one()
            low = seen.last_activity_id
            if low >= high:
                return counted
            upper = min(high, low + CHUNK)
            groups = _grouped(session, Activity.id > low, Activity.id <= upper)
        with database.write() as session:
            state = session.scalars(
                select(RollupState).where(RollupState.id == STATE_ID).with_for_update()
            ).one()
            if (state.last_activity_id, state.updated_at) != tuple(seen):
                continue
            _add(session, groups, sign=1)
            state.last_activity_id = upper
            state.updated_at = _later_than(state.updated_at)
        counted += sum(row.count for row in groups.counts)


def _later_than(moment: datetime) -> datetime:
    """Now, or a microsecond after `moment`: the state row's time is also its version."""
    return max(utcnow(), moment + timedelta(microseconds=1))


@dataclass(frozen=True, slots=True)
class _Groups:
    counts: list[CountRow]
    tops: Counter[tuple[date, str, str]]


# What each kind of top list counts: the key of an activity, and the activity type counted.
_TOP_KEYS = {
    PAGE: (Activity.url, PAGE_VISIT),
    CLICK_KIND: (func.coalesce(Activity.value, Activity.url), CLICK),
}


def _counts(session: Session, *where: ColumnElement[bool]) -> list[CountRow]:
    """Activities per UTC day, channel and type, of the activities `where` selects."""
    day = utc_day(session, Activity.created_at)
    channel = func.coalesce(Activity.channel_id, NO_CHANNEL)
    return [
        CountRow(date_from_driver(d), c, t, n)
        for d, c, t, n in session.execute(
            select(day, channel, Activity.type, func.count())
            .where(*where)
            .group_by(day, channel, Activity.type)
        )
    ]


def _tops(session: Session, kind: str, *where: ColumnElement[bool]) -> Counter[tuple[date, str]]:
    """Page visits per URL or clicks per element (`kind`) and UTC day, of what `where` selects."""
    day = utc_day(session, Activity.created_at)
    key_column, activity_type = _TOP_KEYS[kind]
    key = func.substr(key_column, 1, MAX_KEY_LENGTH)
    rows = session.execute(
        select(day, key, func.count())
        .where(*where, Activity.type == activity_type, key_column.is_not(None))
        .group_by(day, key)
    )
    tops: Counter[tuple[date, str]] = Counter()
    for d, k, n in rows:
        tops[(date_from_driver(d), k)] += n
    return tops


def _grouped(session: Session, *where: ColumnElement[bool]) -> _Groups:
    """Everything the rollups count, of the activities `where` selects, in one scan: grouped
    by day, channel, type and top-list key (NULL for types no top list counts). Three scans,
    one per table, cost the job three times the reading and twice the sorting of a chunk, and
    the job runs beside ingest."""
    day = utc_day(session, Activity.created_at)
    channel = func.coalesce(Activity.channel_id, NO_CHANNEL)
    key = case(
        *(
            (Activity.type == activity_type, func.substr(key_column, 1, MAX_KEY_LENGTH))
            for key_column, activity_type in _TOP_KEYS.values()
        ),
        else_=None,
    )
    kinds = {activity_type: kind for kind, (_, activity_type) in _TOP_KEYS.items()}
    counts: Counter[tuple[date, int, str]] = Counter()
    tops: Counter[tuple[date, str, str]] = Counter()
    for raw_day, channel_id, activity_type, top_key, n in session.execute(
        select(day, channel, Activity.type, key, func.count())
        .where(*where)
        .group_by(day, channel, Activity.type, key)
    ):
        the_day = date_from_driver(raw_day)
        counts[(the_day, channel_id, activity_type)] += n
        if top_key is not None:
            tops[(the_day, kinds[activity_type], top_key)] += n
    return _Groups([CountRow(d, c, t, n) for (d, c, t), n in counts.items()], tops)


def _add(session: Session, groups: _Groups, *, sign: int) -> None:
    if groups.counts:
        _upsert(
            session,
            ActivityRollup,
            [
                {"day": r.day, "channel_id": r.channel_id, "type": r.type, "count": sign * r.count}
                for r in groups.counts
            ],
            ["day", "channel_id", "type"],
        )
    if groups.tops:
        _upsert(
            session,
            TopRollup,
            [
                {"day": d, "kind": kind, "key": key, "count": sign * n}
                for (d, kind, key), n in groups.tops.items()
            ],
            ["day", "kind", "key"],
        )


def _upsert(
    session: Session,
    table: type[ActivityRollup] | type[TopRollup],
    rows: list[dict[str, Any]],
    keys: list[str],
) -> None:
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert
    statement = insert(table)
    # One statement for all rows (executemany): compiled once, however many rows there are.
    session.execute(
        statement.on_conflict_do_update(
            index_elements=keys, set_={"count": table.count + statement.excluded.count}
        ),
        rows,
    )


def forget_contact(session: Session, contact_id: int) -> None:
    """Take a contact's counted activities out of the rollups (before they are deleted)."""
    state = session.scalars(
        select(RollupState).where(RollupState.id == STATE_ID).with_for_update()
    ).one()
    groups = _grouped(
        session, Activity.contact_id == contact_id, Activity.id <= state.last_activity_id
    )
    _add(session, groups, sign=-1)
    # A refresh that grouped these activities before this erasure must not add them back.
    state.updated_at = _later_than(state.updated_at)
    # Rows counted down to zero say nothing; drop them.
    session.execute(delete(ActivityRollup).where(ActivityRollup.count <= 0))
    session.execute(delete(TopRollup).where(TopRollup.count <= 0))


def _in_days(column: Any, start: date, end: date) -> ColumnElement[bool]:
    return column.between(start, end)  # type: ignore[no-any-return]


def activity_counts(session: Session, start: date, end: date) -> list[CountRow]:
    """Activities per day, channel and type from `start` to `end` (both included, UTC days)."""
    counted = counted_up_to(session)
    totals: Counter[tuple[date, int, str]] = Counter()
    rolled = select(
        ActivityRollup.day, ActivityRollup.channel_id, ActivityRollup.type, ActivityRollup.count
    ).where(_in_days(ActivityRollup.day, start, end))
    for d, c, t, n in session.execute(rolled):
        totals[(d, c, t)] += n
    # The activities after the rollups' high mark, counted live.
    for row in _counts(session, Activity.id > counted):
        if start <= row.day <= end:
            totals[(row.day, row.channel_id, row.type)] += row.count
    return [CountRow(d, c, t, n) for (d, c, t), n in sorted(totals.items()) if n > 0]


def top_keys(
    session: Session, kind: str, start: date, end: date, limit: int = 10
) -> list[tuple[str, int]]:
    """The most visited URLs (`page`) or most clicked elements (`click`) in the days given."""
    counted = counted_up_to(session)
    totals: Counter[str] = Counter()
    rolled = (
        select(TopRollup.key, func.sum(TopRollup.count))
        .where(TopRollup.kind == kind, _in_days(TopRollup.day, start, end))
        .group_by(TopRollup.key)
    )
    for key, n in session.execute(rolled):
        totals[key] += int(n)
    # The activities after the rollups' high mark, counted live.
    for (d, key), n in _tops(session, kind, Activity.id > counted).items():
        if start <= d <= end:
            totals[key] += n
    # Ties in a stable order (by key), so the lists do not reshuffle between loads.
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    return [(key, n) for key, n in ranked[:limit] if n > 0]


def counts_from_log(session: Session, *where: ColumnElement[bool]) -> list[CountRow]:
    """Activities per UTC day, channel and type of the activities `where` selects, counted from
    the log itself: for a scope the rollups do not keep (a group's members)."""
    return _counts(session, *where)


def top_keys_from_log(
    session: Session, kind: str, *where: ColumnElement[bool], limit: int = 10
) -> list[tuple[str, int]]:
    """The most visited URLs (`page`) or clicked elements (`click`) among the activities
    `where` selects, counted from the log itself (as `counts_from_log`)."""
    totals: Counter[str] = Counter()
    for (_, key), n in _tops(session, kind, *where).items():
        totals[key] += n
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    return ranked[:limit]


def rollup_lag(session: Session) -> tuple[int, datetime | None]:
    """How many activities are not counted yet, and when the rollups last moved."""
    counted = counted_up_to(session)
    behind = session.scalar(select(func.count()).where(Activity.id > counted)) or 0
    moved = session.scalar(select(RollupState.updated_at).where(RollupState.id == STATE_ID))
    return behind, moved
