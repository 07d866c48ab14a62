"""How every command talks: units of work, tables or JSON, and errors as exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any, NoReturn
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
from typer._click.exceptions import ClickException, UsageError

# Typer 0.29 vendors Click as typer._click and does not re-export these; the pin in
# pyproject.toml holds them still, and tests/cli/test_json_errors.py would catch a move.
from typer._click.globals import get_current_context
from typer.core import TyperGroup

from contacthub.errors import HubError
from contacthub.identifiers import refuse_nul
from contacthub.settings import Settings
from contacthub.storage.database import Database, sqlite_file
from contacthub.storage.migrate import schema_state

console = Console()
errors = Console(stderr=True)

JsonOption = typer.Option(False, "--json", help="Print the result as JSON, for scripts.")


def asks_for_json() -> bool:
    """Whether the running command was given --json (its parameter is always `as_json`)."""
    context = get_current_context(silent=True)
    return bool(context is not None and context.params.get("as_json"))


def report_error(message: str, *, code: str, field: str | None = None) -> NoReturn:
    """Print an error and exit with status 1.

    With --json, the error is one line of JSON on stderr, as the APIs answer it
    (`{"error": …, "code": …}`); stdout then holds nothing, so a pipe never takes an error for
    a result. Otherwise it is `error: <message> (<code>)`.
    """
    if asks_for_json():
        body = {"error": message, "code": code} | ({"field": field} if field else {})
        typer.echo(json.dumps(body, ensure_ascii=False), err=True)
    else:
        # One logical line, left to the terminal to wrap: a path or URL in it copies whole.
        errors.print(f"[red]error:[/red] {escape(message)} [dim]({code})[/dim]", soft_wrap=True)
    raise typer.Exit(1)


def fail(error: HubError) -> NoReturn:
    """Print a domain error and exit with status 1."""
    report_error(error.message, code=error.code, field=error.field)


class Commands(TyperGroup):
    """The `contacthub` command group: with --json, usage errors are JSON too.

    Click reports a usage error (a missing option, a value of the wrong type, an unknown
    command) before any command runs, so the arguments themselves tell whether JSON was asked
    for. The exit status stays Click's (2 for a usage error), as without --json.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        # A process's arguments cannot hold NUL, but an in-process caller's can: refused here
        # once, as every other entry point refuses them (PostgreSQL cannot store NUL).
        for argument in args:
            try:
                refuse_nul(argument, "A command-line argument")
            except HubError as error:
                fail(error)
        return super().parse_args(ctx, args)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        arguments = list(sys.argv[1:] if args is None else args)
        options = arguments[: arguments.index("--")] if "--" in arguments else arguments
        if not standalone_mode or "--json" not in options:
            return super().main(
                arguments, prog_name, complete_var, standalone_mode, windows_expand_args, **extra
            )
        try:
            status = super().main(
                arguments, prog_name, complete_var, False, windows_expand_args, **extra
            )
        except UsageError as error:
            typer.echo(
                json.dumps({"error": error.format_message(), "code": "usage_error"}), err=True
            )
            sys.exit(error.exit_code)
        except ClickException as error:  # Click's other errors, e.g. an unreadable file argument
            typer.echo(
                json.dumps({"error": error.format_message(), "code": "invalid_input"}), err=True
            )
            sys.exit(error.exit_code)
        except typer.Abort:
            typer.echo(json.dumps({"error": "Aborted.", "code": "aborted"}), err=True)
            sys.exit(1)
        # Without standalone mode Click returns the exit status of a command that raised Exit,
        # and the command's own return value (None) otherwise.
        sys.exit(status if isinstance(status, int) else 0)


def load_settings() -> Settings:
    """Settings from the environment and the configuration file; exits 1 if they are invalid."""
    try:
        return Settings()
    except ValidationError as error:
        report_error(f"invalid configuration: {error}", code="invalid_configuration")


def describe_store(database_url: str) -> str:
    """The store as a message names it: the file of a SQLite URL, any URL without password."""
    url = make_url(database_url).render_as_string(hide_password=True)
    file = sqlite_file(database_url)
    return url if file is None else f"{file} ({url})"


@contextmanager
def database_errors(database_url: str) -> Iterator[None]:
    """Turn "cannot connect" and "no such table" into a message and exit 1, not a traceback."""
    try:
        yield
    except (OperationalError, ProgrammingError) as error:
        report_error(
            f"the database {describe_store(database_url)} failed: "
            f"{str(error.orig or error).strip()}\n"
            "Check CONTACTHUB_DATABASE_URL, and run `contacthub migrate` on a new database.",
            code="database_error",
        )


