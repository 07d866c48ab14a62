"""partition the event tables by month on PostgreSQL (activities, email_opens, email_clicks)

Each table becomes `PARTITION BY RANGE (created_at)`: one partition per UTC month, from the
oldest row's month (at most ten years back) to three months ahead (the hub's job keeps
creating them later: contacthub/storage/partitions.py), plus a DEFAULT partition for anything
outside those months.
A partitioned table's primary key must contain the partition key: it becomes (id, created_at).
Ids stay unique because one sequence still hands them out (no other writer chooses an id).

The conversion keeps everything: the rows (copied in one INSERT … SELECT), the id sequence
(re-owned by the new table: the next id continues), every secondary index and every foreign key
the table has (read from the catalog, re-created on the new table, whatever they are). A foreign
key *to* one of these tables could not survive (it would need a unique key on `id` alone): the
schema has none (tests/storage/test_partitions.py checks the models), and if a database has one
the conversion stops with a message rather than dropping it.

SQLite has no partitioning: nothing happens there, and the models (PK `id`, which SQLite needs
as its auto-incrementing rowid) describe both databases; see docs/architecture.md "Storage".

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 12:30:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime

from alembic import op
from sqlalchemy import Connection, text

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("activities", "email_opens", "email_clicks")
MONTHS_AHEAD = 3
# At most this many months back get a partition each: every partition costs every query some
# planning, so a stray ancient row (a test clock, an import) must not make hundreds; rows older
# than that go to the default partition.
MAX_MONTHS_BACK = 120


def _month_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(start: datetime) -> datetime:
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


def _add_months(start: datetime, months: int) -> datetime:
    index = start.year * 12 + start.month - 1 + months
    return start.replace(year=index // 12, month=index % 12 + 1)


def _scalar(connection: Connection, sql: str, **params: object) -> object:
    return connection.execute(text(sql), params).scalar()


def _rows(connection: Connection, sql: str, **params: object) -> list[tuple[object, ...]]:
    return [tuple(row) for row in connection.execute(text(sql), params)]


def _table_parts(connection: Connection, table: str) -> tuple[str, list[str], list[str]]:
    """The table's id sequence, its secondary index definitions, and its outgoing foreign keys
    (as ADD CONSTRAINT clauses), read from the catalog before the table is replaced."""
    sequence = _scalar(connection, "SELECT pg_get_serial_sequence(:t, 'id')", t=table)
    if sequence is None:
        raise RuntimeError(f"{table}.id has no sequence: this conversion expects a serial id")
    referencing = _rows(
        connection,
        "SELECT conname, conrelid::regclass::text FROM pg_constraint "
        "WHERE contype = 'f' AND confrelid = CAST(:t AS regclass)",
        t=table,
    )
    if referencing:
        names = ", ".join(f"{name} on {owner}" for name, owner in referencing)
        raise RuntimeError(
            f"foreign keys reference {table} ({names}); a partitioned {table} cannot keep them "
            "(its unique key includes created_at). Drop them, then migrate again."
        )
    # A partitioned table's index reads "ON ONLY table": re-created without ONLY, it covers
    # every partition (and an unpartitioned table takes it as it is).
    indexes = [
        str(definition).replace(" ON ONLY ", " ON ", 1)
        for (definition,) in _rows(
            connection,
            "SELECT pg_get_indexdef(indexrelid) FROM pg_index "
            "WHERE indrelid = CAST(:t AS regclass) AND NOT indisprimary ORDER BY indexrelid",
            t=table,
        )
    ]
    foreign_keys = [
        f'ADD CONSTRAINT "{name}" {definition}'
        for name, definition in _rows(
            connection,
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'f' AND conrelid = CAST(:t AS regclass) ORDER BY conname",
            t=table,
        )
    ]
    return str(sequence), indexes, foreign_keys


def _set_aside(connection: Connection, table: str, sequence: str) -> str:
    """Rename the table out of the way, free its index names, keep its sequence alive."""
    old = f"{table}_before_0009"
    connection.execute(text(f"ALTER SEQUENCE {sequence} OWNED BY NONE"))
    connection.execute(text(f'ALTER TABLE "{table}" RENAME TO "{old}"'))
    connection.execute(text(f'ALTER TABLE "{old}" DROP CONSTRAINT "pk_{table}"'))
    for (name,) in _rows(
        connection,
        "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = CAST(:t AS regclass)",
        t=old,
    ):
        connection.execute(text(f"DROP INDEX {name}"))
    return old


def _finish(
    connection: Connection,
    table: str,
    old: str,
    sequence: str,
    primary_key: str,
    indexes: list[str],
    foreign_keys: list[str],
) -> None:
    """Copy the rows over, then build the keys and indexes (faster than while copying)."""
    copy = f'INSERT INTO "{table}" SELECT * FROM "{old}"'  # noqa: S608 - catalog names
    connection.execute(text(copy))
    connection.execute(text(f'DROP TABLE "{old}"'))
    connection.execute(
        text(f'ALTER TABLE "{table}" ADD CONSTRAINT "pk_{table}" PRIMARY KEY ({primary_key})')
    )
    for definition in indexes:
        connection.execute(text(definition))
    if foreign_keys:
        connection.execute(text(f'ALTER TABLE "{table}" ' + ", ".join(foreign_keys)))
    connection.execute(text(f'ALTER SEQUENCE {sequence} OWNED BY "{table}".id'))
    connection.execute(text(f'ANALYZE "{table}"'))


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "postgresql":
        return
    now = datetime.now(UTC)
    for table in TABLES:
        connection.execute(text(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE'))
        sequence, indexes, foreign_keys = _table_parts(connection, table)
        oldest_row = f'SELECT min(created_at) FROM "{table}"'  # noqa: S608 - catalog names
        oldest = _scalar(connection, oldest_row)
        old = _set_aside(connection, table, sequence)
        connection.execute(
            text(
                f'CREATE TABLE "{table}" (LIKE "{old}" INCLUDING DEFAULTS) '
                "PARTITION BY RANGE (created_at)"
            )
        )
        start = max(
            _month_start(oldest if isinstance(oldest, datetime) else now),
            _add_months(_month_start(now), -MAX_MONTHS_BACK),
        )
        end = _add_months(_month_start(now), MONTHS_AHEAD + 1)
        while start < end:
            following = _next_month(start)
            connection.execute(
                text(
                    f'CREATE TABLE "{table}_p{start:%Y_%m}" PARTITION OF "{table}" '
                    f"FOR VALUES FROM ('{start.isoformat()}') TO ('{following.isoformat()}')"
                )
            )
            start = following
        connection.execute(text(f'CREATE TABLE "{table}_default" PARTITION OF "{table}" DEFAULT'))
        _finish(connection, table, old, sequence, "id, created_at", indexes, foreign_keys)


def downgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "postgresql":
        return
    for table in TABLES:
        connection.execute(text(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE'))
        sequence, indexes, foreign_keys = _table_parts(connection, table)
        old = _set_aside(connection, table, sequence)
        connection.execute(text(f'CREATE TABLE "{table}" (LIKE "{old}" INCLUDING DEFAULTS)'))
        # Dropping the partitioned table drops its partitions (and their rows, copied by then).
        _finish(connection, table, old, sequence, "id", indexes, foreign_keys)
