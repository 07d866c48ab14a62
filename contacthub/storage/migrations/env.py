"""Alembic environment: runs migrations on the URL given by contacthub.storage.migrate."""

from __future__ import annotations

import warnings

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.exc import SAWarning

from contacthub.storage.database import Database
from contacthub.storage.models import EXPRESSION_INDEXES, Base, is_search_object
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


def _compared(name: str | None, type_: str, is_sqlite: bool, partitions: frozenset[str]) -> bool:
    """Whether `alembic check` compares this object of the database or of the models.

    Not: the PostgreSQL partitions of the event tables (migration 0009), which are no tables of
    the models; the contact search's dialect-only indexes and its FTS5 table with its shadow
    tables (migration 0011); and on SQLite, whose reflection cannot read them, the expression
    indexes of the models (tests/contacts/test_search_indexes.py checks them there).
    """
    if type_ == "table" and name in partitions:
        return False
    if is_search_object(name):
        return False
    return not (is_sqlite and type_ == "index" and name in EXPRESSION_INDEXES)


def run_migrations_online() -> None:
    database = Database(config.get_main_option("sqlalchemy.url") or "")
    try:
        with database.write_engine.connect() as connection:
            partitions = _partitions(connection, database.is_sqlite)
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                # SQLite cannot ALTER most things: batch mode copies the table instead.
                render_as_batch=database.is_sqlite,
                compare_type=True,
                include_name=lambda name, type_, _parents: _compared(
                    name, type_, database.is_sqlite, partitions
                ),
                include_object=lambda _object, name, type_, _reflected, _compare_to: _compared(
                    name, type_, database.is_sqlite, partitions
                ),
            )
            with context.begin_transaction(), warnings.catch_warnings():
                # SQLite's reflection skips expression indexes, and autogenerate then skips the
                # models' ones, each with a warning: they are left out of the comparison there
                # on purpose (`_compared`).
                warnings.filterwarnings(
                    "ignore", "Skipped unsupported reflection of expression-based index", SAWarning
                )
                warnings.filterwarnings(
                    "ignore", "autogenerate skipping metadata-specified expression-based index"
                )
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
