"""The command line as a whole: the README's commands exist, migrate, configuration errors."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from alembic.command import downgrade
from sqlalchemy import text
from typer.testing import CliRunner

from contacthub.cli.main import app
from contacthub.storage.database import Database
from contacthub.storage.migrate import alembic_config
from tests.cli.conftest import Cli, cli_on, current_revision, head_revision
from tests.servers import contacthub_command, free_port

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
    assert "(database_missing)" in cli.fails("channel", "list")
    cli.ok("migrate")
    assert current_revision(url) == head_revision()
    assert cli.json("channel", "list") == []


# Commands that read or change data, each with what it needs to get as far as the store.
NEEDS_A_MIGRATED_STORE = (
    ("channel", "list"),
    ("channel", "create", "Web"),
    ("apikey", "list"),
    ("consent", "list"),
    ("contact", "search"),
    ("newsletter", "list"),
    ("subscriber", "import", "--newsletter", "News", "README.md"),
    ("issue", "send", "06b035b8-6658-4a1b-b1de-5994e4975fb1"),
    ("token", "list"),
)


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory without a hub, and no CONTACTHUB_* setting: the default store."""
    for name in list(os.environ):
        if name.startswith("CONTACTHUB_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("command", NEEDS_A_MIGRATED_STORE, ids=" ".join)
def test_a_command_run_elsewhere_creates_no_database_and_says_which_it_looked_for(
    elsewhere: Path, command: tuple[str, ...]
) -> None:
    result = CliRunner().invoke(app, list(command), env={"COLUMNS": "80"})
    assert result.exit_code == 1, result.output
    assert not (elsewhere / "contacthub.db").exists()
    assert result.stdout == ""
    # One line (the terminal wraps it), naming the file, the URL and what to do.
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(
        f"error: There is no database at {elsewhere / 'contacthub.db'} (sqlite:///contacthub.db):"
        " run `contacthub migrate` to create one there, or set CONTACTHUB_DATABASE_URL"
    )
    assert result.stderr.rstrip().endswith("(database_missing)")


def test_migrate_then_creates_the_store_the_other_commands_refused_to(elsewhere: Path) -> None:
    runner = CliRunner()
    refused = runner.invoke(app, ["channel", "list", "--json"])
    assert refused.exit_code == 1
    assert json.loads(refused.stderr)["code"] == "database_missing"
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    listed = runner.invoke(app, ["channel", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == []


def shown_as(database_url: str) -> str:
    """How messages name a store: a SQLite file by its path, then the URL (no password here)."""
    if database_url.startswith("sqlite:///"):
        return f"{database_url.removeprefix('sqlite:///')} ({database_url})"
    return database_url


@pytest.mark.parametrize(
    ("revision", "expected"),
    [
        ("base", "is not migrated: it has no contacthub tables. Run `contacthub migrate`"),
        ("0002", "is at migration 0002, not {head}: run `contacthub migrate`"),
    ],
)
def test_a_store_not_migrated_is_named_with_what_to_do(
    database_url: str, tmp_path: Path, revision: str, expected: str
) -> None:
    downgrade(alembic_config(database_url), revision)
    cli = cli_on(database_url, tmp_path)
    for command in (("channel", "list"), ("channel", "create", "Web"), ("newsletter", "list")):
        message = cli.fails(*command)
        shown = expected.format(head=head_revision())
        assert f"The database {shown_as(database_url)} {shown}" in message
        assert message.endswith("(database_not_migrated)")
    assert json.loads(cli("channel", "list", "--json").stderr)["code"] == "database_not_migrated"
    cli.ok("migrate")
    assert cli.json("channel", "list") == []


def test_a_store_migrated_by_a_newer_contacthub_is_refused(
    database_url: str, tmp_path: Path
) -> None:
    database = Database(database_url)
    try:
        with database.write() as session:
            session.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        database.dispose()
    message = cli_on(database_url, tmp_path).fails("channel", "list")
    assert "is at migration 9999, which this contacthub does not know" in message
    assert message.endswith("(unknown_migration)")


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
    message = broken.fails("migrate")
    assert "unable to open database file" in message
    assert "CONTACTHUB_DATABASE_URL" in message
    for command in (["channel", "list"], ["channel", "create", "Web"]):
        message = broken.fails(*command)
        assert f"There is no database at {tmp_path / 'missing-dir' / 'hub.db'}" in message
        assert "CONTACTHUB_DATABASE_URL" in message
    unreachable = cli_on("postgresql://postgres@127.0.0.1:1/nowhere", tmp_path)
    message = unreachable.fails("channel", "list")
    assert "the database postgresql://postgres@127.0.0.1:1/nowhere failed" in message
    assert message.endswith("(database_error)")


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


@pytest.mark.parametrize("command", ["proxy", "facade"])
def test_proxy_and_facade_refuse_a_hub_url_they_could_never_reach(
    command: str, tmp_path: Path
) -> None:
    # A real process: were the URL taken, the server would start and never return.
    finished = subprocess.run(
        [
            str(contacthub_command()),
            command,
            "--hub",
            "notaurl",
            "--api-key",
            "chk_key",
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert finished.returncode == 1, finished.stderr
    assert finished.stdout == ""
    assert finished.stderr == (
        "error: The hub URL must be an absolute http(s) URL, e.g. https://www.example.com "
        "('notaurl' given). (invalid_hub_url)\n"
    )
