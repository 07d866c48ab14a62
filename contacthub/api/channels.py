"""`/api/channels` and `/api/keys`: channels and their API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from sqlalchemy.orm import Session
from starlette.responses import Response

from contacthub.api.routing import ApiCall, ApiRouter, QueryParam, documented
from contacthub.channels import service
from contacthub.errors import NotFound
from contacthub.http import json_response
from contacthub.identifiers import whole_number
from contacthub.storage.models import ApiKey, Channel

router = ApiRouter("Channels")


class ChannelOut(msgspec.Struct):
    id: int
    name: str
    guid: str
    required_consent: str | None
    active_keys: int
    keys: int
    created_at: datetime


class ChannelIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    required_consent: str | None = None


class ChannelChange(msgspec.Struct, forbid_unknown_fields=True):
    # Required (null allowed): an empty PATCH would otherwise silently remove the gate.
    required_consent: str | None


class KeyOut(msgspec.Struct):
    id: int
    channel: str
    name: str
    access: str
    prefix: str
    status: str
    enabled: bool
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


class NewKeyOut(KeyOut):
    key: str


class KeyIn(msgspec.Struct, forbid_unknown_fields=True):
    access: Annotated[str, documented(enum=list(service.ACCESS_TYPES))]
    name: str = ""
    expires_at: datetime | None = None


def channel_out(session: Session, channel: Channel) -> ChannelOut:
    keys = service.list_api_keys(session, channel.name)
    return ChannelOut(
        channel.id,
        channel.name,
        str(channel.guid),
        service.consent_gate_of(session, channel),
        sum(service.api_key_status(k) == "active" for k in keys),
        len(keys),
        channel.created_at,
    )


def key_out(key: ApiKey, channel_name: str) -> KeyOut:
    return KeyOut(
        key.id,
        channel_name,
        key.name,
        key.access,
        key.prefix,
        service.api_key_status(key),
        key.enabled,
        key.expires_at,
        key.revoked_at,
        key.created_at,
    )


def _key_id(call: ApiCall) -> int:
    text = call.path("key_id")
    key_id = whole_number(text)
    if key_id is None:
        raise NotFound(f"No API key with id {text!r}.", code="unknown_api_key")
    return key_id


@router.get("/api/channels", response=list[ChannelOut])
async def list_channels(call: ApiCall) -> list[ChannelOut]:
    """List the channels, by name, with their consent gate and key counts."""

    def work(session: Session) -> list[ChannelOut]:
        return [
            ChannelOut(
                o.channel.id,
                o.channel.name,
                str(o.channel.guid),
                o.required_consent,
                o.active_keys,
                o.keys,
                o.channel.created_at,
            )
            for o in service.channel_overviews(session)
        ]

    return await call.hub.read(work)


@router.post("/api/channels", body=ChannelIn, response=ChannelOut, status=201)
async def create_channel(call: ApiCall, body: ChannelIn) -> ChannelOut:
    """Create a channel; the answer carries its tracking identifier (`guid`).

    `required_consent` (a consent code name) turns on the channel's consent gate.
    """

    def work(session: Session) -> ChannelOut:
        channel = service.create_channel(
            session, body.name, required_consent=body.required_consent, actor=call.actor
        )
        return channel_out(session, channel)

    return await call.hub.write(work)


@router.get("/api/channels/{name}", response=ChannelOut)
async def get_channel(call: ApiCall) -> ChannelOut:
    """One channel, by name."""
    return await call.hub.read(
        lambda session: channel_out(session, service.get_channel(session, call.path("name")))
    )


@router.patch("/api/channels/{name}", body=ChannelChange, response=ChannelOut)
async def change_channel(call: ApiCall, body: ChannelChange) -> ChannelOut:
    """Set the channel's consent gate: a consent code name, or null to stop requiring one."""

    def work(session: Session) -> ChannelOut:
        channel = service.set_consent_gate(
            session, call.path("name"), body.required_consent, actor=call.actor
        )
        return channel_out(session, channel)

    return await call.hub.write(work)


@router.get("/api/channels/{name}/keys", response=list[KeyOut])
async def list_channel_keys(call: ApiCall) -> list[KeyOut]:
    """List a channel's API keys (never the key itself)."""

    def work(session: Session) -> list[KeyOut]:
        name = service.get_channel(session, call.path("name")).name
        return [key_out(k, name) for k in service.list_api_keys(session, name)]

    return await call.hub.read(work)


@router.post("/api/channels/{name}/keys", body=KeyIn, response=NewKeyOut, status=201)
async def create_key(call: ApiCall, body: KeyIn) -> Response:
    """Create an API key for the channel; the answer is the only time `key` is shown.

    `access` is `tracking` (the tracking API) or `email` (the server-to-server email
    endpoints). `expires_at` needs a time zone.
    """

    def work(session: Session) -> NewKeyOut:
        name = call.path("name")
        new = service.create_api_key(
            session,
            name,
            body.access,
            name=body.name,
            expires_at=body.expires_at,
            actor=call.actor,
        )
        out = key_out(new.record, name)
        return NewKeyOut(**msgspec.structs.asdict(out), key=new.plaintext)

    # The only answer that ever holds the key: no cache may keep it.
    return json_response(await call.hub.write(work), 201, {"Cache-Control": "no-store"})


@router.get(
    "/api/keys",
    response=list[KeyOut],
    query=(QueryParam("channel", "Only this channel's keys (its name)."),),
)
async def list_keys(call: ApiCall) -> list[KeyOut]:
    """List every API key (never the key itself), optionally of one channel."""
    channel = call.query("channel") or None

    def work(session: Session) -> list[KeyOut]:
        names = {c.id: c.name for c in service.list_channels(session)}
        return [key_out(k, names[k.channel_id]) for k in service.list_api_keys(session, channel)]

    return await call.hub.read(work)


async def _change_key(call: ApiCall, verb: str) -> KeyOut:
    key_id = _key_id(call)

    def work(session: Session) -> KeyOut:
        if verb == "revoke":
            key = service.revoke_api_key(session, key_id, actor=call.actor)
        else:
            key = service.set_api_key_enabled(session, key_id, verb == "enable", actor=call.actor)
        return key_out(key, service.get_channel_by_id(session, key.channel_id).name)

    return await call.hub.write(work)


@router.post("/api/keys/{key_id}/disable", response=KeyOut)
async def disable_key(call: ApiCall) -> KeyOut:
    """Disable a key until it is enabled again (requests with it get 401 `api_key_disabled`)."""
    return await _change_key(call, "disable")


@router.post("/api/keys/{key_id}/enable", response=KeyOut)
async def enable_key(call: ApiCall) -> KeyOut:
    """Enable a disabled key (a revoked key stays revoked)."""
    return await _change_key(call, "enable")


@router.post("/api/keys/{key_id}/revoke", response=KeyOut)
async def revoke_key(call: ApiCall) -> KeyOut:
    """Revoke a key for good (requests with it get 401 `api_key_revoked`)."""
    return await _change_key(call, "revoke")
