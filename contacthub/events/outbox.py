"""The outbox: events written in the same transaction as the change they describe.

A service that changes something a webhook may want calls `emit` with its session, before its
unit of work commits: the event commits with the change or not at all, so a crash can neither
lose an event of a committed change nor send one of a change that rolled back. The dispatcher
(events/dispatcher.py) later turns each event into one delivery per endpoint that wants it.

An event is written only while some enabled endpoint wants its type (read in the same
transaction, once per transaction): a hub without webhooks writes nothing. So replay reaches
back to events that happened while an endpoint wanted them, not before.

Every event is one JSON object, the body receivers get (the Standard Webhooks shape):
`{"id": "<event GUID>", "type": "contact.created", "timestamp": "<ISO 8601 UTC>", "data": {…}}`.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import msgspec
from sqlalchemy.orm import Session

from contacthub.activities.repository import ActivityRow
from contacthub.storage.database import driver_cursor
from contacthub.storage.types import guid_from_driver, sqlite_datetime, utcnow

CONTACT_CREATED = "contact.created"
CONTACT_UPDATED = "contact.updated"
CONTACT_ERASED = "contact.erased"
CONSENT_AGREED = "consent.agreed"
CONSENT_REVOKED = "consent.revoked"
ACTIVITY_STORED = "activity.stored"
GROUP_ENTERED = "group.entered"
GROUP_LEFT = "group.left"
EMAIL_SENT = "email.sent"
EMAIL_OPENED = "email.opened"
EMAIL_CLICKED = "email.clicked"
EMAIL_BOUNCED = "email.bounced"
EMAIL_COMPLAINED = "email.complained"
EMAIL_UNSUBSCRIBED = "email.unsubscribed"

# Every event type, in the order the docs and the admin list them.
EVENT_TYPES = (
    CONTACT_CREATED,
    CONTACT_UPDATED,
    CONTACT_ERASED,
    CONSENT_AGREED,
    CONSENT_REVOKED,
    ACTIVITY_STORED,
    GROUP_ENTERED,
    GROUP_LEFT,
    EMAIL_SENT,
    EMAIL_OPENED,
    EMAIL_CLICKED,
    EMAIL_BOUNCED,
    EMAIL_COMPLAINED,
    EMAIL_UNSUBSCRIBED,
)
ALL_EVENTS = "*"

# Where a transaction keeps what the endpoints want, read once (Session.info lives as long as
# the session, which is one unit of work).
_SUBSCRIPTIONS = "contacthub.events.subscriptions"


@dataclass(frozen=True, slots=True)
class Subscription:
    """What one enabled endpoint wants: event types (or every one) and, for `activity.stored`,
    the activity types and channel ids (None: any)."""

    endpoint_id: int
    events: frozenset[str]
    activity_types: frozenset[str] | None
    channel_ids: frozenset[int] | None

    @classmethod
    def of(cls, endpoint: Any) -> Subscription:
        """The subscription of a `WebhookEndpoint` row (or a row with its columns)."""
        types = json.loads(endpoint.activity_types) if endpoint.activity_types else None
        channels = json.loads(endpoint.channel_ids) if endpoint.channel_ids else None
        return cls(
            endpoint.id,
            frozenset(json.loads(endpoint.events)),
            None if types is None else frozenset(t.lower() for t in types),
            None if channels is None else frozenset(int(c) for c in channels),
        )

    def wants(self, event_type: str) -> bool:
        return ALL_EVENTS in self.events or event_type in self.events

    def wants_activity(self, activity_type: str, channel_id: int | None) -> bool:
        if not self.wants(ACTIVITY_STORED):
            return False
        if self.activity_types is not None and activity_type.lower() not in self.activity_types:
            return False
        return self.channel_ids is None or channel_id in self.channel_ids

    def wants_payload(self, event_type: str, payload: dict[str, Any]) -> bool:
        """Whether this endpoint wants a stored event (the dispatcher's fan-out test)."""
        if event_type != ACTIVITY_STORED:
            return self.wants(event_type)
        activity = payload["data"]["activity"]
        return self.wants_activity(activity["type"], activity.get("channelId"))


class _EndpointRow(NamedTuple):
    id: int
    events: str
    activity_types: str | None
    channel_ids: str | None


def subscriptions(session: Session) -> list[Subscription]:
    """The enabled endpoints' subscriptions, read once per unit of work (straight from the
    driver: every ingest batch asks, with or without webhooks)."""
    cached: list[Subscription] | None = session.info.get(_SUBSCRIPTIONS)
    if cached is None:
        with driver_cursor(session) as cursor:
            cursor.execute(
                "SELECT id, events, activity_types, channel_ids FROM webhook_endpoints "
                "WHERE enabled"
            )
            rows = [_EndpointRow(*row) for row in cursor.fetchall()]
        cached = session.info[_SUBSCRIPTIONS] = [Subscription.of(row) for row in rows]
    return cached


def forget_subscriptions(session: Session) -> None:
    """Read the subscriptions again at the next emit (after an endpoint changed in this unit
    of work)."""
    session.info.pop(_SUBSCRIPTIONS, None)


def uuid7() -> uuid.UUID:
    """A time-ordered event GUID (the UUIDv7 layout: 48 bits of Unix milliseconds, then
    random bits). Ids written one after the other land side by side in the unique index, so
    the outbox's inserts touch few pages: random ones (v4) dirty a page per event."""
    random_bits = int.from_bytes(os.urandom(10), "big")
    value = (
        (time.time_ns() // 1_000_000) << 80
        | 0x7 << 76
        | (random_bits >> 68) << 64
        | 0b10 << 62
        | random_bits & ((1 << 62) - 1)
    )
    return uuid.UUID(int=value)


# Compact JSON; anything not JSON by nature (a time, a GUID) is written as its text.
_encoder = msgspec.json.Encoder(enc_hook=str)


def envelope(event_id: uuid.UUID, event_type: str, moment: datetime, data: dict[str, Any]) -> str:
    """The JSON body of an event, as receivers get it."""
    return _encoder.encode(
        {"id": str(event_id), "type": event_type, "timestamp": moment.isoformat(), "data": data}
    ).decode()


def emit(
    session: Session,
    event_type: str,
    *,
    contact_id: int | None,
    data: dict[str, Any],
    moment: datetime | None = None,
) -> bool:
    """Write an event into the outbox, in the caller's transaction; True if written (False when
    no enabled endpoint wants this type). `data` must be JSON-serialisable (GUIDs and times are
    written as strings); about a contact, it names it as `"contact": "<GUID>"`."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    if not any(s.wants(event_type) for s in subscriptions(session)):
        return False
    insert_events(session, [(event_type, contact_id, data, moment or utcnow())])
    return True


_COLUMNS = "event_id, type, contact_id, payload, created_at"
# SQLite: one multi-row INSERT per chunk (powers of two, so that few statement texts exist and
# each stays in the driver's statement cache), as activities are inserted.
_SQLITE_CHUNKS = tuple(2**n for n in range(8, -1, -1))
_SQLITE_INSERTS = {
    size: f"INSERT INTO outbox_events ({_COLUMNS}) VALUES "  # noqa: S608 - constant text
    + ", ".join(["(?, ?, ?, ?, ?)"] * size)
    for size in _SQLITE_CHUNKS
}


def insert_events(
    session: Session, events: Sequence[tuple[str, int | None, dict[str, Any], datetime]]
) -> None:
    """Write many events, `(type, contact id, data, moment)`, in one statement; the caller has
    checked that some endpoint wants each type (`emit` does it for one event)."""
    # On the ingest hot path (an event per activity): straight to the driver, multi-row
    # INSERTs on SQLite and COPY on PostgreSQL, as activities themselves are written.
    if not events:
        return
    connection = session.connection()
    driver_connection: Any = connection.connection.driver_connection
    if connection.dialect.name == "sqlite":
        times: dict[datetime, str] = {}
        values: list[Any] = []
        for event_type, contact_id, data, moment in events:
            event_id = uuid7()
            stamp = times.get(moment)
            if stamp is None:
                stamp = times[moment] = sqlite_datetime(moment)
            payload = envelope(event_id, event_type, moment, data)
            values.append((event_id.hex, event_type, contact_id, payload, stamp))
        cursor = driver_connection.cursor()
        try:
            start = 0
            while start < len(values):
                size = next(size for size in _SQLITE_CHUNKS if size <= len(values) - start)
                flat = [value for row in values[start : start + size] for value in row]
                cursor.execute(_SQLITE_INSERTS[size], flat)
                start += size
        finally:
            cursor.close()
        return
    with (
        driver_connection.cursor() as cursor,
        cursor.copy(f"COPY outbox_events ({_COLUMNS}) FROM STDIN") as copy,
    ):
        for event_type, contact_id, data, moment in events:
            event_id = uuid7()
            payload = envelope(event_id, event_type, moment, data)
            copy.write_row((event_id, event_type, contact_id, payload, moment))


def emit_activities(session: Session, activities: Iterable[ActivityRow]) -> int:
    """Write one `activity.stored` event per activity some endpoint wants (by type and channel);
    how many were written."""
    wanted = [s for s in subscriptions(session) if s.wants(ACTIVITY_STORED)]
    if not wanted:
        return 0
    chosen = [a for a in activities if any(s.wants_activity(a.type, a.channel_id) for s in wanted)]
    if not chosen:
        return 0
    contacts = _guids(session, "contacts", {a.contact_id for a in chosen})
    channels = _guids(session, "channels", {a.channel_id for a in chosen if a.channel_id})
    events = []
    for a in chosen:
        data = {
            "contact": contacts.get(a.contact_id),
            "activity": {
                "type": a.type,
                "title": a.title,
                "value": a.value,
                "url": a.url,
                "referrer": a.referrer,
                "channel": None if a.channel_id is None else channels.get(a.channel_id),
                "channelId": a.channel_id,
                "createdAt": a.created_at.isoformat(),
            },
        }
        events.append((ACTIVITY_STORED, a.contact_id, data, a.created_at))
    insert_events(session, events)
    return len(events)


def _guids(session: Session, table: str, ids: set[int]) -> dict[int, str]:
    """id -> GUID (as text) of the given contacts or channels, in one query to the driver."""
    if not ids:
        return {}
    dialect = session.get_bind().dialect.name
    with driver_cursor(session) as cursor:
        if dialect == "sqlite":
            cursor.execute(
                f"SELECT id, guid FROM {table} WHERE id IN (SELECT value FROM json_each(?))",  # noqa: S608 - constant names
                (json.dumps(sorted(ids)),),
            )
        else:
            cursor.execute(
                f"SELECT id, guid FROM {table} WHERE id = ANY(%s)",  # noqa: S608 - constant names
                (sorted(ids),),
            )
        return {row_id: str(guid_from_driver(guid)) for row_id, guid in cursor.fetchall()}
