"""`contacthub issue schedule|unschedule|confirm-schedule|test-send`, with the real SMTP sink."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from contacthub.storage.database import Database
from contacthub.storage.models import EmailIssue
from contacthub.storage.types import utcnow
from tests.admin.reading import audit_actions
from tests.cli.conftest import Cli, cli_on
from tests.cli.test_email_cli import SECRET, issue, newsletter
from tests.email.smtp_server import SmtpServer, smtp_server


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


def readers(cli: Cli) -> None:
    newsletter(cli)
    cli.ok("subscriber", "add", "--newsletter", "Weekly", "a@example.com", "--first-name", "Ann")
    cli.ok("subscriber", "add", "--newsletter", "Weekly", "b@example.com")


def test_schedule_reschedule_and_unschedule(mail_cli: Cli, tmp_path: Path) -> None:
    readers(mail_cli)
    guid = issue(mail_cli, tmp_path)
    at = (utcnow() + timedelta(days=1)).replace(microsecond=0)
    record = mail_cli.json("issue", "schedule", guid, "--at", at.isoformat())
    assert (record["status"], record["scheduled_at"], record["scheduled_by"]) == (
        "scheduled",
        at.isoformat(),
        "cli",
    )
    listed = mail_cli.ok("issue", "list", "--newsletter", "Weekly")
    assert "scheduled" in listed
    assert at.strftime("%Y-%m-%d") in listed

    later = at + timedelta(hours=2)
    paris = later.astimezone().isoformat()
    assert mail_cli.json("issue", "schedule", guid, "--at", paris)["scheduled_at"] == (
        later.isoformat()
    )
    record = mail_cli.json("issue", "unschedule", guid)
    assert (record["status"], record["scheduled_at"]) == ("draft", None)

    no_offset = mail_cli.fails("issue", "schedule", guid, "--at", "2030-12-24T09:00")
    assert "no UTC offset" in no_offset
    assert "(invalid_time)" in no_offset
    assert "(not_scheduled)" in mail_cli.fails("issue", "unschedule", guid)
    assert "(schedule_not_missed)" in mail_cli.fails("issue", "confirm-schedule", guid)


def test_confirm_schedule_sends_a_missed_schedule_here(
    mail_cli: Cli, smtp: SmtpServer, tmp_path: Path, database: Database
) -> None:
    readers(mail_cli)
    guid = issue(mail_cli, tmp_path)
    mail_cli.ok("issue", "schedule", guid, "--at", (utcnow() + timedelta(hours=1)).isoformat())
    with database.write() as session:
        session.execute(
            update(EmailIssue).values(
                status="schedule_missed", scheduled_at=utcnow() - timedelta(hours=1)
            )
        )
    assert "schedule missed" in mail_cli.ok("issue", "list", "--newsletter", "Weekly").replace(
        "_", " "
    )

    report = mail_cli.json("issue", "confirm-schedule", guid)
    assert (report["sent"], report["status"]) == (2, "sent")
    assert sorted(smtp.recipients()) == ["a@example.com", "b@example.com"]
    assert ("cli", "issue.schedule_confirmed", guid) in audit_actions(database)


def test_test_send_to_given_addresses(
    mail_cli: Cli, smtp: SmtpServer, tmp_path: Path, database: Database
) -> None:
    readers(mail_cli)
    guid = issue(mail_cli, tmp_path)
    report = mail_cli.json(
        "issue", "test-send", guid, "--to", "a@example.com", "--to", "boss@example.org"
    )
    assert report["sent"] == ["a@example.com", "boss@example.org"]
    assert report["failed"] == []
    [to_ann] = smtp.messages_to("a@example.com")
    assert to_ann["Subject"] == "[Test] Hello Ann"
    [to_boss] = smtp.messages_to("boss@example.org")
    assert to_boss["Subject"] == "[Test] Hello "
    assert ("cli", "issue.test_sent", guid) in audit_actions(database)
    # Not a delivery: the issue is still a draft nobody has had.
    stats = mail_cli.json("issue", "stats", guid)
    assert set(stats["deliveries"].values()) == {0}
    assert stats["sent"] == 0

    smtp.refuse["gone@example.com"] = "550 5.1.1 Gone away"
    refused = mail_cli(
        "issue", "test-send", guid, "--to", "gone@example.com", "--to", "a@example.com"
    )
    assert refused.exit_code == 1
    assert "Gone away" in refused.stdout
    assert "(test_send_failed)" in refused.stderr
    assert "(invalid_email)" in mail_cli.fails("issue", "test-send", guid, "--to", "nope")
