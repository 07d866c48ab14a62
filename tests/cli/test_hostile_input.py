"""NUL characters given to any command, or in a file a command reads: one line, exit status 1,
nothing stored, on SQLite and PostgreSQL alike (PostgreSQL cannot store NUL in text)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import typer
from sqlalchemy import func, select

from contacthub.cli.main import app
from contacthub.storage.database import Database
from contacthub.storage.models import Channel, ContactGroup, EmailIssue, GroupMember
from tests.cli.conftest import Cli

NUL = "a\x00b"


def command_paths() -> Iterator[list[str]]:
    """Every command of the `contacthub` tree, as the words that call it."""
    pending: list[tuple[list[str], object]] = [([], typer.main.get_command(app))]
    while pending:
        words, command = pending.pop()
        children = getattr(command, "commands", None)
        if children:
            pending.extend(([*words, name], child) for name, child in children.items())
        else:
            yield words


def test_nul_in_an_argument_of_any_command_is_refused(cli: Cli, database: Database) -> None:
    walked = list(command_paths())
    assert len(walked) > 30, "the walk found too few commands"
    problems = []
    for words in walked:
        for arguments in ([NUL], ["--name", NUL], [f"--json={NUL}"]):
            result = cli(*words, *arguments)
            if result.exit_code != 1 or "(nul_character)" not in result.stderr:
                problems.append(f"{' '.join(words)} {arguments!r}: {result.output[:200]}")
    assert not problems, "\n".join(problems)
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(Channel)) == 0


def test_nul_in_an_issue_file_is_refused(cli: Cli, database: Database, tmp_path: Path) -> None:
    cli.ok(
        "newsletter",
        "create",
        "Weekly",
        "--sender-name",
        "The Team",
        "--sender-email",
        "team@example.com",
        "--base-url",
        "https://news.example.com/",
    )
    html = tmp_path / "issue.html"
    html.write_text("<p>Hello\x00</p>", encoding="utf-8")

    error = cli.fails(
        "issue", "create", "--newsletter", "Weekly", "--subject", "Hi", "--html-file", str(html)
    )

    assert "must not contain NUL characters" in error
    assert "(nul_character)" in error
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(EmailIssue)) == 0


def test_nul_in_a_group_file_is_refused(cli: Cli, database: Database, tmp_path: Path) -> None:
    conditions = tmp_path / "conditions.json"
    conditions.write_text('{"field": "email", "op": "equals", "value": "a\\u0000b"}', "utf-8")
    raw = tmp_path / "raw.json"
    raw.write_text('{"all": []}\x00', encoding="utf-8")
    for path in (conditions, raw):
        error = cli.fails("group", "create", "Nul", "--conditions-file", str(path))
        assert "(nul_character)" in error, error
    cli.ok("group", "create", "VIP", "--static")
    listing = tmp_path / "vip.csv"
    listing.write_text("email\nann\x00@example.com\n", encoding="utf-8")
    assert "(nul_character)" in cli.fails("group", "add", "VIP", "--csv", str(listing))
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(ContactGroup)) == 1
        assert session.scalar(select(func.count()).select_from(GroupMember)) == 0
