"""Admin pages of email: newsletters, subscribers (add, unsubscribe, CSV import), issues
(compose, preview, send in the background through a real SMTP server), statistics."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from contacthub.email import service
from contacthub.settings import Settings
from contacthub.storage.database import Database
from tests.admin.conftest import EMAIL
from tests.admin.reading import audit_actions, field_error
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
    wait_for_run,
)

ANNA = "anna@example.com"
BOB = "bob@example.com"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def settings(database_url: str, smtp: SmtpServer) -> Settings:
    """The hub's settings, sending through the loopback SMTP server."""
    return smtp_settings(database_url, smtp.port)


def post(admin: TestClient, path: str, **data: str) -> Any:
    return admin.post(path, data={**data, "csrf_token": admin.csrf}, follow_redirects=False)  # type: ignore[attr-defined]


def create_newsletter(admin: TestClient, name: str = "Weekly") -> str:
    """Create a newsletter through its form; its page's path."""
    answer = post(
        admin,
        "/admin/newsletters/new",
        name=name,
        sender_name="The Team",
        sender_email="news@example.com",
        base_url=BASE_URL,
    )
    assert answer.status_code == 303, answer.text
    path: str = answer.headers["location"]
    assert re.fullmatch(r"/admin/newsletters/[0-9a-f-]{36}", path), path
    return path


def subscribe(admin: TestClient, newsletter: str, email: str, first: str = "") -> None:
    answer = post(admin, f"{newsletter}/subscribers", email=email, first_name=first)
    assert answer.status_code == 303, answer.text


def create_issue(admin: TestClient, subject: str = "Spring news", html: str = HTML) -> str:
    """Compose an issue of Weekly through its form; its GUID."""
    answer = post(admin, "/admin/issues/new", newsletter="Weekly", subject=subject, html_body=html)
    assert answer.status_code == 303, answer.text
    match = re.fullmatch(r"/admin/issues/([0-9a-f-]{36})", answer.headers["location"])
    assert match, answer.headers["location"]
    return match.group(1)


def table_row(page: str, label: str) -> list[str]:
    """The numbers of the table row that starts with `label`."""
    match = re.search(rf"<td>{re.escape(label)}</td>((?:\s*<td class=\"num\">[^<]*</td>)+)", page)
    assert match, f"no row {label!r}"
    return re.findall(r'<td class="num">([^<]*)</td>', match.group(1))


# -- access --------------------------------------------------------------------------------------


