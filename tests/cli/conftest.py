"""The `contacthub` command line, driven in-process on each test's database (SQLite, PostgreSQL)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from typer.testing import CliRunner, Result

from contacthub.cli.main import app
from contacthub.storage.database import Database
from contacthub.storage.migrate import alembic_config


@dataclass
class Cli:
    """Runs `contacthub ARGS…` with CONTACTHUB_DATABASE_URL set to the test's database."""

    database_url: str
    env: dict[str, str]

    def __call__(self, *args: str) -> Result:
        return CliRunner().invoke(app, list(args), env=self.env)

    def ok(self, *args: str) -> str:
        """Run a command that must succeed; its standard output."""
        result = self(*args)
        assert result.exit_code == 0, (
            f"contacthub {' '.join(args)} exited {result.exit_code}:\n{result.output}"
            f"\n{result.exception!r}"
        )
        return result.stdout

    def json(self, *args: str) -> Any:
        """Run a command with --json; its parsed output."""
        return json.loads(self.ok(*args, "--json"))

    def fails(self, *args: str) -> str:
        """Run a command that must fail with exit status 1 (not a traceback); its error output."""
        result = self(*args)
        assert result.exit_code == 1, (
            f"contacthub {' '.join(args)} exited {result.exit_code}:\n{result.output}"
            f"\n{result.exception!r}"
        )
        assert result.stderr.startswith("error:"), result.output
        # Rich wraps long lines for the terminal; tests read the message as one line.
        return " ".join(result.stderr.split())


def cli_on(url: str, tmp_path: Path, **env: str) -> Cli:
    """The command line on any URL, with no configuration file unless one is given."""
    return Cli(
        url,
        {"CONTACTHUB_DATABASE_URL": url, "CONTACTHUB_CONFIG": str(tmp_path / "absent"), **env},
    )


def current_revision(database_url: str) -> str | None:
    """The migration a database is at; None when it was never migrated."""
    database = Database(database_url)
    try:
        with database.read() as session:
            if not inspect(session.connection()).has_table("alembic_version"):
                return None
            return session.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        database.dispose()


def head_revision() -> str:
    """The newest migration."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Cli:
    # Wide enough that no table cell is folded (GUIDs are read whole from tables).
    return cli_on(database_url, tmp_path, COLUMNS="200")
