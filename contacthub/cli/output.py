"""How every command talks: units of work, tables or JSON, and errors as exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any
from uuid import UUID

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from contacthub.errors import HubError
from contacthub.settings import Settings
from contacthub.storage.database import Database

console = Console()
errors = Console(stderr=True)

JsonOption = typer.Option(False, "--json", help="Print the result as JSON, for scripts.")


def load_settings() -> Settings:
    """Settings from the environment and the configuration file; exits 1 if they are invalid."""
    try:
        return Settings()
    except ValidationError as error:
        errors.print(f"[red]error:[/red] invalid configuration: {escape(str(error))}")
        raise typer.Exit(1) from None


@contextmanager
def database_errors(database_url: str) -> Iterator[None]:
    """Turn "cannot connect" and "no such table" into a message and exit 1, not a traceback."""
    try:
        yield
    except (OperationalError, ProgrammingError) as error:
        where = make_url(database_url).render_as_string(hide_password=True)
        errors.print(
            f"[red]error:[/red] the database {escape(where)} failed: "
            f"{escape(str(error.orig or error).strip())}\n"
            "Check CONTACTHUB_DATABASE_URL, and run `contacthub migrate` on a new database."
        )
        raise typer.Exit(1) from None


@contextmanager
def unit_of_work(*, write: bool = True) -> Iterator[Session]:
    """A session on the configured store; commits at the end of a write, exits 1 on a HubError.

    Commands print their result after the block, that is after the commit: nothing is shown
    (an API key least of all) that a failed commit would then take back.
    """
    settings = load_settings()
    database = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        with (
            database_errors(settings.database_url),
            database.write() if write else database.read() as session,
        ):
            yield session
    except HubError as error:
        fail(error)
    finally:
        database.dispose()


def fail(error: HubError) -> None:
    """Print a domain error and exit with status 1."""
    errors.print(f"[red]error:[/red] {escape(error.message)} [dim]({error.code})[/dim]")
    raise typer.Exit(1)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def _cell(value: Any) -> Text:
    # Text, not a markup string: a name like "[bold]" must print as typed, not style the table.
    if value is None:
        return Text("")
    if isinstance(value, list | tuple):
        return Text(", ".join(str(_plain(item)) for item in value))
    return Text(str(_plain(value)))


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
            grid.add_row(name.replace("_", " "), _cell(value))
        console.print(grid)
        return
    if not rows:
        console.print(f"[dim]No {title.lower() or 'records'}.[/dim]")
        return
    table = Table(title=title or None)
    for column in rows[0]:
        table.add_column(column.replace("_", " "), overflow="fold")
    for record in rows:
        table.add_row(*(_cell(v) for v in record.values()))
    console.print(table)
