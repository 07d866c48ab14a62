"""With --json, every error is JSON too: one object on stderr, nothing on stdout."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.core import TyperGroup
from typer.main import get_command
from typer.testing import CliRunner, Result

from contacthub.cli.main import app
from tests.cli.conftest import Cli, cli_on

GUID = "06b035b8-6658-4a1b-b1de-5994e4975fb1"
PASSWORD = "a long enough password\n"
TEXTS = ("--short-text", "Short", "--full-text", "Full")

# Every command that takes --json, with the arguments it needs to get as far as the store.
ARGUMENTS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("demo",): ("--until", "not a time"),  # demo creates its store: it fails on its input
    ("channel", "create"): ("Web",),
    ("channel", "list"): (),
    ("channel", "set-consent-gate"): ("Web", "Consent"),
    ("apikey", "create"): ("--channel", "Web", "--access", "tracking"),
    ("apikey", "list"): (),
    ("apikey", "revoke"): ("1",),
    ("apikey", "disable"): ("1",),
    ("apikey", "enable"): ("1",),
    ("cors", "add"): ("https://www.example.com",),
    ("cors", "list"): (),
    ("cors", "remove"): ("1",),
    ("consent", "create"): ("Consent", "--language", "en", "--short-text", "s", "--full-text", "f"),
    ("consent", "set-text"): (
        "Consent",
        "--language",
        "en",
        "--short-text",
        "s",
        "--full-text",
        "f",
    ),
    ("consent", "set-default-language"): ("Consent", "en"),
    ("consent", "list"): (),
    ("activity-type", "create"): ("custom_x", "--display-name", "X"),
    ("activity-type", "enable"): ("custom_x",),
    ("activity-type", "disable"): ("custom_x",),
    ("activity-type", "list"): (),
    ("contact", "search"): (),
    ("contact", "list"): (),
    ("contact", "show"): (GUID,),
    ("contact", "erase"): (GUID, "--yes"),
    ("newsletter", "create"): (
        "News",
        "--sender-name",
        "Us",
        "--sender-email",
        "us@example.com",
        "--base-url",
        "https://www.example.com",
    ),
    ("newsletter", "list"): (),
    ("newsletter", "update"): ("News", "--consent", "nope"),
    ("subscriber", "add"): ("ada@example.com", "--newsletter", "News"),
    ("subscriber", "list"): ("--newsletter", "News"),
    ("subscriber", "import"): ("README.md", "--newsletter", "News"),
    ("issue", "create"): ("--newsletter", "News", "--subject", "Hi", "--html-file", "README.md"),
    ("issue", "list"): ("--newsletter", "News"),
    ("issue", "send"): (GUID,),
    ("issue", "stats"): (GUID,),
    ("issue", "engagement"): (GUID,),
    ("issue", "set-group"): (GUID, "VIP"),
    ("issue", "schedule"): (GUID, "--at", "2030-12-24T09:00Z"),
    ("issue", "unschedule"): (GUID,),
    ("issue", "confirm-schedule"): (GUID,),
    ("issue", "test-send"): (GUID, "--to", "ada@example.com"),
    ("group", "create"): ("VIP", "--static"),
    ("group", "update"): ("VIP", "--description", "Best customers"),
    ("group", "list"): (),
    ("group", "show"): ("VIP",),
    ("group", "members"): ("VIP",),
    ("group", "add"): ("VIP", GUID),
    ("group", "remove"): ("VIP", GUID),
    ("group", "rebuild"): ("VIP",),
    ("group", "delete"): ("VIP",),
    ("group", "preview"): ("--conditions-file", "README.md"),
    ("suppression", "list"): ("--reason", "manual", "--search", "ada"),
    ("suppression", "show"): ("ada@example.com",),
    ("suppression", "add"): ("ada@example.com", "--evidence", "Asked by phone"),
    ("suppression", "remove"): ("ada@example.com",),
    ("suppression", "rejections"): (),
    ("webhooks", "list"): (),
    ("webhooks", "add"): ("CRM", "https://crm.example.com/hook", "--event", "contact.created"),
    ("webhooks", "update"): (
        "6f1c2a0e-8a43-4c1e-9d55-0f3b8f5a2f10",
        "--url",
        "https://crm.example.com/v2",
    ),
    ("webhooks", "enable"): ("6f1c2a0e-8a43-4c1e-9d55-0f3b8f5a2f10",),
    ("webhooks", "disable"): ("6f1c2a0e-8a43-4c1e-9d55-0f3b8f5a2f10",),
    ("webhooks", "remove"): ("6f1c2a0e-8a43-4c1e-9d55-0f3b8f5a2f10",),
    ("webhooks", "rotate-secret"): ("6f1c2a0e-8a43-4c1e-9d55-0f3b8f5a2f10",),
    ("webhooks", "deliveries"): ("6f1c2a0e-8a43-4c1e-9d55-0f3b8f5a2f10", "--limit", "5"),
    ("webhooks", "retry"): ("1",),
    ("webhooks", "replay"): ("6f1c2a0e-8a43-4c1e-9d55-0f3b8f5a2f10", "--since", "2026-01-01"),
    ("user", "create"): ("ada@example.com", "--password-stdin"),
    ("user", "list"): (),
    ("user", "set-password"): ("ada@example.com", "--password-stdin"),
    ("user", "disable"): ("ada@example.com",),
    ("user", "enable"): ("ada@example.com",),
    ("token", "create"): ("--user", "ada@example.com"),
    ("token", "list"): (),
    ("token", "revoke"): ("1",),
    ("bounces", "poll"): (),
    ("retention", "list"): (),
    ("retention", "set"): ("audit_log", "30"),
    ("retention", "remove"): ("audit_log",),
    ("retention", "run"): (),
    ("retention", "runs"): (),
}


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(command, TyperGroup):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))
    elif any(parameter.name == "as_json" for parameter in command.params):
        yield path


def json_error(result: Result) -> dict[str, Any]:
    """The error a --json command printed: one JSON object on stderr, nothing on stdout."""
    assert result.stdout == "", result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    error: dict[str, Any] = json.loads(lines[0])
    assert set(error) <= {"error", "code", "field"}
    assert isinstance(error["error"], str)
    assert isinstance(error["code"], str)
    return error


def test_the_list_covers_every_command_that_takes_json() -> None:
    assert set(_commands(get_command(app))) == set(ARGUMENTS)


@pytest.mark.parametrize("command", sorted(ARGUMENTS), ids=" ".join)
def test_a_failing_command_with_json_prints_a_json_error(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    missing = cli_on(f"sqlite:///{tmp_path / 'missing.db'}", tmp_path, COLUMNS="80")
    result = CliRunner().invoke(
        app, [*command, *ARGUMENTS[command], "--json"], env=missing.env, input=PASSWORD * 2
    )
    assert result.exit_code == 1, result.output
    error = json_error(result)
    expected = "invalid_until" if command == ("demo",) else "database_missing"
    assert error["code"] == expected, error


@pytest.mark.parametrize("command", sorted(ARGUMENTS), ids=" ".join)
def test_a_usage_error_with_json_is_json_too(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*command, "--json", "--no-such-option"])
    # Click's status for a usage error, as without --json.
    assert result.exit_code == 2, result.output
    error = json_error(result)
    assert error["code"] == "usage_error"
    # Click may add a suggestion: "(Possible options: --description)".
    assert error["error"].startswith("No such option: --no-such-option"), error


def test_usage_errors_name_what_is_wrong() -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["apikey", "create", "--json"])
    assert json_error(missing) == {"error": "Missing option '--channel'.", "code": "usage_error"}
    not_a_number = runner.invoke(app, ["apikey", "revoke", "x", "--json"])
    assert not_a_number.exit_code == 2
    assert "Invalid value for 'key_id'" in json_error(not_a_number)["error"]
    unknown = runner.invoke(app, ["channel", "lsit", "--json"])
    assert unknown.exit_code == 2
    assert json_error(unknown)["error"].startswith("No such command 'lsit'.")
    # After `--`, "--json" is an argument, not the option: the error is text.
    plain = runner.invoke(app, ["channel", "create", "--bogus", "--", "--json"])
    assert plain.exit_code == 2
    assert "No such option: --bogus" in plain.stderr
    assert not plain.stderr.startswith("{")


def test_domain_errors_carry_their_code_and_field(cli: Cli) -> None:
    result = cli("apikey", "create", "--channel", "Nope", "--access", "tracking", "--json")
    assert result.exit_code == 1
    assert json_error(result) == {"error": "No channel named 'Nope'.", "code": "unknown_channel"}
    # The field at fault, when there is one, as the APIs name it.
    slash = cli("channel", "create", "a/b", "--json")
    assert slash.exit_code == 1
    assert json_error(slash) == {
        "error": "A channel name cannot contain '/'.",
        "code": "invalid_name",
        "field": "name",
    }
    unconfirmed = cli("contact", "erase", GUID, "--json")
    assert unconfirmed.exit_code == 1
    assert json_error(unconfirmed)["code"] == "confirmation_required"
    # Without --json, the same error is the one line people read.
    text = cli.fails("apikey", "create", "--channel", "Nope", "--access", "tracking")
    assert text == "error: No channel named 'Nope'. (unknown_channel)"


def test_an_invalid_configuration_with_json_is_json(tmp_path: Path) -> None:
    config = tmp_path / "contacthub.toml"
    config.write_text('databse_url = "sqlite:///typo.db"\n', encoding="utf-8")
    with_typo = cli_on(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path, CONTACTHUB_CONFIG=str(config))
    result = with_typo("channel", "list", "--json")
    assert result.exit_code == 1
    error = json_error(result)
    assert error["code"] == "invalid_configuration"
    assert "databse_url" in error["error"]


def test_no_progress_bar_on_stderr_with_json_off_a_terminal(cli: Cli, tmp_path: Path) -> None:
    # A script reading stderr finds an error there, or nothing.
    cli.ok(
        "newsletter",
        "create",
        "News",
        "--sender-name",
        "Us",
        "--sender-email",
        "us@example.com",
        "--base-url",
        "https://www.example.com",
    )
    csv = tmp_path / "people.csv"
    csv.write_text("email\nada@example.com\n", encoding="utf-8")
    result = cli("subscriber", "import", str(csv), "--newsletter", "News", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["added"] == 1
    assert result.stderr == ""
