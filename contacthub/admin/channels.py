"""Admin pages of channels and their API keys.

A new key is shown once: the page that answers the POST which created it carries it, and
nothing else ever does (no redirect to a URL holding it, no cookie). The admin's
`Cache-Control: no-store` keeps the browser from storing that page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session
from starlette.responses import Response
from starlette.routing import Route

from contacthub.admin.web import Admin, form_errors, page
from contacthub.channels import service
from contacthub.consents import service as consents
from contacthub.errors import HubError
from contacthub.identifiers import whole_number
from contacthub.storage.models import ApiKey, Channel

ACCESS_LABELS = {
    "tracking": "tracking — the tracking API (browsers, apps)",
    "email": "email — the server-to-server email endpoints",
}


@dataclass(frozen=True, slots=True)
class ChannelRow:
    """A channel as the pages show it (read in the unit of work, shown after it)."""

    id: int
    name: str
    guid: str
    required_consent: str | None
    created_at: datetime
    active_keys: int = 0
    keys: int = 0


@dataclass(frozen=True, slots=True)
class KeyRow:
    """An API key as the pages show it: never the key itself."""

    id: int
    name: str
    access: str
    prefix: str
    status: str
    enabled: bool
    expires_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ChannelPage:
    """What the channel page shows."""

    channel: ChannelRow
    keys: list[KeyRow]
    consent_options: list[tuple[str, str]]
    new_key: str | None = None
    new_key_row: KeyRow | None = None
    form: dict[str, str] = field(default_factory=dict)


def key_row(key: ApiKey) -> KeyRow:
    return KeyRow(
        key.id,
        key.name,
        key.access,
        key.prefix,
        service.api_key_status(key),
        key.enabled,
        key.expires_at,
        key.created_at,
    )


def _consent_options(session: Session) -> list[tuple[str, str]]:
    return [
        (c.code_name, f"{c.display_name} ({c.code_name})" if c.display_name else c.code_name)
        for c in consents.list_consents(session)
    ]


def _channel_page(session: Session, channel: Channel, **extra: Any) -> ChannelPage:
    row = ChannelRow(
        channel.id,
        channel.name,
        str(channel.guid),
        service.consent_gate_of(session, channel),
        channel.created_at,
    )
    keys = [key_row(k) for k in service.list_api_keys(session, channel.name)]
    return ChannelPage(row, keys, _consent_options(session), **extra)


def _id(admin: Admin, name: str) -> int:
    """A numeric path parameter; 0 (which no row has) beyond any id.

    The route's int convertor only lets digits through, but of any length."""
    return whole_number(str(admin.request.path_params[name])) or 0


def _render(admin: Admin, view: ChannelPage, status: int = 200, **errors: Any) -> Response:
    return admin.render(
        "channels/detail.html",
        status,
        view=view,
        access_options=list(ACCESS_LABELS.items()),
        gate_errors=errors.get("gate_errors", {}),
        key_errors=errors.get("key_errors", {}),
    )


async def channel_list(admin: Admin) -> Response:
    """Every channel with its tracking identifier, consent gate and keys."""

    def work(session: Session) -> list[ChannelRow]:
        return [
            ChannelRow(
                o.channel.id,
                o.channel.name,
                str(o.channel.guid),
                o.required_consent,
                o.channel.created_at,
                o.active_keys,
                o.keys,
            )
            for o in service.channel_overviews(session)
        ]

    return admin.render("channels/list.html", channels=await admin.hub.read(work))


async def new_channel_form(admin: Admin) -> Response:
    """The form that creates a channel."""
    options = await admin.hub.read(_consent_options)
    return admin.render("channels/new.html", consent_options=options, form={}, errors={})


async def create_channel(admin: Admin) -> Response:
    """Create the channel, then show it (with its tracking identifier)."""
    name = admin.field("name")
    consent = admin.field("required_consent") or None

    def work(session: Session) -> int:
        return service.create_channel(session, name, required_consent=consent, actor=admin.actor).id

    try:
        channel_id = await admin.hub.write(work)
    except HubError as error:
        options = await admin.hub.read(_consent_options)
        return admin.render(
            "channels/new.html",
            400,
            consent_options=options,
            form={"name": name, "required_consent": consent or ""},
            errors=form_errors(error),
        )
    return admin.redirect(
        f"/admin/channels/{channel_id}",
        "Channel created. Copy its tracking identifier and create an API key.",
    )


