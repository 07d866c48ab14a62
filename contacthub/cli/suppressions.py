"""`contacthub suppression …`: the suppression list, and the feedback that was refused."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import typer
from typer._click.exceptions import UsageError

from contacthub.activities.log import parse_cursor as parse_big_cursor
from contacthub.audit.service import CLI_ACTOR
from contacthub.cli.output import JsonOption, console, emit, unit_of_work
from contacthub.identifiers import parse_cursor
from contacthub.storage.models import FeedbackRejection
from contacthub.suppressions import output, rejections
from contacthub.suppressions import service as suppressions

suppression_app = typer.Typer(
    help="The suppression list: addresses nothing is sent to (docs/email.md)."
)


def _print_json(data: dict[str, Any]) -> None:
    """Nested records as JSON: times in ISO 8601, GUIDs as text."""

    def plain(value: object) -> str:
        return value.isoformat() if isinstance(value, datetime) else str(value)

    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=plain))


def suppression_record(row: suppressions.SuppressionRow) -> dict[str, Any]:
    s = row.suppression
    return {
        "email": s.email,
        "reason": s.reason,
        "source": s.source,
        "evidence": s.evidence,
        "delivery_id": s.delivery_id,
        "issue": row.issue_guid,
        "issue_subject": row.issue_subject,
        "created_by": s.created_by,
        "created_at": s.created_at,
    }


def _short(record: dict[str, Any]) -> dict[str, Any]:
    """The columns a table has room for."""
    return {
        "email": record["email"],
        "reason": record["reason"],
        "source": record["source"],
        "evidence": record["evidence"],
        "issue": record["issue"],
        "created_at": record["created_at"],
        "created_by": record["created_by"],
    }


@suppression_app.command("list")
def suppression_list(
    search: str = typer.Option("", "--search", help="A part of the address."),
    reason: str = typer.Option(
        "", "--reason", help=f"Only this reason: {', '.join(suppressions.REASONS)}."
    ),
    before: str = typer.Option("", "--before", help="The cursor printed after the previous page."),
    limit: int = typer.Option(
        suppressions.PAGE_SIZE, help=f"Suppressions per page, 1 to {suppressions.MAX_PAGE}."
    ),
    as_csv: bool = typer.Option(
        False,
        "--csv",
        help="Every matching suppression as CSV on standard output (recorded in the audit log).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """List the suppressed addresses, newest first, a page at a time (or all of them as CSV)."""
    if as_csv:
        if as_json:
            raise UsageError("--csv and --json are two outputs: give one of them.")
        _print_csv(search, reason)
        return
    limit = min(max(limit, 1), suppressions.MAX_PAGE)
    with unit_of_work(write=False) as session:
        cursor = parse_cursor(before, "before", code="invalid_parameter")
        page = suppressions.list_suppressions(
            session, search=search, reason=reason, before=cursor, limit=limit
        )
        total = suppressions.count_suppressions(session, search=search, reason=reason)
        counts = suppressions.counts_by_reason(session)
        rows = [suppression_record(row) for row in page.rows]
    if as_json:
        _print_json(
            {
                "suppressions": rows,
                "total": total,
                "counts": counts,
                "next_before": page.next_before,
            }
        )
        return
    emit([_short(row) for row in rows], False, "Suppressions")
    shown = ", ".join(f"{name} {count}" for name, count in counts.items())
    console.print(f"{total} matching; suppressed by reason: {shown}.")
    if page.next_before is not None:
        console.print(f"More: --before {page.next_before}")


def _print_csv(search: str, reason: str) -> None:
    """The CSV, recorded first, then written a chunk of rows at a time as they are read."""
    with unit_of_work() as session:
        output.start_export(session, search=search, reason=reason, actor=CLI_ACTOR)
    typer.echo(output.csv_header(), nl=False)
    before: int | None = None
    while True:
        with unit_of_work(write=False) as session:
            page = suppressions.list_suppressions(
                session, search=search, reason=reason, before=before, limit=output.CHUNK
            )
            lines = "".join(output.csv_row(row) for row in page.rows)
        typer.echo(lines, nl=False)
        if page.next_before is None:
            return
        before = page.next_before


@suppression_app.command("show")
def suppression_show(email: str, as_json: bool = JsonOption) -> None:
    """Show the suppression of one address (exit 1 when it is not suppressed)."""
    with unit_of_work(write=False) as session:
        record = suppression_record(suppressions.get_suppression(session, email))
    emit(record, as_json, "Suppression")


@suppression_app.command("add")
def suppression_add(
    email: str,
    evidence: str = typer.Option("", "--evidence", help="Why: a note kept with the suppression."),
    as_json: bool = JsonOption,
) -> None:
    """Suppress an address by hand (reason `manual`): nothing is sent to it any more.

    An address already suppressed keeps its first suppression (exit 1, already_suppressed).
    """
    with unit_of_work() as session:
        row = suppressions.add_manual(
            session, email, evidence=evidence, source="cli", actor=CLI_ACTOR
        )
        record = suppression_record(suppressions.get_suppression(session, row.email))
    emit(record, as_json, "Suppressed")


@suppression_app.command("remove")
def suppression_remove(email: str, as_json: bool = JsonOption) -> None:
    """Lift the suppression of an address: it may be sent to again."""
    with unit_of_work() as session:
        record = suppression_record(suppressions.get_suppression(session, email))
        suppressions.lift(session, email, actor=CLI_ACTOR)
    emit(record, as_json, "Lifted")


def rejection_record(rejection: FeedbackRejection) -> dict[str, Any]:
    return {
        "id": rejection.id,
        "source": rejection.source,
        "reason": rejection.reason,
        "detail": rejection.detail,
        "created_at": rejection.created_at,
    }


@suppression_app.command("rejections")
def suppression_rejections(
    source: str = typer.Option("", "--source", help="Only this source (e.g. ses, imap)."),
    before: str = typer.Option("", "--before", help="The cursor printed after the previous page."),
    limit: int = typer.Option(
        rejections.PAGE_SIZE, help=f"Rejections listed, 1 to {rejections.MAX_PAGE}."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Bounce reports and webhook calls that were refused: counts and the latest ones."""
    limit = min(max(limit, 1), rejections.MAX_PAGE)
    with unit_of_work(write=False) as session:
        counts = [
            {
                "source": c.source,
                "reason": c.reason,
                "last_24_hours": c.last_day,
                "last_7_days": c.last_week,
                "total": c.total,
            }
            for c in rejections.rejection_counts(session)
        ]
        cursor = parse_big_cursor(before, "before")
        page = rejections.latest_rejections(session, source=source, before=cursor, limit=limit)
        latest = [rejection_record(r) for r in page.rejections]
    if as_json:
        _print_json({"counts": counts, "rejections": latest, "next_before": page.next_before})
        return
    emit(counts, False, "Rejections by source and reason")
    emit(latest, False, "Latest rejections")
    if page.next_before is not None:
        console.print(f"Older: --before {page.next_before}")
