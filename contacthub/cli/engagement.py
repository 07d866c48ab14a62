"""`contacthub issue engagement GUID`: an issue's opens and clicks over time, and who opened or
clicked (a page at a time, or everyone as CSV). Registered on `issue` by cli/main.py."""

from __future__ import annotations

import json
import sys

import typer
from typer._click.exceptions import UsageError

from contacthub.audit.service import CLI_ACTOR
from contacthub.cli.email import _database
from contacthub.cli.output import JsonOption, console, emit, unit_of_work
from contacthub.email import engagement


def issue_engagement(
    issue: str = typer.Argument(..., help="GUID of the issue."),
    people: bool = typer.Option(
        False, "--people", help="Who opened or clicked, a page at a time (by subscriber)."
    ),
    as_csv: bool = typer.Option(
        False,
        "--csv",
        help="Everyone who opened or clicked as CSV on standard output (recorded in the audit "
        "log).",
    ),
    include_machines: bool = typer.Option(
        False,
        "--include-machines",
        help="Count machine hits too (mail privacy proxies, link scanners).",
    ),
    after: int | None = typer.Option(
        None, min=1, help="With --people: the cursor printed after the previous page."
    ),
    limit: int = typer.Option(
        engagement.PEOPLE_PAGE,
        min=1,
        max=engagement.MAX_PEOPLE_PAGE,
        help="With --people: people per page.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """An issue's opens and clicks over time (hourly for 48 hours, then daily), or with
    --people who opened or clicked; human hits only unless --include-machines."""
    guid = issue.strip()
    if as_csv:
        if as_json:
            raise UsageError("--csv and --json are two outputs: give one of them.")
        _stream_csv(guid, include_machines)
        return
    if people:
        _people(guid, include_machines, after, limit, as_json)
        return
    with unit_of_work(write=False) as session:
        line = engagement.timeline(session, guid, include_machines=include_machines)
    if as_json:
        typer.echo(json.dumps(line.as_dict(), indent=2, ensure_ascii=False))
        return
    kind = "human and machine" if include_machines else "human"
    if line.started_at is None:
        console.print("Not sent yet: no opens or clicks.")
        return
    rows = [
        {
            "from": f"{bucket.start:%Y-%m-%d %H:%M}",
            "span": engagement.bucket_label(line, bucket)
            + (" (1 h)" if bucket.hourly else " (1 d)" if bucket.end else " (and later)"),
            "opens": bucket.opens,
            "clicks": bucket.clicks,
        }
        for bucket in line.buckets
        if bucket.opens or bucket.clicks
    ]
    emit(rows, False, f"Opens and clicks ({kind}), UTC")
    console.print(
        f"{line.opens} opens and {line.clicks} clicks since {line.started_at:%Y-%m-%d %H:%M} UTC "
        "(periods without any are not shown)."
    )


def _people(
    guid: str, include_machines: bool, after: int | None, limit: int, as_json: bool
) -> None:
    with unit_of_work(write=False) as session:
        page = engagement.people_page(
            session, guid, after=after, limit=limit, include_machines=include_machines
        )
    if as_json:
        data = {
            "people": [person.as_dict() for person in page.people],
            "total": page.total,
            "next_after": page.next_after,
        }
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    rows = [
        {
            "email": person.email,
            "name": " ".join(filter(None, (person.first_name, person.last_name))),
            "first open": f"{person.first_opened_at:%Y-%m-%d %H:%M}",
            "opens": person.opens,
            "clicks": person.clicks,
        }
        for person in page.people
    ]
    emit(rows, False, "People")
    console.print(f"{len(rows)} shown of {page.total}.")
    if page.next_after is not None:
        console.print(f"Next page: --after {page.next_after}")


def _stream_csv(guid: str, include_machines: bool) -> None:
    """Everyone as CSV: the export is recorded (and committed) first, then read in one
    read-only unit of work, a chunk at a time, and written as it comes."""
    with _database() as (_, database):
        with database.write() as session:
            export = engagement.start_export(
                session, guid, include_machines=include_machines, actor=CLI_ACTOR
            )
        with database.read() as session:
            for chunk in engagement.export_lines(session, export):
                sys.stdout.write(chunk)
        sys.stdout.flush()
