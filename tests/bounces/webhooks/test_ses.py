"""Amazon SES through SNS, on SQLite and PostgreSQL: messages signed as SNS signs them, the
signing certificate fetched over real TLS from a loopback host (see support.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from contacthub.bounces import verp
from contacthub.bounces.webhooks import ses
from contacthub.errors import Forbidden
from contacthub.settings import Settings
from contacthub.storage.database import Database
from tests.bounces.support import SIGNER, SentIssue
from tests.bounces.webhooks.conftest import ANNA, BOB
from tests.bounces.webhooks.support import (
    TOPIC,
    SnsHost,
    SnsSide,
    rejection_details,
    ses_mail,
    sns_notification,
    sns_signed,
    stored,
)

URL = "/webhooks/email/ses"
CERTIFICATE_PATH = "/SimpleNotificationService-test.pem"


def post(hub: TestClient, message: dict[str, str] | bytes) -> Any:
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    # SNS posts JSON as text/plain, with its message type in a header.
    return hub.post(URL, content=body, headers={"Content-Type": "text/plain; charset=UTF-8"})


def bounce(
    bounce_type: str, recipients: list[tuple[str, str, str]], mail: dict[str, Any]
) -> dict[str, Any]:
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": [
                {"emailAddress": email, "action": "failed", "status": status, "diagnosticCode": d}
                for email, status, d in recipients
            ],
            "timestamp": "2026-12-07T01:02:03.456Z",
            "feedbackId": "0100018c-feedback",
            "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com",
        },
        "mail": mail,
    }


def test_a_signed_permanent_bounce_is_recorded_once_and_suppresses(
    hub: TestClient, database: Database, sent: SentIssue, sns_side: SnsSide, sns_host: SnsHost
) -> None:
    ses_message = bounce(
        "Permanent",
        [(ANNA, "5.1.1", "smtp; 550 5.1.1 user unknown")],
        ses_mail(sent.token(ANNA)),
    )
    notification = sns_notification(ses_message, sns_host, subject="Amazon SES Email Event")
    message = sns_signed(notification, sns_side, version="2")

    answer = post(hub, message)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "recorded": 1,
        "duplicates": 0,
        "rejected": 0,
        "ignored": 0,
        "suppressed": 1,
    }
    found = stored(database, "ses")
    assert found.events == [(sent.deliveries[ANNA], "hard_bounce", ANNA, "5.1.1")]
    assert found.suppressions == {ANNA: "hard_bounce"}
    assert found.rejections == {}

    # SNS delivers again (same MessageId, same signature): counted as a duplicate, nothing new.
    again = post(hub, message)
    assert again.status_code == 200
    assert again.json()["duplicates"] == 1
    assert again.json()["recorded"] == 0
    assert stored(database, "ses").events == found.events
    # The certificate was fetched once, then taken from the cache.
    assert sns_host.requests == [CERTIFICATE_PATH]


def test_transient_bounces_complaints_and_deliveries_map_to_their_kinds(
    hub: TestClient, database: Database, sent: SentIssue, sns_side: SnsSide, sns_host: SnsHost
) -> None:
    # Bob's copy: the tag is missing (no configuration set), the header names the delivery.
    bob_mail = ses_mail(None, header_token=sent.token(BOB))
    messages = [
        bounce("Transient", [(BOB, "4.2.2", "smtp; 452 4.2.2 mailbox full")], bob_mail),
        {
            "notificationType": "Complaint",
            "complaint": {
                "complainedRecipients": [{"emailAddress": ANNA}],
                "complaintFeedbackType": "abuse",
                "timestamp": "2026-12-07T02:00:00.000Z",
            },
            "mail": ses_mail(sent.token(ANNA)),
        },
        {
            # An SES event of a configuration set says eventType instead of notificationType.
            "eventType": "Delivery",
            "delivery": {
                "recipients": [BOB],
                "smtpResponse": "250 2.0.0 OK",
                "timestamp": "2026-12-07T01:00:01.000Z",
            },
            "mail": bob_mail,
        },
        {"eventType": "Open", "open": {"ipAddress": "192.0.2.1"}, "mail": bob_mail},
    ]
    for ses_message in messages:
        answer = post(hub, sns_signed(sns_notification(ses_message, sns_host), sns_side))
        assert answer.status_code == 200, answer.text

    found = stored(database, "ses")
    assert [event[:3] for event in found.events] == [
        (sent.deliveries[BOB], "soft_bounce", BOB),
        (sent.deliveries[ANNA], "complaint", ANNA),
        (sent.deliveries[BOB], "delivered", BOB),
    ]
    # One soft bounce does not suppress (soft_bounce_limit is 3); the complaint does.
    assert found.suppressions == {ANNA: "complaint"}
    assert found.rejections == {"ignored_event": 1}
    assert "SES Open" in rejection_details(database, "ses")[0]


def test_a_subscription_is_confirmed_only_when_signed(
    hub: TestClient, database: Database, sns_side: SnsSide, sns_host: SnsHost
) -> None:
    subscribe_path = f"/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=2336412f37fb687f"
    confirmation = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37fb687f",
        "TopicArn": TOPIC,
        "Message": f"You have chosen to subscribe to the topic {TOPIC}.",
        "SubscribeURL": f"{sns_host.base_url}{subscribe_path}",
        "Timestamp": "2026-12-07T01:00:00.000Z",
        "SigningCertURL": f"{sns_host.base_url}{CERTIFICATE_PATH}",
    }

    unsigned = post(hub, confirmation)
    assert unsigned.status_code == 401
    assert unsigned.json()["code"] == "missing_signature"
    assert sns_host.requests == []

    forged = sns_signed({**confirmation, "Token": "another"}, sns_side)
    forged["Token"] = confirmation["Token"]
    assert post(hub, forged).json()["code"] == "bad_signature"
    assert sns_host.requests == [CERTIFICATE_PATH]  # never the SubscribeURL

    answer = post(hub, sns_signed(confirmation, sns_side))
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "subscription_confirmed"
    assert sns_host.requests == [CERTIFICATE_PATH, subscribe_path]
    assert stored(database, "ses").rejections == {"missing_signature": 1, "bad_signature": 1}


def test_subscribe_urls_off_the_sns_hosts_or_failing_and_unsubscribe_confirmations(
    hub: TestClient, database: Database, sns_side: SnsSide, sns_host: SnsHost
) -> None:
    confirmation = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "265545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "token",
        "TopicArn": TOPIC,
        "Message": "Subscribe?",
        "SubscribeURL": "https://127.0.0.1:1/?Action=ConfirmSubscription",
        "Timestamp": "2026-12-07T01:00:00.000Z",
        "SigningCertURL": f"{sns_host.base_url}{CERTIFICATE_PATH}",
    }
    elsewhere = post(hub, sns_signed(confirmation, sns_side))
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (403, "untrusted_url")

    failing = {**confirmation, "SubscribeURL": f"{sns_host.base_url}/gone"}
    answer = post(hub, sns_signed(failing, sns_side))
    assert (answer.status_code, answer.json()["code"]) == (503, "confirmation_failed")
    assert sns_host.requests == [CERTIFICATE_PATH, "/gone"]

    ended = sns_signed({**confirmation, "Type": "UnsubscribeConfirmation"}, sns_side)
    answer = post(hub, ended)
    assert answer.status_code == 200
    assert answer.json()["status"] == "unsubscribed"
    assert sns_host.requests == [CERTIFICATE_PATH, "/gone"]  # nothing is followed
    assert stored(database, "ses").rejections == {"untrusted_url": 1, "confirmation_failed": 1}


def test_unsigned_forged_and_foreign_messages_are_refused_and_recorded(
    hub: TestClient, database: Database, sent: SentIssue, sns_side: SnsSide, sns_host: SnsHost
) -> None:
    ses_message = bounce("Permanent", [(ANNA, "5.1.1", "550")], ses_mail(sent.token(ANNA)))
    good = sns_signed(sns_notification(ses_message, sns_host), sns_side)

    unsigned = {k: v for k, v in good.items() if k != "Signature"}
    tampered = {**good, "Message": good["Message"].replace("Permanent", "Transient")}
    other_topic = sns_signed(
        sns_notification(ses_message, sns_host, topic=TOPIC + "-other"), sns_side
    )
    plain_http = sns_signed(
        {**sns_notification(ses_message, sns_host), "SigningCertURL": "http://localhost/c.pem"},
        sns_side,
    )
    elsewhere = sns_signed(
        {
            **sns_notification(ses_message, sns_host),
            "SigningCertURL": "https://sns.eu-west-1.amazonaws.com.example.net/c.pem",
        },
        sns_side,
    )
    missing_certificate = sns_signed(
        {**sns_notification(ses_message, sns_host), "SigningCertURL": f"{sns_host.base_url}/x"},
        sns_side,
    )
    unknown_version = {**good, "SignatureVersion": "3"}
    cases = [
        (unsigned, 401, "missing_signature"),
        (tampered, 403, "bad_signature"),
        (other_topic, 403, "unknown_topic"),
        (plain_http, 403, "untrusted_url"),
        (elsewhere, 403, "untrusted_url"),
        (missing_certificate, 503, "certificate_unavailable"),
        (unknown_version, 403, "bad_signature"),
        (b"{not json", 400, "malformed"),
        ({"Type": "Notification"}, 400, "malformed"),
    ]
    for message, status, code in cases:
        answer = post(hub, message)
        assert (answer.status_code, answer.json()["code"]) == (status, code), message
        assert answer.json()["error"]

    found = stored(database, "ses")
    assert found.events == []
    assert found.suppressions == {}
    assert found.rejections == {
        "missing_signature": 1,
        "bad_signature": 2,
        "unknown_topic": 1,
        "untrusted_url": 2,
        "certificate_unavailable": 1,
        "malformed": 2,
    }
    # Only Amazon-looking https URLs were fetched: the good one (for the tampered and version 3
    # messages, then cached) and the missing one.
    assert sns_host.requests == [CERTIFICATE_PATH, "/x"]


def test_unknown_and_forged_deliveries_answer_200_and_are_counted(
    hub: TestClient, database: Database, sent: SentIssue, sns_side: SnsSide, sns_host: SnsHost
) -> None:
    forged_tag = f"{sent.deliveries[ANNA]}-0123456789abcdef"
    unknown = verp.delivery_token(SIGNER, 987_654)
    for token in (forged_tag, unknown, None):
        ses_message = bounce("Permanent", [(ANNA, "5.1.1", "550")], ses_mail(token))
        answer = post(hub, sns_signed(sns_notification(ses_message, sns_host), sns_side))
        assert answer.status_code == 200
        assert answer.json()["rejected"] == 1
    found = stored(database, "ses")
    assert found.events == []
    assert found.suppressions == {}
    assert found.rejections == {"unknown_delivery": 3}


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", True),
        ("https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem", True),
        ("https://SNS.US-EAST-1.AMAZONAWS.COM/x.pem", True),
        ("http://sns.us-east-1.amazonaws.com/x.pem", False),
        ("https://sns.us-east-1.amazonaws.com.evil.example/x.pem", False),
        ("https://evil.example/sns.us-east-1.amazonaws.com/x.pem", False),
        ("https://sns.us-east-1.amazonaws.com@evil.example/x.pem", False),
        ("https://user@sns.us-east-1.amazonaws.com/x.pem", False),
        ("https://s3.amazonaws.com/x.pem", False),
        ("", False),
    ],
)
def test_the_default_host_rule_takes_only_amazon_sns_hosts(url: str, allowed: bool) -> None:
    pattern = Settings.model_fields["sns_certificate_hosts"].default
    if allowed:
        assert ses.amazon_url(url, pattern, "SigningCertURL")
    else:
        with pytest.raises(Forbidden):
            ses.amazon_url(url, pattern, "SigningCertURL")
