"""The command line as a whole: the README's commands exist, migrate, configuration errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from contacthub.cli.main import app
from tests.cli.conftest import Cli, cli_on, current_revision, head_revision

README_COMMANDS = ("serve", "migrate", "proxy", "channel", "apikey", "consent", "activity-type")


def test_help_lists_the_readme_commands() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for command in README_COMMANDS:
        assert f" {command} " in result.stdout, f"`contacthub {command}` missing from --help"


def test_no_arguments_shows_help() -> None:
    result = CliRunner().invoke(app, [])
    assert "Usage" in result.output
    assert "channel" in result.output


@pytest.mark.parametrize(
    "group", ["channel", "apikey", "consent", "activity-type"], ids=lambda g: g
)
def test_every_command_group_has_help(group: str) -> None:
    result = CliRunner().invoke(app, [group, "--help"])
    assert result.exit_code == 0
    assert "create" in result.stdout


def test_migrate_is_idempotent(cli: Cli) -> None:
    # The fixture's database is migrated already: migrating again changes nothing, twice.
    assert current_revision(cli.database_url) == head_revision()
    cli.json("channel", "create", "Web")
    assert "Database is up to date." in cli.ok("migrate")
    assert "Database is up to date." in cli.ok("migrate")
    assert current_revision(cli.database_url) == head_revision()
    assert [c["name"] for c in cli.json("channel", "list")] == ["Web"]


def test_migrate_builds_a_new_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    cli = cli_on(url, tmp_path)
    assert "no such table" in cli.fails("channel", "list")
    cli.ok("migrate")
    assert current_revision(url) == head_revision()
    assert cli.json("channel", "list") == []


def test_default_database_is_a_file_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("CONTACTHUB_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "contacthub.db").is_file()
    assert current_revision(f"sqlite:///{tmp_path / 'contacthub.db'}") == head_revision()


def test_unreachable_database_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    broken = cli_on(f"sqlite:///{tmp_path / 'missing-dir' / 'hub.db'}", tmp_path)
    for command in (["migrate"], ["channel", "list"], ["channel", "create", "Web"]):
        message = broken.fails(*command)
        assert "unable to open database file" in message
        assert "CONTACTHUB_DATABASE_URL" in message


def test_invalid_configuration_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "contacthub.toml"
    config.write_text('databse_url = "sqlite:///typo.db"\n', encoding="utf-8")
    with_typo = cli_on(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path, CONTACTHUB_CONFIG=str(config))
    message = with_typo.fails("channel", "list")
    assert "invalid configuration" in message
    assert "databse_url" in message

    mysql = cli_on("mysql://x/y", tmp_path)
    message = mysql.fails("migrate")
    assert "database_url" in message
    assert "must be a sqlite:/// or postgresql:// URL" in message
