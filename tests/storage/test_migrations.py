"""The migrations build exactly the schema of the models, and can be walked down and up again."""

from __future__ import annotations

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from contacthub.storage.database import Database
from contacthub.storage.migrate import alembic_config, upgrade
from contacthub.storage.models import Base, is_search_object
from contacthub.storage.partitions import partition_names


def table_names(database_url: str) -> set[str]:
    """The tables, without PostgreSQL's partitions of the event tables (migration 0009) and the
    contact search's FTS5 table with its shadow tables on SQLite (migration 0011)."""
    database = Database(database_url)
    try:
        with database.read() as session:
            names = set(inspect(session.connection()).get_table_names())
            if database.is_sqlite:
                return {name for name in names if not is_search_object(name)}
            return names - partition_names(session.connection())
    finally:
        database.dispose()


def revisions_oldest_first() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    # `alembic check`: autogenerate finds nothing to do (tables, columns, types, indexes,
    # constraints), so no model change is missing its migration.
    command.check(alembic_config(database_url))
    assert table_names(database_url) == {*Base.metadata.tables, "alembic_version"}


def test_downgrade_to_base_and_upgrade_again(database_url: str) -> None:
    config = alembic_config(database_url)
    command.downgrade(config, "base")
    assert table_names(database_url) <= {"alembic_version"}
    upgrade(database_url)
    command.check(config)
    assert table_names(database_url) == {*Base.metadata.tables, "alembic_version"}


def test_each_migration_steps_down_and_up(database_url: str) -> None:
    # The stairway: every downgrade undoes exactly its upgrade, one revision at a time.
    config = alembic_config(database_url)
    revisions = revisions_oldest_first()
    assert len(revisions) >= 2
    for _ in revisions:
        command.downgrade(config, "-1")
    assert table_names(database_url) <= {"alembic_version"}
    for revision in revisions:
        command.upgrade(config, revision)
        command.downgrade(config, "-1")
        command.upgrade(config, revision)
    command.check(config)


def test_upgrade_is_idempotent(database_url: str) -> None:
    before = table_names(database_url)
    upgrade(database_url)
    upgrade(database_url)
    assert table_names(database_url) == before


def test_subscribers_are_indexed_by_contact(database_url: str) -> None:
    # Email conditions of groups and sending to a group look subscribers up by contact.
    database = Database(database_url)
    try:
        with database.read() as session:
            indexes = inspect(session.connection()).get_indexes("subscribers")
    finally:
        database.dispose()
    assert any(index["column_names"] == ["contact_id"] for index in indexes)
