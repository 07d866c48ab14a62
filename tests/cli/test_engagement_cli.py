"""`contacthub issue engagement`, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select

from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent
from tests.admin.test_issue_engagement import sent_with_hits
from tests.cli.conftest import Cli
from tests.email.tracking_support import ANNA, BOB, CAROL


def test_the_timeline(cli: Cli, database: Database) -> None:
    sent = sent_with_hits(database)
    line = cli.json("issue", "engagement", sent.guid)
    assert (line["issue"], line["opens"], line["clicks"]) == (sent.guid, 2, 2)
    assert line["buckets"][0]["unit"] == "hour"
    assert cli.json("issue", "engagement", sent.guid, "--include-machines")["opens"] == 3
    table = cli.ok("issue", "engagement", sent.guid)
    assert "+0 h (1 h)" in table
    assert "+2 d (1 d)" in table
    assert "2 opens and 2 clicks since" in table


def test_people_pages(cli: Cli, database: Database) -> None:
    sent = sent_with_hits(database)
    first = cli.json("issue", "engagement", sent.guid, "--people", "--limit", "1")
    assert ([p["email"] for p in first["people"]], first["total"]) == ([ANNA], 2)
    rest = cli.json(
        "issue", "engagement", sent.guid, "--people", "--after", str(first["next_after"])
    )
    assert ([p["email"] for p in rest["people"]], rest["next_after"]) == ([BOB], None)
    table = cli.ok("issue", "engagement", sent.guid, "--people", "--include-machines")
    assert CAROL in table
    assert "3 shown of 3." in table


def test_everyone_as_csv_is_audited(cli: Cli, database: Database) -> None:
    sent = sent_with_hits(database)
    out = cli.ok("issue", "engagement", sent.guid, "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["email"], r["opens"], r["clicks"]) for r in rows] == [
        (ANNA, "1", "1"),
        (BOB, "1", "0"),
    ]
    with database.read() as session:
        actions = session.execute(select(AuditEvent.actor, AuditEvent.action)).all()
    assert [tuple(a) for a in actions] == [("cli", "issue.engagement_exported")]
    refused = cli("issue", "engagement", sent.guid, "--csv", "--json")
    assert refused.exit_code == 2


def test_unknown_issue(cli: Cli, database: Database) -> None:
    assert "No email issue" in cli.fails(
        "issue", "engagement", "06b035b8-6658-4a1b-b1de-5994e4975fb1", "--people"
    )
