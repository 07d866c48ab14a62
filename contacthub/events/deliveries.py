"""Webhook deliveries as operators see them: health, recent calls, retry and replay.

The admin, the management API and the CLI call these; the dispatcher (events/dispatcher.py)
does the sending. Retry and replay are recorded in the audit log (`webhook.retried`,
`webhook.replayed`) with the caller's `actor`, in the caller's unit of work.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.orm import Session

from contacthub.audit import service as audit
from contacthub.errors import Conflict, NotFound
from contacthub.events.dispatcher import DEAD, DELIVERED, PENDING
from contacthub.events.outbox import ACTIVITY_STORED, Subscription
from contacthub.identifiers import MAX_BIG_ID
from contacthub.storage.database import insert_or_ignore
from contacthub.storage.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from contacthub.storage.types import utcnow

RECENT_LIMIT = 50
# Outbox events read per query while replay looks for events an endpoint has no delivery of.
REPLAY_BATCH = 1000

__all__ = [
    "DEAD",
    "DELIVERED",
    "PENDING",
    "DeliveryView",
    "EndpointHealth",
    "health",
    "recent",
    "replay",
    "retry",
]


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    """How an endpoint is doing: its last success and failure (with the error), how many of
    its deliveries are failing (dead, or pending after a failed try) and how many wait
    (`backlog`: pending, whether due now or backing off)."""

    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_error: str | None = None
    failures: int = 0
    dead: int = 0
    backlog: int = 0

    @property
    def failing(self) -> bool:
        """Whether something needs an operator's eye: a dead delivery, or a failure more
        recent than the last success."""
        if self.dead:
            return True
        if self.last_failure_at is None:
            return False
        return self.last_success_at is None or self.last_failure_at > self.last_success_at


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """One delivery with its event, for the admin and the API."""

    id: int
    endpoint_id: int
    event_id: uuid.UUID
    event_type: str
    contact_id: int | None
    state: str
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


def health(session: Session) -> dict[int, EndpointHealth]:
    """Every endpoint's health, by endpoint id (endpoints without deliveries included)."""
    is_pending = WebhookDelivery.state == PENDING
    is_dead = WebhookDelivery.state == DEAD
    counts = {
        row.endpoint_id: row
        for row in session.execute(
            select(
                WebhookDelivery.endpoint_id,
                func.sum(case((is_pending, 1), else_=0)).label("backlog"),
                func.sum(case((is_dead, 1), else_=0)).label("dead"),
                func.sum(case((and_(is_pending, WebhookDelivery.attempts > 0), 1), else_=0)).label(
                    "retrying"
                ),
            )
            .where(WebhookDelivery.state.in_((PENDING, DEAD)))
            .group_by(WebhookDelivery.endpoint_id)
        )
    }
    result: dict[int, EndpointHealth] = {}
    for endpoint in session.execute(
        select(
            WebhookEndpoint.id,
            WebhookEndpoint.last_success_at,
            WebhookEndpoint.last_failure_at,
            WebhookEndpoint.last_error,
        )
    ):
        row = counts.get(endpoint.id)
        backlog = int(row.backlog or 0) if row else 0
        dead = int(row.dead or 0) if row else 0
        retrying = int(row.retrying or 0) if row else 0
        result[endpoint.id] = EndpointHealth(
            endpoint.last_success_at,
            endpoint.last_failure_at,
            endpoint.last_error,
            failures=dead + retrying,
            dead=dead,
            backlog=backlog,
        )
    return result


def recent(session: Session, endpoint_id: int, limit: int = RECENT_LIMIT) -> list[DeliveryView]:
    """The endpoint's latest deliveries, newest first."""
    rows = session.execute(
        select(WebhookDelivery, OutboxEvent.event_id, OutboxEvent.type)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    ).all()
    return [_view(delivery, event_guid, event_type) for delivery, event_guid, event_type in rows]


def _view(delivery: WebhookDelivery, event_guid: uuid.UUID, event_type: str) -> DeliveryView:
    return DeliveryView(
        id=delivery.id,
        endpoint_id=delivery.endpoint_id,
        event_id=event_guid,
        event_type=event_type,
        contact_id=delivery.contact_id,
        state=delivery.state,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at,
        last_attempt_at=delivery.last_attempt_at,
        last_status=delivery.last_status,
        last_error=delivery.last_error,
        delivered_at=delivery.delivered_at,
        created_at=delivery.created_at,
    )


