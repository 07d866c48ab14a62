"""Kill -9 the hub mid-dispatch: after a restart every event still arrives, at least once.

The real server (`contacthub serve`) stores activities of a few contacts, each an
`activity.stored` event for one endpoint, a real receiver on loopback that takes a little time
per call. While the dispatcher is half-way through them, the server gets SIGKILL: calls in
flight, outcomes not yet written. Started again on the same store, the hub (after the dead
process's lease expires) delivers the rest: every event reaches the receiver at least once, a
repeat carries the same event id and body, and no contact's event arrived before its earlier
ones were acknowledged.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import httpx2
import pytest
from sqlalchemy import select

from contacthub.storage.database import Database
from contacthub.storage.models import OutboxEvent
from tests import factories
from tests.events.helpers import add_endpoint
from tests.events.receiver import assert_in_order_per_contact, receiving
from tests.servers import running_hub, start_hub

CONTACTS = 5
REQUESTS = 80
ACTIVITIES_PER_REQUEST = 5
KILL_AFTER_DELIVERED = 120
ENV = {
    "CONTACTHUB_WEBHOOK_DISPATCH_INTERVAL": "0.05",
    "CONTACTHUB_WEBHOOK_TIMEOUT": "1",
    "CONTACTHUB_WEBHOOK_RETRY_DELAY": "0.05",
    "CONTACTHUB_WEBHOOK_RETRY_MAX_DELAY": "0.2",
}


def _events(database_url: str) -> list[tuple[str, str]]:
    """(event GUID, contact GUID) of every outbox event, in outbox order."""
    database = Database(database_url)
    try:
        with database.read() as session:
            rows = session.execute(
                select(OutboxEvent.event_id, OutboxEvent.payload).order_by(OutboxEvent.id)
            ).all()
    finally:
        database.dispose()
    return [(str(guid), json.loads(payload)["data"]["contact"]) for guid, payload in rows]


@pytest.mark.slow
def test_every_event_arrives_after_kill_9_mid_dispatch(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    setup = factories.tracking_channel(database)
    contacts = [factories.contact(database) for _ in range(CONTACTS)]
    log = tmp_path / "hub.log"
    with receiving(ok_seconds=0.03) as receiver:
        _, secret = add_endpoint(database, receiver.url, '["activity.stored"]')
        database.dispose()

        server = start_hub(database_url, log, env=ENV)
        try:
            with httpx2.Client(base_url=server.base_url, headers=setup.headers) as client:
                for n in range(REQUESTS):
                    body = {
                        "channel": setup.channel_guid,
                        "contact": contacts[n % CONTACTS],
                        "activities": [
                            {"type": "click", "value": f"{n}-{i}"}
                            for i in range(ACTIVITIES_PER_REQUEST)
                        ],
                    }
                    answer = client.post("/Kentico.Tracking/activities", json=body)
                    assert answer.status_code == 207, answer.text
            deadline = time.monotonic() + 60
            while len(receiver.ok_ids()) < KILL_AFTER_DELIVERED:
                assert time.monotonic() < deadline, server.log_tail()
                time.sleep(0.005)
            server.kill()
            at_kill = len(receiver.ok_ids())
        finally:
            server.kill()
        total = REQUESTS * ACTIVITIES_PER_REQUEST
        assert at_kill < total, "the kill must land mid-dispatch"

        events = _events(database_url)
        assert len(events) == total
        with running_hub(database_url, log, env=ENV) as restarted:
            everything = {guid for guid, _ in events}
            assert receiver.wait_for(everything, timeout=90), restarted.log_tail()
        calls = receiver.received()

    known = dict(events)
    assert {call.id for call in calls} <= known.keys(), "a call of an event nobody stored"
    for call in calls:
        assert call.verifies(secret)
        assert call.event["id"] == call.id
    bodies: dict[str, set[bytes]] = {}
    for call in calls:
        bodies.setdefault(call.id, set()).add(call.body)
    assert all(len(b) == 1 for b in bodies.values()), "a repeat differs from the first call"
    order: dict[str, list[str]] = {}
    for guid, contact in events:
        order.setdefault(contact, []).append(guid)
    assert_in_order_per_contact(calls, order)
    repeats = sum(n - 1 for n in Counter(c.id for c in calls if c.ok).values())
    print(
        f"{database.url.get_backend_name()}: {total} events, {at_kill} delivered at the kill, "
        f"{len(calls)} calls in all, {repeats} repeats (same id) after the restart"
    )
