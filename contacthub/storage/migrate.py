"""Schema migrations (Alembic), applied by `contacthub migrate` and on `contacthub serve`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    """An Alembic configuration for this package's migrations and the given database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Alembic reads the URL through ConfigParser, which treats % as interpolation.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema up to `revision` (default: the newest)."""
    command.upgrade(alembic_config(database_url), revision)


@dataclass(frozen=True, slots=True)
class SchemaState:
    """Where a database's schema stands against this package's migrations."""

    current: str | None
    """The migration the database is at; None when it was never migrated (no contacthub tables)."""
    head: str
    """The newest migration this package knows."""
    known: bool
    """Whether this package knows `current` (a newer contacthub may have migrated it)."""

    @property
    def up_to_date(self) -> bool:
        """Whether the database is at the newest migration."""
        return self.current == self.head


@cache
def _migrations() -> tuple[str, frozenset[str]]:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    assert head is not None, "the package ships its migrations"
    return head, frozenset(revision.revision for revision in script.walk_revisions())


def schema_state(connection: Connection) -> SchemaState:
    """The database's migration against the newest one, read without changing anything."""
    current = MigrationContext.configure(connection).get_current_revision()
    head, known = _migrations()
    return SchemaState(current, head, current is None or current in known)
