"""Admin pages of webhook endpoints: list with health, create, edit, detail with recent
deliveries, retry of a dead delivery, replay from a time, secret rotation.

A secret is shown once: the page that answers the POST which created the endpoint (or rotated
its secret) carries it, and nothing else ever does (no redirect to a URL holding it, no
cookie). The admin's `Cache-Control: no-store` keeps the browser from storing that page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session
from starlette.responses import Response
from starlette.routing import Route

from contacthub.activities import service as activity_types
from contacthub.activities.rules import BUILT_IN_TYPES
from contacthub.admin.web import Admin, form_errors, page
from contacthub.channels import service as channels
from contacthub.errors import HubError, NotFound
from contacthub.events import endpoints as service
from contacthub.events.outbox import ALL_EVENTS, EVENT_TYPES
from contacthub.identifiers import MAX_BIG_ID, whole_number

LIST_PATH = "/admin/webhooks"
RECENT = 50


@dataclass(frozen=True, slots=True)
class Choices:
    """What the form offers: event types, activity types and channels."""

    events: list[tuple[str, str]]
    activity_types: list[str]
    channels: list[str]


@dataclass(frozen=True, slots=True)
class Values:
    """What the form shows: the endpoint's settings, or what was typed."""

    name: str = ""
    url: str = ""
    events: list[str] = field(default_factory=lambda: [ALL_EVENTS])
    activity_types: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)


def _choices(session: Session) -> Choices:
    custom = [t.code_name for t in activity_types.list_types(session)]
    return Choices(
        [(ALL_EVENTS, "Every event, including types added later"), *((e, e) for e in EVENT_TYPES)],
        sorted(BUILT_IN_TYPES) + custom,
        [c.name for c in channels.list_channels(session)],
    )


def _values_of(shown: service.EndpointView) -> Values:
    return Values(
        shown.name,
        shown.url,
        shown.events,
        shown.activity_types or [],
        shown.channels or [],
    )


def _typed(admin: Admin) -> Values:
    return Values(
        admin.field("name"),
        admin.field("url"),
        admin.fields("events"),
        admin.fields("activity_types"),
        admin.fields("channels"),
    )


def _key(admin: Admin) -> str:
    return str(admin.request.path_params["guid"])


def _form(
    admin: Admin,
    choices: Choices,
    values: Values,
    *,
    endpoint: service.EndpointView | None = None,
    status: int = 200,
    errors: dict[str, str] | None = None,
) -> Response:
    return admin.render(
        "webhooks/form.html",
        status,
        endpoint=endpoint,
        choices=choices,
        values=values,
        errors=errors or {},
    )


def _detail(
    session: Session,
    key: str,
    *,
    secret: str | None = None,
    since: str = "",
    replay_errors: dict[str, str] | None = None,
) -> tuple[service.EndpointView, list[service.DeliveryView], dict[str, Any]]:
    shown = service.view(session, service.get_endpoint(session, key))
    recent = service.recent_deliveries(session, key, RECENT)
    return shown, recent, {"secret": secret, "since": since, "replay_errors": replay_errors or {}}


def _render_detail(
    admin: Admin,
    found: tuple[service.EndpointView, list[service.DeliveryView], dict[str, Any]],
    status: int = 200,
) -> Response:
    shown, recent, extra = found
    return admin.render("webhooks/detail.html", status, endpoint=shown, deliveries=recent, **extra)


async def webhook_list(admin: Admin) -> Response:
    """Every endpoint: URL, events, enabled, and health (last success, failures, backlog)."""
    return admin.render("webhooks/list.html", endpoints=await admin.hub.read(service.overviews))


async def new_webhook_form(admin: Admin) -> Response:
    """The form that creates an endpoint."""
    return _form(admin, await admin.hub.read(_choices), Values())


def _filters(values: Values) -> tuple[list[str] | None, list[str] | None]:
    return values.activity_types or None, values.channels or None


async def create_webhook(admin: Admin) -> Response:
    """Create the endpoint and show it, with its secret this once."""
    values = _typed(admin)
    types, channel_names = _filters(values)

    def work(
        session: Session,
    ) -> tuple[service.EndpointView, list[service.DeliveryView], dict[str, Any]]:
        new = service.create_endpoint(
            session,
            values.name,
            values.url,
            events=values.events,
            activity_types=types,
            channels=channel_names,
            actor=admin.actor,
        )
        return _detail(session, new.endpoint.guid, secret=new.secret)

    try:
        found = await admin.hub.write(work)
    except HubError as error:
        choices = await admin.hub.read(_choices)
        return _form(admin, choices, values, status=400, errors=form_errors(error))
    # Rendered from the POST itself: the secret is in this answer and in no URL or cookie.
    return _render_detail(admin, found)


async def webhook_detail(admin: Admin) -> Response:
    """An endpoint: settings, health, recent deliveries, retry, replay, secret rotation."""
    key = _key(admin)
    return _render_detail(admin, await admin.hub.read(lambda s: _detail(s, key)))


