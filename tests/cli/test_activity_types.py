"""`contacthub activity-type …`, checked against POST /activities."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from contacthub.storage.database import Database
from tests.admin.reading import audit_actions
from tests.cli.conftest import Cli


def log_loan_activity(cli: Cli, client: TestClient) -> Any:
    """One `loan_calculator` activity through the tracking API; its result in the 207."""
    if not cli.json("channel", "list"):
        cli.ok("channel", "create", "Web")
    channel = cli.json("channel", "list")[0]["guid"]
    key = cli.json("apikey", "create", "--channel", "Web", "--access", "tracking")["key"]
    headers = {"Authorization": f"Bearer {key}"}
    contact = client.post("/Kentico.Tracking/contacts", headers=headers).json()["contact"]
    answer = client.post(
        "/Kentico.Tracking/activities",
        headers=headers,
        json={
            "channel": channel,
            "contact": contact,
            "activities": [{"type": "loan_calculator", "value": "5000"}],
        },
    )
    assert answer.status_code == 207, answer.text
    return answer.json()["results"][0]


def test_activity_type_create(cli: Cli, client: TestClient) -> None:
    assert log_loan_activity(cli, client)["status"] >= 400  # unknown type
    record = cli.json(
        "activity-type", "create", "loan_calculator", "--display-name", "Loan calculator"
    )
    assert record == {
        "code_name": "loan_calculator",
        "display_name": "Loan calculator",
        "enabled": True,
    }
    assert log_loan_activity(cli, client) == {"status": 202}


def test_activity_type_create_disabled(cli: Cli) -> None:
    record = cli.json(
        "activity-type", "create", "loan_calculator", "--display-name", "Loan", "--disabled"
    )
    assert record["enabled"] is False


def test_disable_and_enable_take_effect_on_the_api(cli: Cli, client: TestClient) -> None:
    cli.ok("activity-type", "create", "loan_calculator", "--display-name", "Loan calculator")
    assert cli.json("activity-type", "disable", "loan_calculator")["enabled"] is False
    refused = log_loan_activity(cli, client)
    assert 400 <= refused["status"] < 500
    assert refused["error"]
    assert cli.json("activity-type", "enable", "loan_calculator")["enabled"] is True
    assert log_loan_activity(cli, client) == {"status": 202}


def test_activity_type_list(cli: Cli) -> None:
    assert cli.json("activity-type", "list") == []
    assert "No activity types." in cli.ok("activity-type", "list")
    cli.ok("activity-type", "create", "webinar", "--display-name", "Webinar")
    cli.ok("activity-type", "create", "loan_calculator", "--display-name", "Loan calculator")
    cli.ok("activity-type", "disable", "webinar")
    assert cli.json("activity-type", "list") == [
        {"code_name": "loan_calculator", "display_name": "Loan calculator", "enabled": True},
        {"code_name": "webinar", "display_name": "Webinar", "enabled": False},
    ]
    table = cli.ok("activity-type", "list")
    assert "Loan calculator" in table
    assert "Webinar" in table


def test_built_in_names_are_refused(cli: Cli) -> None:
    for name in ("pagevisit", "click", "datainput", "PageVisit"):
        message = cli.fails("activity-type", "create", name, "--display-name", "Mine")
        assert "is a built-in activity type" in message
        assert "(built_in_type)" in message
    assert cli.json("activity-type", "list") == []


def test_activity_type_create_refuses_bad_input(cli: Cli) -> None:
    cli.ok("activity-type", "create", "webinar", "--display-name", "Webinar")
    assert "(type_exists)" in cli.fails(
        "activity-type", "create", "Webinar", "--display-name", "Again"
    )
    assert cli.fails("activity-type", "create", "two words", "--display-name", "X") == (
        "error: An activity type code name has 1 to 100 letters, digits, '_', '.' or '-' "
        "(and is not '.' or '..'). (invalid_code_name)"
    )
    assert "(invalid_name)" in cli.fails("activity-type", "create", "blank", "--display-name", " ")


def test_enable_and_disable_refuse_unknown_types(cli: Cli) -> None:
    for command in ("enable", "disable"):
        message = cli.fails("activity-type", command, "nope")
        assert "No activity type 'nope'." in message


def test_changes_are_recorded_in_the_audit_log(cli: Cli, database: Database) -> None:
    cli.ok("activity-type", "create", "quiz", "--display-name", "Quiz")
    cli.ok("activity-type", "disable", "quiz")
    cli.ok("activity-type", "enable", "quiz")
    cli.fails("activity-type", "enable", "nope")
    assert audit_actions(database) == [
        ("cli", "activity_type.created", "quiz"),
        ("cli", "activity_type.disabled", "quiz"),
        ("cli", "activity_type.enabled", "quiz"),
    ]


def test_built_in_types_cannot_be_switched(cli: Cli) -> None:
    assert "(built_in_type)" in cli.fails("activity-type", "disable", "pagevisit")
