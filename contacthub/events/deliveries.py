"""What operators do with deliveries: retry a dead one, replay from a time, read health.

A delivery is one event owed to one endpoint (`WebhookDelivery`): `pending` (due at
`next_attempt_at`), `delivered`, or `dead` (given up after `webhook_max_attempts` tries). The
dispatcher (events/dispatcher.py) sends pending ones; these functions only put deliveries back
in its way, in the caller's unit of work, and record it in the audit log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, insert, select, update
from sqlalchemy.orm import Session

from contacthub.audit import service as audit
from contacthub.errors import Conflict, NotFound
from contacthub.events.outbox import ACTIVITY_STORED, Subscription
from contacthub.identifiers import MAX_BIG_ID, MAX_ID
from contacthub.storage.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from contacthub.storage.types import utcnow

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"
STATES = (PENDING, DELIVERED, DEAD)
# Events replay reads per query.
_REPLAY_BATCH = 1_000


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    """How an endpoint is doing.

    `last_success_at`, `last_failure_at`, `last_error`: its last delivered call, its last failed
    one and why. `failures`: deliveries whose last try failed (dead ones, and pending ones
    waiting to be tried again). `backlog`: pending deliveries (due or waiting to be retried).
    """

    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_error: str | None = None
    failures: int = 0
    backlog: int = 0


def _endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id) if 0 < endpoint_id <= MAX_ID else None
    if endpoint is None:
        raise NotFound(f"No webhook endpoint with id {endpoint_id}.", code="unknown_webhook")
    return endpoint


def retry(session: Session, delivery_id: int, *, actor: str) -> None:
    """Send a dead delivery again, with a full set of tries (Conflict unless it is dead)."""
    delivery = session.get(WebhookDelivery, delivery_id) if 0 < delivery_id <= MAX_BIG_ID else None
    if delivery is None:
        raise NotFound(f"No webhook delivery with id {delivery_id}.", code="unknown_delivery")
    if delivery.state != DEAD:
        raise Conflict(
            f"Delivery {delivery_id} is {delivery.state}: only a dead one can be retried.",
            code="delivery_not_dead",
        )
    delivery.state = PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = utcnow()
    session.flush()
    endpoint = session.get_one(WebhookEndpoint, delivery.endpoint_id)
    event_id = session.scalar(
        select(OutboxEvent.event_id).where(OutboxEvent.id == delivery.event_id)
    )
    audit.record(
        session,
        actor,
        "webhook.retried",
        endpoint.name,
        {"guid": str(endpoint.guid), "delivery": delivery.id, "event": str(event_id)},
    )


def replay(session: Session, endpoint_id: int, since: datetime, *, actor: str) -> int:
    """Queue again, for this endpoint, every outbox event since `since` that it wants (by its
    subscription now), with the same event ids: delivered and dead deliveries become pending
    with a full set of tries, missing ones are made. How many events were queued."""
    endpoint = _endpoint(session, endpoint_id)
    subscription = Subscription.of(endpoint)
    now = utcnow()
    queued = 0
    after = 0
    while True:
        rows = session.execute(
            select(OutboxEvent.id, OutboxEvent.type, OutboxEvent.contact_id, OutboxEvent.payload)
            .where(OutboxEvent.created_at >= since, OutboxEvent.id > after)
            .order_by(OutboxEvent.id)
            .limit(_REPLAY_BATCH)
        ).all()
        if not rows:
            break
        after = rows[-1].id
        wanted = {
            row.id: row.contact_id
            for row in rows
            if (
                subscription.wants_payload(row.type, json.loads(row.payload))
                if row.type == ACTIVITY_STORED
                else subscription.wants(row.type)
            )
        }
        if not wanted:
            continue
        existing = set(
            session.scalars(
                select(WebhookDelivery.event_id).where(
                    WebhookDelivery.endpoint_id == endpoint.id,
                    WebhookDelivery.event_id.in_(wanted),
                )
            )
        )
        if existing:
            session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.endpoint_id == endpoint.id,
                    WebhookDelivery.event_id.in_(existing),
                )
                .values(state=PENDING, attempts=0, next_attempt_at=now, delivered_at=None)
            )
        missing = [
            {
                "endpoint_id": endpoint.id,
                "event_id": event_id,
                "contact_id": contact_id,
                "state": PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for event_id, contact_id in wanted.items()
            if event_id not in existing
        ]
        if missing:
            session.execute(insert(WebhookDelivery), missing)
        queued += len(wanted)
    session.flush()
    audit.record(
        session,
        actor,
        "webhook.replayed",
        endpoint.name,
        {"guid": str(endpoint.guid), "since": since.isoformat(), "events": queued},
    )
    return queued


def health(session: Session) -> dict[int, EndpointHealth]:
    """Every endpoint's health, by endpoint id."""
    failed = (WebhookDelivery.state == DEAD) | (
        (WebhookDelivery.state == PENDING) & (WebhookDelivery.attempts > 0)
    )
    counts = session.execute(
        select(
            WebhookDelivery.endpoint_id,
            func.sum(case((failed, 1), else_=0)),
            func.sum(case((WebhookDelivery.state == PENDING, 1), else_=0)),
        )
        .where(WebhookDelivery.state.in_((PENDING, DEAD)))
        .group_by(WebhookDelivery.endpoint_id)
    ).all()
    by_endpoint = {endpoint_id: (int(f or 0), int(b or 0)) for endpoint_id, f, b in counts}
    answer = {}
    for endpoint_id, success, failure, error in session.execute(
        select(
            WebhookEndpoint.id,
            WebhookEndpoint.last_success_at,
            WebhookEndpoint.last_failure_at,
            WebhookEndpoint.last_error,
        )
    ):
        failures, backlog = by_endpoint.get(endpoint_id, (0, 0))
        answer[endpoint_id] = EndpointHealth(success, failure, error, failures, backlog)
    return answer


def recent(session: Session, endpoint_id: int, limit: int) -> list[WebhookDelivery]:
    """The endpoint's latest `limit` deliveries, newest first."""
    return list(
        session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
    )
