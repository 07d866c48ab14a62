"""Monthly partitions of the event tables on PostgreSQL (migration 0009 made them).

`activities`, `email_opens` and `email_clicks` are `PARTITION BY RANGE (created_at)`: one
partition per UTC month, named `<table>_pYYYY_MM`, plus `<table>_default` for rows outside
every month (a clock far off, a month the job has not created yet). The hub creates partitions
ahead (`ensure_ahead`, daily and on start, `partition_months_ahead`), and retention can drop a
whole old month at once (`drop_before`) instead of deleting its rows one by one.

SQLite has no partitioning: there every function answers as for an unpartitioned table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from contacthub.storage.database import Database
from contacthub.storage.types import utcnow

logger = logging.getLogger(__name__)

PARTITIONED_TABLES = ("activities", "email_opens", "email_clicks")

# Months back that `ensure_ahead` gives a partition to rows waiting in the default partition
# (as migration 0009 does): each partition costs every query some planning, so stray ancient
# rows stay in the default partition rather than make hundreds.
MAX_MONTHS_BACK = 120

# Any constant: the advisory lock that keeps two hub processes from creating the same partition.
PARTITIONS_LOCK_KEY = 7_355_609


@dataclass(frozen=True, slots=True)
class Partition:
    """One partition of a table: a month [lower, upper), or the default (both None)."""

    name: str
    lower: datetime | None
    upper: datetime | None


def month_start(moment: datetime) -> datetime:
    """The first instant of `moment`'s UTC month."""
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def add_months(start: datetime, months: int) -> datetime:
    """`start` (a month's first instant) moved `months` months on."""
    index = start.year * 12 + start.month - 1 + months
    return start.replace(year=index // 12, month=index % 12 + 1)


def partition_name(table: str, lower: datetime) -> str:
    return f"{table}_p{lower:%Y_%m}"


def partition_names(connection: Connection) -> frozenset[str]:
    """Every table that is a partition of another (PostgreSQL)."""
    rows = connection.exec_driver_sql(
        "SELECT relname FROM pg_class WHERE relispartition AND relkind IN ('r', 'p')"
    )
    return frozenset(str(name) for (name,) in rows)


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def is_partitioned(session: Session, table: str) -> bool:
    """Whether `table` is a partitioned table (never on SQLite)."""
    if not _is_postgresql(session):
        return False
    return bool(
        session.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table "
                "WHERE partrelid = to_regclass(:table))"
            ),
            {"table": table},
        ).scalar()
    )


def _bound(text_value: str) -> datetime:
    # pg_get_expr prints the bound in the session's time zone, with its offset.
    return datetime.fromisoformat(text_value).astimezone(UTC)


def partitions(session: Session, table: str) -> list[Partition]:
    """The partitions of a partitioned `table`, months oldest first, the default last."""
    rows = session.execute(
        text(
            "SELECT child.relname, pg_get_expr(child.relpartbound, child.oid) "
            "FROM pg_inherits JOIN pg_class child ON child.oid = pg_inherits.inhrelid "
            "WHERE pg_inherits.inhparent = to_regclass(:table)"
        ),
        {"table": table},
    )
    found: list[Partition] = []
    for name, bound in rows:
        if bound == "DEFAULT":
            found.append(Partition(name, None, None))
            continue
        # FOR VALUES FROM ('2026-12-01 00:00:00+00') TO ('2027-01-01 00:00:00+00')
        parts = str(bound).split("'")
        found.append(Partition(name, _bound(parts[1]), _bound(parts[3])))
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(found, key=lambda partition: partition.lower or far)


def _default_partition(found: list[Partition]) -> str | None:
    return next((partition.name for partition in found if partition.lower is None), None)


def _create_month(session: Session, table: str, lower: datetime, default: str | None) -> None:
    """Create the month's partition as a table of its own, then attach it.

    `CREATE TABLE … PARTITION OF` would lock the parent table exclusively (every read and every
    ingest waits); `ATTACH PARTITION` takes a lock that lets them run (SHARE UPDATE EXCLUSIVE),
    builds the parent's keys and indexes on the (empty) table, and locks only the default
    partition exclusively while it checks that none of its rows belong to the new month. Rows
    of the month that wait there (written before the partition existed) move first: PostgreSQL
    refuses a partition for a range the default holds rows of.
    """
    upper = add_months(lower, 1)
    name = partition_name(table, lower)
    session.execute(text(f'CREATE TABLE "{name}" (LIKE "{table}" INCLUDING DEFAULTS)'))
    if default is not None:
        moved = (
            session.connection()
            .execute(
                text(
                    f'WITH moved AS (DELETE FROM "{default}" '  # noqa: S608 - catalog names
                    "WHERE created_at >= :lower AND created_at < :upper RETURNING *) "
                    f'INSERT INTO "{name}" SELECT * FROM moved'
                ),
                {"lower": lower, "upper": upper},
            )
            .rowcount
        )
        if moved:
            logger.info("Moving %d rows of %s from %s into %s", moved, table, default, name)
    session.execute(
        text(
            f'ALTER TABLE "{table}" ATTACH PARTITION "{name}" '
            f"FOR VALUES FROM ('{lower.isoformat()}') TO ('{upper.isoformat()}')"
        )
    )