async def channel_detail(admin: Admin) -> Response:
    """A channel: its tracking identifier, consent gate and keys."""
    channel_id = _id(admin, "channel_id")

    def work(session: Session) -> ChannelPage:
        return _channel_page(session, service.get_channel_by_id(session, channel_id))

    return _render(admin, await admin.hub.read(work))


async def set_consent_gate(admin: Admin) -> Response:
    """Require a consent for the channel's activities, or stop requiring one."""
    channel_id = _id(admin, "channel_id")
    consent = admin.field("required_consent") or None

    def work(session: Session) -> str:
        channel = service.get_channel_by_id(session, channel_id)
        service.set_consent_gate(session, channel.name, consent, actor=admin.actor)
        return channel.name

    try:
        await admin.hub.write(work)
    except HubError as error:
        if error.field is None:
            raise
        view = await admin.hub.read(
            lambda s: _channel_page(s, service.get_channel_by_id(s, channel_id))
        )
        return _render(admin, view, 400, gate_errors=form_errors(error))
    message = (
        f"Activities now need the consent {consent}." if consent else "The consent gate is off."
    )
    return admin.redirect(f"/admin/channels/{channel_id}", message)


async def create_key(admin: Admin) -> Response:
    """Create a key and show it, this once, on the page that answers."""
    channel_id = _id(admin, "channel_id")
    form = {
        "name": admin.field("name"),
        "access": admin.field("access"),
        "expires_at": admin.field("expires_at"),
    }

    def work(session: Session) -> ChannelPage:
        channel = service.get_channel_by_id(session, channel_id)
        new = service.create_api_key(
            session,
            channel.name,
            form["access"],
            name=form["name"],
            expires_at=service.parse_expiry(form["expires_at"]),
            actor=admin.actor,
        )
        return _channel_page(
            session, channel, new_key=new.plaintext, new_key_row=key_row(new.record)
        )

    try:
        view = await admin.hub.write(work)
    except HubError as error:
        if error.field is None:
            raise
        view = await admin.hub.read(
            lambda s: _channel_page(s, service.get_channel_by_id(s, channel_id), form=form)
        )
        return _render(admin, view, 400, key_errors=form_errors(error))
    # Rendered from the POST itself: the key is in this answer and in no URL or cookie.
    return _render(admin, view)


async def _change_key(admin: Admin, verb: str) -> Response:
    key_id = _id(admin, "key_id")

    def work(session: Session) -> tuple[int, str]:
        if verb == "revoke":
            key = service.revoke_api_key(session, key_id, actor=admin.actor)
        else:
            key = service.set_api_key_enabled(session, key_id, verb == "enable", actor=admin.actor)
        return key.channel_id, key.prefix

    channel_id, prefix = await admin.hub.write(work)
    done = {"revoke": "revoked", "enable": "enabled", "disable": "disabled"}[verb]
    return admin.redirect(f"/admin/channels/{channel_id}", f"Key {prefix}… {done}.")


async def disable_key(admin: Admin) -> Response:
    """Disable a key until it is enabled again."""
    return await _change_key(admin, "disable")


async def enable_key(admin: Admin) -> Response:
    """Enable a disabled key."""
    return await _change_key(admin, "enable")


async def revoke_key(admin: Admin) -> Response:
    """Revoke a key for good."""
    return await _change_key(admin, "revoke")


routes = [
    Route("/admin/channels", page(channel_list), methods=["GET"]),
    Route("/admin/channels/new", page(new_channel_form), methods=["GET"]),
    Route("/admin/channels/new", page(create_channel), methods=["POST"]),
    Route("/admin/channels/{channel_id:int}", page(channel_detail), methods=["GET"]),
    Route(
        "/admin/channels/{channel_id:int}/consent-gate", page(set_consent_gate), methods=["POST"]
    ),
    Route("/admin/channels/{channel_id:int}/keys", page(create_key), methods=["POST"]),
    Route("/admin/keys/{key_id:int}/disable", page(disable_key), methods=["POST"]),
    Route("/admin/keys/{key_id:int}/enable", page(enable_key), methods=["POST"]),
    Route("/admin/keys/{key_id:int}/revoke", page(revoke_key), methods=["POST"]),
]
