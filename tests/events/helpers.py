"""Endpoints and events for the webhook tests, written as the hub writes them."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import func, select

from contacthub.events import outbox, signing
from contacthub.events.dispatcher import Dispatcher
from contacthub.storage.database import Database
from contacthub.storage.models import OutboxEvent, WebhookDelivery, WebhookEndpoint


def add_endpoint(
    database: Database, url: str, events: str = '["*"]', name: str = "Receiver"
) -> tuple[int, str]:
    """A webhook endpoint row (the endpoints' service is built elsewhere); (id, secret)."""
    secret = signing.new_secret()
    with database.write() as session:
        endpoint = WebhookEndpoint(name=name, url=url, secret=secret, events=events)
        session.add(endpoint)
        session.flush()
        return endpoint.id, secret


def emit(database: Database, contact_id: int | None, seq: int) -> str:
    """One `contact.updated` event (or `contact.erased` without a contact) in its own unit of
    work, as a service emits it; returns its event GUID."""
    with database.write() as session:
        event_type = outbox.CONTACT_UPDATED if contact_id is not None else outbox.CONTACT_ERASED
        assert outbox.emit(
            session,
            event_type,
            contact_id=contact_id,
            data={"contact": str(contact_id), "seq": seq},
        )
        guid = session.scalars(select(OutboxEvent.event_id).order_by(OutboxEvent.id.desc())).first()
        return str(guid)


def states(database: Database) -> dict[str, int]:
    with database.read() as session:
        return dict(
            session.execute(
                select(WebhookDelivery.state, func.count()).group_by(WebhookDelivery.state)
            ).all()
        )


def drive(dispatcher: Dispatcher, done: Callable[[], bool], timeout: float = 60.0) -> None:
    """Run the dispatcher, as the app's job does, until `done()`."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the dispatcher did not get there in time"
        dispatcher.run()
        time.sleep(0.01)