def ensure_ahead(
    session: Session,
    months: int,
    *,
    now: datetime | None = None,
    since: datetime | None = None,
) -> list[str]:
    """Create the missing monthly partitions of every partitioned event table, from the current
    month to `months` months ahead, and for each earlier month (at most `MAX_MONTHS_BACK`)
    that has rows waiting in the default partition; answers the names of those created, oldest
    first per table (none on SQLite). With `since`, also every month from `since`'s on: for a
    load of history (`contacthub demo`), so that its rows go straight to their months.

    Rows in the default partition for a new month move into it: rows written before their
    month's partition existed, or history loaded with old times (an import, `contacthub demo`
    on a new install). Safe to run at once from several processes (an advisory lock serialises
    them; the second finds nothing to do).
    """
    if not _is_postgresql(session):
        return []
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PARTITIONS_LOCK_KEY})
    current = month_start(now or utcnow())
    first = (
        current if since is None else max(month_start(since), add_months(current, -MAX_MONTHS_BACK))
    )
    created: list[str] = []
    for table in PARTITIONED_TABLES:
        if not is_partitioned(session, table):
            continue
        found = partitions(session, table)
        default = _default_partition(found)
        wanted = {add_months(current, step) for step in range(months + 1)}
        month = first
        while month < current:
            wanted.add(month)
            month = add_months(month, 1)
        if default is not None:
            oldest = add_months(current, -MAX_MONTHS_BACK)
            wanted |= _waiting_months(session, default, oldest, current)
        for lower in sorted(wanted):
            upper = add_months(lower, 1)
            if any(
                partition.lower is not None
                and partition.upper is not None
                and partition.lower < upper
                and lower < partition.upper
                for partition in found
            ):
                continue
            _create_month(session, table, lower, default)
            created.append(partition_name(table, lower))
    return created


def _waiting_months(
    session: Session, default: str, oldest: datetime, current: datetime
) -> set[datetime]:
    """The UTC months of the rows in the default partition from `oldest` to before `current`
    (rows further ahead than the partitions wait until their month comes within reach)."""
    rows = session.execute(
        text(
            "SELECT DISTINCT date_trunc('month', created_at, 'UTC') "  # noqa: S608 - catalog name
            f'FROM "{default}" WHERE created_at >= :oldest AND created_at < :current'
        ),
        {"oldest": oldest, "current": current},
    )
    return {month_start(moment) for (moment,) in rows}


def drop_before(session: Session, table: str, cutoff: datetime) -> int:
    """Drop the partitions of `table` that hold only rows older than `cutoff` (upper bound ≤
    cutoff); answers how many (0 on SQLite or when `table` is not partitioned).

    The default partition is never dropped: rows there are the caller's to delete one by one,
    as are the rows of the partition `cutoff` falls in. Detaching locks `table` exclusively for
    an instant (it waits for running queries on it, and new ones wait behind it): a caller in a
    hurry sets a `lock_timeout` first.
    """
    if not is_partitioned(session, table):
        return 0
    dropped = 0
    for partition in partitions(session, table):
        if partition.upper is not None and partition.upper <= cutoff:
            session.execute(text(f'ALTER TABLE "{table}" DETACH PARTITION "{partition.name}"'))
            session.execute(text(f'DROP TABLE "{partition.name}"'))
            dropped += 1
    return dropped


# How often the hub makes sure the partitions ahead exist (and once at start).
ENSURE_INTERVAL = 86_400.0
# How long the job waits for a lock (a long query holding the default partition): rather than
# queue every reader and writer behind it, the run gives up and the next one tries again; with
# months of partitions ahead, a day's delay costs nothing.
LOCK_TIMEOUT = "5s"


def ensure_ahead_job(database: Database, months: int) -> list[str]:
    """The hub's job: `ensure_ahead` in a transaction of its own (nothing on SQLite)."""
    if database.is_sqlite:
        return []
    with database.write() as session:
        session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        created = ensure_ahead(session, months)
        # Read only when there is something to vacuum: most runs create nothing.
        defaults = [
            name
            for table in PARTITIONED_TABLES
            if created
            and is_partitioned(session, table)
            and (name := _default_partition(partitions(session, table))) is not None
        ]
    if created:
        logger.info("Created partitions %s", ", ".join(created))
        vacuum(database, defaults)
    return created


def vacuum(database: Database, tables: list[str]) -> None:
    """VACUUM (ANALYZE) `tables`, outside any transaction (VACUUM cannot run in one).

    Run on the default partitions after new months were created: rows that waited there for
    their month left as many dead rows behind, and until they are vacuumed every query on the
    table pays for them at planning time (the planner probes the ends of the primary key, and
    walks through the dead entries to find a live one: 8M moved rows cost each query about
    200 ms of planning). Autovacuum would get there, but only after a while.
    """
    with database.engine.connect() as connection:
        autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
        for table in tables:
            autocommit.exec_driver_sql(f'VACUUM (ANALYZE) "{table}"')
