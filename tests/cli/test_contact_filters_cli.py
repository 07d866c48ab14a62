"""`contacthub contact search|list` with filters, and --csv (audited as `cli`)."""

from __future__ import annotations

from contacthub.storage.database import Database
from tests.admin.reading import audit_actions
from tests.cli.conftest import Cli
from tests.contacts.csv_reading import csv_rows
from tests.contacts.filters_support import audience


def test_filters(cli: Cli, database: Database) -> None:
    world = audience(database)
    found = cli.json(
        "contact", "list", "--consent", "News", "--country", "cze", "--sort", "created"
    )
    assert [c["guid"] for c in found["contacts"]] == [world.ada, world.dan]
    assert found["total"] == 2
    assert found["contacts"][0]["country"] == "CZE"
    lapsing = cli.json("contact", "search", "--active-within", "30", "--inactive-for", "7")
    assert [c["guid"] for c in lapsing["contacts"]] == [world.dan]
    members = cli.json("contact", "search", "--group", "VIP", "--newsletter", "Weekly")
    assert [c["guid"] for c in members["contacts"]] == [world.ada]
    assert "1 shown of 1 matching." in cli.ok("contact", "list", "--group", "VIP", "Ada")


def test_bad_filters_fail_with_their_code(cli: Cli, database: Database) -> None:
    audience(database)
    assert "(unknown_group)" in cli.fails("contact", "search", "--group", "Nobody")
    assert "(unknown_consent)" in cli.fails("contact", "search", "--consent", "Nope")
    assert "(unknown_newsletter)" in cli.fails("contact", "search", "--newsletter", "Monthly")
    assert "(invalid_country)" in cli.fails("contact", "search", "--country", "XX")
    assert "(invalid_parameter)" in cli.fails("contact", "search", "--active-within", "0")
    assert "(unknown_group)" in cli.fails("contact", "search", "--group", "Nobody", "--csv")
    assert [a for _, a, _ in audit_actions(database) if a == "contact.list_exported"] == []


def test_csv(cli: Cli, database: Database) -> None:
    world = audience(database)
    result = cli("contact", "search", "--country", "CZE", "--sort", "created", "--csv")
    assert result.exit_code == 0, result.output
    # The bytes as written (the runner's `stdout` would turn CRLF into LF).
    rows = csv_rows(result.stdout_bytes.decode("utf-8"))
    assert [row["guid"] for row in rows] == [world.ada, world.dan]
    assert rows[1]["company_name"] == "'=HYPERLINK(1)"
    assert audit_actions(database)[-1] == ("cli", "contact.list_exported", "")