def retry(session: Session, delivery_id: int, *, actor: str) -> None:
    """Make a dead delivery pending again, due now, with a fresh count of tries (the
    contact's later events, held back behind it, follow it in order)."""
    found = (
        session.execute(
            select(
                WebhookDelivery, OutboxEvent.event_id, WebhookEndpoint.name, WebhookEndpoint.guid
            )
            .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.id == delivery_id)
        ).first()
        if 0 < delivery_id <= MAX_BIG_ID
        else None
    )
    if found is None:
        raise NotFound(f"No webhook delivery with id {delivery_id}.", code="unknown_delivery")
    delivery, event_guid, endpoint_name, endpoint_guid = found
    if delivery.state != DEAD:
        raise Conflict(
            f"Webhook delivery {delivery_id} is {delivery.state}: only a dead one can be retried.",
            code="delivery_not_dead",
        )
    delivery.state = PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = utcnow()
    session.flush()
    audit.record(
        session,
        actor,
        "webhook.retried",
        endpoint_name,
        {"guid": str(endpoint_guid), "delivery": delivery_id, "event": str(event_guid)},
    )


def replay(session: Session, endpoint_id: int, since: datetime, *, actor: str) -> int:
    """Send the endpoint every event since `since` again (event time; a naive time is UTC):
    each delivery of such an event becomes pending, due now, with a fresh count of tries, and
    each such event it has no delivery of, but wants now, gets one. The calls carry the same
    event ids as before, so receivers can tell them for repeats. Returns how many events were
    queued. An event the dispatcher has not fanned out yet may get its delivery here first;
    the dispatcher then skips it (one delivery per endpoint and event)."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound(f"No webhook endpoint with id {endpoint_id}.", code="unknown_endpoint")
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    now = utcnow()
    count = _requeue(session, endpoint, since, now)
    count += _queue_missing(session, endpoint, since, now)
    session.flush()
    audit.record(
        session,
        actor,
        "webhook.replayed",
        endpoint.name,
        {"guid": str(endpoint.guid), "since": since.isoformat(), "events": count},
    )
    return count


def _wanted(subscription: Subscription, event_type: str, payload: str) -> bool:
    if event_type != ACTIVITY_STORED:
        return subscription.wants(event_type)
    return subscription.wants_payload(event_type, json.loads(payload))


def _requeue(session: Session, endpoint: WebhookEndpoint, since: datetime, now: datetime) -> int:
    """Make the endpoint's deliveries of the events since `since` that it wants now pending
    again, due now, with a fresh count of tries."""
    subscription = Subscription.of(endpoint)
    requeued = 0
    after = 0
    while True:
        rows: Sequence[Any] = session.execute(
            select(WebhookDelivery.id, OutboxEvent.type, OutboxEvent.payload)
            .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
            .where(
                WebhookDelivery.endpoint_id == endpoint.id,
                OutboxEvent.created_at >= since,
                WebhookDelivery.id > after,
            )
            .order_by(WebhookDelivery.id)
            .limit(REPLAY_BATCH)
        ).all()
        if not rows:
            return requeued
        after = rows[-1].id
        wanted = [row.id for row in rows if _wanted(subscription, row.type, row.payload)]
        if wanted:
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(wanted))
                .values(state=PENDING, attempts=0, next_attempt_at=now, delivered_at=None)
            )
            requeued += len(wanted)


def _queue_missing(
    session: Session, endpoint: WebhookEndpoint, since: datetime, now: datetime
) -> int:
    """New deliveries for the events since `since` the endpoint has none of (it was disabled,
    did not want them then, or they wait for the dispatcher) and wants now."""
    subscription = Subscription.of(endpoint)
    has_delivery = (
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.endpoint_id == endpoint.id,
            WebhookDelivery.event_id == OutboxEvent.id,
        )
        .exists()
    )
    queued = 0
    after = 0
    while True:
        events: Sequence[Any] = session.execute(
            select(OutboxEvent.id, OutboxEvent.type, OutboxEvent.contact_id, OutboxEvent.payload)
            .where(
                OutboxEvent.created_at >= since,
                OutboxEvent.id > after,
                ~has_delivery,
            )
            .order_by(OutboxEvent.id)
            .limit(REPLAY_BATCH)
        ).all()
        if not events:
            return queued
        after = events[-1].id
        rows = [
            {
                "endpoint_id": endpoint.id,
                "event_id": event.id,
                "contact_id": event.contact_id,
                "state": PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for event in events
            if _wanted(subscription, event.type, event.payload)
        ]
        if rows:
            session.execute(
                insert_or_ignore(session, WebhookDelivery, ["endpoint_id", "event_id"]), rows
            )
            queued += len(rows)
