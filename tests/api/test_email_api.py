"""Management API of email: newsletters, subscribers, issues, background sending, statistics."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from contacthub.app import create_app
from contacthub.email import service
from contacthub.settings import Settings
from contacthub.storage.database import Database
from tests.admin.reading import audit_actions
from tests.email.smtp_server import Received, SmtpServer, smtp_server
from tests.email.ui_support import (
    BASE_URL,
    GMAIL_PROXY,
    HTML,
    READER,
    Links,
    backdate_deliveries,
    delivery_states,
    hit,
    smtp_settings,
)
from tests.servers import free_port

ACTOR = "api@example.com"
ANNA = "anna@example.com"
BOB = "bob@example.com"
NEWSLETTER = {
    "name": "Weekly",
    "sender_name": "The Team",
    "sender_email": "news@example.com",
    "base_url": BASE_URL,
}


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def settings(database_url: str, smtp: SmtpServer) -> Settings:
    """The hub's settings, sending through the loopback SMTP server."""
    return smtp_settings(database_url, smtp.port)


def create(client: TestClient, headers: dict[str, str], path: str, body: dict[str, Any]) -> Any:
    answer = client.post(path, json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    return answer.json()


def newsletter_with_subscribers(client: TestClient, headers: dict[str, str]) -> None:
    create(client, headers, "/api/newsletters", NEWSLETTER)
    for email, first in ((ANNA, "Anna"), (BOB, "Bob")):
        body = {"email": email, "first_name": first}
        create(client, headers, "/api/newsletters/Weekly/subscribers", body)


def new_issue(client: TestClient, headers: dict[str, str]) -> str:
    body = {
        "newsletter": "Weekly",
        "subject": 'News for {{ first_name | "you" }}',
        "html_body": HTML,
    }
    guid: str = create(client, headers, "/api/issues", body)["guid"]
    return guid


def wait_until_sent(client: TestClient, headers: dict[str, str], guid: str) -> dict[str, Any]:
    """Poll the issue until its background run has finished; the issue."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        issue: dict[str, Any] = client.get(f"/api/issues/{guid}", headers=headers).json()
        if not issue["sending"]:
            return issue
        time.sleep(0.05)
    raise AssertionError(f"issue {guid} was still sending after 30 s")


def test_every_email_endpoint_needs_a_token(client: TestClient) -> None:
    guid = uuid.uuid4()
    for method, path in (
        ("GET", "/api/newsletters"),
        ("POST", "/api/newsletters"),
        ("GET", "/api/newsletters/Weekly/subscribers"),
        ("POST", "/api/newsletters/Weekly/subscribers/a@example.com/unsubscribe"),
        ("GET", "/api/issues"),
        ("POST", f"/api/issues/{guid}/send"),
        ("GET", f"/api/issues/{guid}/stats"),
    ):
        answer = client.request(method, path, json={})
        assert answer.status_code == 401, path
        assert answer.json()["code"] == "missing_api_key", path


def test_newsletters_are_created_read_and_validated(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    created = create(client, api_headers, "/api/newsletters", NEWSLETTER)
    assert created["name"] == "Weekly"
    assert (created["subscribed"], created["issues"]) == (0, 0)
    by_name = client.get("/api/newsletters/Weekly", headers=api_headers).json()
    by_guid = client.get(f"/api/newsletters/{created['guid']}", headers=api_headers).json()
    assert by_name == by_guid == created
    assert client.get("/api/newsletters", headers=api_headers).json() == [created]
    assert (ACTOR, "newsletter.created", "Weekly") in audit_actions(database)

    for field, value, code in (
        ("name", " ", "invalid_input"),
        ("sender_email", "nobody", "invalid_email"),
        ("base_url", "https://x.example.com/?a=1", "invalid_base_url"),
    ):
        answer = client.post(
            "/api/newsletters",
            json={**NEWSLETTER, "name": "Other", field: value},
            headers=api_headers,
        )
        assert answer.status_code == 400, field
        assert (answer.json()["code"], answer.json()["field"]) == (code, field)
    answer = client.post("/api/newsletters", json=NEWSLETTER, headers=api_headers)
    assert answer.status_code == 409
    assert (answer.json()["code"], answer.json()["field"]) == ("newsletter_exists", "name")
    answer = client.post("/api/newsletters", json={"name": "x"}, headers=api_headers)
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_body"
    answer = client.get("/api/newsletters/Nope", headers=api_headers)
    assert answer.status_code == 404
    assert answer.json()["code"] == "unknown_newsletter"


def test_subscribers_are_added_paged_and_unsubscribed(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    create(client, api_headers, "/api/newsletters", NEWSLETTER)
    anna = create(
        client,
        api_headers,
        "/api/newsletters/Weekly/subscribers",
        {"email": "Anna@Example.com", "first_name": "Anna"},
    )
    assert (anna["email"], anna["status"], anna["first_name"]) == (ANNA, "subscribed", "Anna")
    uuid.UUID(anna["contact"])
    with database.write() as session:
        for number in range(4):
            service.add_subscriber(session, "Weekly", f"reader{number}@example.com")

    page = client.get("/api/newsletters/Weekly/subscribers?limit=3", headers=api_headers).json()
    assert [s["email"] for s in page["subscribers"]] == [
        "reader3@example.com",
        "reader2@example.com",
        "reader1@example.com",
    ]
    rest = client.get(
        f"/api/newsletters/Weekly/subscribers?limit=3&before={page['next_before']}",
        headers=api_headers,
    ).json()
    assert [s["email"] for s in rest["subscribers"]] == ["reader0@example.com", ANNA]
    assert rest["next_before"] is None

    answer = client.post(
        "/api/newsletters/Weekly/subscribers", json={"email": "x@"}, headers=api_headers
    )
    assert answer.status_code == 400
    assert (answer.json()["code"], answer.json()["field"]) == ("invalid_email", "email")
    answer = client.post(
        "/api/newsletters/Weekly/subscribers", json={"email": ANNA}, headers=api_headers
    )
    assert answer.status_code == 409
    assert (answer.json()["code"], answer.json()["field"]) == ("already_subscribed", "email")

    path = f"/api/newsletters/Weekly/subscribers/{ANNA}/unsubscribe"
    gone = client.post(path, headers=api_headers)
    assert gone.status_code == 200, gone.text
    assert gone.json()["status"] == "unsubscribed"
    assert client.post(path, headers=api_headers).json() == gone.json()  # idempotent
    left = client.get(
        "/api/newsletters/Weekly/subscribers?status=unsubscribed", headers=api_headers
    ).json()
    assert [s["email"] for s in left["subscribers"]] == [ANNA]
    unsubscribed = [a for a in audit_actions(database) if a[1] == "subscriber.unsubscribed"]
    assert unsubscribed == [(ACTOR, "subscriber.unsubscribed", ANNA)]
    assert (ACTOR, "subscriber.added", ANNA) in audit_actions(database)

    answer = client.get("/api/newsletters/Weekly/subscribers?status=gone", headers=api_headers)
    assert (answer.status_code, answer.json()["field"]) == (400, "status")
    answer = client.get("/api/newsletters/Weekly/subscribers?limit=0", headers=api_headers)
    assert (answer.status_code, answer.json()["code"]) == (400, "invalid_parameter")
    answer = client.post(
        "/api/newsletters/Weekly/subscribers/nobody@example.com/unsubscribe", headers=api_headers
    )
    assert (answer.status_code, answer.json()["code"]) == (404, "unknown_subscriber")


def test_subscribers_are_imported_from_a_csv_body(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    create(client, api_headers, "/api/newsletters", NEWSLETTER)
    body = "email,first_name\nanna@example.com,Anna\nbroken,Bob\nbob@example.com,\n"
    answer = client.post(
        "/api/newsletters/Weekly/subscribers/import",
        content=body.encode(),
        headers={**api_headers, "Content-Type": "text/csv"},
    )
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert (report["rows"], report["added"], report["bad_row_count"]) == (3, 2, 1)
    assert report["bad_rows"][0]["line"] == 3
    assert report["bad_rows"][0]["email"] == "broken"
    assert (ACTOR, "subscriber.imported", "Weekly") in audit_actions(database)
    answer = client.post(
        "/api/newsletters/Weekly/subscribers/import", json={"a": 1}, headers=api_headers
    )
    assert (answer.status_code, answer.json()["code"]) == (415, "unsupported_media_type")


def test_a_csv_with_an_oversized_field_is_a_400_and_imports_nothing(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    create(client, api_headers, "/api/newsletters", NEWSLETTER)
    rows = "".join(f"reader{n}@example.com\n" for n in range(600))
    answer = client.post(
        "/api/newsletters/Weekly/subscribers/import",
        content=f"email\n{rows}{'x' * 140_000}@example.com\n".encode(),
        headers={**api_headers, "Content-Type": "text/csv"},
    )
    assert (answer.status_code, answer.json()["code"]) == (400, "invalid_csv")
    assert "line 602" in answer.json()["error"]
    with database.read() as session:
        assert service.list_subscribers(session, "Weekly") == []


def test_issues_are_created_listed_and_previewed(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    newsletter_with_subscribers(client, api_headers)
    guid = new_issue(client, api_headers)

    issue = client.get(f"/api/issues/{guid}", headers=api_headers).json()
    assert issue["status"] == "draft"
    assert issue["subscribed"] == 2
    assert (issue["sending"], issue["last_run"]) == (False, None)
    assert [(link["target_url"], link["hidden"]) for link in issue["links"]] == [
        ("https://shop.example.com/spring", False),
        (f"{BASE_URL}/", True),
    ]
    listed = client.get("/api/issues", headers=api_headers).json()
    assert [i["guid"] for i in listed["issues"]] == [guid]
    assert listed["next_before"] is None
    assert client.get("/api/issues?newsletter=Weekly", headers=api_headers).json() == listed
    assert (ACTOR, "issue.created", guid) in audit_actions(database)

    preview = client.get(f"/api/issues/{guid}/preview", headers=api_headers).json()
    assert (preview["email"], preview["subject"]) == (ANNA, "News for Anna")
    assert "<h1>Hello Anna</h1>" in preview["html"]
    preview = client.get(f"/api/issues/{guid}/preview?email={BOB}", headers=api_headers).json()
    assert "<h1>Hello Bob</h1>" in preview["html"]

    for field, value, code in (
        ("subject", "", "invalid_input"),
        ("html_body", " ", "invalid_body"),
        ("newsletter", "Nope", "unknown_newsletter"),
    ):
        body = {"newsletter": "Weekly", "subject": "Hi", "html_body": HTML, field: value}
        answer = client.post("/api/issues", json=body, headers=api_headers)
        assert answer.status_code in (400, 404), field
        assert (answer.json()["code"], answer.json()["field"]) == (code, field)
    answer = client.get("/api/issues/not-a-guid", headers=api_headers)
    assert (answer.status_code, answer.json()["code"]) == (400, "invalid_issue")
    answer = client.get(f"/api/issues/{uuid.uuid4()}", headers=api_headers)
    assert (answer.status_code, answer.json()["code"]) == (404, "unknown_issue")


def test_an_issue_is_sent_in_the_background_and_its_statistics_split_humans_and_machines(
    client: TestClient, api_headers: dict[str, str], database: Database, smtp: SmtpServer
) -> None:
    newsletter_with_subscribers(client, api_headers)
    guid = new_issue(client, api_headers)

    answer = client.post(f"/api/issues/{guid}/send", json={}, headers=api_headers)
    assert answer.status_code == 202, answer.text
    assert answer.json()["last_run"]["started_by"] == ACTOR
    issue = wait_until_sent(client, api_headers, guid)

    assert issue["status"] == "sent"
    assert issue["deliveries"]["sent"] == 2
    assert issue["last_run"]["sent"] == 2
    assert issue["last_run"]["stopped"] is None
    assert delivery_states(database, guid) == {ANNA: "sent", BOB: "sent"}
    [to_anna] = smtp.messages_to(ANNA)
    [to_bob] = smtp.messages_to(BOB)
    assert to_bob["Subject"] == "News for Bob"
    assert (ACTOR, "issue.send_started", guid) in audit_actions(database)

    backdate_deliveries(database, guid)
    anna, bob = Links(to_anna), Links(to_bob)
    assert hit(client, anna.pixel, READER) == 200
    assert hit(client, anna.pixel, READER) == 200  # reopened
    assert hit(client, anna.visible[0], READER) == 303
    assert hit(client, bob.pixel, GMAIL_PROXY) == 200
    assert hit(client, bob.hidden[0], READER) == 303

    figures = client.get(f"/api/issues/{guid}/stats", headers=api_headers).json()
    assert (figures["sent"], figures["failed"]) == (2, 0)
    assert figures["opens"] == {
        "human": {"total": 2, "unique": 1},
        "machine": {"total": 1, "unique": 1},
        "all": {"total": 3, "unique": 2},
    }
    assert figures["clicks"]["human"] == {"total": 1, "unique": 1}
    assert figures["clicks"]["machine"] == {"total": 1, "unique": 1}
    assert figures["open_rate"] == 0.5
    assert figures["click_through_rate"] == 0.5
    assert figures["click_to_open_rate"] == 1.0
    sale, honeypot = figures["links"]
    assert (sale["clicks"]["human"]["total"], sale["clicks"]["machine"]["total"]) == (1, 0)
    assert honeypot["hidden"] is True
    assert (honeypot["clicks"]["human"]["total"], honeypot["clicks"]["machine"]["total"]) == (0, 1)
    listed = client.get("/api/issues", headers=api_headers).json()["issues"][0]
    assert (listed["recipients"], listed["open_rate"], listed["click_rate"]) == (2, 0.5, 0.5)


def test_a_second_send_is_refused_while_the_first_runs(
    client: TestClient, api_headers: dict[str, str], database: Database, smtp: SmtpServer
) -> None:
    newsletter_with_subscribers(client, api_headers)
    guid = new_issue(client, api_headers)
    gate = threading.Event()

    def hold(_: Received) -> None:
        gate.wait(20)  # the server sits on the first message until the test lets it go

    smtp.on_message = hold
    try:
        first = client.post(f"/api/issues/{guid}/send", json={}, headers=api_headers)
        assert first.status_code == 202
        deadline = time.monotonic() + 10
        while not smtp.received and time.monotonic() < deadline:
            time.sleep(0.01)  # the first message is at the server, held there
        second = client.post(f"/api/issues/{guid}/send", json={}, headers=api_headers)
        assert second.status_code == 409
        assert second.json()["code"] == "issue_sending"
        during = client.get(f"/api/issues/{guid}", headers=api_headers).json()
        assert during["sending"] is True
        assert during["status"] == "sending"
    finally:
        gate.set()
        issue = wait_until_sent(client, api_headers, guid)
    assert issue["deliveries"]["sent"] == 2
    assert [a for a in audit_actions(database) if a[1] == "issue.send_started"] == [
        (ACTOR, "issue.send_started", guid)
    ]
    # Once it is done, sending again is allowed (and reaches nobody new).
    again = client.post(f"/api/issues/{guid}/send", json={}, headers=api_headers)
    assert again.status_code == 202
    assert wait_until_sent(client, api_headers, guid)["last_run"]["sent"] == 0
    assert len(smtp.recipients()) == 2


def test_a_send_that_cannot_reach_the_smtp_server_stops_and_can_resume(
    database_url: str, database: Database, api_headers: dict[str, str]
) -> None:
    unreachable = smtp_settings(database_url, free_port())  # nobody listens there
    with TestClient(create_app(unreachable)) as client:
        newsletter_with_subscribers(client, api_headers)
        guid = new_issue(client, api_headers)
        answer = client.post(f"/api/issues/{guid}/send", json={}, headers=api_headers)
        assert answer.status_code == 202
        issue = wait_until_sent(client, api_headers, guid)
    assert "cannot connect" in issue["last_run"]["stopped"]
    assert issue["status"] == "sending"
    assert delivery_states(database, guid) == {ANNA: "pending", BOB: "pending"}


def test_the_openapi_document_describes_the_email_endpoints(client: TestClient) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    assert {"get", "post"} <= set(paths["/api/newsletters"])
    assert "post" in paths["/api/issues/{guid}/send"]
    assert "202" in paths["/api/issues/{guid}/send"]["post"]["responses"]
    assert "get" in paths["/api/issues/{guid}/stats"]
    assert "post" in paths["/api/newsletters/{name}/subscribers/{email}/unsubscribe"]
