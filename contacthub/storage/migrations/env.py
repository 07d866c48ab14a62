"""Alembic environment: runs migrations on the URL given by contacthub.storage.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from contacthub.storage.database import Database
from contacthub.storage.models import Base
from contacthub.storage.partitions import partition_names

config = context.config

# Any constant: the key of the PostgreSQL advisory lock that serialises migrations.
MIGRATION_LOCK_KEY = 7_355_608


def _partitions(connection: Connection, is_sqlite: bool) -> frozenset[str]:
    if is_sqlite:
        return frozenset()
    names = partition_names(connection)
    # Read before migrating: leave no transaction open for `begin_transaction` to join.
    connection.commit()
    return names


def run_migrations_online() -> None:
    database = Database(config.get_main_option("sqlalchemy.url") or "")
    try:
        with database.write_engine.connect() as connection:
            # The PostgreSQL partitions of the event tables (migration 0009) are no tables of
            # the models: `alembic check` compares the partitioned parents only.
            partitions = _partitions(connection, database.is_sqlite)
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                # SQLite cannot ALTER most things: batch mode copies the table instead.
                render_as_batch=database.is_sqlite,
                compare_type=True,
                include_name=lambda name, type_, _parents: (
                    not (type_ == "table" and name in partitions)
                ),
            )
            with context.begin_transaction():
                if not database.is_sqlite:
                    # Several machines may start `contacthub serve` at once: one migrates, the
                    # others wait here, then find nothing left to do. (SQLite's BEGIN
                    # IMMEDIATE of the write engine already serialises them.)
                    connection.exec_driver_sql(
                        f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
                    )
                context.run_migrations()
            connection.commit()
    finally:
        database.dispose()


run_migrations_online()
