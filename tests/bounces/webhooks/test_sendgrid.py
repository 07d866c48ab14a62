"""SendGrid's signed Event Webhook, on SQLite and PostgreSQL: batches signed with an ECDSA P-256
key made here, as SendGrid signs them (timestamp + raw body)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.testclient import TestClient

from contacthub.app import create_app
from contacthub.bounces import verp
from contacthub.settings import Settings
from contacthub.storage.database import Database
from tests.bounces.support import SIGNER, SentIssue
from tests.bounces.webhooks.conftest import ANNA, BOB
from tests.bounces.webhooks.support import SendGridSide, stored

URL = "/webhooks/email/sendgrid"


def event(name: str, email: str, event_id: str, token: str | None, **more: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "email": email,
        "timestamp": 1_796_000_000,
        "event": name,
        "sg_event_id": event_id,
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        **more,
    }
    if token is not None:
        fields["contacthub_delivery"] = token
    return fields


def post(hub: TestClient, body: bytes, headers: dict[str, str]) -> Any:
    return hub.post(URL, content=body, headers=headers)


def test_a_signed_batch_maps_each_event_and_replays_count_once(
    hub: TestClient, database: Database, sent: SentIssue, sendgrid_side: SendGridSide
) -> None:
    anna, bob = sent.token(ANNA), sent.token(BOB)
    batch = [
        event("processed", ANNA, "ev-0", anna),
        event("delivered", ANNA, "ev-1", anna, response="250 OK"),
        event("bounce", BOB, "ev-2", bob, type="blocked", status="4.7.1", reason="451 4.7.1 later"),
        event("bounce", ANNA, "ev-3", anna, type="bounce", status="5.1.1", reason="550 5.1.1"),
        event("spamreport", BOB, "ev-4", bob),
        event("open", BOB, "ev-5", bob),
        event("dropped", BOB, "ev-6", bob, reason="Unsubscribed Address"),
        {"event": "bounce", "email": ANNA},  # no sg_event_id
    ]
    body = json.dumps(batch).encode()

    answer = post(hub, body, sendgrid_side.headers(body))

    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "recorded": 4,
        "duplicates": 0,
        "rejected": 0,
        "ignored": 4,
        "suppressed": 2,
    }
    found = stored(database, "sendgrid")
    assert found.events == [
        (sent.deliveries[ANNA], "delivered", ANNA, None),
        (sent.deliveries[BOB], "soft_bounce", BOB, "4.7.1"),
        (sent.deliveries[ANNA], "hard_bounce", ANNA, "5.1.1"),
        (sent.deliveries[BOB], "complaint", BOB, None),
    ]
    assert found.suppressions == {ANNA: "hard_bounce", BOB: "complaint"}
    assert found.rejections == {"ignored_event": 1, "malformed": 1}

    # SendGrid retries a batch later: signed anew, the same sg_event_ids.
    again = post(hub, body, sendgrid_side.headers(body, timestamp=int(time.time()) + 1))
    assert again.status_code == 200
    assert again.json()["duplicates"] == 4
    assert again.json()["recorded"] == 0
    assert stored(database, "sendgrid").events == found.events


def test_dropped_events_follow_sendgrids_own_lists(
    hub: TestClient, database: Database, sent: SentIssue, sendgrid_side: SendGridSide
) -> None:
    batch = [
        event("dropped", ANNA, "d-1", sent.token(ANNA), reason="Bounced Address"),
        event("dropped", BOB, "d-2", sent.token(BOB), reason="Spam Reporting Address"),
    ]
    body = json.dumps(batch).encode()
    assert post(hub, body, sendgrid_side.headers(body)).status_code == 200
    assert stored(database, "sendgrid").suppressions == {ANNA: "hard_bounce", BOB: "complaint"}


def test_missing_wrong_and_stale_signatures_are_refused_and_recorded(
    hub: TestClient, database: Database, sent: SentIssue, sendgrid_side: SendGridSide
) -> None:
    body = json.dumps([event("bounce", ANNA, "ev-1", sent.token(ANNA), type="bounce")]).encode()
    good = sendgrid_side.headers(body)
    other_key = SendGridSide.make().headers(body)
    changed_body = body.replace(b"bounce", b"blocked", 1)
    old = sendgrid_side.headers(body, timestamp=int(time.time()) - 400)
    future = sendgrid_side.headers(body, timestamp=int(time.time()) + 400)
    cases = [
        ({"Content-Type": "application/json"}, body, 401, "missing_signature"),
        ({**good, "X-Twilio-Email-Event-Webhook-Timestamp": ""}, body, 401, "missing_signature"),
        (other_key, body, 403, "bad_signature"),
        (good, changed_body, 403, "bad_signature"),
        ({**good, "X-Twilio-Email-Event-Webhook-Signature": "not base64!"}, body, 403, None),
        (old, body, 403, "stale_timestamp"),
        (future, body, 403, "stale_timestamp"),
    ]
    for headers, content, status, code in cases:
        answer = post(hub, content, headers)
        assert answer.status_code == status, (headers, answer.text)
        assert answer.json()["code"] == (code or "bad_signature")
    found = stored(database, "sendgrid")
    assert found.events == []
    assert found.suppressions == {}
    assert found.rejections == {"missing_signature": 2, "bad_signature": 3, "stale_timestamp": 2}


def test_malformed_bodies_and_unknown_deliveries(
    hub: TestClient, database: Database, sent: SentIssue, sendgrid_side: SendGridSide
) -> None:
    for body in (b"[{", b'{"event": "bounce"}'):
        answer = post(hub, body, sendgrid_side.headers(body))
        assert (answer.status_code, answer.json()["code"]) == (400, "malformed")
    unknown = verp.delivery_token(SIGNER, 987_654)
    batch = [
        event("bounce", ANNA, "u-1", unknown, type="bounce"),
        event("bounce", ANNA, "u-2", None, type="bounce"),
    ]
    body = json.dumps(batch).encode()
    answer = post(hub, body, sendgrid_side.headers(body))
    assert answer.status_code == 200
    assert answer.json()["rejected"] == 2
    found = stored(database, "sendgrid")
    assert found.events == []
    assert found.rejections == {"malformed": 2, "unknown_delivery": 2}


def p384_key() -> str:
    der = (
        ec.generate_private_key(ec.SECP384R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(der).decode()


@pytest.mark.parametrize(
    "key", ["not a key", "c2hvcnQ=", "-----BEGIN PUBLIC KEY-----\nx\n", p384_key()]
)
def test_a_malformed_key_stops_start_up(tmp_path: Path, key: str) -> None:
    broken = Settings(
        database_url=f"sqlite:///{tmp_path / 'hub.db'}",
        secret_key="test-secret",  # type: ignore[arg-type]
        sendgrid_webhook_public_key=key,
    )
    with pytest.raises(ValueError, match="sendgrid_webhook_public_key"):
        create_app(broken)
