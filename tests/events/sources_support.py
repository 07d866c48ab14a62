"""Helpers of the event-source tests: an endpoint that wants events, and the outbox as stored."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import select

from contacthub.events.outbox import EVENT_TYPES
from contacthub.storage.database import Database
from contacthub.storage.models import Contact, OutboxEvent, WebhookEndpoint

DOCS = Path(__file__).parents[2] / "docs" / "webhooks.md"

# Types documented by the example of their pair, and the keys only one of the two has.
_PAIRED = {
    "consent.revoked": ("consent.agreed", set()),
    "group.left": ("group.entered", set()),
    "email.opened": ("email.clicked", {"link", "url"}),
    "email.complained": ("email.bounced", {"bounce"}),
}


@cache
def documented() -> dict[str, set[str]]:
    """The keys of `data` in each example body of docs/webhooks.md "Event types", by type."""
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index("## Event types") : text.index("## Endpoints")]
    keys: dict[str, set[str]] = {}
    for block in re.findall(r"```json\n(.*?)```", section, re.S):
        body = json.loads(block)
        assert set(body) == {"id", "type", "timestamp", "data"}, body
        keys[body["type"]] = set(body["data"])
    for event_type, (example, extra) in _PAIRED.items():
        keys[event_type] = keys[example] - extra
    return keys


def endpoint(db: Database, events: tuple[str, ...] = ("*",), *, enabled: bool = True) -> int:
    """An endpoint row wanting `events` (the endpoints service is another helper's); its id."""
    with db.write() as session:
        row = WebhookEndpoint(
            name="Receiver",
            url="https://receiver.example.com/hook",
            secret="whsec_dGVzdC1zZWNyZXQtdGVzdC1zZWNyZXQ=",
            events=json.dumps(list(events)),
            enabled=enabled,
        )
        session.add(row)
        session.flush()
        return row.id


@dataclass(frozen=True)
class Event:
    """One outbox row: its type, contact id and the `data` of its body."""

    id: int
    type: str
    contact_id: int | None
    data: dict[str, Any]


def events(db: Database, *types: str) -> list[Event]:
    """The outbox in order (of `types` only, if given), each body checked for the envelope."""
    with db.read() as session:
        rows = session.execute(
            select(
                OutboxEvent.id,
                OutboxEvent.event_id,
                OutboxEvent.type,
                OutboxEvent.contact_id,
                OutboxEvent.payload,
            ).order_by(OutboxEvent.id)
        ).all()
    found = []
    for row in rows:
        body = json.loads(row.payload)
        assert set(body) == {"id", "type", "timestamp", "data"}, body
        assert body["id"] == str(row.event_id)
        assert body["type"] == row.type
        assert row.type in EVENT_TYPES
        # The payload is the documented one: the same fields as the example in the docs.
        assert set(body["data"]) == documented()[row.type], (row.type, body["data"])
        assert datetime.fromisoformat(body["timestamp"]).tzinfo is not None
        if not types or row.type in types:
            found.append(Event(row.id, row.type, row.contact_id, body["data"]))
    return found


def types_of(db: Database) -> list[str]:
    return [e.type for e in events(db)]


def contact_id(db: Database, guid: str) -> int:
    with db.read() as session:
        found = session.scalar(select(Contact.id).where(Contact.guid == uuid.UUID(guid)))
    assert found is not None, guid
    return found


def contact_guid(db: Database, email: str) -> str:
    with db.read() as session:
        found = session.scalar(select(Contact.guid).where(Contact.email == email))
    assert found is not None, email
    return str(found)


def only(found: list[Event]) -> Event:
    assert len(found) == 1, found
    return found[0]
