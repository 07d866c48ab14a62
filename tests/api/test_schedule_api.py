"""Management API of scheduled sends and test sends, with the hub's schedule job running and the
real SMTP sink on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from starlette.testclient import TestClient

from contacthub.app import create_app
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.models import Delivery, EmailIssue
from contacthub.storage.types import utcnow
from tests.admin.reading import audit_actions
from tests.api.test_email_api import ACTOR, ANNA, BOB, new_issue, newsletter_with_subscribers
from tests.email.smtp_server import SmtpServer, smtp_server
from tests.email.ui_support import smtp_settings
from tests.servers import free_port


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def settings(database_url: str, smtp: SmtpServer) -> Settings:
    """Sending through the loopback SMTP server; the schedule job looks every 0.2 s."""
    return smtp_settings(database_url, smtp.port).model_copy(update={"schedule_interval": 0.2})


def wait_for_status(
    client: TestClient, headers: dict[str, str], guid: str, status: str, timeout: float = 30.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        issue: dict[str, Any] = client.get(f"/api/issues/{guid}", headers=headers).json()
        if issue["status"] == status and not issue["sending"]:
            return issue
        time.sleep(0.05)
    raise AssertionError(f"issue {guid} is {issue['status']}, not {status}, after {timeout} s")


def soon(seconds: float = 1.0) -> str:
    return (utcnow() + timedelta(seconds=seconds)).isoformat()


def test_a_scheduled_issue_is_listed_then_sent_by_the_hub_at_its_time(
    client: TestClient, api_headers: dict[str, str], database: Database, smtp: SmtpServer
) -> None:
    newsletter_with_subscribers(client, api_headers)
    guid = new_issue(client, api_headers)
    at = (utcnow() + timedelta(seconds=1.5)).replace(microsecond=0)
    answer = client.post(
        f"/api/issues/{guid}/schedule",
        json={"at": at.astimezone().isoformat()},
        headers=api_headers,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["status"], body["scheduled_by"]) == ("scheduled", ACTOR)
    assert body["scheduled_at"] == at.isoformat().replace("+00:00", "Z")
    [listed] = client.get("/api/issues", headers=api_headers).json()["issues"]
    assert (listed["status"], listed["scheduled_at"]) == ("scheduled", body["scheduled_at"])
    assert smtp.received == []

    sent = wait_for_status(client, api_headers, guid, "sent")
    assert sent["sent"] == 2
    assert sorted(smtp.recipients()) == [ANNA, BOB]
    actions = audit_actions(database)
    assert (ACTOR, "issue.scheduled", guid) in actions
    assert (f"schedule ({ACTOR})", "issue.send_started", guid) in actions


def test_schedules_are_refused_when_the_time_or_the_issue_is_wrong(
    client: TestClient, api_headers: dict[str, str]
) -> None:
    newsletter_with_subscribers(client, api_headers)
    guid = new_issue(client, api_headers)
    path = f"/api/issues/{guid}/schedule"
    for body, code in (
        ({"at": "2030-12-24T09:00"}, "invalid_time"),
        ({"at": "next week"}, "invalid_time"),
        ({"at": "2001-01-01T00:00:00Z"}, "time_in_past"),
    ):
        answer = client.post(path, json=body, headers=api_headers)
        assert answer.status_code == 400, body
        assert (answer.json()["code"], answer.json()["field"]) == (code, "at")
    assert client.post(path, json={"when": soon()}, headers=api_headers).status_code == 400
    missing = client.post(
        "/api/issues/06b035b8-6658-4a1b-b1de-5994e4975fb1/schedule",
        json={"at": soon(3600)},
        headers=api_headers,
    )
    assert missing.status_code == 404
    not_scheduled = client.delete(path, headers=api_headers)
    assert (not_scheduled.status_code, not_scheduled.json()["code"]) == (409, "not_scheduled")
    not_missed = client.post(f"{path}/confirm", headers=api_headers)
    assert (not_missed.status_code, not_missed.json()["code"]) == (409, "schedule_not_missed")
    assert client.get(f"/api/issues/{guid}", headers=api_headers).json()["status"] == "draft"


def test_a_schedule_is_cancelled(client: TestClient, api_headers: dict[str, str]) -> None:
    newsletter_with_subscribers(client, api_headers)
    guid = new_issue(client, api_headers)
    path = f"/api/issues/{guid}/schedule"
    assert client.post(path, json={"at": soon(3600)}, headers=api_headers).status_code == 200
    answer = client.delete(path, headers=api_headers)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["scheduled_at"]) == ("draft", None)


def test_a_missed_schedule_waits_until_confirmed(
    client: TestClient, api_headers: dict[str, str], database: Database, smtp: SmtpServer
) -> None:
    newsletter_with_subscribers(client, api_headers)
    guid = new_issue(client, api_headers)
    path = f"/api/issues/{guid}/schedule"
    assert client.post(path, json={"at": soon(3600)}, headers=api_headers).status_code == 200
    with database.write() as session:  # the hub was down for an hour at its time
        session.execute(update(EmailIssue).values(scheduled_at=utcnow() - timedelta(hours=1)))

    missed = wait_for_status(client, api_headers, guid, "schedule_missed")
    assert missed["scheduled_at"] is not None
    time.sleep(0.5)  # a few more runs of the job: still nothing sent
    assert smtp.received == []

    answer = client.post(f"{path}/confirm", headers=api_headers)
    assert answer.status_code == 202, answer.text
    wait_for_status(client, api_headers, guid, "sent")
    assert sorted(smtp.recipients()) == [ANNA, BOB]
    actions = audit_actions(database)
    assert (ACTOR, "issue.schedule_confirmed", guid) in actions
    assert not [a for a in actions if a[1] == "issue.send_started"]


def test_a_test_send_goes_to_the_given_addresses_untracked_and_uncounted(
    client: TestClient, api_headers: dict[str, str], database: Database, smtp: SmtpServer
) -> None:
    newsletter_with_subscribers(client, api_headers)
    guid = new_issue(client, api_headers)
    outsider = "editor@example.org"
    answer = client.post(
        f"/api/issues/{guid}/test",
        json={"to": [ANNA, f" {outsider.upper()} "]},
        headers=api_headers,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "issue": guid,
        "subject": 'News for {{ first_name | "you" }}',
        "sent": [ANNA, outsider],
        "failed": [],
    }
    [to_anna] = smtp.messages_to(ANNA)
    [to_outsider] = smtp.messages_to(outsider)
    assert to_anna["Subject"] == "[Test] News for Anna"
    assert to_outsider["Subject"] == "[Test] News for you"
    for message in (to_anna, to_outsider):
        part = message.get_body(("html",))
        assert part is not None
        html = part.get_content()
        assert "Track.ashx" not in html
        assert "Redirect.ashx" not in html
        assert 'href="https://shop.example.com/spring"' in html
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0
    issue = client.get(f"/api/issues/{guid}", headers=api_headers).json()
    assert (issue["status"], issue["recipients"], issue["sent"]) == ("draft", 0, 0)
    assert (ACTOR, "issue.test_sent", guid) in audit_actions(database)


def test_a_test_send_reports_refusals_and_bad_lists(
    client: TestClient, api_headers: dict[str, str], smtp: SmtpServer
) -> None:
    newsletter_with_subscribers(client, api_headers)
    guid = new_issue(client, api_headers)
    smtp.refuse["nobody@example.com"] = "550 5.1.1 No such user"
    answer = client.post(
        f"/api/issues/{guid}/test", json={"to": [ANNA, "nobody@example.com"]}, headers=api_headers
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["sent"] == [ANNA]
    [refused] = answer.json()["failed"]
    assert refused["email"] == "nobody@example.com"
    assert "5.1.1" in refused["reason"]

    for to, code in (
        ([], "invalid_recipients"),
        ([f"r{n}@example.com" for n in range(11)], "invalid_recipients"),
        (["not an address"], "invalid_email"),
    ):
        bad = client.post(f"/api/issues/{guid}/test", json={"to": to}, headers=api_headers)
        assert bad.status_code == 400, to
        assert (bad.json()["code"], bad.json()["field"]) == (code, "to")
    assert len(smtp.received) == 1


def test_a_test_send_without_an_smtp_server_is_a_clear_503(
    database_url: str, api_headers: dict[str, str]
) -> None:
    settings = smtp_settings(database_url, free_port())
    with TestClient(create_app(settings)) as client:
        newsletter_with_subscribers(client, api_headers)
        guid = new_issue(client, api_headers)
        answer = client.post(f"/api/issues/{guid}/test", json={"to": [ANNA]}, headers=api_headers)
    assert answer.status_code == 503
    assert answer.json()["code"] == "smtp_unavailable"
    assert "SMTP server" in answer.json()["error"]
