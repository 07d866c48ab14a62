"""`contacthub suppression …`, on SQLite and PostgreSQL."""

from __future__ import annotations

from contacthub.storage.database import Database
from contacthub.storage.models import FeedbackRejection
from contacthub.suppressions import service as suppressions
from tests.cli.conftest import Cli


def test_add_list_show_and_remove(cli: Cli, database: Database) -> None:
    with database.write() as session:
        suppressions.suppress(session, "gone@example.com", reason="hard_bounce", source="imap")
    added = cli.json("suppression", "add", "Ann@Example.com", "--evidence", "Asked by letter")
    assert {k: added[k] for k in ("email", "reason", "source", "evidence", "created_by")} == {
        "email": "ann@example.com",
        "reason": "manual",
        "source": "cli",
        "evidence": "Asked by letter",
        "created_by": "cli",
    }
    kept = cli.fails("suppression", "add", "gone@example.com")
    assert "already suppressed (hard_bounce, since" in kept
    assert "(already_suppressed)" in kept

    listed = cli.json("suppression", "list")
    assert [s["email"] for s in listed["suppressions"]] == ["ann@example.com", "gone@example.com"]
    assert listed["counts"]["manual"] == 1
    assert listed["next_before"] is None
    searched = cli.json("suppression", "list", "--search", "GONE", "--reason", "hard_bounce")
    assert [s["email"] for s in searched["suppressions"]] == ["gone@example.com"]
    first = cli.json("suppression", "list", "--limit", "1")
    rest = cli.json("suppression", "list", "--before", str(first["next_before"]))
    assert [s["email"] for s in rest["suppressions"]] == ["gone@example.com"]
    table = cli.ok("suppression", "list")
    assert "ann@example.com" in table
    assert "2 matching" in table

    assert cli.json("suppression", "show", "ann@example.com")["evidence"] == "Asked by letter"
    assert cli.json("suppression", "remove", "ann@example.com")["email"] == "ann@example.com"
    assert "is not suppressed" in cli.fails("suppression", "show", "ann@example.com")
    assert "(not_suppressed)" in cli.fails("suppression", "remove", "ann@example.com")
    assert "(invalid_reason)" in cli.fails("suppression", "list", "--reason", "bounce")
    assert "(invalid_email)" in cli.fails("suppression", "add", "nope")


def test_rejections(cli: Cli, database: Database) -> None:
    assert cli.json("suppression", "rejections") == {
        "counts": [],
        "rejections": [],
        "next_before": None,
    }
    with database.write() as session:
        session.add(FeedbackRejection(source="postmark", reason="bad_signature", detail="wrong"))
        session.add(FeedbackRejection(source="imap", reason="malformed", detail="no report"))
    shown = cli.json("suppression", "rejections")
    assert {(c["source"], c["reason"], c["last_24_hours"]) for c in shown["counts"]} == {
        ("postmark", "bad_signature", 1),
        ("imap", "malformed", 1),
    }
    assert [r["detail"] for r in shown["rejections"]] == ["no report", "wrong"]
    only = cli.json("suppression", "rejections", "--source", "postmark", "--limit", "1")
    assert [r["source"] for r in only["rejections"]] == ["postmark"]
    table = cli.ok("suppression", "rejections")
    assert "bad_signature" in table
    assert "no report" in table


def test_the_csv_export(cli: Cli, database: Database) -> None:
    with database.write() as session:
        for number in range(3):
            suppressions.suppress(session, f"p{number}@example.com", reason="manual", source="cli")
    text = cli.ok("suppression", "list", "--csv", "--search", "p1")
    assert text.splitlines()[1].startswith("p1@example.com,manual,cli,")
    assert len(text.splitlines()) == 2
    assert "two outputs" in cli("suppression", "list", "--csv", "--json").output
