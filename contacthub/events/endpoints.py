"""Webhook endpoints: creating, changing, enabling, disabling, deleting, rotating secrets.

An endpoint is a URL the hub posts events to (docs/webhooks.md "Endpoints"): a name, an http(s)
URL, the event types it wants (`*` for every one) and, for `activity.stored`, optional filters
by activity type and channel. Each has a secret (`whsec_` and base64 of 32 random bytes) that
signs every call: it is shown once, when the endpoint is created or its secret rotated, and
kept as given (the hub must compute the same HMAC as the receiver).

Changes are recorded in the audit log, in the caller's unit of work, when the caller names an
`actor` (every entry point does; test factories pass none). Entry points address an endpoint by
its GUID.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from contacthub.activities import repository as activity_repository
from contacthub.activities.rules import BUILT_IN_TYPES
from contacthub.audit import service as audit
from contacthub.channels import repository as channel_repository
from contacthub.errors import InvalidInput, NotFound
from contacthub.events import deliveries
from contacthub.events.outbox import ACTIVITY_STORED, ALL_EVENTS, EVENT_TYPES, forget_subscriptions
from contacthub.identifiers import check_label, guid_or_none, typed_time, web_url
from contacthub.storage.models import Channel, OutboxEvent, WebhookDelivery, WebhookEndpoint

SECRET_PREFIX = "whsec_"  # noqa: S105 - a public prefix, not a secret
MAX_URL = 2_000
MAX_NAME = 200
# Recent deliveries an entry point shows at most (the admin's detail page, the API, the CLI).
MAX_DELIVERIES = 500


class _Keep:
    """The value of an `update` argument that was not given: that setting stays as it is."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = _Keep()


@dataclass(frozen=True, slots=True)
class EndpointView:
    """An endpoint as every entry point shows it (never its secret)."""

    id: int
    guid: str
    name: str
    url: str
    events: list[str]
    activity_types: list[str] | None
    channels: list[str] | None
    enabled: bool
    created_at: datetime
    created_by: str
    health: deliveries.EndpointHealth


@dataclass(frozen=True, slots=True)
class NewSecret:
    """An endpoint whose secret was just made: the only moment the secret is shown."""

    endpoint: EndpointView
    secret: str


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """One delivery as the entry points list it, with its event's id and type."""

    id: int
    endpoint: str  # its GUID
    event_id: str
    event_type: str
    state: str
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


