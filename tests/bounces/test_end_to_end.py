"""Deliverability end to end, on SQLite and PostgreSQL, through real servers only.

An issue goes out through the loopback SMTP sink with VERP return paths; a DSN for one copy
comes back to the bounce listener (`contacthub bounces serve`) by SMTP, a signed Mailgun
complaint for another copy comes to the webhook endpoint; both are recorded once, suppress their
addresses, show in the issue's statistics, and the next issue skips those addresses and says why.
"""

from __future__ import annotations

import json
import smtplib
from collections.abc import Iterator
from email.parser import BytesHeaderParser

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from contacthub.app import create_app
from contacthub.bounces import verp
from contacthub.email import repository, sending, service, signing, stats
from contacthub.email.sending import SendReport
from contacthub.settings import Settings
from contacthub.storage.database import Database
from tests.bounces.support import BOUNCE_DOMAIN
from tests.bounces.test_listener import running
from tests.bounces.webhooks.support import mailgun_signed, stored
from tests.bounces.webhooks.test_mailgun import event_data, post
from tests.email.smtp_server import Received, SmtpServer, smtp_server
from tests.email.test_sending import NEWS, add, make_issue
from tests.email.ui_support import smtp_settings

MAILGUN_KEY = "key-end-to-end-mailgun-signing-key"
BOUNCED = "anna@example.org"
COMPLAINED = "bob@example.org"
READERS = (BOUNCED, COMPLAINED, "carl@example.org", "dora@example.org")


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def hub_settings(database_url: str, smtp: SmtpServer) -> Settings:
    """Sending through the sink, with a bounce domain and Mailgun's webhook on."""
    return smtp_settings(database_url, smtp.port).model_copy(
        update={
            "bounce_domain": BOUNCE_DOMAIN,
            "mailgun_webhook_signing_key": SecretStr(MAILGUN_KEY),
        }
    )


def send(database: Database, settings: Settings, issue: str) -> SendReport:
    """What the CLI, the admin and the hub's jobs run: the settings' server and policy."""
    return sending.send_with_settings(
        database, settings, issue, signer=signing.link_signer(settings)
    )


def copy_to(smtp: SmtpServer, address: str) -> Received:
    [item] = [item for item in smtp.received if item.rcpt_tos == [address]]
    return item


def dsn_for(copy: Received, *, message_id: str) -> bytes:
    """An RFC 3464 hard bounce of `copy`, as a recipient's server (Postfix) writes it: to the
    copy's return path, with the copy's own header fields returned."""
    [recipient] = copy.rcpt_tos
    returned_headers = copy.raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    text = f"""\
From: Mail Delivery System <MAILER-DAEMON@mx.example.org>
To: {copy.mail_from}
Subject: Undelivered Mail Returned to Sender
Message-ID: {message_id}
Date: Mon, 07 Dec 2026 03:15:02 +0000
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="REPORT"

--REPORT
Content-Type: text/plain; charset=us-ascii

<{recipient}>: host mx.example.org said: 550 5.1.1 User unknown

--REPORT
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: User unknown

--REPORT
Content-Type: text/rfc822-headers

{returned_headers}

--REPORT--
"""
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("ascii")


def issue_stats(database: Database, issue: str) -> stats.IssueStats:
    with database.read() as session:
        return stats.issue_stats(session, issue)


def feedback(database: Database) -> tuple[object, ...]:
    """What the feedback left in the store: the events of each source and the suppressions."""
    return (
        stored(database, "smtp").events,
        stored(database, "mailgun").events,
        stored(database, "mailgun").suppressions,
    )


