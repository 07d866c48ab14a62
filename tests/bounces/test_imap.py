"""Polling a real IMAP server (pymap on loopback) into SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from contacthub.app import create_app
from contacthub.bounces import imap
from contacthub.bounces.processor import FeedbackReport
from contacthub.errors import Unavailable
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.models import DeliveryEvent, FeedbackRejection, Suppression
from tests.bounces.imap_server import (
    PASSWORD,
    USER,
    ImapServer,
    imap_server,
    self_signed_certificate,
)
from tests.bounces.support import SIGNER, SentIssue, sent_issues
from tests.bounces.test_dsn import fixture

ANNA = "anna@example.org"
BOB = "bob@example.org"
PROCESSED = "Processed"


@pytest.fixture(scope="module")
def server() -> Iterator[ImapServer]:
    with imap_server() as running:
        yield running


@pytest.fixture
def mailbox(server: ImapServer) -> ImapServer:
    server.empty("INBOX", PROCESSED)
    return server


def _settings(settings: Settings, server: ImapServer, **more: object) -> Settings:
    values = {
        "bounce_imap_host": "127.0.0.1",
        "bounce_imap_port": server.port,
        "bounce_imap_tls": "none",
        "bounce_imap_username": USER,
        "bounce_imap_password": PASSWORD,
        **more,
    }
    return Settings(**{**settings.model_dump(), **values})


def _bounces(sent: SentIssue) -> list[bytes]:
    return [
        fixture("postfix_hard.eml", sent.deliveries[ANNA]),
        fixture("gmail_expired.eml", sent.deliveries[BOB]),
        fixture("vacation.eml", sent.deliveries[BOB]),
    ]


def _count(db: Database, model: type) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_a_poll_records_the_bounces_then_moves_them(
    database: Database, settings: Settings, mailbox: ImapServer
) -> None:
    (sent,) = sent_issues(database, [ANNA, BOB])
    mailbox.deliver(*_bounces(sent))
    config = _settings(settings, mailbox, bounce_imap_processed_folder=PROCESSED)
    report = imap.poll(database, config, SIGNER)
    assert report.as_dict() == {
        "messages": 3,
        "recorded": 2,
        "duplicates": 0,
        "rejected": 1,
        "suppressed": 1,
    }
    assert mailbox.messages("INBOX") == []
    moved = mailbox.messages(PROCESSED)
    assert len(moved) == 3
    assert all(b"\\Seen" in flags for flags, _ in moved)
    with database.read() as session:
        suppressed = session.scalars(select(Suppression.email)).all()
        kinds = sorted(session.scalars(select(DeliveryEvent.kind)).all())
    assert suppressed == [ANNA]
    assert kinds == ["hard_bounce", "soft_bounce"]
    # Nothing new: the next poll reads nothing.
    assert imap.poll(database, config, SIGNER).as_dict()["messages"] == 0


def test_without_a_processed_folder_the_messages_are_deleted_in_batches(
    database: Database, settings: Settings, mailbox: ImapServer
) -> None:
    (sent,) = sent_issues(database, [ANNA, BOB])
    mailbox.deliver(*_bounces(sent), *_bounces(sent))
    report = imap.poll(database, _settings(settings, mailbox), SIGNER, batch_size=2)
    assert report.messages == 6
    assert report.feedback == FeedbackReport(recorded=2, duplicates=2, rejected=2, suppressed=1)
    assert mailbox.messages("INBOX") == []


def test_a_crash_after_the_commit_re_reads_the_messages_without_counting_twice(
    database: Database, settings: Settings, mailbox: ImapServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    (sent,) = sent_issues(database, [ANNA, BOB])
    mailbox.deliver(*_bounces(sent)[:2])
    config = _settings(settings, mailbox)

    def connection_lost(*args: object) -> None:
        raise OSError("connection reset by peer")

    with monkeypatch.context() as patch:
        patch.setattr(imap, "_done", connection_lost)
        with pytest.raises(Unavailable, match="broke"):
            imap.poll(database, config, SIGNER)
    assert _count(database, DeliveryEvent) == 2  # committed
    assert all(b"\\Seen" not in flags for flags, _ in mailbox.messages("INBOX"))
    report = imap.poll(database, config, SIGNER)
    assert report.feedback == FeedbackReport(duplicates=2)
    assert _count(database, DeliveryEvent) == 2
    assert mailbox.messages("INBOX") == []


def test_when_the_database_is_down_the_messages_stay_unseen(
    settings: Settings, mailbox: ImapServer
) -> None:
    mailbox.deliver(fixture("postfix_hard.eml"))
    down = Database("postgresql://postgres@127.0.0.1:1/contacthub")
    try:
        with pytest.raises(Exception, match=r"127\.0\.0\.1"):
            imap.poll(down, _settings(settings, mailbox), SIGNER)
    finally:
        down.dispose()
    ((flags, _),) = mailbox.messages("INBOX")
    assert b"\\Seen" not in flags


def test_a_refused_login_is_a_clear_error(
    database: Database, settings: Settings, mailbox: ImapServer
) -> None:
    config = _settings(settings, mailbox, bounce_imap_password="wrong")
    with pytest.raises(Unavailable, match="refused the login of 'bounces'") as caught:
        imap.poll(database, config, SIGNER)
    assert caught.value.code == "bounce_mailbox_login"


def test_rejections_are_listed(database: Database, settings: Settings, mailbox: ImapServer) -> None:
    mailbox.deliver(b"Subject: hello\r\nFrom: friend@example.org\r\n\r\nhi\r\n")
    assert imap.poll(database, _settings(settings, mailbox), SIGNER).feedback.rejected == 1
    with database.read() as session:
        rejection = session.execute(
            select(FeedbackRejection.source, FeedbackRejection.reason)
        ).one()
    assert tuple(rejection) == ("imap", "not_a_bounce")


def test_the_hub_reads_the_mailbox_when_one_is_configured(
    database: Database, settings: Settings, mailbox: ImapServer
) -> None:
    (sent,) = sent_issues(database, [ANNA, BOB])
    mailbox.deliver(*_bounces(sent))
    config = _settings(settings, mailbox, bounce_imap_interval=0.05)
    with TestClient(create_app(config)):
        deadline = time.monotonic() + 30
        while mailbox.messages("INBOX") and time.monotonic() < deadline:
            time.sleep(0.1)
    assert mailbox.messages("INBOX") == []
    assert _count(database, DeliveryEvent) == 2


def test_starttls_verifies_the_servers_certificate(
    database: Database,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    (sent,) = sent_issues(database, [ANNA, BOB])
    with imap_server(tls=(cert, key)) as server:
        server.deliver(fixture("postfix_hard.eml", sent.deliveries[ANNA]))
        config = _settings(
            settings, server, bounce_imap_host="localhost", bounce_imap_tls="starttls"
        )
        # A certificate nobody vouches for is refused: the password is never sent to it.
        with pytest.raises(Unavailable, match="CERTIFICATE_VERIFY_FAILED") as caught:
            imap.poll(database, config, SIGNER)
        assert caught.value.code == "bounce_mailbox_down"
        assert len(server.messages("INBOX")) == 1
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the system trusts it now
        assert imap.poll(database, config, SIGNER).feedback.recorded == 1
        assert server.messages("INBOX") == []
