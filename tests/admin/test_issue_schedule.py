"""Admin forms of the issue page: schedule (in the browser's time zone), cancel, send a missed
schedule now, and test sends through the real SMTP sink."""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from starlette.testclient import TestClient

from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.models import EmailIssue
from contacthub.storage.types import utcnow
from tests.admin.conftest import EMAIL
from tests.admin.reading import audit_actions, field_error
from tests.admin.test_email_pages import ANNA, BOB, create_issue, create_newsletter, post, subscribe
from tests.email.smtp_server import SmtpServer, smtp_server
from tests.email.ui_support import smtp_settings, wait_for_run

NEXT_YEAR = utcnow().year + 1


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def settings(database_url: str, smtp: SmtpServer) -> Settings:
    return smtp_settings(database_url, smtp.port)


def weekly(admin: TestClient) -> str:
    newsletter = create_newsletter(admin)
    subscribe(admin, newsletter, ANNA, "Anna")
    subscribe(admin, newsletter, BOB, "Bob")
    return create_issue(admin)


def flash(admin: TestClient, answer: Any) -> str:
    """The page a form's answer redirects to (with its flash message), unescaped."""
    return html.unescape(admin.get(answer.headers["location"]).text)


def test_a_draft_is_scheduled_in_the_browsers_zone_listed_and_cancelled(
    admin: TestClient, database: Database
) -> None:
    guid = weekly(admin)
    page = admin.get(f"/admin/issues/{guid}").text
    assert 'type="datetime-local"' in page
    assert "data-browser-time-zone" in page

    answer = post(
        admin,
        f"/admin/issues/{guid}/schedule",
        at=f"{NEXT_YEAR}-07-01T09:30",
        timezone="Europe/Paris",
    )
    assert answer.status_code == 303, answer.text
    page = flash(admin, answer)
    # Paris is UTC+2 in July: the hub shows UTC, and the flash both.
    assert (
        f"Scheduled for {NEXT_YEAR}-07-01 07:30 UTC ({NEXT_YEAR}-07-01 09:30 Europe/Paris)." in page
    )
    assert f"by {EMAIL}" in page
    assert "Cancel schedule" in page
    listed = admin.get("/admin/issues").text
    assert "scheduled" in listed
    assert f"{NEXT_YEAR}-07-01 07:30 UTC" in listed

    answer = post(admin, f"/admin/issues/{guid}/schedule/cancel")
    assert answer.status_code == 303
    assert "Schedule cancelled" in flash(admin, answer)
    actions = [a[1] for a in audit_actions(database)]
    assert actions[-2:] == ["issue.scheduled", "issue.schedule_cancelled"]


def test_a_wrong_time_is_shown_next_to_the_field(admin: TestClient) -> None:
    guid = weekly(admin)
    for at, zone, message in (
        ("", "UTC", "Choose a date and a time"),
        ("2001-01-01T09:00", "UTC", "has passed"),
        (f"{NEXT_YEAR}-01-01T09:00", "Mars/Olympus", "not a known time zone"),
    ):
        answer = post(admin, f"/admin/issues/{guid}/schedule", at=at, timezone=zone)
        assert answer.status_code == 400, at
        error = field_error(answer.text, "at")
        assert error is not None
        assert message in error
        # The form keeps what was typed.
        assert f'value="{at}"' in answer.text


def test_a_missed_schedule_is_sent_now_from_its_page(
    admin: TestClient, database: Database, smtp: SmtpServer
) -> None:
    guid = weekly(admin)
    post(admin, f"/admin/issues/{guid}/schedule", at=f"{NEXT_YEAR}-01-01T09:00", timezone="")
    with database.write() as session:
        session.execute(
            update(EmailIssue).values(
                status="schedule_missed", scheduled_at=utcnow() - timedelta(hours=2)
            )
        )
    page = html.unescape(admin.get(f"/admin/issues/{guid}").text)
    assert "was missed" in page
    assert "Send now to 2 subscribers" in page
    assert "schedule missed" in admin.get("/admin/issues").text

    answer = post(admin, f"/admin/issues/{guid}/schedule/confirm")
    assert answer.status_code == 303
    wait_for_run(admin, guid)
    assert sorted(smtp.recipients()) == [ANNA, BOB]
    assert (EMAIL, "issue.schedule_confirmed", guid) in audit_actions(database)
    again = post(admin, f"/admin/issues/{guid}/schedule/confirm")
    assert again.status_code == 409


def test_a_test_send_from_the_issue_page(
    admin: TestClient, database: Database, smtp: SmtpServer
) -> None:
    guid = weekly(admin)
    answer = post(admin, f"/admin/issues/{guid}/test", to=f"{ANNA}, editor@example.org")
    assert answer.status_code == 303, answer.text
    assert f"Test sent to {ANNA}, editor@example.org." in flash(admin, answer)
    assert sorted(smtp.recipients()) == [ANNA, "editor@example.org"]
    [message] = smtp.messages_to(ANNA)
    assert str(message["Subject"]).startswith("[Test] ")
    assert (EMAIL, "issue.test_sent", guid) in audit_actions(database)

    smtp.refuse["gone@example.com"] = "550 5.1.1 Gone away"
    refused = post(admin, f"/admin/issues/{guid}/test", to="gone@example.com")
    assert refused.status_code == 200
    assert "gone@example.com: 550 5.1.1 Gone away" in html.unescape(refused.text)

    empty = post(admin, f"/admin/issues/{guid}/test", to=" ")
    assert empty.status_code == 400
    assert "1 to 10 addresses" in (field_error(empty.text, "to") or "")
    bad = post(admin, f"/admin/issues/{guid}/test", to="not-an-address")
    assert bad.status_code == 400
    assert field_error(bad.text, "to") is not None


def test_scheduling_an_issue_that_was_sent_says_why_not(
    admin: TestClient, database: Database
) -> None:
    guid = weekly(admin)
    with database.write() as session:
        session.execute(update(EmailIssue).values(status="sent"))
    answer = post(
        admin, f"/admin/issues/{guid}/schedule", at=f"{NEXT_YEAR}-01-01T09:00", timezone=""
    )
    assert answer.status_code == 409
    assert "Not scheduled: Only a draft can be scheduled: this issue is sent." in html.unescape(
        answer.text
    )
