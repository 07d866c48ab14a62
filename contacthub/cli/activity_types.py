"""`contacthub activity-type …`."""

from __future__ import annotations

from typing import Any

import typer

from contacthub.activities import service
from contacthub.audit.service import CLI_ACTOR
from contacthub.cli.output import JsonOption, emit, unit_of_work
from contacthub.storage.models import ActivityType

activity_type_app = typer.Typer(help="Custom activity types.")


def type_record(activity_type: ActivityType) -> dict[str, Any]:
    return {
        "code_name": activity_type.code_name,
        "display_name": activity_type.display_name,
        "enabled": activity_type.enabled,
    }


@activity_type_app.command("create")
def activity_type_create(
    code_name: str,
    display_name: str = typer.Option(..., help="Name shown in activity titles."),
    disabled: bool = typer.Option(False, "--disabled", help="Create it disabled."),
    as_json: bool = JsonOption,
) -> None:
    """Create a custom activity type (enabled unless --disabled)."""
    with unit_of_work() as session:
        activity_type = service.create_type(
            session, code_name, display_name=display_name, enabled=not disabled, actor=CLI_ACTOR
        )
        record = type_record(activity_type)
    emit(record, as_json, "Activity type")


@activity_type_app.command("enable")
def activity_type_enable(code_name: str, as_json: bool = JsonOption) -> None:
    """Accept activities of this type again."""
    with unit_of_work() as session:
        activity_type = service.set_enabled(session, code_name, True, actor=CLI_ACTOR)
        record = type_record(activity_type)
    emit(record, as_json, "Activity type")


@activity_type_app.command("disable")
def activity_type_disable(code_name: str, as_json: bool = JsonOption) -> None:
    """Refuse activities of this type until it is enabled again."""
    with unit_of_work() as session:
        activity_type = service.set_enabled(session, code_name, False, actor=CLI_ACTOR)
        record = type_record(activity_type)
    emit(record, as_json, "Activity type")


@activity_type_app.command("list")
def activity_type_list(as_json: bool = JsonOption) -> None:
    """List the custom activity types."""
    with unit_of_work(write=False) as session:
        rows = [type_record(t) for t in service.list_types(session)]
    emit(rows, as_json, "Activity types")
