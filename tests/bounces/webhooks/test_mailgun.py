"""Mailgun's signed webhooks, on SQLite and PostgreSQL: HMAC-SHA256 of timestamp + token with the
signing key, as Mailgun's documentation describes it."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from starlette.testclient import TestClient

from contacthub.app import create_app
from contacthub.bounces import verp
from contacthub.bounces.webhooks import tokens
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.models import WebhookToken
from tests.bounces.support import SIGNER, SentIssue
from tests.bounces.webhooks.conftest import ANNA, BOB, MAILGUN_KEY
from tests.bounces.webhooks.support import mailgun_signed, stored
from tests.races import overlapping

URL = "/webhooks/email/mailgun"


def event_data(name: str, event_id: str, email: str, token: str | None, **more: Any) -> Any:
    data: dict[str, Any] = {
        "event": name,
        "id": event_id,
        "timestamp": 1796000000.908181,
        "recipient": email,
        "message": {"headers": {"message-id": "20261207010203.1.ABCDEF@mg.example.com"}},
        "user-variables": {} if token is None else {"contacthub_delivery": token},
        **more,
    }
    return data


def failed(severity: str, event_id: str, email: str, token: str | None) -> Any:
    code = "5.1.1" if severity == "permanent" else "4.2.2"
    return event_data(
        "failed",
        event_id,
        email,
        token,
        severity=severity,
        reason="bounce" if severity == "permanent" else "generic",
        **{"delivery-status": {"code": 550, "message": f"{code} mailbox trouble"}},
    )


def post(hub: TestClient, payload: Any) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return hub.post(URL, content=body, headers={"Content-Type": "application/json"})


def test_failures_complaints_and_deliveries_are_recorded_once(
    hub: TestClient, database: Database, sent: SentIssue
) -> None:
    anna, bob = sent.token(ANNA), sent.token(BOB)
    events = [
        failed("permanent", "mg-1", ANNA, anna),
        failed("temporary", "mg-2", BOB, bob),
        event_data("complained", "mg-3", BOB, bob),
        event_data("delivered", "mg-4", ANNA, anna),
        event_data("opened", "mg-5", ANNA, anna),
    ]
    answers = [post(hub, mailgun_signed(data, MAILGUN_KEY)) for data in events]
    assert [answer.status_code for answer in answers] == [200] * len(events)
    assert [answer.json()["recorded"] for answer in answers] == [1, 1, 1, 1, 0]

    found = stored(database, "mailgun")
    assert found.events == [
        (sent.deliveries[ANNA], "hard_bounce", ANNA, "5.1.1"),
        (sent.deliveries[BOB], "soft_bounce", BOB, "4.2.2"),
        (sent.deliveries[BOB], "complaint", BOB, None),
        (sent.deliveries[ANNA], "delivered", ANNA, None),
    ]
    assert found.suppressions == {ANNA: "hard_bounce", BOB: "complaint"}
    assert found.rejections == {"ignored_event": 1}

    # The same event again, signed anew (a retry): a duplicate, not a second bounce.
    again = post(hub, mailgun_signed(events[0], MAILGUN_KEY))
    assert again.status_code == 200
    assert again.json()["duplicates"] == 1
    assert stored(database, "mailgun").events == found.events


def test_unsigned_wrong_stale_and_reused_signatures_are_refused_and_recorded(
    hub: TestClient, database: Database, sent: SentIssue
) -> None:
    data = failed("permanent", "mg-1", ANNA, sent.token(ANNA))
    good = mailgun_signed(data, MAILGUN_KEY)
    now = int(time.time())
    cases = [
        ({"event-data": data}, 401, "missing_signature"),
        ({**good, "signature": {**good["signature"], "timestamp": ""}}, 401, "missing_signature"),
        (mailgun_signed(data, "another key"), 403, "bad_signature"),
        ({**good, "signature": {**good["signature"], "token": "changed"}}, 403, "bad_signature"),
        (mailgun_signed(data, MAILGUN_KEY, timestamp=now - 400), 403, "stale_timestamp"),
        (mailgun_signed(data, MAILGUN_KEY, timestamp=now + 400), 403, "stale_timestamp"),
        (b"{", 400, "malformed"),
        (b"[]", 400, "malformed"),
    ]
    for payload, status, code in cases:
        answer = post(hub, payload)
        assert (answer.status_code, answer.json()["code"]) == (status, code), payload
    assert stored(database, "mailgun").events == []

    # A signature is good once: the same token again (whatever the event) is refused.
    assert post(hub, good).status_code == 200
    other_event = {**good, "event-data": failed("permanent", "mg-2", BOB, sent.token(BOB))}
    replayed = post(hub, other_event)
    assert (replayed.status_code, replayed.json()["code"]) == (403, "replayed_token")

    found = stored(database, "mailgun")
    assert found.events == [(sent.deliveries[ANNA], "hard_bounce", ANNA, "5.1.1")]
    assert found.suppressions == {ANNA: "hard_bounce"}
    assert found.rejections == {
        "missing_signature": 2,
        "bad_signature": 2,
        "stale_timestamp": 2,
        "malformed": 2,
        "replayed_token": 1,
    }


def test_unknown_deliveries_answer_200_and_are_counted(
    hub: TestClient, database: Database, sent: SentIssue
) -> None:
    unknown = verp.delivery_token(SIGNER, 987_654)
    for number, token in enumerate((unknown, None)):
        payload = mailgun_signed(failed("permanent", f"u-{number}", ANNA, token), MAILGUN_KEY)
        answer = post(hub, payload)
        assert answer.status_code == 200
        assert answer.json()["rejected"] == 1
    found = stored(database, "mailgun")
    assert found.events == []
    assert found.rejections == {"unknown_delivery": 2}


def test_a_token_is_taken_once_across_worker_processes(
    hub: TestClient, webhook_settings: Settings, database: Database, sent: SentIssue
) -> None:
    """Two app instances on one database, as two workers: a signature taken by one is refused
    by the other, whatever event it carries."""
    good = mailgun_signed(failed("permanent", "mg-1", ANNA, sent.token(ANNA)), MAILGUN_KEY)
    other_event = {**good, "event-data": failed("permanent", "mg-2", BOB, sent.token(BOB))}
    with TestClient(create_app(webhook_settings)) as second_worker:
        assert post(hub, good).status_code == 200
        replayed = post(second_worker, other_event)
        assert (replayed.status_code, replayed.json()["code"]) == (403, "replayed_token")
        # And the other way round.
        fresh = mailgun_signed(failed("permanent", "mg-2", BOB, sent.token(BOB)), MAILGUN_KEY)
        assert post(second_worker, fresh).status_code == 200
        again = post(hub, {**fresh, "event-data": failed("temporary", "mg-3", ANNA, None)})
        assert (again.status_code, again.json()["code"]) == (403, "replayed_token")

    found = stored(database, "mailgun")
    assert found.events == [
        (sent.deliveries[ANNA], "hard_bounce", ANNA, "5.1.1"),
        (sent.deliveries[BOB], "hard_bounce", BOB, "5.1.1"),
    ]
    assert found.rejections == {"replayed_token": 2}
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(WebhookToken)) == 2


def test_a_refused_token_is_not_taken_and_expired_tokens_are_forgotten(
    database: Database,
) -> None:
    start = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    with database.write() as session:
        assert tokens.claim(session, "mailgun", "a", max_age=300, now=start)
        assert tokens.claim(session, "mailgun", "b", max_age=300, now=start)
        assert tokens.claim(session, "other", "a", max_age=300, now=start)  # per provider
    # Refused while a call signed with it could still pass the timestamp check (signed up to
    # 300 s ahead, taken until 300 s after its timestamp): twice the window.
    with database.write() as session:
        assert not tokens.claim(
            session, "mailgun", "a", max_age=300, now=start + timedelta(seconds=599)
        )
    with database.write() as session:
        later = start + timedelta(seconds=601)
        assert tokens.claim(session, "mailgun", "c", max_age=300, now=later)
    with database.read() as session:
        left = session.execute(select(WebhookToken.provider, WebhookToken.token)).all()
    assert sorted(left) == [("mailgun", "c")]


def test_of_two_calls_with_one_token_at_once_exactly_one_takes_it(database: Database) -> None:
    first, second = overlapping(
        database, lambda session: tokens.claim(session, "mailgun", "t", max_age=300)
    )
    assert (first.value, second.value, second.error) == (True, False, None)