def test_every_email_page_asks_to_sign_in(client: TestClient) -> None:
    guid = uuid.uuid4()
    for path in (
        "/admin/newsletters",
        "/admin/newsletters/new",
        "/admin/newsletters/Weekly",
        "/admin/issues",
        "/admin/issues/new",
        f"/admin/issues/{guid}",
        f"/admin/issues/{guid}/preview",
        f"/admin/issues/{guid}/stats",
    ):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/admin/sign-in?next="), path
    for path in ("/admin/newsletters/new", f"/admin/issues/{guid}/send", "/admin/issues/new"):
        answer = client.post(path, data={"name": "x"}, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/admin/sign-in"), path


# -- newsletters ---------------------------------------------------------------------------------


def test_a_newsletter_is_created_listed_and_recorded(admin: TestClient, database: Database) -> None:
    path = create_newsletter(admin)

    page = admin.get(path)
    assert page.status_code == 200
    assert "<h1>Weekly</h1>" in page.text
    assert BASE_URL in page.text
    listing = admin.get("/admin/newsletters").text
    assert f'<a href="{path}">Weekly</a>' in listing
    assert "The Team" in listing
    assert ("admin@example.com", "newsletter.created", "Weekly") in audit_actions(database)
    # Reachable by name as well as by GUID.
    assert "<h1>Weekly</h1>" in admin.get("/admin/newsletters/Weekly").text
    assert admin.get("/admin/newsletters/Nope").status_code == 404


def test_newsletter_form_says_what_is_wrong_next_to_the_field(admin: TestClient) -> None:
    good = {
        "name": "Weekly",
        "sender_name": "The Team",
        "sender_email": "news@example.com",
        "base_url": BASE_URL,
    }
    for field, value in (
        ("name", ""),
        ("sender_name", "Line\nbreak"),
        ("sender_email", "not an address"),
        ("base_url", "ftp://example.com"),
    ):
        answer = post(admin, "/admin/newsletters/new", **{**good, field: value})
        assert answer.status_code == 400, field
        assert field_error(answer.text, field), f"no error next to {field}"
        # What was typed is kept.
        assert 'value="The Team"' in answer.text or field == "sender_name"

    create_newsletter(admin)
    answer = post(admin, "/admin/newsletters/new", **good)
    assert answer.status_code == 409
    assert "already exists" in (field_error(answer.text, "name") or "")


def test_hostile_names_are_shown_as_text(admin: TestClient) -> None:
    path = create_newsletter(admin, name="<script>alert(1)</script>")
    subscribe(admin, path, "eve@example.com", first="<img src=x onerror=alert(2)>")
    for page in (admin.get("/admin/newsletters").text, admin.get(path).text):
        assert "<script>alert(1)" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in admin.get(path).text
    assert "&lt;img src=x onerror=alert(2)&gt;" in admin.get(path).text


# -- subscribers ---------------------------------------------------------------------------------


def test_subscribers_are_added_unsubscribed_and_shown_with_their_status(
    admin: TestClient, database: Database
) -> None:
    path = create_newsletter(admin)
    subscribe(admin, path, "Anna@Example.com", first="Anna")

    page = admin.get(path).text
    assert ANNA in page
    assert '<span class="badge badge-ok">subscribed</span>' in page

    answer = post(admin, f"{path}/subscribers", email="nope", first_name="X")
    assert answer.status_code == 400
    assert "not a valid subscriber address" in (field_error(answer.text, "email") or "")
    assert 'value="X"' in answer.text
    answer = post(admin, f"{path}/subscribers", email=ANNA, last_name="y" * 101)
    assert answer.status_code == 400
    assert field_error(answer.text, "last_name")
    answer = post(admin, f"{path}/subscribers", email=ANNA)
    assert answer.status_code == 409
    assert "already subscribed" in (field_error(answer.text, "email") or "")

    answer = post(admin, f"{path}/unsubscribe", email=ANNA)
    assert answer.status_code == 303
    page = admin.get(path).text
    assert '<span class="badge badge-neutral">unsubscribed</span>' in page
    assert admin.get(f"{path}?status=subscribed").text.count(ANNA) == 0
    assert ANNA in admin.get(f"{path}?status=unsubscribed").text
    actions = audit_actions(database)
    assert (EMAIL, "subscriber.added", ANNA) in actions
    assert (EMAIL, "subscriber.unsubscribed", ANNA) in actions


def test_subscribers_are_paged_by_keyset(admin: TestClient, database: Database) -> None:
    path = create_newsletter(admin)
    with database.write() as session:
        for number in range(60):
            service.add_subscriber(session, "Weekly", f"reader{number:02d}@example.com")

    first = admin.get(path).text
    assert "reader59@example.com" in first
    assert "reader10@example.com" in first
    assert "reader09@example.com" not in first
    older = re.search(r'<a class="button secondary" href="([^"]+)">Older', first)
    assert older, "no link to older subscribers"
    second = admin.get(older.group(1).replace("&amp;", "&")).text
    assert "reader09@example.com" in second
    assert "reader00@example.com" in second
    assert "reader10@example.com" not in second
    newer = re.search(r'<a class="button secondary" href="([^"]+)">← Newer', second)
    assert newer, "no link back to newer subscribers"
    back = admin.get(newer.group(1).replace("&amp;", "&")).text
    assert "reader59@example.com" in back
    assert "reader10@example.com" in back
    # A search narrows the list.
    found = admin.get(f"{path}?q=reader4").text
    assert "reader41@example.com" in found
    assert "reader51@example.com" not in found


def test_a_csv_upload_imports_subscribers_and_lists_the_rows_it_skipped(
    admin: TestClient, database: Database
) -> None:
    path = create_newsletter(admin)
    csv_text = (
        "Email;First name;Team\n"
        "anna@example.com;Anna;x\n"
        "not-an-address;Bob;x\n"
        "ANNA@example.com;Again;x\n"
        "carol@example.com;<b>Carol</b>;x\n"
    )
    answer = admin.post(
        f"{path}/import",
        data={"csrf_token": admin.csrf},  # type: ignore[attr-defined]
        files={"file": ("list.csv", csv_text.encode(), "text/csv")},
    )
    assert answer.status_code == 200, answer.text
    assert "Import finished" in answer.text
    assert re.search(r"<dt>Added</dt><dd>2</dd>", answer.text)
    assert re.search(r"<dt>Skipped rows</dt><dd>2</dd>", answer.text)
    assert re.search(r'<td class="num">3</td><td class="wrap">not-an-address</td>', answer.text)
    assert "duplicate of line 2" in answer.text
    assert "Team" in answer.text  # the ignored column is named
    assert "&lt;b&gt;Carol&lt;/b&gt;" in answer.text
    assert "<b>Carol</b>" not in answer.text
    assert set(delivery_free_subscribers(database)) == {ANNA, "carol@example.com"}
    assert (EMAIL, "subscriber.imported", "Weekly") in audit_actions(database)

    answer = admin.post(
        f"{path}/import",
        data={"csrf_token": admin.csrf},  # type: ignore[attr-defined]
        files={"file": ("list.csv", b"name,phone\nx,1\n", "text/csv")},
    )
    assert answer.status_code == 400
    assert "no email column" in (field_error(answer.text, "file") or "")
    answer = admin.post(
        f"{path}/import",
        data={"csrf_token": admin.csrf},  # type: ignore[attr-defined]
        files={"file": ("list.csv", b"email\n\xff\xfe\n", "text/csv")},
    )
    assert answer.status_code == 400
    assert "UTF-8" in (field_error(answer.text, "file") or "")
    answer = admin.post(
        f"{path}/import",
        data={"csrf_token": admin.csrf},  # type: ignore[attr-defined]
        files={"file": ("list.csv", b"email\nzoe@example.com\n" + b"x" * 140_000, "text/csv")},
    )
    assert answer.status_code == 400
    assert "cannot be read at line 3" in (field_error(answer.text, "file") or "")
    assert "zoe@example.com" not in delivery_free_subscribers(database)
    answer = post(admin, f"{path}/import")
    assert answer.status_code == 400
    assert field_error(answer.text, "file") == "Choose a CSV file to import."


def delivery_free_subscribers(database: Database) -> list[str]:
    with database.read() as session:
        return [s.email for s in service.list_subscribers(session, "Weekly")]


# -- issues --------------------------------------------------------------------------------------


def test_issue_form_says_what_is_wrong_next_to_the_field(admin: TestClient) -> None:
    create_newsletter(admin)
    form = admin.get("/admin/issues/new?newsletter=Weekly").text
    assert '<option value="Weekly" selected>' in form
    assert "{{ first_name }}" in form  # the placeholders are documented on the page
    good = {"newsletter": "Weekly", "subject": "Hello", "html_body": HTML}
    for field, value in (("newsletter", "Nope"), ("subject", ""), ("html_body", "  ")):
        answer = post(admin, "/admin/issues/new", **{**good, field: value})
        assert answer.status_code in (400, 404), field
        assert field_error(answer.text, field), f"no error next to {field}"


def test_hostile_subject_is_escaped_on_every_issue_page(admin: TestClient) -> None:
    create_newsletter(admin)
    guid = create_issue(admin, subject="<script>alert('x')</script>")
    for path in ("/admin/issues", f"/admin/issues/{guid}", f"/admin/issues/{guid}/stats"):
        page = admin.get(path).text
        assert "<script>alert(" not in page, path
        assert "&lt;script&gt;alert(" in page, path


def test_the_preview_is_personalised_framed_by_the_admin_only_and_counts_nothing(
    admin: TestClient, database: Database
) -> None:
    path = create_newsletter(admin)
    subscribe(admin, path, ANNA, first="Anna")
    subscribe(admin, path, BOB, first="Bob")
    guid = create_issue(admin, subject='News for {{ first_name | "you" }}')

    page = admin.get(f"/admin/issues/{guid}").text
    assert f'<iframe class="preview" sandbox src="/admin/issues/{guid}/preview"' in page
    assert "News for Anna" in page  # the subject, personalised
    assert "Hello Anna" in page  # the plain-text part

    preview = admin.get(f"/admin/issues/{guid}/preview")
    assert preview.status_code == 200
    assert "<h1>Hello Anna</h1>" in preview.text
    policy = preview.headers["content-security-policy"]
    assert "script-src 'none'" in policy
    assert "frame-ancestors 'self'" in policy
    assert "sandbox" in policy
    assert preview.headers["x-frame-options"] == "SAMEORIGIN"
    # The admin pages themselves still refuse to be framed.
    assert (
        "frame-ancestors 'none'"
        in admin.get(f"/admin/issues/{guid}").headers["content-security-policy"]
    )

    assert "<h1>Hello Bob</h1>" in admin.get(f"/admin/issues/{guid}/preview?email={BOB}").text
    page = admin.get(f"/admin/issues/{guid}?email=nobody@example.com").text
    assert "nobody@example.com is not a subscriber" in page

    # Following the preview's links logs nothing: they are signed with a throwaway key.
    links = re.findall(r'href="([^"]*Redirect\.ashx[^"]*)"', preview.text)
    assert links
    pixel = re.search(r'src="([^"]*Track\.ashx[^"]*)"', preview.text)
    assert pixel
    assert hit(admin, links[0].replace("&amp;", "&"), READER) == 303
    assert hit(admin, pixel.group(1).replace("&amp;", "&"), READER) == 200
    stats = admin.get(f"/admin/issues/{guid}/stats").text
    assert table_row(stats, "Unique opens") == ["0", "0", "0"]
    assert table_row(stats, "Total clicks") == ["0", "0", "0"]


def test_sending_runs_in_the_background_and_the_statistics_tell_humans_from_machines(
    admin: TestClient, database: Database, smtp: SmtpServer
) -> None:
    path = create_newsletter(admin)
    subscribe(admin, path, ANNA, first="Anna")
    subscribe(admin, path, BOB, first="Bob")
    guid = create_issue(admin, subject='News for {{ first_name | "you" }}')
    draft = admin.get(f"/admin/issues/{guid}").text
    assert "Send to 2 subscribers" in draft
    assert 'data-confirm="Send “News for {{ first_name | &#34;you&#34; }}” to 2' in draft

    answer = post(admin, f"/admin/issues/{guid}/send")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/admin/issues/{guid}"
    wait_for_run(admin, guid)

    assert delivery_states(database, guid) == {ANNA: "sent", BOB: "sent"}
    assert sorted(smtp.recipients()) == [ANNA, BOB]
    [to_anna] = smtp.messages_to(ANNA)
    [to_bob] = smtp.messages_to(BOB)
    assert to_anna["Subject"] == "News for Anna"
    page = admin.get(f"/admin/issues/{guid}").text
    assert "data-refresh" not in page
    assert '<span class="badge badge-ok">sent</span>' in page
    assert re.search(r"<dt>Sent</dt><dd>2</dd>", page)
    assert (EMAIL, "issue.send_started", guid) in audit_actions(database)
    assert (EMAIL, "issue.created", guid) in audit_actions(database)

    # Anna opens it in her mail client and clicks the sale link an hour later; Gmail's image
    # proxy fetches Bob's pixel, and a link scanner follows his hidden honeypot link.
    backdate_deliveries(database, guid)
    anna, bob = Links(to_anna), Links(to_bob)
    assert hit(admin, anna.pixel, READER) == 200
    assert hit(admin, anna.visible[0], READER) == 303
    assert hit(admin, bob.pixel, GMAIL_PROXY) == 200
    assert hit(admin, bob.hidden[0], READER) == 303

    stats = admin.get(f"/admin/issues/{guid}/stats")
    assert stats.status_code == 200
    page = stats.text
    assert table_row(page, "Unique opens") == ["1", "1", "2"]
    assert table_row(page, "Total opens") == ["1", "1", "2"]
    assert table_row(page, "Unique clicks") == ["1", "1", "2"]
    assert table_row(page, "Total clicks") == ["1", "1", "2"]
    assert '<div class="label">Open rate</div><div class="value">50.0 %</div>' in page
    assert '<div class="label">Click-to-open</div><div class="value">100.0 %</div>' in page
    sale = re.search(
        r"<code>https://shop.example.com/spring</code></td>((?:\s*<td[^>]*>[^<]*</td>)+)", page
    )
    assert sale
    assert re.findall(r">(\d+)<", sale.group(1)) == ["1", "0", "1", "1"]
    honeypot = re.search(
        r"honeypot</span> <code>https://news.example.com/</code></td>((?:\s*<td[^>]*>[^<]*</td>)+)",
        page,
    )
    assert honeypot
    assert re.findall(r">(\d+)<", honeypot.group(1)) == ["0", "1", "1", "0"]
    assert "<svg" in page
    assert "style=" not in page.split("<svg", 1)[1].split("</svg>", 1)[0]

    listing = admin.get("/admin/issues").text
    assert "News for {{ first_name | &#34;you&#34; }}" in listing
    assert re.search(
        r'<td class="num">2</td>\s*<td class="num">50.0 %</td>\s*<td class="num">50.0 %</td>',
        listing,
    )


def test_a_second_send_of_an_issue_being_sent_is_refused(
    admin: TestClient, database: Database, smtp: SmtpServer
) -> None:
    path = create_newsletter(admin)
    subscribe(admin, path, ANNA)
    subscribe(admin, path, BOB)
    guid = create_issue(admin)
    gate = threading.Event()

    def hold(_: Received) -> None:
        gate.wait(20)  # the server sits on the first message until the test lets it go

    smtp.on_message = hold
    try:
        assert post(admin, f"/admin/issues/{guid}/send").status_code == 303
        again = post(admin, f"/admin/issues/{guid}/send")
        assert again.status_code == 409
        assert "being sent right now" in again.text
        page = admin.get(f"/admin/issues/{guid}").text
        assert 'data-refresh="2"' in page
        assert '<progress class="send-progress"' in page
        assert "Send to" not in page  # no send button while sending
    finally:
        gate.set()
        wait_for_run(admin, guid)  # never leave a run behind: the test's database goes next
    assert delivery_states(database, guid) == {ANNA: "sent", BOB: "sent"}
    assert "data-refresh" not in admin.get(f"/admin/issues/{guid}").text
    started = [a for a in audit_actions(database) if a[1] == "issue.send_started"]
    assert len(started) == 1


def test_unknown_and_malformed_issues(admin: TestClient) -> None:
    assert admin.get(f"/admin/issues/{uuid.uuid4()}").status_code == 404
    assert admin.get("/admin/issues/not-a-guid").status_code == 400
    assert post(admin, f"/admin/issues/{uuid.uuid4()}/send").status_code == 404
