"""`contacthub group …`: contact groups (static and dynamic) and their members."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from sqlalchemy.orm import Session
from typer._click.exceptions import UsageError

from contacthub.audit.service import CLI_ACTOR
from contacthub.cli.email import _database, _progress, _read_text
from contacthub.cli.output import JsonOption, console, emit, unit_of_work
from contacthub.errors import InvalidInput
from contacthub.groups import service
from contacthub.groups.output import csv_header, member_line, member_row, shown_conditions
from contacthub.identifiers import refuse_nul, refuse_nul_within
from contacthub.storage.models import ContactGroup

group_app = typer.Typer(help="Contact groups: static lists and live segments (docs/groups.md).")

ConditionsFileOption = typer.Option(
    None,
    "--conditions-file",
    help="JSON file with the condition tree (docs/groups.md); `-` reads standard input.",
)
RequiredConditionsFileOption = typer.Option(
    ...,
    "--conditions-file",
    help="JSON file with the condition tree (docs/groups.md); `-` reads standard input.",
)
ContactsArgument = typer.Argument(None, help="Contacts: GUIDs or email addresses.")
CsvOption = typer.Option(
    None,
    "--csv",
    help="CSV file with a header row and a `guid`, `contact` or `email` column.",
)
# Contacts added or removed per unit of work: a big CSV commits (and shows progress) as it goes.
CHUNK = 1_000
MAX_PROBLEMS_SHOWN = 50
MEMBERS_PAGE = 50


def group_record(group: ContactGroup, members: int) -> dict[str, Any]:
    return {
        "name": group.name,
        "guid": group.guid,
        "kind": group.kind,
        "description": group.description,
        "members": members,
        "created_at": group.created_at,
        "updated_at": group.updated_at,
        "rebuilt_at": group.rebuilt_at,
    }


def _full_record(session: Session, group: ContactGroup) -> dict[str, Any]:
    record = group_record(group, service.member_count(session, group.id))
    record["conditions"] = shown_conditions(session, group)
    return record


def _print_group(record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit(record, True)
        return
    conditions = record.pop("conditions")
    emit(record, False, "Group")
    if conditions is not None:
        console.print("[bold]conditions[/bold]")
        # Printed as JSON, never folded, so that it can be copied into a conditions file.
        typer.echo(json.dumps(conditions, indent=2, ensure_ascii=False))


def _read_conditions(path: Path) -> object:
    """The condition tree of a JSON file (or of standard input for `-`)."""
    if str(path) == "-":
        text = refuse_nul(sys.stdin.read(), "The conditions on standard input")
    else:
        text = _read_text(path, "conditions file")
    try:
        tree: object = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise InvalidInput(
            f"The conditions file {path} is not valid JSON: {error}.",
            code="invalid_json",
            field="conditions",
        ) from None
    # As the API refuses an escaped NUL in a body (PostgreSQL cannot store it).
    refuse_nul_within(tree, "conditions")
    return tree


@group_app.command("create")
def group_create(
    name: str,
    static: bool = typer.Option(
        False, "--static", help="A static group: members are added and removed by hand."
    ),
    conditions_file: Path | None = ConditionsFileOption,
    description: str = typer.Option("", help="What the group is for."),
    as_json: bool = JsonOption,
) -> None:
    """Create a group: dynamic (with --conditions-file) or --static; prints it."""
    if static and conditions_file is not None:
        raise UsageError("A static group has no conditions: give --static or --conditions-file.")
    with unit_of_work() as session:
        conditions = _read_conditions(conditions_file) if conditions_file is not None else None
        group = service.create_group(
            session,
            name,
            kind="static" if static else "dynamic",
            conditions=conditions,
            description=description,
            actor=CLI_ACTOR,
        )
        record = _full_record(session, group)
    _print_group(record, as_json)


@group_app.command("update")
def group_update(
    name: str,
    new_name: str | None = typer.Option(None, "--name", help="Rename the group."),
    conditions_file: Path | None = ConditionsFileOption,
    description: str | None = typer.Option(None, help="A new description."),
    as_json: bool = JsonOption,
) -> None:
    """Rename a group, change its description or (dynamic) its conditions.

    New conditions recompute the members at once, each entry and exit in the history.
    """
    with unit_of_work() as session:
        conditions = _read_conditions(conditions_file) if conditions_file is not None else None
        group = service.update_group(
            session,
            name,
            new_name=new_name,
            conditions=conditions,
            description=description,
            actor=CLI_ACTOR,
        )
        record = _full_record(session, group)
    _print_group(record, as_json)


@group_app.command("list")
def group_list(as_json: bool = JsonOption) -> None:
    """List the groups with their number of members."""
    with unit_of_work(write=False) as session:
        rows = [group_record(s.group, s.members) for s in service.list_groups(session)]
    emit(rows, as_json, "Groups")


@group_app.command("show")
def group_show(name: str, as_json: bool = JsonOption) -> None:
    """Show a group with its conditions and number of members."""
    with unit_of_work(write=False) as session:
        record = _full_record(session, service.get_group(session, name))
    _print_group(record, as_json)


@group_app.command("members")
def group_members(
    name: str,
    as_csv: bool = typer.Option(
        False,
        "--csv",
        help="Every member as CSV on standard output, streamed (recorded in the audit log).",
    ),
    after: str | None = typer.Option(None, help="The cursor printed after the previous page."),
    limit: int = typer.Option(MEMBERS_PAGE, help=f"Members per page, 1 to {service.MAX_PAGE}."),
    as_json: bool = JsonOption,
) -> None:
    """List a group's members a page at a time (oldest contact first), or all of them as CSV."""
    if as_csv:
        if as_json:
            raise UsageError("--csv and --json are two outputs: give one of them.")
        _stream_csv(name)
        return
    with unit_of_work(write=False) as session:
        page = service.members_page(session, name, cursor=after, limit=limit)
        total = service.member_count(session, service.get_group(session, name).id)
        rows = [member_row(m) for m in page.members]
    if as_json:
        typer.echo(
            json.dumps(
                {"members": rows, "total": total, "next_after": page.next_cursor},
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    emit(rows, False, "Members")
    console.print(f"{len(rows)} shown of {total}.")
    if page.next_cursor:
        console.print(f"Next page: --after {escape(page.next_cursor)}", soft_wrap=True)


def _stream_csv(name: str) -> None:
    """Every member as CSV; the export is recorded (and committed) first, then the members
    are read in one read-only unit of work, a chunk at a time, and written as they come."""
    with _database() as (_, database):
        with database.write() as session:
            service.iter_members(session, name, actor=CLI_ACTOR)
        with database.read() as session:
            sys.stdout.write(csv_header())
            for member in service.iter_members(session, name):
                sys.stdout.write(member_line(member))
        sys.stdout.flush()


def _contacts_of_csv(path: Path) -> list[str]:
    """The contacts of a CSV file: its `guid`, `contact` or `email` column, blanks skipped."""
    text = _read_text(path, "CSV file")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = {(c or "").strip().lower(): c for c in reader.fieldnames or []}
    column = next((columns[n] for n in ("guid", "contact", "email") if n in columns), None)
    if column is None:
        raise InvalidInput(
            f"The CSV file {path} has no `guid`, `contact` or `email` column in its header row.",
            code="invalid_csv",
        )
    try:
        return [value.strip() for row in reader if (value := row.get(column) or "").strip()]
    except csv.Error as error:
        raise InvalidInput(
            f"The CSV file {path} is malformed at line {reader.line_num}: {error}.",
            code="invalid_csv",
        ) from None


def _change_members(
    name: str, contacts: list[str] | None, csv_file: Path | None, as_json: bool, adding: bool
) -> None:
    if bool(contacts) == (csv_file is not None):
        raise UsageError("Give the contacts (GUIDs or addresses) or --csv FILE, one of the two.")
    with _database() as (_, database):
        items = list(contacts or []) if csv_file is None else _contacts_of_csv(csv_file)
        with database.read() as session:
            service.get_group(session, name)  # refuse an unknown group before drawing a bar
        done = same = 0
        problems: list[service.ItemProblem] = []
        bar = _progress()
        task = bar.add_task("Adding" if adding else "Removing", total=len(items))
        if len(items) > CHUNK:  # a bar only for a list long enough to take a while
            bar.start()
        try:
            for start in range(0, len(items), CHUNK):
                chunk = items[start : start + CHUNK]
                with database.write() as session:
                    if adding:
                        added = service.add_members(session, name, chunk, actor=CLI_ACTOR)
                        done, same = done + added.added, same + added.already_members
                        problems += added.problems
                    else:
                        removed = service.remove_members(session, name, chunk, actor=CLI_ACTOR)
                        done, same = done + removed.removed, same + removed.not_members
                        problems += removed.problems
                bar.update(task, completed=start + len(chunk))
        finally:
            if bar.live.is_started:
                bar.stop()
        with database.read() as session:
            members = service.member_count(session, service.get_group(session, name).id)
    done_name, same_name = ("added", "already_members") if adding else ("removed", "not_members")
    summary = {done_name: done, same_name: same, "problems": len(problems), "members": members}
    listed = [{"contact": p.item, "code": p.code, "error": p.message} for p in problems]
    if as_json:
        emit({**summary, "problems": listed}, True)
        return
    emit(summary, False, "Members added" if adding else "Members removed")
    if listed:
        emit(listed[:MAX_PROBLEMS_SHOWN], False, "Left out")
        if len(listed) > MAX_PROBLEMS_SHOWN:
            console.print(
                f"[dim]… and {len(listed) - MAX_PROBLEMS_SHOWN} more (--json lists them all).[/dim]"
            )


@group_app.command("add")
def group_add(
    name: str,
    contacts: list[str] | None = ContactsArgument,
    csv_file: Path | None = CsvOption,
    as_json: bool = JsonOption,
) -> None:
    """Add contacts to a static group: GUIDs or addresses, or a --csv file of them.

    Items that name no contact are listed and left out; the others are added.
    """
    _change_members(name, contacts, csv_file, as_json, adding=True)


@group_app.command("remove")
def group_remove(
    name: str,
    contacts: list[str] | None = ContactsArgument,
    csv_file: Path | None = CsvOption,
    as_json: bool = JsonOption,
) -> None:
    """Remove contacts from a static group: GUIDs or addresses, or a --csv file of them."""
    _change_members(name, contacts, csv_file, as_json, adding=False)


@group_app.command("rebuild")
def group_rebuild(name: str, as_json: bool = JsonOption) -> None:
    """Compute a dynamic group's members again from scratch; prints who entered and left."""
    with unit_of_work() as session:
        report = service.rebuild_group(session, name, actor=CLI_ACTOR)
        group = service.get_group(session, name)
        record = {
            "group": group.name,
            "entered": report.entered,
            "left": report.left,
            "members": service.member_count(session, group.id),
        }
    emit(record, as_json, "Rebuilt")


@group_app.command("delete")
def group_delete(name: str, as_json: bool = JsonOption) -> None:
    """Delete a group (refused while another group or an unsent issue uses it)."""
    with unit_of_work() as session:
        group = service.get_group(session, name)
        record = {"deleted": group.name, "guid": group.guid}
        service.delete_group(session, name, actor=CLI_ACTOR)
    emit(record, as_json, "Deleted")


@group_app.command("preview")
def group_preview(
    conditions_file: Path = RequiredConditionsFileOption,
    as_json: bool = JsonOption,
) -> None:
    """Count the contacts a condition tree matches now; saves nothing."""
    with unit_of_work(write=False) as session:
        count = service.preview_count(session, _read_conditions(conditions_file))
    emit({"count": count}, as_json, "Preview")
