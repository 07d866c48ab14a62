"""The dispatcher against a real HTTP receiver on loopback that fails, times out and recovers.

Every event arrives at least once with a valid signature, a contact's events arrive in order
(none before an earlier one was answered 2xx), a delivery that keeps failing goes dead and holds
its contact's later events back, and an operator's retry and replay send them again with the
same event ids.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from contacthub.app import create_app
from contacthub.audit.service import latest
from contacthub.errors import Conflict, NotFound
from contacthub.events import deliveries
from contacthub.events.dispatcher import DEAD, DELIVERED, PENDING, Dispatcher, backoff
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from contacthub.storage.types import utcnow
from tests import factories
from tests.events.helpers import add_endpoint, drive, emit, states
from tests.events.receiver import Receiver, assert_in_order_per_contact, receiving


def fast(settings: Settings, **more: object) -> Settings:
    values: dict[str, object] = {
        "webhook_timeout": 0.5,
        "webhook_retry_delay": 0.01,
        "webhook_retry_max_delay": 0.05,
        "webhook_dispatch_interval": 0.05,
    }
    return settings.model_copy(update={**values, **more})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving(slow_seconds=1.0) as running:
        yield running


@pytest.fixture
def dispatcher(database: Database, settings: Settings) -> Iterator[Dispatcher]:
    running = Dispatcher(database, fast(settings, webhook_max_attempts=3), holder="test")
    yield running
    running.close()


def test_every_event_arrives_signed_and_in_order_through_failures_and_timeouts(
    database: Database, settings: Settings, receiver: Receiver
) -> None:
    endpoint_id, secret = add_endpoint(database, receiver.url)
    order: dict[str, list[str]] = {str(c): [] for c in (1, 2, 3)}
    loose = []
    for seq in range(6):
        for contact in (1, 2, 3):
            order[str(contact)].append(emit(database, contact, seq))
        if seq % 3 == 0:
            loose.append(emit(database, None, seq))
    everything = {event for events in order.values() for event in events} | set(loose)
    # Five errors, then two calls that outlast the hub's timeout, then it recovers.
    receiver.plan.extend(["fail"] * 5 + ["slow"] * 2)

    dispatcher = Dispatcher(database, fast(settings, webhook_max_attempts=50), holder="test")
    try:
        drive(dispatcher, lambda: states(database) == {DELIVERED: len(everything)})
    finally:
        dispatcher.close()

    calls = receiver.received()
    assert receiver.ok_ids() == everything
    assert [call.mode for call in calls].count("fail") == 5
    assert [call.mode for call in calls].count("slow") == 2
    for call in calls:
        assert call.verifies(secret)
        assert call.event["id"] == call.id
        assert call.headers["content-type"] == "application/json"
    # A retried event carries the same id (and body) each time.
    bodies: dict[str, set[bytes]] = {}
    for call in calls:
        bodies.setdefault(call.id, set()).add(call.body)
    assert all(len(b) == 1 for b in bodies.values())
    assert len(calls) > len(everything)
    assert_in_order_per_contact(calls, order)
    with database.read() as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        assert endpoint.last_success_at is not None
        assert endpoint.last_failure_at is not None
        assert endpoint.last_error
        retried = session.scalars(select(WebhookDelivery).where(WebhookDelivery.attempts > 1))
        assert all(d.state == DELIVERED and d.last_status == 200 for d in retried)
        health = deliveries.health(session)[endpoint_id]
        assert (health.backlog, health.failures, health.dead) == (0, 0, 0)
        assert not health.failing


def test_a_delivery_dies_after_max_attempts_holds_its_contact_back_and_retry_sends_it(
    database: Database, dispatcher: Dispatcher
) -> None:
    with receiving(default="fail") as receiver:
        endpoint_id, secret = add_endpoint(database, receiver.url)
        first = emit(database, 1, 0)
        second = emit(database, 1, 1)
        other = emit(database, 2, 0)

        def dead_ids() -> set[str]:
            with database.read() as session:
                return {
                    str(guid)
                    for guid in session.scalars(
                        select(OutboxEvent.event_id)
                        .join(WebhookDelivery, WebhookDelivery.event_id == OutboxEvent.id)
                        .where(WebhookDelivery.state == DEAD)
                    )
                }

        drive(dispatcher, lambda: dead_ids() == {first, other})
        calls = receiver.received()
        assert [c.id for c in calls].count(first) == 3  # webhook_max_attempts
        assert [c.id for c in calls].count(other) == 3
        assert second not in {c.id for c in calls}, "sent before its contact's earlier event"
        with database.read() as session:
            health = deliveries.health(session)[endpoint_id]
            assert (health.dead, health.backlog, health.failures) == (2, 1, 2)
            assert health.failing
            assert health.last_error is not None
            assert health.last_error.startswith("HTTP 500")
            recent = deliveries.recent(session, endpoint_id)
            assert [str(d.event_id) for d in recent] == [other, second, first]
            assert [d.state for d in recent] == [DEAD, PENDING, DEAD]
            assert recent[0].attempts == 3
            assert recent[0].last_status == 500
            first_delivery = recent[2].id

        # The receiver recovers: the dead stay dead, and hold the contact's next event back.
        receiver.default = "ok"
        for _ in range(3):
            dispatcher.run()
        assert second not in receiver.ok_ids()

        with database.write() as session:
            deliveries.retry(session, first_delivery, actor="ops@example.com")
        drive(dispatcher, lambda: {first, second} <= receiver.ok_ids())
        assert_in_order_per_contact(receiver.received(), {"1": [first, second]})
        assert other not in receiver.ok_ids()
        assert all(call.verifies(secret) for call in receiver.received())

    with database.read() as session:
        [event] = [e for e in latest(session) if e.action == "webhook.retried"]
        assert event.actor == "ops@example.com"
        assert event.subject == "Receiver"
        assert f'"event": "{first}"' in (event.details or "")
        health = deliveries.health(session)[endpoint_id]
        assert (health.dead, health.backlog) == (1, 0)
    with database.write() as session, pytest.raises(Conflict):
        deliveries.retry(session, first_delivery, actor="ops@example.com")
    with database.write() as session, pytest.raises(NotFound):
        deliveries.retry(session, 10**9, actor="ops@example.com")


def test_replay_sends_every_event_since_a_time_again_with_the_same_ids(
    database: Database, dispatcher: Dispatcher, receiver: Receiver
) -> None:
    endpoint_id, _ = add_endpoint(database, receiver.url)
    before = [emit(database, 1, n) for n in range(2)]
    time.sleep(0.01)
    since = utcnow()
    after = [emit(database, 1, n) for n in range(2, 5)] + [emit(database, 2, 0)]
    drive(dispatcher, lambda: states(database) == {DELIVERED: 6})
    first_bodies = {call.id: call.body for call in receiver.received()}

    # A second endpoint added later wants contact updates only: replay queues them for it.
    with receiving() as late:
        late_id, _ = add_endpoint(database, late.url, '["contact.updated"]', name="Late")
        with database.write() as session:
            assert deliveries.replay(session, endpoint_id, since, actor="ops@example.com") == 4
            assert deliveries.replay(session, late_id, since, actor="cli") == 4
            assert deliveries.health(session)[endpoint_id].backlog == 4
        drive(dispatcher, lambda: states(database) == {DELIVERED: 10})
        assert late.ok_ids() == set(after)

    calls = receiver.received()
    counts = {event: [c.id for c in calls].count(event) for event in before + after}
    assert counts == {**dict.fromkeys(before, 1), **dict.fromkeys(after, 2)}
    # The repeats are the same events: same id, same body.
    assert all(call.body == first_bodies[call.id] for call in calls)
    assert_in_order_per_contact(calls[6:], {"1": after[:3]})
    with database.read() as session:
        replayed = [e for e in latest(session) if e.action == "webhook.replayed"]
        assert {(e.actor, e.subject) for e in replayed} == {
            ("ops@example.com", "Receiver"),
            ("cli", "Late"),
        }
        assert all('"events": 4' in (e.details or "") for e in replayed)
    with database.write() as session, pytest.raises(NotFound):
        deliveries.replay(session, 10**9, since, actor="cli")
    with database.write() as session:
        # Nothing since the future.
        future = utcnow() + timedelta(days=1)
        assert deliveries.replay(session, endpoint_id, future, actor="cli") == 0


def test_only_one_process_dispatches_at_a_time(
    database: Database, settings: Settings, receiver: Receiver
) -> None:
    add_endpoint(database, receiver.url)
    emit(database, 1, 0)
    one = Dispatcher(database, fast(settings), holder="one")
    two = Dispatcher(database, fast(settings), holder="two")
    try:
        assert one.run() == 1
        emit(database, 1, 1)
        assert two.run() == 0  # the lease is one's
        assert one.run() == 1
    finally:
        one.close()  # gives the lease up: two takes over at once
    try:
        emit(database, 1, 2)
        assert two.run() == 1
    finally:
        two.close()
    assert len(receiver.ok_ids()) == 3


def test_backoff_is_full_jitter_of_a_capped_exponential() -> None:
    import random

    rng = random.Random(7)
    for attempts, ceiling in [(1, 30), (2, 60), (3, 120), (10, 3600), (100, 3600)]:
        waits = [backoff(attempts, 30, 3600, rng) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.8
        assert min(waits) < ceiling * 0.2


def test_the_app_delivers_stored_activities(settings: Settings, database: Database) -> None:
    setup = factories.tracking_channel(database)
    contact = factories.contact(database)
    with receiving() as receiver:
        _, secret = add_endpoint(database, receiver.url, '["activity.stored"]')
        with TestClient(create_app(fast(settings))) as client:
            answer = client.post(
                "/Kentico.Tracking/activities",
                json={
                    "channel": setup.channel_guid,
                    "contact": contact,
                    "activities": [{"type": "click", "value": f"v{n}"} for n in range(3)],
                },
                headers=setup.headers,
            )
            assert answer.status_code == 207, answer.text
            deadline = time.monotonic() + 30
            while len(receiver.ok_ids()) < 3:
                assert time.monotonic() < deadline
                time.sleep(0.02)
    calls = receiver.received()
    assert [c.event["data"]["activity"]["value"] for c in calls] == ["v0", "v1", "v2"]
    assert {c.event["type"] for c in calls} == {"activity.stored"}
    assert all(c.event["data"]["contact"] == contact for c in calls)
    assert all(c.verifies(secret) for c in calls)
