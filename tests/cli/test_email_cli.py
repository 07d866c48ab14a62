"""`contacthub newsletter …`, `subscriber …` and `issue …`, with a real SMTP server on loopback."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from contacthub.email.compose import CLICK_PATH
from tests.cli.conftest import Cli, cli_on
from tests.email.smtp_server import SmtpServer, smtp_server
from tests.servers import free_port

SECRET = "cli-test-secret"
HTML = """<html><body><p>Hi {{ first_name | "friend" }},</p>
<p><a href="https://shop.example.com/new">New things</a></p></body></html>"""


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def mail_cli(database_url: str, tmp_path: Path, smtp: SmtpServer) -> Cli:
    return cli_on(
        database_url,
        tmp_path,
        COLUMNS="200",
        CONTACTHUB_SMTP_PORT=str(smtp.port),
        CONTACTHUB_SECRET_KEY=SECRET,
    )


def newsletter(cli: Cli) -> None:
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


def issue(cli: Cli, tmp_path: Path, *extra: str) -> str:
    html = tmp_path / "issue.html"
    html.write_text(HTML, encoding="utf-8")
    record = cli.json(
        "issue",
        "create",
        "--newsletter",
        "Weekly",
        "--subject",
        "Hello {{ first_name }}",
        "--html-file",
        str(html),
        *extra,
    )
    guid: str = record["guid"]
    return guid


def test_newsletter_create_and_list(mail_cli: Cli) -> None:
    record = mail_cli.json(
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
    assert record["name"] == "Weekly"
    assert record["base_url"] == "https://news.example.com"
    uuid.UUID(record["guid"])
    mail_cli.ok("subscriber", "add", "--newsletter", "Weekly", "a@example.com")
    [listed] = mail_cli.json("newsletter", "list")
    assert (listed["name"], listed["subscribed"]) == ("Weekly", 1)
    assert "Weekly" in mail_cli.ok("newsletter", "list")


def test_newsletter_create_refuses_a_relative_base_url(mail_cli: Cli) -> None:
    message = mail_cli.fails(
        "newsletter",
        "create",
        "Weekly",
        "--sender-name",
        "T",
        "--sender-email",
        "t@example.com",
        "--base-url",
        "news.example.com",
    )
    assert "(invalid_base_url)" in message
    assert mail_cli.json("newsletter", "list") == []


def test_subscriber_add_and_list(mail_cli: Cli) -> None:
    newsletter(mail_cli)
    added = mail_cli.json(
        "subscriber", "add", "--newsletter", "Weekly", "Jane@Example.com", "--first-name", "Jane"
    )
    assert (added["email"], added["first_name"], added["status"]) == (
        "jane@example.com",
        "Jane",
        "subscribed",
    )
    uuid.UUID(added["contact"])
    message = mail_cli.fails("subscriber", "add", "--newsletter", "Weekly", "jane@example.com")
    assert "(already_subscribed)" in message
    assert "(invalid_email)" in mail_cli.fails("subscriber", "add", "--newsletter", "Weekly", "x")
    assert "(unknown_newsletter)" in mail_cli.fails(
        "subscriber", "add", "--newsletter", "Nope", "a@example.com"
    )
    listed = mail_cli.json("subscriber", "list", "--newsletter", "Weekly")
    assert [(s["email"], s["contact"]) for s in listed] == [("jane@example.com", added["contact"])]


def test_subscriber_import_reports_bad_rows(mail_cli: Cli, tmp_path: Path) -> None:
    newsletter(mail_cli)
    csv = tmp_path / "people.csv"
    csv.write_text(
        "Email,FirstName,LastName\n"
        "a@example.com,Ann,A\n"
        "broken,B,B\n"
        "c@example.com,,\n"
        "A@example.com,Dup,\n",
        encoding="utf-8",
    )
    report = mail_cli.json("subscriber", "import", str(csv), "--newsletter", "Weekly")

    assert (report["rows"], report["added"], report["bad_row_count"]) == (4, 2, 2)
    assert [(b["line"], b["email"]) for b in report["bad_rows"]] == [
        (3, "broken"),
        (5, "A@example.com"),
    ]
    assert report["bad_rows"][1]["reason"] == "duplicate of line 2"
    listed = mail_cli.json("subscriber", "list", "--newsletter", "Weekly")
    assert [s["email"] for s in listed] == ["a@example.com", "c@example.com"]

    # Running it again adds nothing; the table output names the bad rows.
    again = mail_cli.ok("subscriber", "import", str(csv), "--newsletter", "Weekly")
    assert "broken" in again
    assert "duplicate of line 2" in again
    assert len(mail_cli.json("subscriber", "list", "--newsletter", "Weekly")) == 2
    assert "(invalid_file)" in mail_cli.fails(
        "subscriber", "import", str(tmp_path / "missing.csv"), "--newsletter", "Weekly"
    )


def test_issue_create_send_and_stats(mail_cli: Cli, smtp: SmtpServer, tmp_path: Path) -> None:
    newsletter(mail_cli)
    mail_cli.ok(
        "subscriber", "add", "--newsletter", "Weekly", "a@example.com", "--first-name", "Ann"
    )
    mail_cli.ok("subscriber", "add", "--newsletter", "Weekly", "b@example.com")
    smtp.refuse["b@example.com"] = "550 5.1.1 Unknown user"
    text = tmp_path / "issue.txt"
    text.write_text("Hi {{ first_name }}", encoding="utf-8")
    guid = issue(mail_cli, tmp_path, "--text-file", str(text))
    printed = mail_cli.ok("issue", "list", "--newsletter", "Weekly")
    assert guid in printed
    assert "draft" in printed

    report = mail_cli.json("issue", "send", guid)

    assert (report["sent"], report["failed"], report["status"]) == (1, 1, "sent")
    assert report["failures"] == [
        {
            "email": "b@example.com",
            "status": "failed",
            "reason": report["failures"][0]["reason"],
            "next_attempt_at": None,
        }
    ]
    assert "550" in report["failures"][0]["reason"]
    [message] = smtp.messages_to("a@example.com")
    assert message["Subject"] == "Hello Ann"
    plain = message.get_body(("plain",))
    assert plain is not None
    assert plain.get_content().startswith("Hi Ann")
    html = message.get_body(("html",))
    assert html is not None
    assert re.search(rf"https://news\.example\.com{CLICK_PATH}\?linkguid=", html.get_content())

    again = mail_cli.json("issue", "send", guid)
    assert (again["to_send"], again["sent"]) == (0, 0)
    assert smtp.recipients() == ["a@example.com"]

    stats = mail_cli.json("issue", "stats", guid)
    assert (stats["issue"], stats["sent"], stats["failed"]) == (guid, 1, 1)
    assert [link["target_url"] for link in stats["links"] if not link["hidden"]] == [
        "https://shop.example.com/new"
    ]
    assert "Issue statistics" in mail_cli.ok("issue", "stats", guid)


def test_issue_send_table_output_names_failures(
    mail_cli: Cli, smtp: SmtpServer, tmp_path: Path
) -> None:
    newsletter(mail_cli)
    mail_cli.ok("subscriber", "add", "--newsletter", "Weekly", "gone@example.com")
    smtp.refuse["gone@example.com"] = "550 5.1.1 Gone away"
    output = mail_cli.ok("issue", "send", issue(mail_cli, tmp_path))
    assert "gone@example.com" in output
    assert "Gone away" in output


def test_issue_send_with_the_server_down_exits_1_and_can_resume(
    database_url: str, smtp: SmtpServer, tmp_path: Path
) -> None:
    down = cli_on(
        database_url,
        tmp_path,
        COLUMNS="200",
        CONTACTHUB_SMTP_PORT=str(free_port()),
        CONTACTHUB_SECRET_KEY=SECRET,
    )
    newsletter(down)
    down.ok("subscriber", "add", "--newsletter", "Weekly", "a@example.com")
    guid = issue(down, tmp_path)
    result = down("issue", "send", guid)
    assert result.exit_code == 1
    assert "sending stopped" in result.stderr
    assert "cannot connect" in result.stderr

    up = cli_on(
        database_url,
        tmp_path,
        COLUMNS="200",
        CONTACTHUB_SMTP_PORT=str(smtp.port),
        CONTACTHUB_SECRET_KEY=SECRET,
    )
    assert up.json("issue", "send", guid)["sent"] == 1
    assert smtp.recipients() == ["a@example.com"]


def test_issue_commands_refuse_bad_input(mail_cli: Cli, tmp_path: Path) -> None:
    newsletter(mail_cli)
    assert "(invalid_file)" in mail_cli.fails(
        "issue",
        "create",
        "--newsletter",
        "Weekly",
        "--subject",
        "S",
        "--html-file",
        str(tmp_path / "missing.html"),
    )
    assert "(invalid_issue)" in mail_cli.fails("issue", "send", "not-a-guid")
    assert "(unknown_issue)" in mail_cli.fails("issue", "send", str(uuid.uuid4()))
    assert "(unknown_issue)" in mail_cli.fails("issue", "stats", str(uuid.uuid4()))


def test_subscriber_import_of_an_unreadable_csv_is_one_line_and_imports_nothing(
    mail_cli: Cli, tmp_path: Path
) -> None:
    newsletter(mail_cli)
    csv = tmp_path / "people.csv"
    csv.write_text("email\nzoe@example.com\n" + "x" * 140_000 + "\n", encoding="utf-8")
    message = mail_cli.fails("subscriber", "import", str(csv), "--newsletter", "Weekly")
    assert "cannot be read at line 3" in message
    assert "(invalid_csv)" in message
    assert "Traceback" not in message
    assert mail_cli.json("subscriber", "list", "--newsletter", "Weekly") == []