def open_database(settings: Settings) -> Database:
    """The configured store, once it is known to exist and to be migrated.

    Otherwise exit 1 with one message naming the store and what to do: a command that reads or
    changes data must not leave an empty SQLite file behind (SQLite creates a missing file on
    connect), nor fail later with "no such table". Only `migrate`, `serve` and `demo` create
    and migrate a database.
    """
    where = describe_store(settings.database_url)
    file = sqlite_file(settings.database_url)
    if file is not None and not file.exists():
        report_error(
            f"There is no database at {where}: run `contacthub migrate` to create one there, "
            "or set CONTACTHUB_DATABASE_URL to the hub's database (or run from the directory "
            "that holds it).",
            code="database_missing",
        )
    database = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        with database_errors(settings.database_url), database.read() as session:
            state = schema_state(session.connection())
    except BaseException:
        database.dispose()
        raise
    if state.up_to_date:
        return database
    database.dispose()
    if state.current is None:
        report_error(
            f"The database {where} is not migrated: it has no contacthub tables. Run "
            "`contacthub migrate`, or set CONTACTHUB_DATABASE_URL to the hub's database.",
            code="database_not_migrated",
        )
    if state.known:
        report_error(
            f"The database {where} is at migration {state.current}, not {state.head}: run "
            "`contacthub migrate` to bring it up to date.",
            code="database_not_migrated",
        )
    report_error(
        f"The database {where} is at migration {state.current}, which this contacthub does not "
        "know: a newer version migrated it. Upgrade contacthub.",
        code="unknown_migration",
    )


@contextmanager
def unit_of_work(*, write: bool = True) -> Iterator[Session]:
    """A session on the configured store; commits at the end of a write, exits 1 on a HubError.

    Commands print their result after the block, that is after the commit: nothing is shown
    (an API key least of all) that a failed commit would then take back.
    """
    settings = load_settings()
    database = open_database(settings)
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


# Columns whose values are typed or pasted back whole (GUIDs, keys and their prefixes, ids,
# code names, addresses, origins): a table never breaks them across lines.
IDENTIFIER_COLUMNS = frozenset(
    {
        "id",
        "guid",
        "channel_guid",
        "contact",
        "issue",
        "key",
        "token",
        "prefix",
        "code_name",
        "consent",
        "required_consent",
        "email",
        "user",
        "origin",
    }
)
# The narrowest a folded (non-identifier) column may get before a table of records turns into
# a list of fields, one block per record.
MIN_FOLDED_WIDTH = 10


def emit(
    rows: Mapping[str, Any] | Sequence[Mapping[str, Any]], as_json: bool, title: str = ""
) -> None:
    """Print one record or a list of records as JSON or as a table.

    A table keeps every identifier on one line: other columns fold, and when even that leaves
    too little room at the terminal's width, the records are printed as fields, one block each.
    """
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
        console.print(_fields([rows], title))
        return
    if not rows:
        console.print(f"[dim]No {title.lower() or 'records'}.[/dim]")
        return
    cells = [[_cell(v) for v in record.values()] for record in rows]
    widths = {
        name: _identifier_width(name, [row[i] for row in cells])
        for i, name in enumerate(rows[0])
        if _is_identifier(name, [record[name] for record in rows])
    }
    if not _table_fits(rows[0], cells, widths, console.width):
        console.print(_fields(rows, title))
        return
    table = Table(title=title or None)
    for name in rows[0]:
        heading = name.replace("_", " ")
        if name in widths:
            table.add_column(heading, no_wrap=True, min_width=widths[name])
        else:
            table.add_column(heading, overflow="fold")
    for row in cells:
        table.add_row(*row)
    console.print(table)


def _is_identifier(name: str, values: Sequence[Any]) -> bool:
    return name in IDENTIFIER_COLUMNS or (
        any(v is not None for v in values) and all(v is None or isinstance(v, UUID) for v in values)
    )


def _identifier_width(name: str, cells: Sequence[Text]) -> int:
    # The heading may wrap between its words; the values may not.
    words = name.split("_")
    return max(max(len(w) for w in words), *(c.cell_len for c in cells))


def _table_fits(
    names: Iterable[str], cells: Sequence[Sequence[Text]], widths: Mapping[str, int], room: int
) -> bool:
    """Whether a table with whole identifiers and the other columns folded to no narrower than
    MIN_FOLDED_WIDTH (or their widest value) fits in `room` columns."""
    needed = 1  # the left border; each column adds its right border and its padding
    for index, name in enumerate(names):
        content = widths.get(name) or min(
            MIN_FOLDED_WIDTH, max(len(name), *(row[index].cell_len for row in cells))
        )
        needed += content + 3
    return needed <= room


def _fields(records: Sequence[Mapping[str, Any]], title: str) -> Table:
    """Records as a list of fields: a name column, a value column, a line between records."""
    grid = Table(title=title or None, show_header=False)
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for record in records:
        for index, (name, value) in enumerate(record.items()):
            grid.add_row(name.replace("_", " "), _cell(value), end_section=index == len(record) - 1)
    return grid
