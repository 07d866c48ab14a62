"""Rollups: activities counted per day, channel and type (and top pages and clicks), and new
contacts per day, as they come.

The activity log is written at full ingest speed with a single index, so the dashboard must not
scan it; nor the contacts, whose index on `created_at` costs a second for the month of a
million-contact hub. Instead a background job (`refresh`, run every `rollup_interval` seconds by
each hub process, and at the end of `contacthub demo`) counts the activities and the contacts
it has not counted yet into small rollup tables, and remembers in `rollup_state` the highest
activity id and the highest contact id it counted.

Reads are exact and fresh: a count is the rollups up to that id plus the few rows after it,
counted live (`activity_counts`, `top_keys`, `contact_counts`).

Counting by id is only safe if no row with a lower id can still appear. On SQLite there is
one writer at a time, so every committed id is final. On PostgreSQL several transactions insert
concurrently and commit out of id order (ingest batches write activities and, with data input,
contacts; the tracking API, sign-ups and imports create contacts), so `refresh` first takes a
SHARE lock on each table for an instant, one table at a time: it waits for the inserts in flight
and lets none start, so that the highest id it then reads has no gap below it that could still
fill.

Contact rollups count the contacts that exist, as the query over `contacts` did: deleting
contacts takes the counted ones out in the transaction that deletes them (`forget_contact` for
an erasure, with the contact's counted activities; `forget_contacts` for the retention of
anonymous contacts). A contact's `created_at` never changes after it is inserted (no path sets
it; data input and imports fill other fields, and there is no merge), so its day stays right.
Erased activities are subtracted too; activities deleted by retention are not (retention
deletes only counted ones, and the dashboard keeps their history). Days are UTC days.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, func, select, text, union_all
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.elements import ColumnElement

from contacthub.activities.rules import CLICK, PAGE_VISIT
from contacthub.storage import leases
from contacthub.storage.database import Database
from contacthub.storage.models import (
    Activity,
    ActivityRollup,
    Contact,
    ContactRollup,
    RollupState,
    TopRollup,
)
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


def final_high_contact_id(database: Database) -> int | None:
    """The highest contact id below which no contact can still be committed (None: try again
    later); see `final_high_ids`.

    Contacts are created by concurrent transactions (the tracking API's POST /contacts, an
    ingest batch's data input that moves to a new contact, newsletter sign-ups and imports, the
    admin's and the API's subscriber paths, the demo's bulk writer), so on PostgreSQL they too
    commit out of id order. Their table is locked in its own short transaction, never in the
    same statement as the activities: an ingest batch may hold a row lock's table lock on
    contacts (a data input's update) while it waits to insert activities, and a job holding
    SHARE on activities while waiting on contacts would deadlock with it.
    """
    highs = final_high_ids(database, [Contact.id])
    return None if highs is None else highs[0]


@dataclass(frozen=True, slots=True)
class _Chunk:
    """One step of `refresh`: the activities (`groups`) or the contacts (`new_contacts`, per
    UTC day) after their cursor up to `high`, grouped."""

    high: int
    groups: _Groups | None = None
    new_contacts: Counter[date] | None = None


def refresh(
    database: Database, *, lease_seconds: float | None = None, holder: str = leases.PROCESS
) -> int:
    """Count every activity and every contact not yet in the rollups; returns how many
    activities were counted (the contacts counted are in `contact_rollups`).

    With `lease_seconds` (the app's periodic job), only while `holder` holds the lease "rollups":
    every hub process runs the job, and without the lease each worker would group the same
    chunk, all but one throwing their work away, for N times the CPU beside ingest.

    Activities first, then contacts, `CHUNK` ids at a time. Each chunk is grouped in a
    read-only unit of work, which never blocks ingest (on SQLite a write transaction would hold
    the one write lock for the whole grouping). Only the upsert runs in a write transaction, and
    only if the state row is still as the grouping saw it: another process may have counted the
    chunk meanwhile, or an erasure or the retention job changed what was counted (both move the
    state row). Then the chunk is grouped again. Either high mark may be None (its table's lock
    was not granted in time): that table waits for the next run, the other is counted.
    """
    if lease_seconds is not None and not leases.held(database, LEASE, lease_seconds, holder):
        return 0
    activity_high = final_high_id(database)
    contact_high = final_high_contact_id(database)
    counted = 0
    while True:
        with database.read() as session:
            seen = session.execute(
                select(
                    RollupState.last_activity_id,
                    RollupState.last_contact_id,
                    RollupState.updated_at,
                ).where(RollupState.id == STATE_ID)
            ).one()
            chunk = _next_chunk(
                session,
                (seen.last_activity_id, activity_high),
                (seen.last_contact_id, contact_high),
            )
        if chunk is None:
            return counted
        with database.write() as session:
            state = session.scalars(
                select(RollupState).where(RollupState.id == STATE_ID).with_for_update()
            ).one()
            if (state.last_activity_id, state.last_contact_id, state.updated_at) != tuple(seen):
                continue
            if chunk.groups is not None:
                _add(session, chunk.groups, sign=1)
                state.last_activity_id = chunk.high
                counted += sum(row.count for row in chunk.groups.counts)
            if chunk.new_contacts is not None:
                _add_contacts(session, chunk.new_contacts, sign=1)
                state.last_contact_id = chunk.high
            state.updated_at = _later_than(state.updated_at)


def _next_chunk(
    session: Session, activities: tuple[int, int | None], contacts: tuple[int, int | None]
) -> _Chunk | None:
    """The next chunk to count, grouped: activities after their cursor up to their high mark
    (each a (cursor, high) pair), else contacts; None when both are counted up to their mark."""
    low, high = activities
    if high is not None and low < high:
        upper = min(high, low + CHUNK)
        return _Chunk(upper, groups=_grouped(session, Activity.id > low, Activity.id <= upper))
    low, high = contacts
    if high is not None and low < high:
        upper = min(high, low + CHUNK)
        return _Chunk(
            upper, new_contacts=contacts_per_day(session, Contact.id > low, Contact.id <= upper)
        )
    return None


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
    table: type[ActivityRollup] | type[TopRollup] | type[ContactRollup],
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
    """Take a contact that is being erased out of the rollups: its counted activities, and
    itself if it was counted among the new contacts (before the rows are deleted, in the same
    transaction)."""
    state = _locked_state(session)
    groups = _grouped(
        session, Activity.contact_id == contact_id, Activity.id <= state.last_activity_id
    )
    _add(session, groups, sign=-1)
    created_at = session.scalar(select(Contact.created_at).where(Contact.id == contact_id))
    _forget_counted_contacts(
        session, state, [] if created_at is None else [(contact_id, created_at)]
    )
    session.execute(delete(ActivityRollup).where(ActivityRollup.count <= 0))
    session.execute(delete(TopRollup).where(TopRollup.count <= 0))


def forget_contacts(session: Session, deleted: Sequence[tuple[int, datetime]]) -> None:
    """Take contacts just deleted (their ids and `created_at`) out of the new contacts'
    rollup, in the transaction that deletes them: those the rollup counted are subtracted from
    their day; the others were never added. For deletions of contacts without activities (the
    retention of anonymous contacts); an erasure calls `forget_contact`."""
    _forget_counted_contacts(session, _locked_state(session), deleted)


def _locked_state(session: Session) -> RollupState:
    """The state row, locked until the caller's transaction ends: a refresh upserts only under
    this lock, so it either counted before (the cursor shows what) or sees the row moved."""
    return session.scalars(
        select(RollupState).where(RollupState.id == STATE_ID).with_for_update()
    ).one()


def _forget_counted_contacts(
    session: Session, state: RollupState, contacts: Sequence[tuple[int, datetime]]
) -> None:
    per_day = Counter(
        created_at.astimezone(UTC).date()
        for contact_id, created_at in contacts
        if contact_id <= state.last_contact_id
    )
    if per_day:
        _add_contacts(session, per_day, sign=-1)
        # Rows counted down to zero say nothing; drop them.
        session.execute(delete(ContactRollup).where(ContactRollup.count <= 0))
    # A refresh that grouped these rows before this deletion must not add them back.
    state.updated_at = _later_than(state.updated_at)


def contacts_per_day(session: Session, *where: ColumnElement[bool]) -> Counter[date]:
    """Contacts per UTC day of `created_at`, of the contacts `where` selects: the rollup job's
    chunks, and the dashboard scoped to a group (whose members the rollup cannot tell)."""
    day = utc_day(session, Contact.created_at)
    return Counter(
        {
            date_from_driver(d): n
            for d, n in session.execute(select(day, func.count()).where(*where).group_by(day))
        }
    )


def _add_contacts(session: Session, per_day: Counter[date], *, sign: int) -> None:
    if per_day:
        _upsert(
            session,
            ContactRollup,
            [{"day": d, "count": sign * n} for d, n in per_day.items()],
            ["day"],
        )


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


@dataclass(frozen=True, slots=True)
class ContactCounts:
    """New contacts per UTC day of a range (days without any left out), and all contacts."""

    per_day: dict[date, int]
    total: int


def contact_counts(session: Session, start: date, end: date) -> ContactCounts:
    """Contacts created per day from `start` to `end` (both included, UTC days) that still
    exist, and how many contacts there are: the rollup plus the contacts after its cursor,
    counted live.

    One statement reads the cursor, the rollup and the live rows, so it sees them in one
    snapshot even on PostgreSQL at READ COMMITTED: a refresh committing between separate reads
    would count its chunk twice (in the rollup and live). Every rollup row is read (one per day
    of history, a few hundred), which makes the total free beside the range.
    """
    cursor = select(RollupState.last_contact_id).where(RollupState.id == STATE_ID).scalar_subquery()
    day = utc_day(session, Contact.created_at)
    rows = session.execute(
        union_all(
            select(ContactRollup.day, ContactRollup.count),
            select(day, func.count()).where(Contact.id > cursor).group_by(day),
        )
    )
    per_day: Counter[date] = Counter()
    total = 0
    for d, n in rows:
        total += n
        the_day = date_from_driver(d)
        if start <= the_day <= end:
            per_day[the_day] += n
    return ContactCounts({d: n for d, n in per_day.items() if n > 0}, total)


def rollup_lag(session: Session) -> tuple[int, datetime | None]:
    """How many activities are not counted yet, and when the rollups last moved."""
    counted = counted_up_to(session)
    behind = session.scalar(select(func.count()).where(Activity.id > counted)) or 0
    moved = session.scalar(select(RollupState.updated_at).where(RollupState.id == STATE_ID))
    return behind, moved
