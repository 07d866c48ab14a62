"""`contacthub demo`: a new hub filled with realistic sample data (see contacthub/demo)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from contacthub.cli.output import console, database_errors, fail, load_settings
from contacthub.demo import service
from contacthub.errors import HubError, InvalidInput
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.migrate import upgrade


class _Bars:
    """The build's progress as Rich progress bars, one per step."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def start(self, step: str, total: int) -> None:
        self.tasks[step] = self.progress.add_task(step, total=max(total, 1))

    def advance(self, step: str, amount: int) -> None:
        self.progress.advance(self.tasks[step], amount)


def _until(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(
            f"{text!r} is not an ISO time, e.g. 2026-06-30T18:00:00Z.",
            code="invalid_until",
            field="until",
        ) from None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def sign_in_url(settings: Settings) -> str:
    """Where the admin's sign-in page is served by `contacthub serve` with these settings."""
    return f"{settings.site_url}/admin/sign-in"


def demo(
    contacts: int = typer.Option(100_000, min=1, help="Contacts to create."),
    activities: int = typer.Option(
        1_000_000, min=0, help="Activities to log, email opens and clicks included."
    ),
    days: int = typer.Option(56, min=1, max=service.MAX_DAYS, help="Days of history."),
    seed: int = typer.Option(1, help="Random seed: the same seed gives the same data."),
    until: str | None = typer.Option(
        None,
        help="End of the period, an ISO time (UTC if no zone); default: now. With the same "
        "--seed and --until, every run makes the same data.",
    ),
    admin_email: str = typer.Option(
        service.DEFAULT_ADMIN_EMAIL, help="Address of the admin user made when there is none."
    ),
    admin_password: str | None = typer.Option(
        None, help="That user's password (at least 12 characters); default: generated, printed."
    ),
    if_empty: bool = typer.Option(
        False,
        "--if-empty",
        help="If the hub has data already, add nothing and succeed (for start-up scripts).",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print what was made as JSON (progress goes to stderr)."
    ),
) -> None:
    """Fill a new, empty hub with realistic sample data: channels, keys, consents, contacts,
    activities, a newsletter with sent issues; migrates the database first."""
    settings = load_settings()
    try:
        options = service.DemoOptions(
            contacts=contacts,
            activities=activities,
            days=days,
            seed=seed,
            until=_until(until),
            admin_email=admin_email,
            admin_password=admin_password,
        )
        service.check_size(options)
    except HubError as error:
        fail(error)
    with database_errors(settings.database_url):
        upgrade(settings.database_url)
    # NORMAL: in WAL mode commits need no fsync. A demo cut short by a power loss is made
    # again on a new database anyway (the hub is half-filled either way).
    database = Database(settings.database_url, sqlite_synchronous="NORMAL")
    try:
        with database_errors(settings.database_url):
            if if_empty:
                with database.read() as session:
                    found = service.existing_data(session)
                if found:
                    message = f"The hub has data already ({', '.join(found)}): no demo data added."
                    Console(stderr=as_json).print(message)
                    return
            report = _build(database, options, as_json)
    except HubError as error:
        fail(error)
    finally:
        database.dispose()
    if as_json:
        typer.echo(json.dumps(_as_json(report, settings), indent=2))
    else:
        _print(report, settings)


def _build(database: Database, options: service.DemoOptions, quiet: bool) -> service.DemoReport:
    bars = Progress(
        TextColumn("{task.description:<20}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=quiet),
    )
    with bars:
        return service.build(database, options, _Bars(bars))


def _as_json(report: service.DemoReport, settings: Settings) -> dict[str, Any]:
    return {
        "sign_in_url": sign_in_url(settings),
        "admin_email": report.admin_email,
        "admin_password": report.admin_password,
        "existing_users": report.existing_users,
        "until": report.until.isoformat() if report.until else None,
        "counts": report.counts,
        "seconds": {step: round(s, 3) for step, s in report.seconds.items()},
        "cpu_seconds": {step: round(s, 3) for step, s in report.cpu_seconds.items()},
        "keys": [
            {
                "channel": key.channel,
                "channel_guid": str(key.channel_guid),
                "name": key.name,
                "access": key.access,
                "status": key.status,
                "key": key.plaintext,
            }
            for key in report.keys
        ],
    }


def _print(report: service.DemoReport, settings: Settings) -> None:
    made = Table(title="Demo data", show_header=False)
    made.add_column(style="bold")
    made.add_column(justify="right")
    for name, count in report.counts.items():
        made.add_row(name, f"{count:,}")
    made.add_row(
        "time",
        f"{sum(report.seconds.values()):.1f} s ({sum(report.cpu_seconds.values()):.1f} s CPU)",
    )
    console.print(made)

    # Lines, not a table: a key folded over several lines is hard to copy.
    console.print("\n[bold]Channels[/bold] (tracking identifier) and their active API keys:")
    shown: set[str] = set()
    for key in report.keys:
        if key.channel not in shown:
            shown.add(key.channel)
            console.print(f"  {escape(key.channel)}  {key.channel_guid}", soft_wrap=True)
        if key.status == "active":
            console.print(
                f"    {escape(key.name)} ({key.access}): {escape(key.plaintext)}", soft_wrap=True
            )
    console.print("[dim]Keys are shown once; only their hashes are stored.[/dim]")
    console.print(f"\nSign in at [bold]{escape(sign_in_url(settings))}[/bold]")
    if report.admin_email and report.admin_password:
        console.print(f"  email     [bold]{escape(report.admin_email)}[/bold]")
        console.print(f"  password  [bold]{escape(report.admin_password)}[/bold] (shown once)")
    elif report.admin_email:
        console.print(f"  as [bold]{escape(report.admin_email)}[/bold] with the password you gave.")
    else:
        console.print(
            f"  with your own account: {report.existing_users} admin user(s) existed already, "
            "so none was made."
        )
    console.print("Start the hub with [bold]contacthub serve[/bold] if it is not running.")
