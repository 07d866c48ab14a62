"""The SMTP listener for the bounce domain, driven with smtplib on loopback, on both databases."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select

from contacthub.bounces.listener import listener
from contacthub.errors import InvalidInput
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.models import DeliveryEvent, FeedbackRejection, Suppression
from tests.bounces.support import BOUNCE_DOMAIN, SIGNER, sent_issues
from tests.bounces.test_dsn import fixture
from tests.servers import free_port

ANNA = "anna@example.org"


@contextmanager
def running(database: Database, settings: Settings) -> Iterator[int]:
    port = free_port()
    config = settings.model_copy(update={"bounce_domain": BOUNCE_DOMAIN})
    server = listener(database, config, SIGNER, host="127.0.0.1", port=port)
    server.start()
    try:
        yield port
    finally:
        server.stop()


def _count(db: Database, model: type) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_a_dsn_to_a_verp_address_is_recorded_before_250(
    database: Database, settings: Settings
) -> None:
    (sent,) = sent_issues(database, [ANNA])
    raw = fixture("postfix_hard.eml", sent.deliveries[ANNA])
    with running(database, settings) as port, smtplib.SMTP("127.0.0.1", port) as client:
        refused = client.sendmail("", [sent.return_path(ANNA)], raw)
        assert refused == {}
        # Answered: so it is stored already.
        assert _count(database, DeliveryEvent) == 1
        # The same DSN delivered again (the reporting server retried) is not counted twice.
        client.sendmail("", [sent.return_path(ANNA)], raw)
    assert _count(database, DeliveryEvent) == 1
    with database.read() as session:
        row = session.execute(select(Suppression.email, Suppression.source)).one()
    assert tuple(row) == (ANNA, "smtp")


def test_the_envelope_recipient_names_the_delivery(database: Database, settings: Settings) -> None:
    (sent,) = sent_issues(database, [ANNA])
    # A bounce with no reference to its delivery but the address it was sent to.
    raw = (
        b"From: MAILER-DAEMON@mx.example.org\r\nSubject: Undelivered Mail\r\n"
        b"Message-ID: <bare-1@mx.example.org>\r\n\r\n"
        b"<anna@example.org>: host mx.example.org said: 550 5.1.1 No such user\r\n"
    )
    with running(database, settings) as port, smtplib.SMTP("127.0.0.1", port) as client:
        client.sendmail("", [sent.return_path(ANNA).upper()], raw)
    with database.read() as session:
        event = session.execute(select(DeliveryEvent.delivery_id, DeliveryEvent.kind)).one()
    assert tuple(event) == (sent.deliveries[ANNA], "hard_bounce")


def test_other_domains_are_refused(database: Database, settings: Settings) -> None:
    with (
        running(database, settings) as port,
        smtplib.SMTP("127.0.0.1", port) as client,
        pytest.raises(smtplib.SMTPRecipientsRefused) as caught,
    ):
        client.sendmail("spammer@example.net", ["victim@example.com"], b"Subject: hi\r\n\r\n")
    ((code, message),) = caught.value.recipients.values()
    assert code == 550
    assert b"bounce domain" in message


def test_what_is_not_a_bounce_is_accepted_and_listed(
    database: Database, settings: Settings
) -> None:
    with running(database, settings) as port, smtplib.SMTP("127.0.0.1", port) as client:
        client.sendmail(
            "friend@example.net", [f"postmaster@{BOUNCE_DOMAIN}"], b"Subject: hi\r\n\r\nhello\r\n"
        )
    with database.read() as session:
        rejection = session.execute(
            select(FeedbackRejection.source, FeedbackRejection.reason)
        ).one()
    assert tuple(rejection) == ("smtp", "not_a_bounce")


def test_a_database_failure_answers_451_and_keeps_nothing(settings: Settings) -> None:
    down = Database("postgresql://postgres@127.0.0.1:1/contacthub")
    try:
        with (
            running(down, settings) as port,
            smtplib.SMTP("127.0.0.1", port) as client,
            pytest.raises(smtplib.SMTPDataError) as caught,
        ):
            client.sendmail("", [f"bounces+1-0123456789abcdef@{BOUNCE_DOMAIN}"], b"x")
    finally:
        down.dispose()
    assert caught.value.smtp_code == 451


def test_the_listener_needs_a_bounce_domain(database: Database, settings: Settings) -> None:
    with pytest.raises(InvalidInput, match="CONTACTHUB_BOUNCE_DOMAIN"):
        listener(database, settings, SIGNER)
