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
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from contacthub.activities.repository import ActivityRow
from contacthub.storage.models import Channel, Contact, OutboxEvent, WebhookEndpoint
from contacthub.storage.types import utcnow

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


def subscriptions(session: Session) -> list[Subscription]:
    """The enabled endpoints' subscriptions, read once per unit of work."""
    cached: list[Subscription] | None = session.info.get(_SUBSCRIPTIONS)
    if cached is None:
        rows = session.execute(
            select(
                WebhookEndpoint.id,
                WebhookEndpoint.events,
                WebhookEndpoint.activity_types,
                WebhookEndpoint.channel_ids,
            ).where(WebhookEndpoint.enabled.is_(True))
        ).all()
        cached = session.info[_SUBSCRIPTIONS] = [Subscription.of(row) for row in rows]
    return cached


def forget_subscriptions(session: Session) -> None:
    """Read the subscriptions again at the next emit (after an endpoint changed in this unit
    of work)."""
    session.info.pop(_SUBSCRIPTIONS, None)


def envelope(event_id: uuid.UUID, event_type: str, moment: datetime, data: dict[str, Any]) -> str:
    """The JSON body of an event, as receivers get it."""
    return json.dumps(
        {"id": str(event_id), "type": event_type, "timestamp": moment.isoformat(), "data": data},
        separators=(",", ":"),
        default=str,
    )


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
    _insert(session, [(event_type, contact_id, data, moment or utcnow())])
    return True


def _insert(
    session: Session, events: Sequence[tuple[str, int | None, dict[str, Any], datetime]]
) -> None:
    rows = []
    for event_type, contact_id, data, moment in events:
        event_id = uuid.uuid4()
        rows.append(
            {
                "event_id": event_id,
                "type": event_type,
                "contact_id": contact_id,
                "payload": envelope(event_id, event_type, moment, data),
                "created_at": moment,
            }
        )
    session.execute(insert(OutboxEvent), rows)


def emit_activities(session: Session, activities: Iterable[ActivityRow]) -> int:
    """Write one `activity.stored` event per activity some endpoint wants (by type and channel);
    how many were written."""
    wanted = [s for s in subscriptions(session) if s.wants(ACTIVITY_STORED)]
    if not wanted:
        return 0
    chosen = [a for a in activities if any(s.wants_activity(a.type, a.channel_id) for s in wanted)]
    if not chosen:
        return 0
    contacts = dict(
        session.execute(
            select(Contact.id, Contact.guid).where(Contact.id.in_({a.contact_id for a in chosen}))
        ).all()
    )
    channel_ids = {a.channel_id for a in chosen if a.channel_id is not None}
    channels = (
        dict(
            session.execute(
                select(Channel.id, Channel.guid).where(Channel.id.in_(channel_ids))
            ).all()
        )
        if channel_ids
        else {}
    )
    events = []
    for a in chosen:
        data = {
            "contact": str(contacts.get(a.contact_id, "")) or None,
            "activity": {
                "type": a.type,
                "title": a.title,
                "value": a.value,
                "url": a.url,
                "referrer": a.referrer,
                "channel": None if a.channel_id is None else str(channels.get(a.channel_id)),
                "channelId": a.channel_id,
                "createdAt": a.created_at.isoformat(),
            },
        }
        events.append((ACTIVITY_STORED, a.contact_id, data, a.created_at))
    _insert(session, events)
    return len(events)
