"""`contacthub webhooks …`: webhook endpoints, their deliveries, retry and replay."""

from __future__ import annotations

from typing import Any

import typer

from contacthub.audit.service import CLI_ACTOR
from contacthub.cli.output import JsonOption, emit, unit_of_work
from contacthub.events import endpoints as service
from contacthub.events.outbox import ALL_EVENTS

webhooks_app = typer.Typer(
    help="Webhook endpoints: URLs the hub posts events to (docs/webhooks.md)."
)

EventsOption = typer.Option(
    None, "--event", help=f"An event type, or {ALL_EVENTS!r} for every one (repeat for several)."
)
TypesOption = typer.Option(
    None,
    "--activity-type",
    help="Only activity.stored events of this activity type (repeat for several).",
)
ChannelsOption = typer.Option(
    None,
    "--channel",
    help="Only activity.stored events of this channel's activities (repeat for several).",
)


def webhook_record(shown: service.EndpointView) -> dict[str, Any]:
    h = shown.health
    return {
        "guid": shown.guid,
        "name": shown.name,
        "url": shown.url,
        "events": shown.events,
        "activity_types": shown.activity_types,
        "channels": shown.channels,
        "enabled": shown.enabled,
        "last_success_at": h.last_success_at,
        "last_failure_at": h.last_failure_at,
        "last_error": h.last_error,
        "failures": h.failures,
        "backlog": h.backlog,
        "created_at": shown.created_at,
    }


def _short(record: dict[str, Any]) -> dict[str, Any]:
    """The columns a list has room for."""
    columns = ("guid", "name", "url", "events", "enabled", "last_success_at", "failures", "backlog")
    return {k: record[k] for k in columns}


# The columns a table of deliveries has room for.
DELIVERY_COLUMNS = (
    "id",
    "event_type",
    "state",
    "attempts",
    "last_attempt_at",
    "last_status",
    "last_error",
)


def delivery_record(d: service.DeliveryView) -> dict[str, Any]:
    return {
        "id": d.id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "state": d.state,
        "attempts": d.attempts,
        "next_attempt_at": d.next_attempt_at,
        "last_attempt_at": d.last_attempt_at,
        "last_status": d.last_status,
        "last_error": d.last_error,
        "delivered_at": d.delivered_at,
    }


def _with_secret(new: service.NewSecret, as_json: bool) -> None:
    record = webhook_record(new.endpoint)
    if as_json:
        emit({**record, "secret": new.secret}, as_json)
        return
    emit(record, as_json, "Webhook")
    # On a line of its own, never folded by the table, so that it can be copied whole.
    typer.echo(f"Copy the signing secret now, it is not shown again:\n{new.secret}")


@webhooks_app.command("list")
def webhooks_list(as_json: bool = JsonOption) -> None:
    """List the webhook endpoints with their health (last success, failures, backlog)."""
    with unit_of_work(write=False) as session:
        rows = [webhook_record(v) for v in service.overviews(session)]
    emit(rows if as_json else [_short(r) for r in rows], as_json, "Webhooks")


@webhooks_app.command("add")
def webhooks_add(
    name: str,
    url: str,
    event: list[str] | None = EventsOption,
    activity_type: list[str] | None = TypesOption,
    channel: list[str] | None = ChannelsOption,
    disabled: bool = typer.Option(False, "--disabled", help="Create it disabled."),
    as_json: bool = JsonOption,
) -> None:
    """Create an endpoint (every event unless --event is given); prints its secret once."""
    with unit_of_work() as session:
        new = service.create_endpoint(
            session,
            name,
            url,
            events=event or [ALL_EVENTS],
            activity_types=activity_type or None,
            channels=channel or None,
            enabled=not disabled,
            actor=CLI_ACTOR,
        )
    _with_secret(new, as_json)


