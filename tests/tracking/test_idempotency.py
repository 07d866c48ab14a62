"""Idempotent ingest: `messageId` per activity and the `Idempotency-Key` header.

A retry within the dedupe window is answered exactly as the first time and stores nothing; the
same key with another request is refused; expired ids are forgotten.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import httpx2
import msgspec
import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from contacthub import idempotency
from contacthub.activities.ingest import IngestJob, process_batch
from contacthub.channels.service import hash_key
from contacthub.storage.database import Database
from contacthub.storage.models import (
    Activity,
    Channel,
    ConsentAgreement,
    Contact,
    IdempotencyKey,
    IngestMessageId,
)
from contacthub.storage.types import utcnow
from contacthub.tracking.schemas import read_activities_request
from tests import factories
from tests.factories import TrackingSetup
from tests.tracking.support import (
    API,
    activities_of,
    assert_error,
    assert_rejected,
    contact_row,
    count,
    post_activities,
    results_of,
)


def post_keyed(
    client: TestClient, setup: TrackingSetup, body: dict[str, Any], key: str
) -> httpx2.Response:
    headers = {**setup.headers, "Idempotency-Key": key}
    return client.post(f"{API}/activities", headers=headers, json=body)


def body_of(setup: TrackingSetup, contact: str, activities: list[Any]) -> dict[str, Any]:
    return {"channel": setup.channel_guid, "contact": contact, "activities": activities}


# --- messageId ------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["messageId", "MessageID", "messageid"])
def test_a_retried_message_id_is_answered_the_same_and_stored_once(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str, spelling: str
) -> None:
    activities = [
        {"type": "click", "value": "a", spelling: "m-1"},
        {"type": "click", "value": "b", spelling: "m-2"},
        {"type": "click", "value": "no id"},
    ]
    first = results_of(post_activities(client, setup, contact, activities))
    again = results_of(post_activities(client, setup, contact, activities))

    assert first == again == [{"status": 202}] * 3
    # Only the activity without an id is stored twice.
    assert [a.value for a in activities_of(database, contact)] == ["a", "b", "no id", "no id"]
    assert count(database, IngestMessageId) == 2


def test_message_id_rules(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    activities = [
        {"type": "click", "value": "ok", "messageId": "é" * 100},
        {"type": "click", "value": "long", "messageId": "x" * 101},
        {"type": "click", "value": "number", "messageId": 12},
        {"type": "click", "value": "empty", "messageId": ""},
        {"type": "click", "value": "nul", "messageId": "a\x00b"},
        {"type": "click", "value": "general path", "MessageId": "y" * 101},
    ]

    results = results_of(post_activities(client, setup, contact, activities))

    assert results[0] == {"status": 202}
    assert "100" in assert_rejected(results[1], 400, "message_id_too_long")
    assert "messageId" in assert_rejected(results[2], 400, "invalid_message_id")
    assert_rejected(results[3], 400, "invalid_message_id")
    assert_rejected(results[4], 400, "invalid_message_id")
    assert_rejected(results[5], 400, "message_id_too_long")
    assert [a.value for a in activities_of(database, contact)] == ["ok"]


def test_the_same_id_twice_in_one_request_is_stored_once(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    activities = [
        {"type": "click", "value": "first", "messageId": "twice"},
        {"type": "click", "value": "second", "messageId": "twice"},
    ]

    results = results_of(post_activities(client, setup, contact, activities))

    assert results == [{"status": 202}, {"status": 202}]
    assert [a.value for a in activities_of(database, contact)] == ["first"]


def test_the_same_id_in_two_requests_of_one_batch_is_stored_once(
    database: Database, setup: TrackingSetup, contact: str
) -> None:
    body = body_of(setup, contact, [{"type": "click", "value": "x" * 300, "messageId": "b"}])
    parsed = read_activities_request(msgspec.json.encode(body), max_activities=100)
    job = IngestJob(
        key_hash=hash_key(setup.key),
        channel_guid=parsed.channel,
        contact_guid=parsed.contact,
        activities=parsed.activities,
        received_at=utcnow(),
    )
    with database.write() as session:
        outcomes = process_batch(session, [job, job])

    expected = [{"status": 202, "truncated": ["value"]}]
    assert [list(o.results) for o in outcomes] == [expected, expected]
    assert len(activities_of(database, contact)) == 1


def test_a_retry_gets_the_first_special_answer_and_changes_nothing(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    # The poster has another email: the data goes to the contact that has this one.
    contact = factories.contact_with(database, email="han@example.com")
    owner = factories.contact_with(database, email="luke@example.com")
    data = {"ContactEmail": "luke@example.com", "ContactFirstName": "Luke"}
    activities = [
        {"type": "datainput", "value": "Form", "contactFields": data, "messageId": "d"},
        {"type": "click", "value": "v" * 300, "messageId": "t"},
    ]
    first = results_of(post_activities(client, setup, contact, activities))
    assert first == [
        {"status": 202, "contact": owner},
        {"status": 202, "truncated": ["value"]},
    ]

    # The retry carries other contact fields: they are not applied, the retry stores nothing.
    activities[0]["contactFields"] = {**data, "ContactFirstName": "Leia"}
    again = results_of(post_activities(client, setup, contact, activities))

    assert again == first
    assert contact_row(database, owner).first_name == "Luke"
    assert count(database, Activity) == 2


def test_ids_are_per_channel(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    other = factories.tracking_channel(database, "Web")
    activity = {"type": "click", "value": "x", "messageId": "shared"}

    results_of(post_activities(client, setup, contact, [activity]))
    results_of(post_activities(client, other, contact, [activity]))

    assert count(database, Activity) == 2


def test_refused_activities_claim_nothing(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    activity = {"type": "later_type", "value": "x", "messageId": "custom"}
    [refused] = results_of(post_activities(client, setup, contact, [activity]))
    assert_rejected(refused, 400, "unknown_activity_type")

    factories.activity_type(database, "later_type", "Later")
    assert results_of(post_activities(client, setup, contact, [activity])) == [{"status": 202}]
    assert count(database, Activity) == 1


def test_an_id_older_than_the_window_is_stored_again(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    activity = {"type": "click", "value": "v" * 260, "messageId": "old"}
    results_of(post_activities(client, setup, contact, [activity]))
    with database.write() as session:
        session.execute(
            update(IngestMessageId).values(created_at=utcnow() - timedelta(days=7, minutes=1))
        )

    # Taken over: stored as new, and remembered afresh.
    results_of(post_activities(client, setup, contact, [activity]))
    assert results_of(post_activities(client, setup, contact, [activity])) == [
        {"status": 202, "truncated": ["value"]}
    ]
    assert count(database, Activity) == 2
    with database.read() as session:
        [row] = session.scalars(select(IngestMessageId)).all()
        assert row.created_at > utcnow() - timedelta(minutes=1)


def test_the_window_is_a_setting(
    make_client: Any, database: Database, setup: TrackingSetup, contact: str
) -> None:
    client = make_client(ingest_dedupe_days=1)
    activity = {"type": "click", "value": "x", "messageId": "short"}
    results_of(post_activities(client, setup, contact, [activity]))
    with database.write() as session:
        session.execute(update(IngestMessageId).values(created_at=utcnow() - timedelta(hours=23)))
    results_of(post_activities(client, setup, contact, [activity]))
    assert count(database, Activity) == 1
    with database.write() as session:
        session.execute(update(IngestMessageId).values(created_at=utcnow() - timedelta(hours=25)))
    results_of(post_activities(client, setup, contact, [activity]))
    assert count(database, Activity) == 2


def test_a_message_id_retry_after_the_consent_was_revoked_is_refused(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    # Documented: the consent gate is checked before the ids (docs/tracking-api.md).
    factories.consent(database, "TrackingConsent")
    factories.require_consent(database, setup.channel_name, "TrackingConsent")
    consent_url = f"{API}/contacts/{contact}/consents/TrackingConsent"
    client.post(consent_url, headers=setup.headers, json={"agree": True})
    activity = {"type": "click", "value": "x", "messageId": "gated"}
    results_of(post_activities(client, setup, contact, [activity]))
    client.post(consent_url, headers=setup.headers, json={"agree": False})

    assert_error(post_activities(client, setup, contact, [activity]), 403, "consent_required")
    assert count(database, Activity) == 1


# --- Idempotency-Key on POST /activities ----------------------------------------------------


def test_a_replayed_key_gets_the_same_answer_and_stores_nothing(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    activities = [
        {"type": "click", "value": "a"},
        {"type": "click"},
        {"type": "click", "value": "w" * 251},
    ]
    body = body_of(setup, contact, activities)

    first = post_keyed(client, setup, body, "key-1")
    # The same request spelled differently (other spacing) is the same request.
    headers = {**setup.headers, "Idempotency-Key": "key-1", "Content-Type": "application/json"}
    spaced = client.post(f"{API}/activities", headers=headers, content=json.dumps(body, indent=2))

    assert first.status_code == spaced.status_code == 207
    assert first.content == spaced.content
    assert first.json()["results"][0] == {"status": 202}
    assert first.json()["results"][2] == {"status": 202, "truncated": ["value"]}
    assert count(database, Activity) == 2
    assert count(database, IdempotencyKey) == 1


def test_a_key_with_another_request_is_refused(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    post_keyed(client, setup, body_of(setup, contact, [{"type": "click", "value": "a"}]), "k")

    answer = post_keyed(
        client, setup, body_of(setup, contact, [{"type": "click", "value": "b"}]), "k"
    )

    assert "another request" in assert_error(answer, 422, "idempotency_key_reused")
    assert [a.value for a in activities_of(database, contact)] == ["a"]


def test_key_rules(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    body = body_of(setup, contact, [{"type": "click", "value": "a"}])
    assert post_keyed(client, setup, body, "k" * 200).status_code == 207
    assert_error(post_keyed(client, setup, body, "k" * 201), 400, "invalid_idempotency_key")
    assert_error(post_keyed(client, setup, body, " "), 400, "invalid_idempotency_key")
    assert count(database, Activity) == 1


def test_failed_requests_release_their_key(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    factories.consent(database, "TrackingConsent")
    factories.require_consent(database, setup.channel_name, "TrackingConsent")
    body = body_of(setup, contact, [{"type": "click", "value": "a"}])

    assert_error(post_keyed(client, setup, body, "gate"), 403, "consent_required")
    assert count(database, IdempotencyKey) == 0

    consent_url = f"{API}/contacts/{contact}/consents/TrackingConsent"
    client.post(consent_url, headers=setup.headers, json={"agree": True})
    assert post_keyed(client, setup, body, "gate").status_code == 207
    # Revoked since: the key's replay still answers the stored 207 and stores nothing.
    client.post(consent_url, headers=setup.headers, json={"agree": False})
    replay = post_keyed(client, setup, body, "gate")
    assert replay.status_code == 207
    assert replay.json() == {"results": [{"status": 202}]}
    assert count(database, Activity) == 1


def test_the_same_key_twice_in_one_batch_is_in_use(
    database: Database, setup: TrackingSetup, contact: str
) -> None:
    claim = idempotency.KeyClaim(idempotency.ACTIVITIES, "batch", "0" * 64)
    parsed = read_activities_request(
        msgspec.json.encode(body_of(setup, contact, [{"type": "click", "value": "a"}])),
        max_activities=100,
    )
    job = IngestJob(
        key_hash=hash_key(setup.key),
        channel_guid=parsed.channel,
        contact_guid=parsed.contact,
        activities=parsed.activities,
        received_at=utcnow(),
        idempotency=claim,
    )
    with database.write() as session:
        first, second = process_batch(session, [job, job])

    assert first.error is None
    assert list(first.results) == [{"status": 202}]
    assert second.error is not None
    assert second.error.status_code == 409
    assert second.error.code == "idempotency_key_in_use"
    assert count(database, Activity) == 1

    # Committed since: both retries in one batch get the stored answer.
    with database.write() as session:
        replays = process_batch(session, [job, job])
    assert [o.replay for o in replays] == [replays[0].replay] * 2
    assert replays[0].replay is not None
    assert replays[0].replay.status == 207
    assert json.loads(replays[0].replay.body) == {"results": [{"status": 202}]}
    assert count(database, Activity) == 1


def test_an_unfinished_claim_is_409(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    with database.write() as session:
        channel_id = session.scalar(select(Channel.id).where(Channel.name == setup.channel_name))
        session.add(
            IdempotencyKey(
                channel_id=channel_id,
                scope=idempotency.CONTACTS,
                key="running",
                request_hash=idempotency.request_hash("POST", f"{API}/contacts"),
            )
        )
    headers = {**setup.headers, "Idempotency-Key": "running"}
    answer = client.post(f"{API}/contacts", headers=headers)
    assert_error(answer, 409, "idempotency_key_in_use")


# --- Idempotency-Key on contacts and consents -----------------------------------------------


def test_a_replayed_contact_creation_returns_the_same_contact(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    headers = {**setup.headers, "Idempotency-Key": "new-visitor"}
    first = client.post(f"{API}/contacts", headers=headers)
    again = client.post(f"{API}/contacts", headers=headers)
    other = client.post(f"{API}/contacts", headers={**setup.headers, "Idempotency-Key": "2"})

    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert other.json() != first.json()
    assert count(database, Contact) == 2
    uuid.UUID(first.json()["contact"])


def test_a_replayed_consent_agreement_is_recorded_once(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    factories.consent(database, "Newsletter")
    url = f"{API}/contacts/{contact}/consents/Newsletter"
    headers = {**setup.headers, "Idempotency-Key": "agree-1"}

    first = client.post(url, headers=headers, json={"agree": True})
    again = client.post(url, headers=headers, json={"agree": True})
    revoke = client.post(url, headers=headers, json={"agree": False})

    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() == {"agreed": True, "isAgreed": True}
    assert_error(revoke, 422, "idempotency_key_reused")
    assert count(database, ConsentAgreement) == 1
    # A key is per endpoint: the same one on POST /contacts is another request.
    assert client.post(f"{API}/contacts", headers=headers).status_code == 200


def test_a_failed_consent_request_is_not_remembered(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    url = f"{API}/contacts/{contact}/consents/Later"
    headers = {**setup.headers, "Idempotency-Key": "later"}
    assert client.post(url, headers=headers, json={"agree": True}).status_code == 404

    factories.consent(database, "Later")
    assert client.post(url, headers=headers, json={"agree": True}).status_code == 200
    assert count(database, ConsentAgreement) == 1


# --- forget_expired -------------------------------------------------------------------------


def test_forget_expired_deletes_only_rows_past_the_window(database: Database) -> None:
    now = utcnow()
    with database.write() as session:
        for n, age in enumerate([timedelta(days=8), timedelta(days=6), timedelta(days=1)]):
            session.add(IngestMessageId(channel_id=1, message_id=f"m{n}", created_at=now - age))
            session.add(
                IdempotencyKey(
                    channel_id=1,
                    scope="contacts",
                    key=f"k{n}",
                    request_hash="0" * 64,
                    status=200,
                    response="{}",
                    created_at=now - age,
                )
            )
    with database.write() as session:
        assert idempotency.forget_expired(session, now) == 2
    with database.write() as session:
        assert idempotency.forget_expired(session, now, days=2) == 2
        assert idempotency.forget_expired(session, now, days=2) == 0
    with database.read() as session:
        assert session.scalars(select(IngestMessageId.message_id)).all() == ["m2"]
        assert session.scalars(select(IdempotencyKey.key)).all() == ["k2"]
