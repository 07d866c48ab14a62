"""`/api/webhooks` and `/api/webhook-deliveries`: webhook endpoints, their deliveries, retry
and replay."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from sqlalchemy.orm import Session
from starlette.responses import Response

from contacthub.api.routing import ApiCall, ApiRouter, QueryParam, documented
from contacthub.errors import NotFound
from contacthub.events import endpoints as service
from contacthub.events.outbox import ALL_EVENTS, EVENT_TYPES
from contacthub.http import json_response
from contacthub.identifiers import MAX_BIG_ID, whole_number

router = ApiRouter("Webhooks")

EVENT_NAME = documented(enum=[ALL_EVENTS, *EVENT_TYPES])


class HealthOut(msgspec.Struct):
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None
    failures: int
    backlog: int


class WebhookOut(msgspec.Struct):
    guid: str
    name: str
    url: str
    events: list[str]
    activity_types: list[str] | None
    channels: list[str] | None
    enabled: bool
    created_at: datetime
    created_by: str
    health: HealthOut


class NewSecretOut(WebhookOut):
    secret: str


class WebhookIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    url: str
    events: list[Annotated[str, EVENT_NAME]] = msgspec.field(default_factory=lambda: [ALL_EVENTS])
    activity_types: list[str] | None = None
    channels: list[str] | None = None
    enabled: bool = True


class WebhookChange(msgspec.Struct, forbid_unknown_fields=True):
    name: str | msgspec.UnsetType = msgspec.UNSET
    url: str | msgspec.UnsetType = msgspec.UNSET
    events: list[Annotated[str, EVENT_NAME]] | msgspec.UnsetType = msgspec.UNSET
    # null: every activity type (every channel).
    activity_types: list[str] | msgspec.UnsetType | None = msgspec.UNSET
    channels: list[str] | msgspec.UnsetType | None = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET


class DeliveryOut(msgspec.Struct):
    id: int
    endpoint: str
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


class ReplayIn(msgspec.Struct, forbid_unknown_fields=True):
    since: datetime


class ReplayOut(msgspec.Struct):
    events: int


def webhook_out(shown: service.EndpointView) -> WebhookOut:
    h = shown.health
    return WebhookOut(
        shown.guid,
        shown.name,
        shown.url,
        shown.events,
        shown.activity_types,
        shown.channels,
        shown.enabled,
        shown.created_at,
        shown.created_by,
        HealthOut(h.last_success_at, h.last_failure_at, h.last_error, h.failures, h.backlog),
    )


def _secret_answer(new: service.NewSecret, status: int) -> Response:
    out = NewSecretOut(**msgspec.structs.asdict(webhook_out(new.endpoint)), secret=new.secret)
    # The only answer that ever holds the secret: no cache may keep it.
    return json_response(out, status, {"Cache-Control": "no-store"})


def delivery_out(d: service.DeliveryView) -> DeliveryOut:
    return DeliveryOut(
        d.id,
        d.endpoint,
        d.event_id,
        d.event_type,
        d.state,
        d.attempts,
        d.next_attempt_at,
        d.last_attempt_at,
        d.last_status,
        d.last_error,
        d.delivered_at,
        d.created_at,
    )


@router.get("/api/webhooks", response=list[WebhookOut])
async def list_webhooks(call: ApiCall) -> list[WebhookOut]:
    """List the webhook endpoints, by name, with their health (never their secrets)."""
    return await call.hub.read(lambda s: [webhook_out(v) for v in service.overviews(s)])


@router.post("/api/webhooks", body=WebhookIn, response=NewSecretOut, status=201)
async def create_webhook(call: ApiCall, body: WebhookIn) -> Response:
    """Create a webhook endpoint; the answer is the only time its `secret` is shown.

    `url` is an absolute http(s) URL (a query allowed; no fragment or credentials). `events`
    lists event types, or `["*"]` (the default) for every one. `activity_types` (code names)
    and `channels` (names) narrow `activity.stored` events; null or absent for any.
    """

    def work(session: Session) -> service.NewSecret:
        return service.create_endpoint(
            session,
            body.name,
            body.url,
            events=body.events,
            activity_types=body.activity_types,
            channels=body.channels,
            enabled=body.enabled,
            actor=call.actor,
        )

    return _secret_answer(await call.hub.write(work), 201)


@router.get("/api/webhooks/{guid}", response=WebhookOut)
async def get_webhook(call: ApiCall) -> WebhookOut:
    """One webhook endpoint, with its health."""
    return await call.hub.read(
        lambda s: webhook_out(service.view(s, service.get_endpoint(s, call.path("guid"))))
    )


@router.patch("/api/webhooks/{guid}", body=WebhookChange, response=WebhookOut)
async def change_webhook(call: ApiCall, body: WebhookChange) -> WebhookOut:
    """Change a webhook endpoint: only the properties given (`enabled` enables or disables it).

    `activity_types` or `channels` null: any type (channel).
    """

    def keep(value: object) -> object:
        return service.KEEP if value is msgspec.UNSET else value

    def work(session: Session) -> WebhookOut:
        guid = call.path("guid")
        endpoint = service.update_endpoint(
            session,
            guid,
            name=keep(body.name),  # type: ignore[arg-type]
            url=keep(body.url),  # type: ignore[arg-type]
            events=keep(body.events),  # type: ignore[arg-type]
            activity_types=keep(body.activity_types),  # type: ignore[arg-type]
            channels=keep(body.channels),  # type: ignore[arg-type]
            actor=call.actor,
        )
        if not isinstance(body.enabled, msgspec.UnsetType):
            service.set_enabled(session, endpoint.guid, body.enabled, actor=call.actor)
        return webhook_out(service.view(session, endpoint))

    return await call.hub.write(work)


@router.delete("/api/webhooks/{guid}", response=WebhookOut)
async def delete_webhook(call: ApiCall) -> WebhookOut:
    """Delete a webhook endpoint and its deliveries; the answer is the endpoint as it was."""
    return await call.hub.write(
        lambda s: webhook_out(service.delete_endpoint(s, call.path("guid"), actor=call.actor))
    )


@router.post("/api/webhooks/{guid}/rotate-secret", response=NewSecretOut)
async def rotate_webhook_secret(call: ApiCall) -> Response:
    """Give the endpoint a new secret; the answer is the only time it is shown.

    The old secret stops signing at once: give the receiver the new one.
    """
    new = await call.hub.write(
        lambda s: service.rotate_secret(s, call.path("guid"), actor=call.actor)
    )
    return _secret_answer(new, 200)


@router.get(
    "/api/webhooks/{guid}/deliveries",
    response=list[DeliveryOut],
    query=(
        QueryParam(
            "limit",
            "How many of the latest deliveries (newest first).",
            type="integer",
            minimum=1,
            maximum=service.MAX_DELIVERIES,
        ),
    ),
)
async def list_webhook_deliveries(call: ApiCall) -> list[DeliveryOut]:
    """The endpoint's latest deliveries, newest first: state, attempts, last status or error."""
    limit = call.query_int("limit", 50, maximum=service.MAX_DELIVERIES)
    return await call.hub.read(
        lambda s: [delivery_out(d) for d in service.recent_deliveries(s, call.path("guid"), limit)]
    )


@router.post("/api/webhooks/{guid}/replay", body=ReplayIn, response=ReplayOut)
async def replay_webhook(call: ApiCall, body: ReplayIn) -> ReplayOut:
    """Send the endpoint every event since `since` again, with the same event ids.

    Events it wants (by its subscription now) are queued again, delivered ones too; the
    answer counts them. `since` needs a time zone.
    """
    count = await call.hub.write(
        lambda s: service.replay(s, call.path("guid"), body.since, actor=call.actor)
    )
    return ReplayOut(count)


@router.post("/api/webhook-deliveries/{delivery_id}/retry", response=DeliveryOut)
async def retry_webhook_delivery(call: ApiCall) -> DeliveryOut:
    """Send a dead delivery again, with a full set of tries (409 `delivery_not_dead`
    otherwise)."""
    text = call.path("delivery_id")
    delivery_id = whole_number(text, maximum=MAX_BIG_ID)
    if not delivery_id:
        raise NotFound(f"No webhook delivery with id {text!r}.", code="unknown_delivery")
    return await call.hub.write(
        lambda s: delivery_out(service.retry_delivery(s, delivery_id, actor=call.actor))
    )
