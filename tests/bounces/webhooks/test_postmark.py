"""Postmark's webhooks behind basic auth, on SQLite and PostgreSQL (payloads as Postmark's
webhook documentation shows them)."""

from __future__ import annotations

import json
from typing import Any

from starlette.testclient import TestClient

from contacthub.bounces import verp
from contacthub.storage.database import Database
from tests.bounces.support import SIGNER, SentIssue
from tests.bounces.webhooks.conftest import ANNA, BOB, POSTMARK_PASSWORD, POSTMARK_USER
from tests.bounces.webhooks.support import basic_auth, stored

URL = "/webhooks/email/postmark"
AUTH = basic_auth(POSTMARK_USER, POSTMARK_PASSWORD)


def bounce(bounce_id: int, bounce_type: str, email: str, token: str | None) -> dict[str, Any]:
    return {
        "RecordType": "Bounce",
        "MessageStream": "outbound",
        "ID": bounce_id,
        "Type": bounce_type,
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": {} if token is None else {"contacthub-delivery": token},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": email,
        "From": "news@example.com",
        "BouncedAt": "2026-12-07T01:33:54.9070259Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Issue 0",
    }


def post(hub: TestClient, record: dict[str, Any] | bytes, headers: dict[str, str]) -> Any:
    body = record if isinstance(record, bytes) else json.dumps(record).encode()
    return hub.post(URL, content=body, headers={"Content-Type": "application/json", **headers})


def test_bounces_complaints_and_deliveries_are_recorded_once(
    hub: TestClient, database: Database, sent: SentIssue
) -> None:
    anna, bob = sent.token(ANNA), sent.token(BOB)
    records = [
        bounce(4323372036854775807, "HardBounce", ANNA, anna),
        bounce(4323372036854775808, "SoftBounce", BOB, bob),
        bounce(4323372036854775809, "AutoResponder", BOB, bob),
        {
            "RecordType": "SpamComplaint",
            "ID": 42,
            "Type": "SpamComplaint",
            "MessageID": "00000000-0000-0000-0000-000000000001",
            "Email": BOB,
            "BouncedAt": "2026-12-07T01:40:00Z",
            "Metadata": {"contacthub-delivery": bob},
        },
        {
            "RecordType": "Delivery",
            "MessageID": "00000000-0000-0000-0000-000000000002",
            "Recipient": ANNA,
            "DeliveredAt": "2026-12-07T01:30:00Z",
            "Details": "Test delivery webhook details",
            "Metadata": {"contacthub-delivery": anna},
        },
        {"RecordType": "Open", "MessageID": "00000000-0000-0000-0000-000000000003"},
    ]
    answers = [post(hub, record, AUTH) for record in records]
    assert [answer.status_code for answer in answers] == [200] * len(records)
    assert [answer.json()["recorded"] for answer in answers] == [1, 1, 0, 1, 1, 0]

    found = stored(database, "postmark")
    assert found.events == [
        (sent.deliveries[ANNA], "hard_bounce", ANNA, "5.1.1"),
        (sent.deliveries[BOB], "soft_bounce", BOB, "5.1.1"),
        (sent.deliveries[BOB], "complaint", BOB, None),
        (sent.deliveries[ANNA], "delivered", ANNA, None),
    ]
    assert found.suppressions == {ANNA: "hard_bounce", BOB: "complaint"}
    assert found.rejections == {"ignored_event": 2}

    # Postmark retries a call whose answer it did not get: the same record, counted once.
    again = post(hub, records[0], AUTH)
    assert again.json()["duplicates"] == 1
    assert stored(database, "postmark").events == found.events


def test_calls_without_the_basic_auth_are_refused_and_recorded(
    hub: TestClient, database: Database, sent: SentIssue
) -> None:
    record = bounce(1, "HardBounce", ANNA, sent.token(ANNA))
    cases = [
        ({}, "missing_credentials"),
        ({"Authorization": "Bearer abc"}, "missing_credentials"),
        (basic_auth(POSTMARK_USER, "wrong"), "bad_credentials"),
        (basic_auth("someone", POSTMARK_PASSWORD), "bad_credentials"),
        (basic_auth(POSTMARK_USER, POSTMARK_PASSWORD + "x"), "bad_credentials"),
        ({"Authorization": "Basic !!!"}, "bad_credentials"),
        ({"Authorization": "Basic " + "bm9jb2xvbg=="}, "bad_credentials"),  # "nocolon"
    ]
    for headers, code in cases:
        answer = post(hub, record, headers)
        assert (answer.status_code, answer.json()["code"]) == (401, code), headers
        assert answer.headers["www-authenticate"].startswith("Basic")
    found = stored(database, "postmark")
    assert found.events == []
    assert found.suppressions == {}
    assert found.rejections == {"missing_credentials": 2, "bad_credentials": 5}


def test_malformed_bodies_and_unknown_deliveries(
    hub: TestClient, database: Database, sent: SentIssue
) -> None:
    for body in (b"{", b"[]"):
        answer = post(hub, body, AUTH)
        assert (answer.status_code, answer.json()["code"]) == (400, "malformed")
    unknown = verp.delivery_token(SIGNER, 987_654)
    for number, token in enumerate((unknown, None, "12-not-a-token")):
        answer = post(hub, bounce(100 + number, "HardBounce", ANNA, token), AUTH)
        assert answer.status_code == 200
        assert answer.json()["rejected"] == 1
    found = stored(database, "postmark")
    assert found.events == []
    assert found.rejections == {"malformed": 2, "unknown_delivery": 3}
