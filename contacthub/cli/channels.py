"""`contacthub channel …` and `contacthub apikey …`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer
from sqlalchemy.orm import Session

from contacthub.audit.service import CLI_ACTOR
from contacthub.channels import service
from contacthub.cli.output import JsonOption, emit, unit_of_work
from contacthub.storage.models import ApiKey, Channel

channel_app = typer.Typer(help="Channels: the applications that send tracking data.")
apikey_app = typer.Typer(help="API keys of channels (shown once, stored hashed).")


def channel_record(channel: Channel, consent_code: str | None = None) -> dict[str, Any]:
    return {
        "name": channel.name,
        "guid": channel.guid,
        "required_consent": consent_code,
        "created_at": channel.created_at,
    }


@channel_app.command("create")
def channel_create(
    name: str,
    require_consent: str | None = typer.Option(
        None, help="Refuse activities of contacts who have not agreed to this consent."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Create a channel; prints its tracking identifier (GUID) for the `channel` field."""
    with unit_of_work() as session:
        channel = service.create_channel(
            session, name, required_consent=require_consent, actor=CLI_ACTOR
        )
        record = channel_record(channel, require_consent)
    emit(record, as_json, "Channel")


@channel_app.command("list")
def channel_list(as_json: bool = JsonOption) -> None:
    """List the channels."""
    with unit_of_work(write=False) as session:
        rows = [
            channel_record(c, service.consent_gate_of(session, c))
            for c in service.list_channels(session)
        ]
    emit(rows, as_json, "Channels")


@channel_app.command("set-consent-gate")
def channel_set_consent_gate(
    name: str,
    consent: str | None = typer.Argument(None, help="Consent code name; omit to remove."),
    as_json: bool = JsonOption,
) -> None:
    """Require a consent for a channel's activities, or (without CONSENT) stop requiring one."""
    with unit_of_work() as session:
        channel = service.set_consent_gate(session, name, consent, actor=CLI_ACTOR)
        record = channel_record(channel, consent)
    emit(record, as_json, "Channel")


def key_record(key: ApiKey, channel_name: str) -> dict[str, Any]:
    return {
        "id": key.id,
        "channel": channel_name,
        "name": key.name,
        "access": key.access,
        "prefix": key.prefix,
        "status": service.api_key_status(key),
        "expires_at": key.expires_at,
        "created_at": key.created_at,
    }


@apikey_app.command("create")
def apikey_create(
    channel: str = typer.Option(..., help="Name of the channel the key belongs to."),
    access: str = typer.Option(..., help="Access type: tracking or email."),
    name: str = typer.Option("", help="A label to tell keys apart."),
    expires: str | None = typer.Option(None, help="Expiry, ISO date or time (UTC if no zone)."),
    as_json: bool = JsonOption,
) -> None:
    """Create an API key. The key is printed once and never stored in clear."""
    with unit_of_work() as session:
        new = service.create_api_key(
            session,
            channel,
            access,
            name=name,
            expires_at=service.parse_expiry(expires),
            actor=CLI_ACTOR,
        )
        record = key_record(new.record, channel)
    if as_json:
        emit({**record, "key": new.plaintext}, as_json)
        return
    emit(record, as_json, "API key")
    # On a line of its own, never folded by the table, so that it can be copied whole.
    typer.echo(f"Copy the key now, it is not shown again:\n{new.plaintext}")


@apikey_app.command("list")
def apikey_list(
    channel: str | None = typer.Option(None, help="Only this channel's keys."),
    as_json: bool = JsonOption,
) -> None:
    """List API keys (never the keys themselves)."""
    with unit_of_work(write=False) as session:
        names = {c.id: c.name for c in service.list_channels(session)}
        keys = service.list_api_keys(session, channel)
        rows = [key_record(k, names[k.channel_id]) for k in keys]
    emit(rows, as_json, "API keys")


def _key_command(key_id: int, as_json: bool, change: Callable[[Session, int], ApiKey]) -> None:
    with unit_of_work() as session:
        key = change(session, key_id)
        record = key_record(key, session.get_one(Channel, key.channel_id).name)
    emit(record, as_json, "API key")


@apikey_app.command("revoke")
def apikey_revoke(key_id: int, as_json: bool = JsonOption) -> None:
    """Revoke a key for good."""
    _key_command(key_id, as_json, lambda s, k: service.revoke_api_key(s, k, actor=CLI_ACTOR))


@apikey_app.command("disable")
def apikey_disable(key_id: int, as_json: bool = JsonOption) -> None:
    """Disable a key until it is enabled again."""
    _key_command(
        key_id, as_json, lambda s, k: service.set_api_key_enabled(s, k, False, actor=CLI_ACTOR)
    )


@apikey_app.command("enable")
def apikey_enable(key_id: int, as_json: bool = JsonOption) -> None:
    """Enable a disabled key."""
    _key_command(
        key_id, as_json, lambda s, k: service.set_api_key_enabled(s, k, True, actor=CLI_ACTOR)
    )
