"""`contacthub contact …`: search contacts, show one, export its data, erase it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from contacthub.audit.service import CLI_ACTOR
from contacthub.cli.output import JsonOption, console, emit, fail, unit_of_work
from contacthub.contacts import export, privacy, profile
from contacthub.contacts.search import (
    DEFAULT_LIMIT,
    MAX_FILTER_DAYS,
    MAX_LIMIT,
    SORTS,
    ContactFilter,
    contact_count,
    parse_filter,
    search_contacts,
)
from contacthub.errors import HubError, InvalidInput

contact_app = typer.Typer(help="Contacts: search, show, export their data, erase them.")

SHOWN_ACTIVITIES = 20
OutputOption = typer.Option(
    None, "--output", "-o", help="Write the JSON to this file instead of standard output."
)


def _json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def contact_search(
    q: str = typer.Argument("", help="A GUID, the start of an email address, or part of a name."),
    group: str | None = typer.Option(None, help="Only members of this group (its name)."),
    consent: str | None = typer.Option(
        None, help="Only contacts who agree now to this consent (its code name)."
    ),
    newsletter: str | None = typer.Option(
        None, help="Only subscribers of this newsletter (its name), not unsubscribed."
    ),
    country: str | None = typer.Option(
        None, help="Only contacts of this country (ISO 3166-1 alpha-3, e.g. CZE)."
    ),
    active_within: int | None = typer.Option(
        None, help=f"Only contacts with an activity in the last N days (1 to {MAX_FILTER_DAYS})."
    ),
    inactive_for: int | None = typer.Option(
        None, help=f"Only contacts with no activity in the last N days (1 to {MAX_FILTER_DAYS})."
    ),
    sort: str = typer.Option("-created", help=f"One of: {', '.join(SORTS)}."),
    after: str | None = typer.Option(None, help="The cursor printed after the previous page."),
    limit: int = typer.Option(DEFAULT_LIMIT, help=f"Contacts per page, 1 to {MAX_LIMIT}."),
    as_csv: bool = typer.Option(
        False,
        "--csv",
        help="Print every matching contact as CSV (--after and --limit do not apply); "
        "recorded in the audit log.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Search and filter contacts (case ignored); newest first unless --sort.

    The filters combine with each other and with Q: a contact must meet all of them.
    """
    try:
        filters = parse_filter(
            group=group,
            consent=consent,
            newsletter=newsletter,
            country=country,
            active_within=active_within,
            inactive_for=inactive_for,
        )
    except HubError as error:
        fail(error)
    if as_csv:
        _print_csv(q, sort, filters)
        return
    with unit_of_work(write=False) as session:
        page = search_contacts(session, q, sort, after, limit, filters=filters)
        total = contact_count(session, q, filters=filters)
    rows = [
        {
            "guid": str(c.guid),
            "email": c.email,
            "name": c.name,
            "company": c.company_name,
            "country": c.country,
            "last_activity_at": c.last_activity_at.isoformat() if c.last_activity_at else None,
            "created_at": c.created_at.isoformat(),
        }
        for c in page.contacts
    ]
    if as_json:
        _json({"contacts": rows, "total": total, "next_after": page.next_after})
        return
    emit(rows, False, "Contacts")
    console.print(f"{len(rows)} shown of {total} matching.")
    if page.next_after:
        console.print(f"Next page: --after {escape(page.next_after)}", soft_wrap=True)


def _print_csv(q: str, sort: str, filters: ContactFilter) -> None:
    """Every matching contact as CSV on standard output, a chunk at a time, in one read
    transaction (the export is recorded first, in a transaction of its own)."""
    with unit_of_work() as session:
        started = export.start_list_export(session, q, sort, filters, actor=CLI_ACTOR)
    with unit_of_work(write=False) as session:
        typer.echo(export.header(), nl=False)
        after: str | None = None
        while True:
            chunk, after = export.export_chunk(session, started, after)
            typer.echo(chunk, nl=False)
            if after is None:
                return


# `contact list` is `contact search`: both names are natural for the same list.
contact_app.command("search")(contact_search)
contact_app.command("list", help="The same as `contact search`.")(contact_search)


@contact_app.command("show")
def contact_show(guid: str, as_json: bool = JsonOption) -> None:
    """Show a contact: fields, consents, subscriptions and latest activities."""
    with unit_of_work(write=False) as session:
        contact = profile.find_contact(session, guid)
        fields = profile.contact_fields(contact)
        consents = profile.consent_states(session, contact.id)
        engagement = profile.email_engagement(session, contact.id)
        latest = profile.timeline(session, contact.id, limit=SHOWN_ACTIVITIES)
    values = profile.wire_fields(fields)
    consent_rows = [
        {
            "consent": c.code_name,
            "agreed": c.agreed,
            "revision": c.agreed_revision,
            "current_revision": c.current_revision,
            "events": len(c.history),
        }
        for c in consents
    ]
    subscription_rows = [
        {
            "newsletter": s.newsletter,
            "email": s.email,
            "status": s.status,
            "subscribed_at": s.subscribed_at.isoformat(),
        }
        for s in engagement.subscriptions
    ]
    activity_rows = [
        {
            "id": a.id,
            "at": a.created_at.isoformat(),
            "type": a.type,
            "title": a.title,
            "url": a.url,
            "channel": a.channel,
        }
        for a in latest.items
    ]
    if as_json:
        _json(
            {
                "guid": str(fields.guid),
                "created_at": fields.created_at.isoformat(),
                "updated_at": fields.updated_at.isoformat(),
                "fields": values,
                "consents": consent_rows,
                "subscriptions": subscription_rows,
                "latest_activities": activity_rows,
            }
        )
        return
    emit(
        {"guid": str(fields.guid), **values, "created_at": fields.created_at},
        False,
        "Contact",
    )
    emit(consent_rows, False, "Consents")
    emit(subscription_rows, False, "Subscriptions")
    emit(activity_rows, False, "Latest activities")


@contact_app.command("export")
def contact_export(
    guid: str,
    output: Path | None = OutputOption,
) -> None:
    """Export everything stored about a contact as JSON (recorded in the audit log)."""
    written = False
    try:
        with unit_of_work() as session:
            data = privacy.export_contact(session, guid, CLI_ACTOR)
            text = json.dumps(data, indent=2, ensure_ascii=False)
            if output is not None:
                # In the unit of work: a file that cannot be written leaves no record.
                _write_export(output, text + "\n")
                written = True
    except BaseException:
        if written and output is not None:
            output.unlink(missing_ok=True)  # the record was not kept: nor is the file
        raise
    if output is None:
        typer.echo(text)
        return
    console.print(f"Exported contact {data['contact']['guid']} to {escape(str(output))}.")


def _write_export(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise InvalidInput(
            f"Cannot write the export to {path}: {error.strerror or error}.", code="invalid_file"
        ) from None


@contact_app.command("erase")
def contact_erase(
    guid: str,
    yes: bool = typer.Option(False, "--yes", help="Confirm: the erasure cannot be undone."),
    as_json: bool = JsonOption,
) -> None:
    """Erase a contact and everything stored about it, for good (needs --yes)."""
    if not yes:
        fail(
            InvalidInput(
                "Erasing deletes the contact and all its data for good; add --yes to confirm.",
                code="confirmation_required",
            )
        )
    with unit_of_work() as session:
        erasure = privacy.erase_contact(session, guid, CLI_ACTOR)
    emit(erasure.as_dict(), as_json, "Erased")
