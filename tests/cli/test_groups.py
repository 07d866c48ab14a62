"""`contacthub group …`: groups and their members from the command line, on SQLite and
PostgreSQL, checked against the store and the audit log."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from typer.testing import CliRunner

from contacthub.cli.main import app
from contacthub.email import service as email
from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent, ContactGroup
from tests import factories
from tests.cli.conftest import Cli
from tests.groups.support import FORMULA_GROUP, assert_formula_safe, formula_member

EXAMPLE = {"field": "email", "op": "ends_with", "value": "@example.com"}


def people(database: Database) -> dict[str, str]:
    """Three contacts, two of them at example.com: their GUIDs by address."""
    return {
        address: factories.contact_with(database, email=address)
        for address in ("ann@example.com", "bob@example.com", "cid@other.org")
    }


def conditions_file(tmp_path: Path, tree: Any, name: str = "conditions.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(tree), encoding="utf-8")
    return str(path)


def last_audit(database: Database) -> tuple[str, str, str]:
    with database.read() as session:
        row = session.execute(
            select(AuditEvent.actor, AuditEvent.action, AuditEvent.subject)
            .order_by(AuditEvent.id.desc())
            .limit(1)
        ).one()
    return (row.actor, row.action, row.subject)


def audit_count(database: Database) -> int:
    with database.read() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def group_count(database: Database) -> int:
    with database.read() as session:
        return session.scalar(select(func.count()).select_from(ContactGroup)) or 0


def test_create_show_list_a_dynamic_group(cli: Cli, database: Database, tmp_path: Path) -> None:
    people(database)
    created = cli.json(
        "group",
        "create",
        "Example people",
        "--conditions-file",
        conditions_file(tmp_path, EXAMPLE),
        "--description",
        "Ours",
    )
    assert (created["name"], created["kind"], created["members"]) == (
        "Example people",
        "dynamic",
        2,
    )
    assert created["conditions"] == EXAMPLE
    assert last_audit(database) == ("cli", "group.created", "Example people")

    assert cli.json("group", "show", "Example people") == created
    shown = cli.ok("group", "show", "Example people")
    assert "Example people" in shown
    assert '"ends_with"' in shown  # the conditions, as JSON to copy
    listed = cli.json("group", "list")
    assert [(g["name"], g["members"]) for g in listed] == [("Example people", 2)]
    assert "Example people" in cli.ok("group", "list")


def test_conditions_from_standard_input(cli: Cli, database: Database) -> None:
    people(database)
    result = cli_input(cli, json.dumps({"all": []}), "group", "preview", "--conditions-file", "-")
    assert json.loads(result) == {"count": 3}


def cli_input(cli: Cli, stdin: str, *args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--json"], env=cli.env, input=stdin)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_preview_counts_and_saves_nothing(cli: Cli, database: Database, tmp_path: Path) -> None:
    people(database)
    assert cli.json(
        "group", "preview", "--conditions-file", conditions_file(tmp_path, EXAMPLE)
    ) == {"count": 2}
    assert "2" in cli.ok(
        "group", "preview", "--conditions-file", conditions_file(tmp_path, EXAMPLE)
    )
    assert group_count(database) == 0
    assert audit_count(database) == 0


def test_members_page_and_csv(cli: Cli, database: Database, tmp_path: Path) -> None:
    guids = people(database)
    cli.ok(
        "group", "create", "Everyone", "--conditions-file", conditions_file(tmp_path, {"all": []})
    )

    first = cli.json("group", "members", "Everyone", "--limit", "2")
    assert first["total"] == 3
    assert len(first["members"]) == 2
    rest = cli.json("group", "members", "Everyone", "--after", first["next_after"])
    assert rest["next_after"] is None
    seen = [m["guid"] for m in first["members"] + rest["members"]]
    assert sorted(seen) == sorted(guids.values())
    table = cli.ok("group", "members", "Everyone", "--limit", "2")
    assert "2 shown of 3" in table
    assert "--after" in table
    before = audit_count(database)
    assert before == 1  # listing pages records nothing

    exported = cli.ok("group", "members", "Everyone", "--csv")
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert sorted(r["guid"] for r in rows) == sorted(guids.values())
    assert last_audit(database) == ("cli", "group.exported", "Everyone")


def test_static_members_by_argument_and_by_csv(
    cli: Cli, database: Database, tmp_path: Path
) -> None:
    guids = people(database)
    assert cli.json("group", "create", "VIP", "--static")["kind"] == "static"

    added = cli.json("group", "add", "VIP", guids["ann@example.com"], "nobody@example.com")
    assert (added["added"], added["members"]) == (1, 1)
    assert [(p["contact"], p["code"]) for p in added["problems"]] == [
        ("nobody@example.com", "unknown_contact")
    ]
    assert last_audit(database) == ("cli", "group.members_added", "VIP")
    table = cli.ok("group", "add", "VIP", "nobody@example.com")
    assert "nobody@example.com" in table
    assert "unknown_contact" in table

    listing = tmp_path / "vip.csv"
    listing.write_text("Email,name\nbob@example.com,Bob\nann@example.com,Ann\n\n", encoding="utf-8")
    from_csv = cli.json("group", "add", "VIP", "--csv", str(listing))
    assert (from_csv["added"], from_csv["already_members"], from_csv["members"]) == (1, 1, 2)

    removed = cli.json("group", "remove", "VIP", "ann@example.com", "cid@other.org")
    assert (removed["removed"], removed["not_members"], removed["members"]) == (1, 1, 1)
    assert last_audit(database) == ("cli", "group.members_removed", "VIP")


def test_update_rebuild_delete(cli: Cli, database: Database, tmp_path: Path) -> None:
    people(database)
    cli.ok("group", "create", "Examples", "--conditions-file", conditions_file(tmp_path, EXAMPLE))
    others = {"field": "email", "op": "ends_with", "value": "@other.org"}

    updated = cli.json(
        "group",
        "update",
        "Examples",
        "--name",
        "Others",
        "--conditions-file",
        conditions_file(tmp_path, others),
    )
    assert (updated["name"], updated["members"], updated["conditions"]) == ("Others", 1, others)
    assert last_audit(database) == ("cli", "group.updated", "Others")

    assert cli.json("group", "rebuild", "Others") == {
        "group": "Others",
        "entered": 0,
        "left": 0,
        "members": 1,
    }
    assert last_audit(database)[1] == "group.rebuilt"
    assert cli.json("group", "delete", "Others")["deleted"] == "Others"
    assert last_audit(database) == ("cli", "group.deleted", "Others")
    assert group_count(database) == 0


def test_every_refusal_is_one_line_and_exit_1(cli: Cli, database: Database, tmp_path: Path) -> None:
    people(database)
    bad_tree = {"all": [EXAMPLE, {"field": "email", "op": "sounds_like", "value": "x"}]}
    error = cli.fails(
        "group", "create", "Bad", "--conditions-file", conditions_file(tmp_path, bad_tree)
    )
    assert "(invalid_conditions)" in error
    result = cli(
        "group", "create", "Bad", "--conditions-file", conditions_file(tmp_path, bad_tree), "--json"
    )
    assert result.exit_code == 1
    body = json.loads(result.stderr)
    assert body["code"] == "invalid_conditions"
    assert body["field"].startswith("conditions.all[1]")

    unknown = {"consent": "Nope", "state": "agreed"}
    assert "(unknown_consent)" in cli.fails(
        "group", "preview", "--conditions-file", conditions_file(tmp_path, unknown)
    )
    not_json = tmp_path / "broken.json"
    not_json.write_text("{", encoding="utf-8")
    assert "(invalid_json)" in cli.fails("group", "preview", "--conditions-file", str(not_json))
    assert "(invalid_file)" in cli.fails(
        "group", "preview", "--conditions-file", str(tmp_path / "absent.json")
    )

    cli.ok("group", "create", "A", "--conditions-file", conditions_file(tmp_path, {"all": []}))
    cli.ok("group", "create", "B", "--conditions-file", conditions_file(tmp_path, {"group": "A"}))
    cycle = cli.fails(
        "group", "update", "A", "--conditions-file", conditions_file(tmp_path, {"group": "B"})
    )
    assert "B" in cycle
    assert "(group_in_use)" in cli.fails("group", "delete", "A")
    assert "(group_is_dynamic)" in cli.fails("group", "add", "A", "ann@example.com")
    for words in (
        ("show", "Nope"),
        ("members", "Nope"),
        ("members", "Nope", "--csv"),
        ("add", "Nope", "ann@example.com"),
        ("remove", "Nope", "ann@example.com"),
        ("rebuild", "Nope"),
        ("delete", "Nope"),
        ("update", "Nope", "--description", "x"),
    ):
        assert "(unknown_group)" in cli.fails("group", *words), words
    assert group_count(database) == 2


def test_a_name_taken_is_refused(cli: Cli, database: Database) -> None:
    cli.ok("group", "create", "VIP", "--static")
    error = cli.fails("group", "create", "VIP", "--static")
    assert "VIP" in error
    assert group_count(database) == 1


def test_delete_refused_while_an_unsent_issue_targets_the_group(
    cli: Cli, database: Database
) -> None:
    cli.ok("group", "create", "Targeted", "--static")
    with database.write() as session:
        email.create_newsletter(
            session, "Weekly", "The Team", "news@example.com", "https://news.example.com"
        )
        issue = email.create_issue(session, "Weekly", "News", "<p>Hi</p>")
        issue.group_id = session.scalars(select(ContactGroup.id)).one()
    error = cli.fails("group", "delete", "Targeted")
    assert "(group_in_use)" in error
    assert group_count(database) == 1


def test_usage_errors_exit_2(cli: Cli, tmp_path: Path) -> None:
    tree = conditions_file(tmp_path, {"all": []})
    for args in (
        ("group", "create", "X", "--static", "--conditions-file", tree),
        ("group", "add", "X"),
        ("group", "add", "X", "a@example.com", "--csv", tree),
        ("group", "members", "X", "--csv", "--json"),
        ("group", "preview"),
    ):
        assert cli(*args).exit_code == 2, args
    result = cli("group", "add", "X", "--json")
    assert result.exit_code == 2
    assert json.loads(result.stderr)["code"] == "usage_error"


def test_a_big_csv_is_added_a_chunk_at_a_time(cli: Cli, database: Database, tmp_path: Path) -> None:
    guids = people(database)
    cli.ok("group", "create", "VIP", "--static")
    unknown = [f"nobody{n}@example.com" for n in range(2_100)]
    listing = tmp_path / "big.csv"
    rows = ["contact", guids["ann@example.com"], *unknown, "bob@example.com"]
    listing.write_text("\n".join(rows) + "\n", encoding="utf-8")

    added = cli.json("group", "add", "VIP", "--csv", str(listing))

    assert (added["added"], added["members"]) == (2, 2)
    assert [p["contact"] for p in added["problems"]] == unknown
    table = cli.ok("group", "add", "VIP", "--csv", str(listing))
    assert "and 2050 more" in table
    with database.read() as session:
        recorded = session.scalars(
            select(AuditEvent.details).where(AuditEvent.action == "group.members_added")
        ).all()
    # One entry per chunk that added someone: ann in the first thousand, bob in the third.
    assert [json.loads(d or "{}")["added"] for d in recorded] == [1, 1]


def test_members_csv_is_formula_safe(cli: Cli, database: Database) -> None:
    formula_member(database)
    assert_formula_safe(cli.ok("group", "members", FORMULA_GROUP, "--csv"))