async def edit_webhook_form(admin: Admin) -> Response:
    """The form that changes an endpoint."""
    key = _key(admin)

    def work(session: Session) -> tuple[Choices, service.EndpointView]:
        return _choices(session), service.view(session, service.get_endpoint(session, key))

    choices, shown = await admin.hub.read(work)
    return _form(admin, choices, _values_of(shown), endpoint=shown)


async def update_webhook(admin: Admin) -> Response:
    """Save the endpoint's settings."""
    key = _key(admin)
    values = _typed(admin)
    types, channel_names = _filters(values)

    def work(session: Session) -> str:
        endpoint = service.update_endpoint(
            session,
            key,
            name=values.name,
            url=values.url,
            events=values.events,
            activity_types=types,
            channels=channel_names,
            actor=admin.actor,
        )
        return str(endpoint.guid)

    try:
        guid = await admin.hub.write(work)
    except HubError as error:
        if error.field is None:
            raise
        choices, shown = await admin.hub.read(
            lambda s: (_choices(s), service.view(s, service.get_endpoint(s, key)))
        )
        return _form(admin, choices, values, endpoint=shown, status=400, errors=form_errors(error))
    return admin.redirect(f"{LIST_PATH}/{guid}", "Webhook saved.")


async def _enable(admin: Admin, enabled: bool) -> Response:
    key = _key(admin)
    guid = await admin.hub.write(
        lambda s: str(service.set_enabled(s, key, enabled, actor=admin.actor).guid)
    )
    return admin.redirect(
        f"{LIST_PATH}/{guid}", "Webhook enabled." if enabled else "Webhook disabled."
    )


async def enable_webhook(admin: Admin) -> Response:
    """Enable the endpoint: it gets new events again."""
    return await _enable(admin, True)


async def disable_webhook(admin: Admin) -> Response:
    """Disable the endpoint: it gets no new events until enabled."""
    return await _enable(admin, False)


async def delete_webhook(admin: Admin) -> Response:
    """Delete the endpoint and its deliveries."""
    key = _key(admin)
    shown = await admin.hub.write(lambda s: service.delete_endpoint(s, key, actor=admin.actor))
    return admin.redirect(LIST_PATH, f"Webhook {shown.name} deleted.")


async def rotate_secret(admin: Admin) -> Response:
    """Give the endpoint a new secret, and show it this once."""
    key = _key(admin)

    def work(
        session: Session,
    ) -> tuple[service.EndpointView, list[service.DeliveryView], dict[str, Any]]:
        new = service.rotate_secret(session, key, actor=admin.actor)
        return _detail(session, key, secret=new.secret)

    return _render_detail(admin, await admin.hub.write(work))


async def replay(admin: Admin) -> Response:
    """Send the endpoint every event since a time again."""
    key = _key(admin)
    since = admin.field("since")

    def work(session: Session) -> tuple[str, int]:
        count = service.replay(session, key, service.parse_since(since), actor=admin.actor)
        return str(service.get_endpoint(session, key).guid), count

    try:
        guid, count = await admin.hub.write(work)
    except HubError as error:
        if error.field is None:
            raise
        errors = form_errors(error)
        found = await admin.hub.read(lambda s: _detail(s, key, since=since, replay_errors=errors))
        return _render_detail(admin, found, 400)
    noun = "event" if count == 1 else "events"
    return admin.redirect(f"{LIST_PATH}/{guid}", f"{count:,} {noun} queued again.")


async def retry_delivery(admin: Admin) -> Response:
    """Send a dead delivery again."""
    text = str(admin.request.path_params["delivery_id"])
    delivery_id = whole_number(text, maximum=MAX_BIG_ID)
    if not delivery_id:
        raise NotFound(f"No webhook delivery with id {text!r}.", code="unknown_delivery")

    def work(session: Session) -> str:
        return service.retry_delivery(session, delivery_id, actor=admin.actor).endpoint

    guid = await admin.hub.write(work)
    return admin.redirect(f"{LIST_PATH}/{guid}", f"Delivery {delivery_id} queued again.")


routes = [
    Route(LIST_PATH, page(webhook_list), methods=["GET"]),
    Route(f"{LIST_PATH}/new", page(new_webhook_form), methods=["GET"]),
    Route(f"{LIST_PATH}/new", page(create_webhook), methods=["POST"]),
    Route(f"{LIST_PATH}/{{guid}}", page(webhook_detail), methods=["GET"]),
    Route(f"{LIST_PATH}/{{guid}}/edit", page(edit_webhook_form), methods=["GET"]),
    Route(f"{LIST_PATH}/{{guid}}/edit", page(update_webhook), methods=["POST"]),
    Route(f"{LIST_PATH}/{{guid}}/enable", page(enable_webhook), methods=["POST"]),
    Route(f"{LIST_PATH}/{{guid}}/disable", page(disable_webhook), methods=["POST"]),
    Route(f"{LIST_PATH}/{{guid}}/delete", page(delete_webhook), methods=["POST"]),
    Route(f"{LIST_PATH}/{{guid}}/rotate-secret", page(rotate_secret), methods=["POST"]),
    Route(f"{LIST_PATH}/{{guid}}/replay", page(replay), methods=["POST"]),
    Route(
        "/admin/webhook-deliveries/{delivery_id:int}/retry",
        page(retry_delivery),
        methods=["POST"],
    ),
]
