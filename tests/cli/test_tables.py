"""Tables at 80, 100 and 200 columns: every GUID, key, token and other identifier on one line."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from contacthub.cli.main import app
from tests.cli.conftest import Cli, cli_on

WIDTHS = ("80", "100", "200")
PASSWORD = "a long enough password\n"


@dataclass
class World:
    """A hub with one of everything, named as long as real names get."""

    database_url: str
    tmp_path: Path
    contact: str
    issue: str
    key: str
    token: str

    def at(self, width: str) -> Cli:
        return cli_on(
            self.database_url, self.tmp_path, COLUMNS=width, CONTACTHUB_SECRET_KEY="test-secret"
        )


@pytest.fixture(scope="module")
def world(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> World:
    # Built once, on SQLite only: what is drawn does not depend on the database.
    tmp_path = tmp_path_factory.mktemp("tables")
    path = tmp_path / "hub.db"
    shutil.copyfile(sqlite_template, path)
    cli = cli_on(f"sqlite:///{path}", tmp_path, CONTACTHUB_SECRET_KEY="test-secret")
    consent = "MarketingConsentForNewsletters"
    cli.ok(
        "consent", "create", consent, "--language", "en-US", "--short-text", "S", "--full-text", "F"
    )
    channel = "Mobile application for our customers"
    cli.ok("channel", "create", channel, "--require-consent", consent)
    key = cli.json(
        "apikey",
        "create",
        "--channel",
        channel,
        "--access",
        "tracking",
        "--name",
        "production key of the mobile application",
        "--expires",
        "2999-01-01",
    )["key"]
    cli.ok("activity-type", "create", "custom_loan_calculator", "--display-name", "Loan calculator")
    cli.ok("cors", "add", "https://www.a-rather-long-domain-name.example.com")
    admin = "administrator.of.the.hub@example-company.com"
    result = CliRunner().invoke(
        app, ["user", "create", admin, "--password-stdin"], env=cli.env, input=PASSWORD
    )
    assert result.exit_code == 0, result.output
    token = cli.json("token", "create", "--user", admin, "--name", "deployment pipeline")["token"]
    cli.ok(
        "newsletter",
        "create",
        "Weekly news for our customers",
        "--sender-name",
        "The Team",
        "--sender-email",
        "team@example.com",
        "--base-url",
        "https://news.example.com/",
    )
    subscriber = cli.json(
        "subscriber",
        "add",
        "subscriber.with.a.long.address@example-company.com",
        "--newsletter",
        "Weekly news for our customers",
        "--first-name",
        "Bartholomew",
        "--last-name",
        "Featherstonehaugh-Smythe",
    )
    html = tmp_path / "issue.html"
    html.write_text('<p>Hello</p><a href="https://www.example.com/">site</a>', encoding="utf-8")
    issue = cli.json(
        "issue",
        "create",
        "--newsletter",
        "Weekly news for our customers",
        "--subject",
        "Everything that happened this week at the company",
        "--html-file",
        str(html),
    )["guid"]
    return World(f"sqlite:///{path}", tmp_path, subscriber["contact"], issue, key, token)


def identifiers(records: Any, *fields: str) -> list[str]:
    """The values of `fields` in one JSON record or a list of them."""
    rows = records if isinstance(records, list) else [records]
    found = [str(row[field]) for row in rows for field in fields if row.get(field) is not None]
    assert found, f"no {fields} in {records}"
    return found


# A listing (or a record) and the fields of its JSON output that must be printed whole.
LISTINGS: dict[str, tuple[Callable[[World], tuple[str, ...]], tuple[str, ...]]] = {
    "channel list": (lambda w: ("channel", "list"), ("guid", "required_consent")),
    "apikey list": (lambda w: ("apikey", "list"), ("id", "prefix")),
    "token list": (lambda w: ("token", "list"), ("id", "prefix", "user")),
    "user list": (lambda w: ("user", "list"), ("email",)),
    "cors list": (lambda w: ("cors", "list"), ("origin",)),
    "consent list": (lambda w: ("consent", "list"), ("code_name",)),
    "activity-type list": (lambda w: ("activity-type", "list"), ("code_name",)),
    "newsletter list": (lambda w: ("newsletter", "list"), ("guid",)),
    "subscriber list": (
        lambda w: ("subscriber", "list", "--newsletter", "Weekly news for our customers"),
        ("email", "contact"),
    ),
    "issue list": (
        lambda w: ("issue", "list", "--newsletter", "Weekly news for our customers"),
        ("guid",),
    ),
    "contact search": (lambda w: ("contact", "search"), ()),
    "contact show": (lambda w: ("contact", "show", w.contact), ("guid",)),
    "issue stats": (lambda w: ("issue", "stats", w.issue), ("issue",)),
}


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("listing", sorted(LISTINGS))
def test_listings_keep_identifiers_on_one_line(world: World, listing: str, width: str) -> None:
    command, fields = LISTINGS[listing]
    cli = world.at(width)
    args = command(world)
    data = cli.json(*args)
    if listing == "contact search":
        wanted = identifiers(data["contacts"], "guid", "email")
    else:
        wanted = identifiers(data, *fields)
    lines = cli.ok(*args).splitlines()
    assert all(len(line) <= int(width) for line in lines), "\n".join(lines)
    for value in wanted:
        assert any(value in line for line in lines), f"{value!r} split:\n" + "\n".join(lines)


@pytest.mark.parametrize("width", WIDTHS)
def test_created_secrets_are_printed_whole(world: World, width: str) -> None:
    cli = world.at(width)
    output = cli.ok(
        "apikey", "create", "--channel", "Mobile application for our customers", "--access", "email"
    )
    key = next(line for line in output.splitlines() if line.startswith("chk_"))
    prefix = key[:12]
    assert any(prefix in line and "│" in line for line in output.splitlines())
    token_output = cli.ok(
        "token", "create", "--user", "administrator.of.the.hub@example-company.com"
    )
    tokens = [word for line in token_output.splitlines() for word in line.split() if "_" in word]
    token = next(word for word in tokens if len(word) > 40)
    assert cli.json("token", "list")[-1]["prefix"] == token[:12]


def test_a_wide_terminal_keeps_the_table_and_a_narrow_one_lists_fields(world: World) -> None:
    wide = world.at("200").ok("apikey", "list")
    assert "┃ id ┃ channel" in wide  # one header row: a table
    narrow = world.at("80").ok("apikey", "list")
    assert "┃" not in narrow  # no header: one block of fields per key
    assert "│ prefix " in narrow