@webhooks_app.command("update")
def webhooks_update(
    guid: str,
    name: str | None = typer.Option(None, help="A new name."),
    url: str | None = typer.Option(None, help="A new URL."),
    event: list[str] | None = EventsOption,
    activity_type: list[str] | None = TypesOption,
    any_activity_type: bool = typer.Option(
        False, "--any-activity-type", help="Remove the activity type filter."
    ),
    channel: list[str] | None = ChannelsOption,
    any_channel: bool = typer.Option(False, "--any-channel", help="Remove the channel filter."),
    as_json: bool = JsonOption,
) -> None:
    """Change an endpoint: only what is given (--event, --activity-type and --channel replace
    the whole list)."""
    with unit_of_work() as session:
        endpoint = service.update_endpoint(
            session,
            guid,
            name=service.KEEP if name is None else name,
            url=service.KEEP if url is None else url,
            events=event or service.KEEP,
            activity_types=None if any_activity_type else (activity_type or service.KEEP),
            channels=None if any_channel else (channel or service.KEEP),
            actor=CLI_ACTOR,
        )
        record = webhook_record(service.view(session, endpoint))
    emit(record, as_json, "Webhook")


def _enable(guid: str, enabled: bool, as_json: bool) -> None:
    with unit_of_work() as session:
        endpoint = service.set_enabled(session, guid, enabled, actor=CLI_ACTOR)
        record = webhook_record(service.view(session, endpoint))
    emit(record, as_json, "Webhook")


@webhooks_app.command("enable")
def webhooks_enable(guid: str, as_json: bool = JsonOption) -> None:
    """Enable an endpoint: it gets new events again."""
    _enable(guid, True, as_json)


@webhooks_app.command("disable")
def webhooks_disable(guid: str, as_json: bool = JsonOption) -> None:
    """Disable an endpoint: it gets no new events until enabled."""
    _enable(guid, False, as_json)


@webhooks_app.command("remove")
def webhooks_remove(guid: str, as_json: bool = JsonOption) -> None:
    """Delete an endpoint and its deliveries."""
    with unit_of_work() as session:
        record = webhook_record(service.delete_endpoint(session, guid, actor=CLI_ACTOR))
    emit(record, as_json, "Deleted webhook")


@webhooks_app.command("rotate-secret")
def webhooks_rotate_secret(guid: str, as_json: bool = JsonOption) -> None:
    """Give an endpoint a new secret (printed once); the old one stops signing at once."""
    with unit_of_work() as session:
        new = service.rotate_secret(session, guid, actor=CLI_ACTOR)
    _with_secret(new, as_json)


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    guid: str,
    limit: int = typer.Option(
        50, min=1, max=service.MAX_DELIVERIES, help="How many of the latest."
    ),
    as_json: bool = JsonOption,
) -> None:
    """An endpoint's latest deliveries, newest first: state, attempts, last status or error."""
    with unit_of_work(write=False) as session:
        rows = [delivery_record(d) for d in service.recent_deliveries(session, guid, limit)]
    if not as_json:
        rows = [{k: r[k] for k in DELIVERY_COLUMNS} for r in rows]
    emit(rows, as_json, "Deliveries")


@webhooks_app.command("retry")
def webhooks_retry(delivery_id: int, as_json: bool = JsonOption) -> None:
    """Send a dead delivery again, with a full set of tries."""

    with unit_of_work() as session:
        record = delivery_record(service.retry_delivery(session, delivery_id, actor=CLI_ACTOR))
    emit(record, as_json, "Delivery")


@webhooks_app.command("replay")
def webhooks_replay(
    guid: str,
    since: str = typer.Option(
        ..., help="Send again every event since this time: ISO date or time (UTC if no zone)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Send an endpoint every event since a time again, with the same event ids."""
    with unit_of_work() as session:
        moment = service.parse_since(since)
        count = service.replay(session, guid, moment, actor=CLI_ACTOR)
    emit({"events": count, "since": moment}, as_json, "Replay")
