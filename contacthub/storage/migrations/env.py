"""Alembic environment: runs migrations on the URL given by contacthub.storage.migrate."""

from __future__ import annotations

from alembic import context

from contacthub.storage.database import Database
from contacthub.storage.models import Base

config = context.config

# Any constant: the key of the PostgreSQL advisory lock that serialises migrations.
MIGRATION_LOCK_KEY = 7_355_608


def run_migrations_online() -> None:
    database = Database(config.get_main_option("sqlalchemy.url") or "")
    try:
        with database.write_engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                # SQLite cannot ALTER most things: batch mode copies the table instead.
                render_as_batch=database.is_sqlite,
                compare_type=True,
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
