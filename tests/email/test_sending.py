"""Sending issues through a real SMTP server on loopback, on SQLite and PostgreSQL.

The server (aiosmtpd) keeps every message; the tests parse them as a mail client would and
check what each recipient got, then check what the store recorded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import event, update

from contacthub.email import compose, repository, sending, service, signing
from contacthub.email.hashing import Purpose
from contacthub.email.sender import SmtpMailer
from contacthub.email.sending import SendPolicy, SendReport
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.models import Delivery, EmailIssue
from contacthub.storage.types import utcnow
from tests.email.smtp_server import HOST, SmtpServer, smtp_server
from tests.servers import contacthub_command, free_port

NEWS = "Weekly"
BASE = "https://news.example.com"
SUBJECT = 'News for {{ first_name | "you" }}'
HTML = """<html><body>
<h1>Hello {{ first_name | "there" }}!</h1>
<p><a href="https://shop.example.com/offer?id=7&amp;src=mail">Our offer</a></p>
<p><a href="https://shop.example.com/profile?who={{ email }}">Your profile</a></p>
<p><a href="mailto:team@example.com">Write to us</a></p>
</body></html>"""


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


def make_issue(database: Database, *subscribers: tuple[str, str | None]) -> str:
    """A newsletter with these (address, first name) subscribers and a draft issue."""
    with database.write() as session:
        service.create_newsletter(session, NEWS, "The Team", "team@example.com", BASE)
        for email, first_name in subscribers:
            service.add_subscriber(session, NEWS, email, first_name=first_name)
        return str(service.create_issue(session, NEWS, SUBJECT, HTML).guid)


def add(database: Database, email: str, first_name: str | None = None) -> None:
    with database.write() as session:
        service.add_subscriber(session, NEWS, email, first_name=first_name)


def send(
    database: Database, settings: Settings, issue: str, port: int, **options: Any
) -> SendReport:
    with SmtpMailer(HOST, port, timeout=10) as mailer:
        return sending.send_issue(
            database, issue, mailer, signer=signing.link_signer(settings), **options
        )


def deliveries(database: Database, issue: str) -> dict[str, tuple[str, int, str | None, bool]]:
    """address → (status, attempts, error, has sent_at)."""
    with database.read() as session:
        found = service.get_issue(session, issue)
        return {
            d.email: (d.status, d.attempts, d.error, d.sent_at is not None)
            for d in repository.deliveries_of(session, found.id)
        }


def issue_status(database: Database, issue: str) -> str:
    with database.read() as session:
        return service.get_issue(session, issue).status


class Anchors(HTMLParser):
    """Every <a href> (with its text) and <img src> of an HTML part."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self.images: list[str] = []
        self._open: list[str] | None = None
        self._href = ""
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self._open, self._href = [], values["href"] or ""
            if values.get("style") == "display:none":
                self.links.append((self._href, "<hidden>"))
                self._open = None
        elif tag == "img":
            self.images.append(values.get("src") or "")

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.links.append((self._href, "".join(self._open).strip()))
            self._open = None


