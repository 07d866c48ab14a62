"""A hub with webhook endpoints, outbox events and deliveries in every state, for the tests of
the endpoints' service and entry points.

The dispatcher's fan-out is done here by inserting delivery rows as it would (one per event and
wanting endpoint): the tests of these pages and commands need deliveries in given states, not
real calls.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from contacthub.events import endpoints, outbox
from contacthub.storage.database import Database
from contacthub.storage.models import OutboxEvent, WebhookDelivery, WebhookEndpoint

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def endpoint_id(session: Session, guid: str) -> int:
    return endpoints.get_endpoint(session, guid).id


def emit_events(session: Session, count: int, *, start: datetime = T0) -> list[int]:
    """`count` contact.updated events, an hour apart from `start`: their outbox ids."""
    for i in range(count):
        outbox.emit(
            session,
            outbox.CONTACT_UPDATED,
            contact_id=1,
            data={"contact": f"c{i}"},
            moment=start + timedelta(hours=i),
        )
    session.flush()
    return list(session.scalars(select(OutboxEvent.id).order_by(OutboxEvent.id)))[-count:]


def deliver(session: Session, guid: str, event_ids: list[int], states: list[str]) -> list[int]:
    """Deliveries of these events to the endpoint, in these states: their ids."""
    target = endpoint_id(session, guid)
    made = []
    for event_id, state in zip(event_ids, states, strict=True):
        tries = {"pending": 0, "delivered": 1, "dead": 5}[state]
        delivery = WebhookDelivery(
            endpoint_id=target,
            event_id=event_id,
            contact_id=1,
            state=state,
            attempts=tries,
            last_attempt_at=T0 if tries else None,
            last_status=200 if state == "delivered" else (503 if state == "dead" else None),
            last_error="HTTP 503 Service Unavailable" if state == "dead" else None,
            delivered_at=T0 if state == "delivered" else None,
        )
        session.add(delivery)
        session.flush()
        made.append(delivery.id)
    return made


def hub_with_deliveries(database: Database, url: str = "https://crm.example.com/hook") -> str:
    """An endpoint ("CRM") with three events: one delivered, one dead, one pending; its GUID."""
    with database.write() as session:
        guid = endpoints.create_endpoint(session, "CRM", url).endpoint.guid
        events = emit_events(session, 3)
        deliver(session, guid, events, ["delivered", "dead", "pending"])
        endpoint = session.get_one(WebhookEndpoint, endpoint_id(session, guid))
        endpoint.last_success_at = T0
        endpoint.last_failure_at = T0 + timedelta(hours=1)
        endpoint.last_error = "HTTP 503 Service Unavailable"
    return guid


def dead_delivery(database: Database, guid: str) -> int:
    with database.read() as session:
        return session.scalars(
            select(WebhookDelivery.id).where(
                WebhookDelivery.endpoint_id == endpoint_id(session, guid),
                WebhookDelivery.state == "dead",
            )
        ).one()