def new_secret() -> str:
    """A signing secret in the Standard Webhooks form: `whsec_` and base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


# -- rules ---------------------------------------------------------------------------------------


def check_url(text: str) -> str:
    """A webhook URL: absolute http(s), a query allowed, no fragment or credentials."""
    return web_url(text, "webhook URL", code="invalid_url", field="url", maximum=MAX_URL)


def check_events(events: Iterable[str]) -> list[str]:
    """Event types from `EVENT_TYPES`, or `*` for every one: at least one, each once, in the
    order of `EVENT_TYPES` (`["*"]` when `*` is among them)."""
    given = [str(e).strip() for e in events]
    unknown = [e for e in given if e != ALL_EVENTS and e not in EVENT_TYPES]
    if unknown:
        raise InvalidInput(
            f"Unknown event type {unknown[0]!r}: use {ALL_EVENTS!r} or some of "
            f"{', '.join(EVENT_TYPES)}.",
            code="invalid_events",
            field="events",
        )
    if not given:
        raise InvalidInput(
            "Choose at least one event type (or * for every one).",
            code="invalid_events",
            field="events",
        )
    if ALL_EVENTS in given:
        return [ALL_EVENTS]
    return [e for e in EVENT_TYPES if e in given]


def _wants_activities(events: list[str]) -> bool:
    return ALL_EVENTS in events or ACTIVITY_STORED in events


def check_activity_types(session: Session, codes: Iterable[str] | None) -> list[str] | None:
    """Activity type code names (built-in or custom, any case), as stored; None (or none
    given) for every type."""
    if codes is None:
        return None
    known = {name.lower(): name for name in BUILT_IN_TYPES}
    known.update({t.code_name.lower(): t.code_name for t in activity_repository.all_types(session)})
    chosen: list[str] = []
    for code in codes:
        canonical = known.get(str(code).strip().lower())
        if canonical is None:
            raise InvalidInput(
                f"No activity type {code!r}.", code="unknown_activity_type", field="activity_types"
            )
        if canonical not in chosen:
            chosen.append(canonical)
    return sorted(chosen) or None


def check_channels(session: Session, names: Iterable[str] | None) -> list[int] | None:
    """Channel names, as ids; None (or none given) for every channel."""
    if names is None:
        return None
    by_name = {c.name: c.id for c in channel_repository.all_channels(session)}
    chosen: list[int] = []
    for name in names:
        channel_id = by_name.get(str(name).strip())
        if channel_id is None:
            raise InvalidInput(f"No channel {name!r}.", code="unknown_channel", field="channels")
        if channel_id not in chosen:
            chosen.append(channel_id)
    return sorted(chosen) or None


def _check_filters(events: list[str], types: list[str] | None, channels: list[int] | None) -> None:
    if (types is not None or channels is not None) and not _wants_activities(events):
        raise InvalidInput(
            f"Activity type and channel filters narrow {ACTIVITY_STORED!r} events: subscribe "
            "to it (or to every event) to use them.",
            code="invalid_filter",
            field="activity_types" if types is not None else "channels",
        )


def parse_since(text: str | None) -> datetime:
    """A point in time as people type it (replay): an ISO date (00:00 UTC that day) or time
    (UTC if no zone)."""
    return typed_time((text or "").strip(), code="invalid_since", field="since")


# -- reading -------------------------------------------------------------------------------------


def get_endpoint(session: Session, key: str | uuid.UUID) -> WebhookEndpoint:
    """The endpoint with this GUID, or NotFound."""
    guid = key if isinstance(key, uuid.UUID) else guid_or_none(key)
    endpoint = (
        None
        if guid is None
        else session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.guid == guid))
    )
    if endpoint is None:
        raise NotFound(f"No webhook endpoint {str(key)!r}.", code="unknown_webhook")
    return endpoint


def list_endpoints(session: Session) -> Sequence[WebhookEndpoint]:
    """Every endpoint, by name."""
    return session.scalars(
        select(WebhookEndpoint).order_by(WebhookEndpoint.name, WebhookEndpoint.id)
    ).all()


def _channel_names(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Channel.id, Channel.name)).all())


def view(
    session: Session,
    endpoint: WebhookEndpoint,
    health: deliveries.EndpointHealth | None = None,
    channel_names: dict[int, str] | None = None,
) -> EndpointView:
    """How the entry points show an endpoint, with its health."""
    if health is None:
        health = deliveries.health(session).get(endpoint.id) or deliveries.EndpointHealth()
    names = _channel_names(session) if channel_names is None else channel_names
    channel_ids: list[int] | None = (
        json.loads(endpoint.channel_ids) if endpoint.channel_ids else None
    )
    return EndpointView(
        endpoint.id,
        str(endpoint.guid),
        endpoint.name,
        endpoint.url,
        json.loads(endpoint.events),
        json.loads(endpoint.activity_types) if endpoint.activity_types else None,
        None if channel_ids is None else [names.get(c, f"#{c}") for c in channel_ids],
        endpoint.enabled,
        endpoint.created_at,
        endpoint.created_by,
        health,
    )


def overviews(session: Session) -> list[EndpointView]:
    """Every endpoint, by name, with its health."""
    healths = deliveries.health(session)
    names = _channel_names(session)
    return [
        view(session, e, healths.get(e.id) or deliveries.EndpointHealth(), names)
        for e in list_endpoints(session)
    ]


def recent_deliveries(
    session: Session, key: str | uuid.UUID, limit: int = 50
) -> list[DeliveryView]:
    """The endpoint's latest deliveries, newest first, with their events' ids and types."""
    endpoint = get_endpoint(session, key)
    rows = deliveries.recent(session, endpoint.id, max(1, min(limit, MAX_DELIVERIES)))
    return deliveries_by_ids(session, endpoint, [d.id for d in rows])


# -- changing ------------------------------------------------------------------------------------


def _name(text: str) -> str:
    return check_label(
        text, "A webhook name", code="invalid_name", field="name", minimum=1, maximum=MAX_NAME
    )


def _dump(values: list[Any] | None) -> str | None:
    return None if values is None else json.dumps(values)


def create_endpoint(
    session: Session,
    name: str,
    url: str,
    *,
    events: Iterable[str] = (ALL_EVENTS,),
    activity_types: Iterable[str] | None = None,
    channels: Iterable[str] | None = None,
    enabled: bool = True,
    actor: str | None = None,
) -> NewSecret:
    """Create an endpoint with a new secret (in the answer, this once)."""
    name = _name(name)
    url = check_url(url)
    chosen = check_events(events)
    types = check_activity_types(session, activity_types)
    channel_ids = check_channels(session, channels)
    _check_filters(chosen, types, channel_ids)
    secret = new_secret()
    endpoint = WebhookEndpoint(
        name=name,
        url=url,
        secret=secret,
        events=json.dumps(chosen),
        activity_types=_dump(types),
        channel_ids=_dump(channel_ids),
        enabled=enabled,
        created_by=actor or "",
    )
    session.add(endpoint)
    session.flush()
    forget_subscriptions(session)
    shown = view(session, endpoint, deliveries.EndpointHealth())
    if actor is not None:
        audit.record(
            session,
            actor,
            "webhook.created",
            name,
            {
                "guid": shown.guid,
                "url": url,
                "events": chosen,
                "activity_types": types,
                "channels": shown.channels,
                "enabled": enabled,
            },
        )
    return NewSecret(shown, secret)


def update_endpoint(
    session: Session,
    key: str | uuid.UUID,
    *,
    name: str | _Keep = KEEP,
    url: str | _Keep = KEEP,
    events: Iterable[str] | _Keep = KEEP,
    activity_types: Iterable[str] | _Keep | None = KEEP,
    channels: Iterable[str] | _Keep | None = KEEP,
    actor: str | None = None,
) -> WebhookEndpoint:
    """Change what is given (`KEEP` leaves a setting as it is; None for the filters means any
    type or channel). Records `webhook.updated` with the changed settings, if any changed."""
    endpoint = get_endpoint(session, key)
    before = view(session, endpoint, deliveries.EndpointHealth())
    new_events = before.events if isinstance(events, _Keep) else check_events(events)
    types: list[str] | None = (
        before.activity_types
        if isinstance(activity_types, _Keep)
        else check_activity_types(session, activity_types)
    )
    channel_ids: list[int] | None = (
        (json.loads(endpoint.channel_ids) if endpoint.channel_ids else None)
        if isinstance(channels, _Keep)
        else check_channels(session, channels)
    )
    if not isinstance(name, _Keep):
        endpoint.name = _name(name)
    if not isinstance(url, _Keep):
        endpoint.url = check_url(url)
    _check_filters(new_events, types, channel_ids)
    endpoint.events = json.dumps(new_events)
    endpoint.activity_types = _dump(types)
    endpoint.channel_ids = _dump(channel_ids)
    session.flush()
    forget_subscriptions(session)
    after = view(session, endpoint, before.health)
    changes = {
        setting: getattr(after, setting)
        for setting in ("name", "url", "events", "activity_types", "channels")
        if getattr(after, setting) != getattr(before, setting)
    }
    if actor is not None and changes:
        audit.record(
            session, actor, "webhook.updated", endpoint.name, {"guid": after.guid, **changes}
        )
    return endpoint


def set_enabled(
    session: Session, key: str | uuid.UUID, enabled: bool, *, actor: str | None = None
) -> WebhookEndpoint:
    """Enable or disable an endpoint. A disabled one gets no new events; what it was owed
    stays (replay or enable it again)."""
    endpoint = get_endpoint(session, key)
    if endpoint.enabled == enabled:
        return endpoint
    endpoint.enabled = enabled
    session.flush()
    forget_subscriptions(session)
    if actor is not None:
        action = "webhook.enabled" if enabled else "webhook.disabled"
        audit.record(session, actor, action, endpoint.name, {"guid": str(endpoint.guid)})
    return endpoint


def delete_endpoint(
    session: Session, key: str | uuid.UUID, *, actor: str | None = None
) -> EndpointView:
    """Delete an endpoint and its deliveries (events stay for the other endpoints)."""
    endpoint = get_endpoint(session, key)
    shown = view(session, endpoint, deliveries.EndpointHealth())
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    session.delete(endpoint)
    session.flush()
    forget_subscriptions(session)
    if actor is not None:
        audit.record(session, actor, "webhook.deleted", shown.name, {"guid": shown.guid})
    return shown


def rotate_secret(session: Session, key: str | uuid.UUID, *, actor: str | None = None) -> NewSecret:
    """Give the endpoint a new secret (in the answer, this once); the old one stops signing at
    once, so the receiver must be given the new one."""
    endpoint = get_endpoint(session, key)
    endpoint.secret = new_secret()
    session.flush()
    if actor is not None:
        audit.record(
            session, actor, "webhook.secret_rotated", endpoint.name, {"guid": str(endpoint.guid)}
        )
    return NewSecret(view(session, endpoint), endpoint.secret)


def retry_delivery(session: Session, delivery_id: int, *, actor: str) -> DeliveryView:
    """Send a dead delivery again (`deliveries.retry`), and show it."""
    deliveries.retry(session, delivery_id, actor=actor)
    delivery = session.get_one(WebhookDelivery, delivery_id)
    endpoint = session.get_one(WebhookEndpoint, delivery.endpoint_id)
    [shown] = deliveries_by_ids(session, endpoint, [delivery_id])
    return shown


def deliveries_by_ids(
    session: Session, endpoint: WebhookEndpoint, ids: Sequence[int]
) -> list[DeliveryView]:
    """Some of an endpoint's deliveries, as `recent_deliveries` shows them."""
    rows = session.execute(
        select(WebhookDelivery, OutboxEvent.event_id, OutboxEvent.type)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.id.in_(ids))
        .order_by(WebhookDelivery.id.desc())
    ).all()
    return [
        DeliveryView(
            d.id,
            str(endpoint.guid),
            str(event_id),
            event_type,
            d.state,
            d.attempts,
            d.next_attempt_at,
            d.last_attempt_at,
            d.last_status,
            d.last_error,
            d.delivered_at,
            d.created_at,
        )
        for d, event_id, event_type in rows
    ]


def replay(session: Session, key: str | uuid.UUID, since: datetime, *, actor: str) -> int:
    """Send the endpoint every event since `since` again (`deliveries.replay`): how many."""
    if since.tzinfo is None:
        raise InvalidInput("The time needs a time zone.", code="invalid_since", field="since")
    return deliveries.replay(session, get_endpoint(session, key).id, since, actor=actor)