def query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def test_each_recipient_gets_a_personalised_copy_with_every_link_tracked(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    issue = make_issue(
        database,
        ("jane@example.com", "Jane"),
        ("john@example.com", "John"),
        ("x@example.com", None),
    )
    signer = signing.link_signer(settings)
    with database.read() as session:
        links = {
            str(link.guid): (link.target_url, link.hidden)
            for link in repository.links_of(session, service.get_issue(session, issue).id)
        }

    report = send(database, settings, issue, smtp.port)

    assert (report.sent, report.failed, report.deferred, report.status) == (3, 0, 0, "sent")
    assert sorted(smtp.recipients()) == ["jane@example.com", "john@example.com", "x@example.com"]
    message_ids = set()
    for email, first_name in (("jane@example.com", "Jane"), ("x@example.com", None)):
        [message] = smtp.messages_to(email)
        message_ids.add(message["Message-ID"])
        assert message["From"] == "The Team <team@example.com>"
        assert message["To"].addresses[0].addr_spec == email
        assert message["Subject"] == f"News for {first_name or 'you'}"
        html_part = message.get_body(("html",))
        text_part = message.get_body(("plain",))
        assert html_part is not None
        assert text_part is not None
        html = html_part.get_content()
        assert f"Hello {first_name or 'there'}!" in html
        assert f"Hello {first_name or 'there'}!" in text_part.get_content()
        found = Anchors(html)

        # Every http(s) link of the body goes through the click handler, signed for this
        # recipient and this link; mailto links are left alone.
        tracked = [(href, text) for href, text in found.links if "Redirect.ashx" in href]
        assert [text for _, text in tracked] == ["Our offer", "Your profile", "<hidden>"]
        for href, _ in tracked:
            assert href.startswith(f"{BASE}{compose.CLICK_PATH}?")
            params = query(href)
            assert set(params) == {"linkguid", "email", "hash"}
            assert params["email"] == email
            assert params["linkguid"] in links
            assert signer.verify(Purpose.CLICK, params["linkguid"], email, params["hash"])
        assert [links[query(h)["linkguid"]] for h, _ in tracked] == [
            ("https://shop.example.com/offer?id=7&src=mail", False),
            ("https://shop.example.com/profile?who={{ email }}", False),
            (f"{BASE}/", True),
        ]
        assert ("mailto:team@example.com", "Write to us") in found.links
        assert not any("shop.example.com" in href for href, _ in found.links)

        [pixel] = [src for src in found.images if compose.OPEN_PATH in src]
        assert pixel.startswith(f"{BASE}{compose.OPEN_PATH}?")
        params = query(pixel)
        assert (params["issueguid"], params["recipient"]) == (issue, email)
        assert signer.verify(Purpose.OPEN, issue, email, params["hash"])

        [browser] = [href for href, _ in found.links if compose.BROWSER_VIEW_PATH in href]
        params = query(browser)
        assert browser.startswith(f"{BASE}{compose.BROWSER_VIEW_PATH}?")
        assert (params["issueguid"], params["email"]) == (issue, email)
        assert signer.verify(Purpose.BROWSER_VIEW, issue, email, params["hash"])

        [unsubscribe] = [href for href, _ in found.links if compose.UNSUBSCRIBE_PATH in href]
        params = query(unsubscribe)
        assert (params["issueguid"], params["email"]) == (issue, email)
        assert signer.verify(Purpose.UNSUBSCRIBE, issue, email, params["hash"])
        assert message["List-Unsubscribe"] == f"<{unsubscribe}>"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        # A hash made for one recipient does not open another's links.
        assert not signer.verify(Purpose.UNSUBSCRIBE, issue, "john@example.com", params["hash"])
    assert len(message_ids) == 2

    recorded = deliveries(database, issue)
    assert recorded == dict.fromkeys(
        ("jane@example.com", "john@example.com", "x@example.com"), ("sent", 1, None, True)
    )
    assert issue_status(database, issue) == "sent"


def test_a_refused_recipient_is_recorded_failed_and_the_others_are_sent(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    issue = make_issue(
        database, ("a@example.com", "A"), ("gone@example.com", "G"), ("b@example.com", "B")
    )
    smtp.refuse["gone@example.com"] = "550 5.1.1 No such user here"

    report = send(database, settings, issue, smtp.port)

    assert (report.sent, report.failed, report.status) == (2, 1, "sent")
    [failure] = report.failures
    assert failure.email == "gone@example.com"
    assert failure.status == "failed"
    assert "550" in failure.reason
    assert "No such user here" in failure.reason
    recorded = deliveries(database, issue)
    status, attempts, error, has_sent_at = recorded["gone@example.com"]
    assert (status, attempts, has_sent_at) == ("failed", 1, False)
    assert error is not None
    assert "No such user here" in error
    assert recorded["a@example.com"][0] == recorded["b@example.com"][0] == "sent"
    assert sorted(smtp.recipients()) == ["a@example.com", "b@example.com"]

    # A permanent failure is not tried again, and nobody else gets a second copy.
    again = send(database, settings, issue, smtp.port)
    assert (again.to_send, again.sent, again.failed) == (0, 0, 0)
    assert sorted(smtp.recipients()) == ["a@example.com", "b@example.com"]


def make_deferred_due(database: Database, issue: str) -> None:
    """Move the issue's deferred deliveries' next try into the past (as if time went by)."""
    with database.write() as session:
        issue_id = service.get_issue(session, issue).id
        session.execute(
            update(Delivery)
            .where(Delivery.issue_id == issue_id, Delivery.status == "deferred")
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


def test_a_temporary_failure_is_retried_once_due_until_attempts_run_out(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    issue = make_issue(database, ("a@example.com", "A"), ("busy@example.com", "B"))
    smtp.refuse["busy@example.com"] = "451 4.3.0 Try again later"
    policy = SendPolicy(max_attempts=3, retry_delay=600)

    first = send(database, settings, issue, smtp.port, policy=policy)
    assert (first.sent, first.deferred, first.failed, first.status) == (1, 1, 0, "sending")
    assert deliveries(database, issue)["busy@example.com"][:2] == ("deferred", 1)

    # Not before its next try: a run right away leaves it alone.
    early = send(database, settings, issue, smtp.port, policy=policy)
    assert (early.to_send, early.deferred, early.waiting_deferred) == (0, 0, 1)
    assert early.status == "sending"

    make_deferred_due(database, issue)
    second = send(database, settings, issue, smtp.port, policy=policy)
    assert (second.to_send, second.sent, second.deferred) == (1, 0, 1)
    make_deferred_due(database, issue)
    third = send(database, settings, issue, smtp.port, policy=policy)
    assert (third.deferred, third.failed, third.status) == (0, 1, "sent")
    status, attempts, error, _ = deliveries(database, issue)["busy@example.com"]
    assert (status, attempts) == ("failed", 3)
    assert error is not None
    assert "451" in error

    smtp.refuse.clear()
    fourth = send(database, settings, issue, smtp.port, policy=policy)
    assert fourth.to_send == 0
    assert smtp.recipients() == ["a@example.com"]


def test_a_deferred_recipient_gets_the_issue_once_the_server_takes_it(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    issue = make_issue(database, ("a@example.com", "A"), ("busy@example.com", "B"))
    smtp.refuse["busy@example.com"] = "452 4.2.2 Mailbox full"
    send(database, settings, issue, smtp.port)
    smtp.refuse.clear()
    make_deferred_due(database, issue)

    report = send(database, settings, issue, smtp.port)

    assert (report.sent, report.status) == (1, "sent")
    assert deliveries(database, issue)["busy@example.com"][:2] == ("sent", 2)
    assert sorted(smtp.recipients()) == ["a@example.com", "busy@example.com"]


def test_sending_again_mails_nobody_twice_and_reaches_new_subscribers(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    issue = make_issue(database, ("a@example.com", "A"), ("b@example.com", "B"))
    add(database, "left@example.com")
    with database.write() as session:
        service.unsubscribe(session, service.get_subscriber(session, NEWS, "left@example.com"))
    first = send(database, settings, issue, smtp.port)
    assert (first.new_deliveries, first.sent) == (2, 2)

    add(database, "new@example.com", "Nina")
    second = send(database, settings, issue, smtp.port)

    assert (second.new_deliveries, second.to_send, second.sent, second.status) == (1, 1, 1, "sent")
    assert sorted(smtp.recipients()) == ["a@example.com", "b@example.com", "new@example.com"]
    [message] = smtp.messages_to("new@example.com")
    assert message["Subject"] == "News for Nina"
    third = send(database, settings, issue, smtp.port)
    assert (third.new_deliveries, third.to_send, third.sent) == (0, 0, 0)
    assert len(smtp.recipients()) == 3


def test_small_chunks_send_everyone_once_and_report_progress(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    addresses = [f"r{n}@example.com" for n in range(7)]
    issue = make_issue(database, *[(address, None) for address in addresses])
    seen: list[tuple[int, int]] = []

    report = send(
        database,
        settings,
        issue,
        smtp.port,
        chunk_size=3,
        progress=lambda d, t: seen.append((d, t)),
    )

    assert report.sent == 7
    assert seen == [(n, 7) for n in range(1, 8)]
    assert sorted(smtp.recipients()) == sorted(addresses)


def test_an_unreachable_server_stops_the_run_and_loses_nothing(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    issue = make_issue(database, ("a@example.com", "A"), ("b@example.com", "B"), ("c@e.com", "C"))

    down = send(database, settings, issue, free_port())

    assert down.stopped is not None
    assert "cannot connect" in down.stopped
    assert (down.sent, down.failed, down.deferred, down.status) == (0, 0, 0, "sending")
    assert {status for status, *_ in deliveries(database, issue).values()} == {"pending"}
    assert {attempts for _, attempts, *_ in deliveries(database, issue).values()} == {0}

    # Meanwhile someone unsubscribes: their copy is skipped, not sent.
    with database.write() as session:
        service.unsubscribe(session, service.get_subscriber(session, NEWS, "b@example.com"))
    up = send(database, settings, issue, smtp.port)

    assert (up.sent, up.skipped_unsubscribed, up.status) == (2, 1, "sent")
    assert deliveries(database, issue)["b@example.com"][:2] == ("skipped", 0)
    assert sorted(smtp.recipients()) == ["a@example.com", "c@e.com"]


def test_two_runs_at_once_never_send_the_same_copy_twice(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    addresses = [f"r{n}@example.com" for n in range(20)]
    issue = make_issue(database, *[(address, None) for address in addresses])
    reports: list[SendReport] = []
    problems: list[BaseException] = []

    def run() -> None:
        try:
            reports.append(send(database, settings, issue, smtp.port, chunk_size=2))
        except BaseException as error:  # surfaced below
            problems.append(error)

    runs = [threading.Thread(target=run) for _ in range(2)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join(60)

    assert problems == []
    assert sum(r.sent for r in reports) == 20
    assert sorted(smtp.recipients()) == sorted(addresses)
    assert issue_status(database, issue) == "sent"


def test_unknown_issue_is_not_found(database: Database, settings: Settings) -> None:
    from contacthub.errors import NotFound

    with pytest.raises(NotFound):
        send(database, settings, str(uuid.uuid4()), free_port())


@pytest.mark.slow
def test_a_crash_after_the_server_took_a_message_never_causes_a_second_copy(
    database: Database, database_url: str, smtp: SmtpServer, tmp_path: Path, settings: Settings
) -> None:
    """The sender is killed (SIGKILL) while the server holds its third message.

    The server got that message, the store never heard of it: it is in doubt and never sent
    again on its own; the rest are sent by the next run. Asked to, a run sends the in-doubt
    ones again, with the same Message-ID.
    """
    addresses = [f"r{n}@example.com" for n in range(5)]
    issue = make_issue(database, *[(address, None) for address in addresses])
    sender: dict[str, subprocess.Popen[bytes]] = {}

    def kill_on_third(_: object) -> None:
        if len(smtp.received) == 3:
            os.kill(sender["process"].pid, signal.SIGKILL)
            time.sleep(0.2)

    smtp.on_message = kill_on_third
    environment = {
        **os.environ,
        "CONTACTHUB_CONFIG": str(tmp_path / "none.toml"),
        "CONTACTHUB_DATABASE_URL": database_url,
        "CONTACTHUB_SMTP_PORT": str(smtp.port),
        "CONTACTHUB_SECRET_KEY": settings.secret_key.get_secret_value(),
    }
    sender["process"] = subprocess.Popen(
        [str(contacthub_command()), "issue", "send", issue, "--chunk-size", "2"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert sender["process"].wait(60) == -signal.SIGKILL
    smtp.on_message = None
    assert smtp.recipients() == addresses[:3]
    recorded = deliveries(database, issue)
    assert [recorded[a][0] for a in addresses] == ["sent", "sent", "sending", "sending", "pending"]

    resumed = send(database, settings, issue, smtp.port)

    assert (resumed.sent, resumed.in_doubt, resumed.status) == (1, 2, "sending")
    assert smtp.recipients() == [*addresses[:3], addresses[4]]

    retried = send(database, settings, issue, smtp.port, retry_in_doubt=True)

    assert (retried.sent, retried.in_doubt, retried.status) == (2, 0, "sent")
    first, second = smtp.messages_to(addresses[2])
    assert first["Message-ID"] == second["Message-ID"]
    assert len(smtp.messages_to(addresses[3])) == 1


def test_issue_status_moves_from_draft_to_sent(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    issue = make_issue(database, ("a@example.com", None))
    assert issue_status(database, issue) == "draft"
    send(database, settings, issue, smtp.port)
    with database.read() as session:
        found = service.get_issue(session, issue)
        assert found.status == "sent"
        assert found.sent_at is not None
        assert session.get_one(EmailIssue, found.id).guid == uuid.UUID(issue)
        assert session.query(Delivery).count() == 1


def test_only_a_later_run_reads_deliveries_to_leave_out_those_who_have_one(
    database: Database, smtp: SmtpServer, settings: Settings
) -> None:
    # On a first run no subscriber can have a delivery yet: reading `deliveries` for it, in the
    # statement that fills that table, took PostgreSQL minutes at 100,000 subscribers.
    issue = make_issue(database, ("a@example.com", None))
    inserts: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO DELIVERIES"):
            inserts.append(" ".join(statement.split()).upper())

    event.listen(database.write_engine, "before_cursor_execute", record)
    try:
        first = send(database, settings, issue, smtp.port)
        add(database, "b@example.com")
        second = send(database, settings, issue, smtp.port)
    finally:
        event.remove(database.write_engine, "before_cursor_execute", record)

    assert (first.new_deliveries, second.new_deliveries) == (1, 1)
    assert smtp.recipients() == ["a@example.com", "b@example.com"]
    assert ["FROM DELIVERIES" in statement for statement in inserts] == [False, True]
