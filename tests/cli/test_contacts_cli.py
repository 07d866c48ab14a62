"""`contacthub contact …`: search, show, export, erase; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select
from starlette.testclient import TestClient

from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent
from tests import factories
from tests.cli.conftest import Cli
from tests.contacts.support import contact_id, scenario
from tests.email.tracking_support import ANNA
from tests.tracking.support import post_activities


def audit_actions(database: Database) -> list[tuple[str, str, str]]:
    with database.read() as session:
        rows = session.execute(
            select(AuditEvent.actor, AuditEvent.action, AuditEvent.subject).order_by(AuditEvent.id)
        ).all()
    return [(actor, action, subject) for actor, action, subject in rows]


def test_search(cli: Cli, database: Database) -> None:
    ada = factories.contact_with(database, email="Ada@Example.com", first_name="Ada")
    grace = factories.contact_with(database, email="grace@example.com", last_name="Hopper")
    anonymous = factories.contact(database)
    everyone = cli.json("contact", "search")
    assert [c["guid"] for c in everyone["contacts"]] == [anonymous, grace, ada]
    assert everyone["total"] == 3
    assert everyone["contacts"][2]["email"] == "Ada@Example.com"
    assert everyone["contacts"][2]["name"] == "Ada"
    found = cli.json("contact", "search", "ADA")
    assert ([c["guid"] for c in found["contacts"]], found["total"]) == ([ada], 1)
    first = cli.json("contact", "search", "--sort", "email", "--limit", "1")
    assert [c["guid"] for c in first["contacts"]] == [ada]
    second = cli.json(
        "contact", "search", "--sort", "email", "--limit", "1", "--after", first["next_after"]
    )
    assert [c["guid"] for c in second["contacts"]] == [grace]
    table = cli.ok("contact", "search", "hopper")
    assert grace in table
    assert "1 shown of 1 matching." in table
    assert "Next page: --after" in cli.ok("contact", "search", "--limit", "1")


def test_search_refuses_bad_input(cli: Cli) -> None:
    assert "(invalid_sort)" in cli.fails("contact", "search", "--sort", "name")
    assert "(invalid_cursor)" in cli.fails("contact", "search", "--after", "nope")
    assert "(invalid_parameter)" in cli.fails("contact", "search", "--limit", "0")


def test_show(cli: Cli, client: TestClient, database: Database) -> None:
    world = scenario(client, database)
    shown = cli.json("contact", "show", world.anna)
    assert shown["guid"] == world.anna
    assert shown["fields"]["ContactEmail"] == ANNA
    assert shown["consents"] == [
        {
            "consent": "TrackingConsent",
            "agreed": True,
            "revision": 2,
            "current_revision": 2,
            "events": 3,
        }
    ]
    assert [s["newsletter"] for s in shown["subscriptions"]] == ["Weekly"]
    assert [a["type"] for a in shown["latest_activities"]] == [
        "emailclick",
        "emailopen",
        "datainput",
        "click",
        "pagevisit",
    ]
    table = cli.ok("contact", "show", world.anna)
    assert ANNA in table
    assert "TrackingConsent" in table
    assert "Opened email 'Spring news'" in table
    assert "(unknown_contact)" in cli.fails("contact", "show", "not-a-guid")


def test_export_to_a_file_or_standard_output(
    cli: Cli, client: TestClient, database: Database, tmp_path: Path
) -> None:
    world = scenario(client, database)
    target = tmp_path / "anna.json"
    output = cli.ok("contact", "export", world.anna, "--output", str(target))
    assert f"Exported contact {world.anna}" in output
    data = json.loads(target.read_text(encoding="utf-8"))
    assert data["contact"]["guid"] == world.anna
    assert len(data["activities"]) == 5
    printed = json.loads(cli.ok("contact", "export", world.anna))
    assert printed["contact"] == data["contact"]
    assert audit_actions(database)[-2:] == [
        ("cli", "contact.exported", world.anna),
        ("cli", "contact.exported", world.anna),
    ]


def test_an_unwritable_export_fails_in_one_line_and_is_not_recorded(
    cli: Cli, database: Database, tmp_path: Path
) -> None:
    guid = factories.contact(database)
    missing = tmp_path / "missing" / "contact.json"
    for target in (missing, tmp_path):  # a directory that does not exist; a directory
        result = cli("contact", "export", guid, "--output", str(target))
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit), result.exception  # not a traceback
        assert result.stderr.startswith("error: Cannot write the export to"), result.stderr
        assert result.stderr.strip().count("\n") == 0, result.stderr
        assert "(invalid_file)" in result.stderr
    assert not missing.parent.exists()
    assert [a for a in audit_actions(database) if a[1] == "contact.exported"] == []


def test_erase_needs_yes(cli: Cli, client: TestClient, database: Database) -> None:
    world = scenario(client, database)
    message = cli.fails("contact", "erase", world.anna)
    assert "add --yes to confirm" in message
    assert "(confirmation_required)" in message
    assert contact_id(database, world.anna) is not None
    erased = cli.json("contact", "erase", world.anna, "--yes")
    assert erased == {
        "erased": world.anna,
        "activities": 5,
        "consent_agreements": 3,
        "subscriptions": 1,
        "deliveries": 1,
        "email_opens": 2,
        "email_clicks": 1,
    }
    assert contact_id(database, world.anna) is None
    assert audit_actions(database)[-1] == ("cli", "contact.erased", world.anna)
    answer = post_activities(client, world.setup, world.anna, [{"type": "click", "value": "x"}])
    assert answer.status_code == 404
    assert "(unknown_contact)" in cli.fails("contact", "erase", world.anna, "--yes")