def test_bounces_and_complaints_come_back_to_their_delivery_and_stop_the_next_issue(
    database: Database, hub_settings: Settings, smtp: SmtpServer
) -> None:
    signer = signing.link_signer(hub_settings)
    issue = make_issue(database, *((reader, None) for reader in READERS))

    first = send(database, hub_settings, issue)

    assert (first.sent, first.skipped_suppressed) == (len(READERS), 0)
    with database.read() as session:
        found = service.get_issue(session, issue)
        delivery_of = {d.email: d.id for d in repository.deliveries_of(session, found.id)}
    assert sorted(smtp.recipients()) == sorted(READERS)
    for item in smtp.received:
        [reader] = item.rcpt_tos
        token = verp.delivery_token(signer, delivery_of[reader])
        # The envelope sender is the copy's own return path on the bounce domain.
        assert item.mail_from == verp.return_path(signer, delivery_of[reader], BOUNCE_DOMAIN)
        assert item.mail_from.endswith(f"@{BOUNCE_DOMAIN}")
        assert item.message[verp.HEADER] == token
        assert item.message["X-SES-MESSAGE-TAGS"] == f"contacthub_delivery={token}"
        assert json.loads(item.message["X-SMTPAPI"])["unique_args"]["contacthub_delivery"] == token
        assert item.message["X-PM-Metadata-contacthub-delivery"] == token
        assert json.loads(item.message["X-Mailgun-Variables"]) == {"contacthub_delivery": token}

    # (a) The recipient's server returns Anna's copy: a DSN to the copy's return path, by SMTP,
    # to the listener `contacthub bounces serve` runs.
    bounced = copy_to(smtp, BOUNCED)
    dsn = dsn_for(bounced, message_id="<dsn-1@mx.example.org>")
    assert BytesHeaderParser().parsebytes(dsn)["To"] == bounced.mail_from
    with running(database, hub_settings) as port, smtplib.SMTP("127.0.0.1", port) as client:
        assert client.sendmail("", [bounced.mail_from], dsn) == {}
    assert stored(database, "smtp").events == [
        (delivery_of[BOUNCED], "hard_bounce", BOUNCED, "5.1.1")
    ]

    # (b) Bob complains at his mailbox provider; Mailgun calls the webhook, echoing the token it
    # was given in his copy's X-Mailgun-Variables.
    complained = copy_to(smtp, COMPLAINED)
    variables = json.loads(complained.message["X-Mailgun-Variables"])
    complaint = event_data("complained", "mg-e2e-1", COMPLAINED, variables["contacthub_delivery"])
    signed = mailgun_signed(complaint, MAILGUN_KEY)
    with TestClient(create_app(hub_settings)) as hub:
        answer = post(hub, signed)
        assert (answer.status_code, answer.json()["recorded"]) == (200, 1)

        webhook = stored(database, "mailgun")
        assert webhook.events == [(delivery_of[COMPLAINED], "complaint", COMPLAINED, None)]
        assert webhook.suppressions == {BOUNCED: "hard_bounce", COMPLAINED: "complaint"}
        after_feedback = feedback(database)
        counted = issue_stats(database, issue)
        assert counted.sent == len(READERS)
        assert counted.deliverability.bounced_hard == 1
        assert counted.deliverability.bounced_soft == 0
        assert counted.deliverability.complaints == 1
        assert counted.delivered == counted.sent - 1

        # (c) Replays change nothing: the same DSN again, the same signed call again (its
        # signature is good once), and Mailgun's retry of the event signed anew.
        with running(database, hub_settings) as port, smtplib.SMTP("127.0.0.1", port) as client:
            assert client.sendmail("", [bounced.mail_from], dsn) == {}
        replayed = post(hub, signed)
        assert (replayed.status_code, replayed.json()["code"]) == (403, "replayed_token")
        retried = post(hub, mailgun_signed(complaint, MAILGUN_KEY))
        assert (retried.status_code, retried.json()["duplicates"]) == (200, 1)
    assert feedback(database) == after_feedback
    assert issue_stats(database, issue).deliverability == counted.deliverability

    # (d) The next issue of the newsletter skips both addresses, and its report says why.
    add(database, "erin@example.org")
    with database.write() as session:
        second_issue = str(service.create_issue(session, NEWS, "Next", "<p>Again</p>").guid)
    smtp.received.clear()

    second = send(database, hub_settings, second_issue)

    assert sorted(smtp.recipients()) == sorted([*READERS[2:], "erin@example.org"])
    assert (second.sent, second.skipped_suppressed) == (len(READERS) - 1, 2)
    assert second.suppressed_reasons == {"hard_bounce": 1, "complaint": 1}
    assert issue_stats(database, second_issue).deliverability.skipped_suppressed == 2
