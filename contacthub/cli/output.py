"""How every command talks: units of work, tables or JSON, and errors as exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any
from uuid import UUID

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from contacthub.errors import HubError
from contacthub.settings import Settings
from contacthub.storage.database import Database

console = Console()
errors = Console(stderr=True)

JsonOption = typer.Option(False, "--json", help="Print the result as JSON, for scripts.")


def load_settings() -> Settings:
    """Settings from the environment and the configuration file."""
    return Settings()


@contextmanager
def unit_of_work(*, write: bool = True) -> Iterator[Session]:
    """A session on the configured store; commits at the end of a write, exits 1 on a HubError."""
    settings = load_settings()
    database = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        with database.write() if write else database.read() as session:
            yield session
    except HubError as error:
        fail(error)
    finally:
        database.dispose()


def fail(error: HubError) -> None:
    """Print a domain error and exit with status 1."""
    errors.print(f"[red]error:[/red] {error.message} [dim]({error.code})[/dim]")
    raise typer.Exit(1)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def emit(
    rows: Mapping[str, Any] | Sequence[Mapping[str, Any]], as_json: bool, title: str = ""
) -> None:
    """Print one record or a list of records as JSON or as a table."""
    if as_json:
        data: Any = (
            {k: _plain(v) for k, v in rows.items()}
            if isinstance(rows, Mapping)
            else [{k: _plain(v) for k, v in row.items()} for row in rows]
        )
        typer.echo(json.dumps(data, indent=2))
        return
    if isinstance(rows, Mapping):
        # One record reads best as a list of fields, and nothing in it (a key!) may be cut.
        grid = Table(title=title or None, show_header=False)
        grid.add_column(style="bold")
        grid.add_column(overflow="fold")
        for name, value in rows.items():
            grid.add_row(name.replace("_", " "), "" if value is None else str(_plain(value)))
        console.print(grid)
        return
    if not rows:
        console.print(f"[dim]No {title.lower() or 'records'}.[/dim]")
        return
    table = Table(title=title or None)
    for column in rows[0]:
        table.add_column(column.replace("_", " "), overflow="fold")
    for record in rows:
        table.add_row(*("" if v is None else str(_plain(v)) for v in record.values()))
    console.print(table)
