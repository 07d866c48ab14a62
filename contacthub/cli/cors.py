"""`contacthub cors …`: the browser origins allowed to call the tracking API."""

from __future__ import annotations

from typing import Any

import typer

from contacthub.audit.service import CLI_ACTOR
from contacthub.channels import cors
from contacthub.cli.output import JsonOption, emit, unit_of_work
from contacthub.identifiers import whole_number
from contacthub.storage.models import CorsOrigin

cors_app = typer.Typer(
    help="CORS origins allowed to call the tracking API (besides cors_allowed_origins)."
)


def origin_record(row: CorsOrigin) -> dict[str, Any]:
    return {"id": row.id, "origin": row.origin, "created_at": row.created_at}


@cors_app.command("add")
def cors_add(
    origin: str = typer.Argument(..., help="e.g. https://www.example.com, or * for any origin."),
    as_json: bool = JsonOption,
) -> None:
    """Allow an origin; running hubs take it into account within 5 seconds."""
    with unit_of_work() as session:
        record = origin_record(cors.add_origin(session, origin, actor=CLI_ACTOR))
    emit(record, as_json, "CORS origin")


@cors_app.command("list")
def cors_list(as_json: bool = JsonOption) -> None:
    """List the origins allowed in the store (not those of the cors_allowed_origins setting)."""
    with unit_of_work(write=False) as session:
        rows = [origin_record(o) for o in cors.list_origins(session)]
    emit(rows, as_json, "CORS origins")


@cors_app.command("remove")
def cors_remove(
    origin: str = typer.Argument(..., help="The origin, or its id as `cors list` shows it."),
    as_json: bool = JsonOption,
) -> None:
    """Stop allowing an origin."""
    with unit_of_work() as session:
        origin_id = whole_number(origin)
        if origin_id is None:
            origin_id = cors.find_origin(session, origin).id
        record = origin_record(cors.remove_origin(session, origin_id, actor=CLI_ACTOR))
    emit(record, as_json, "Removed CORS origin")
