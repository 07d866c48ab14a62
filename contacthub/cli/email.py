"""`contacthub newsletter …`, `contacthub subscriber …` and `contacthub issue …`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from contacthub.audit.service import CLI_ACTOR
from contacthub.cli.output import (
    JsonOption,
    asks_for_json,
    console,
    database_errors,
    emit,
    errors,
    fail,
    load_settings,
    open_database,
    report_error,
    unit_of_work,
)
from contacthub.email import (
    importer,
    repository,
    schedule,
    sending,
    service,
    signing,
    stats,
    testsend,
)
from contacthub.email.importer import ImportReport
from contacthub.email.sending import SendReport
from contacthub.errors import HubError, InvalidInput
from contacthub.identifiers import refuse_nul
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.models import Contact, EmailIssue, Newsletter, Subscriber
from contacthub.subscriptions import optin

newsletter_app = typer.Typer(help="Newsletters: mailing lists with their sender and base URL.")
subscriber_app = typer.Typer(help="Subscribers of newsletters (each linked to a contact).")
issue_app = typer.Typer(help="Email issues: create, send, see their statistics.")

NewsletterOption = typer.Option(..., "--newsletter", help="Name of the newsletter.")
CsvFileArgument = typer.Argument(..., help="CSV file with a header row: email, first_name, …")
HtmlFileOption = typer.Option(..., help="File with the HTML body (UTF-8).")
TextFileOption = typer.Option(None, help="File with the plain-text part (UTF-8).")
MAX_BAD_ROWS_SHOWN = 50


@contextmanager
def _database() -> Iterator[tuple[Settings, Database]]:
    """The configured store, for commands that commit in several units of work."""
    settings = load_settings()
    database = open_database(settings)
    try:
        with database_errors(settings.database_url):
            yield settings, database
    except HubError as error:
        fail(error)
    finally:
        database.dispose()


def _progress() -> Progress:
    # On stderr, so that `--json` output on stdout stays clean; with --json, only on a terminal,
    # so that a script reading stderr finds nothing there but an error.
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=errors,
        transient=False,
        disable=asks_for_json() and not errors.is_terminal,
    )


def _read_text(path: Path, what: str) -> str:
    try:
        return refuse_nul(path.read_text(encoding="utf-8-sig"), f"The {what} {path}")
    except UnicodeDecodeError:
        raise InvalidInput(f"The {what} {path} is not UTF-8 text.", code="invalid_file") from None
    except OSError as error:
        raise InvalidInput(f"Cannot read the {what} {path}: {error}", code="invalid_file") from None


# -- newsletters ---------------------------------------------------------------------------------


def newsletter_record(
    session: Session, newsletter: Newsletter, subscribed: int | None = None
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "name": newsletter.name,
        "guid": newsletter.guid,
        "sender_name": newsletter.sender_name,
        "sender_email": newsletter.sender_email,
        "base_url": newsletter.base_url,
        **service.newsletter_settings(session, newsletter),
    }
    if subscribed is not None:
        record["subscribed"] = subscribed
    record["created_at"] = newsletter.created_at
    return record


@newsletter_app.command("create")
def newsletter_create(
    name: str,
    sender_name: str = typer.Option(..., help="Name shown in the From header."),
    sender_email: str = typer.Option(..., help="Address the issues are sent from."),
    base_url: str = typer.Option(
        ..., help="Public base URL the tracking links point at, e.g. https://www.example.com."
    ),
    double_opt_in: bool = typer.Option(
        False, help="Public subscriptions wait for the confirmation link (needs --consent)."
    ),
    consent: str | None = typer.Option(None, help="Code name of the newsletter's consent."),
    tracking_consent: str | None = typer.Option(
        None, help="Code name of the consent per-person tracking needs."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Create a newsletter."""
    with unit_of_work() as session:
        newsletter = service.create_newsletter(
            session,
            name,
            sender_name,
            sender_email,
            base_url,
            double_opt_in=double_opt_in,
            consent=consent,
            tracking_consent=tracking_consent,
            actor=CLI_ACTOR,
        )
        record = newsletter_record(session, newsletter)
    emit(record, as_json, "Newsletter")


@newsletter_app.command("update")
def newsletter_update(
    name: str,
    double_opt_in: bool | None = typer.Option(
        None,
        "--double-opt-in/--no-double-opt-in",
        help="Public subscriptions wait for the confirmation link (needs a consent).",
    ),
    consent: str | None = typer.Option(
        None, help="Code name of the newsletter's consent; an empty string removes it."
    ),
    tracking_consent: str | None = typer.Option(
        None,
        help="Code name of the consent per-person tracking needs; an empty string removes it.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Change a newsletter's subscription settings (what is not given stays as it is)."""
    with unit_of_work() as session:
        newsletter = service.update_newsletter(
            session,
            name,
            double_opt_in=double_opt_in,
            consent=consent,
            tracking_consent=tracking_consent,
            actor=CLI_ACTOR,
        )
        record = newsletter_record(session, newsletter)
    emit(record, as_json, "Newsletter")


@newsletter_app.command("list")
def newsletter_list(as_json: bool = JsonOption) -> None:
    """List the newsletters with their number of subscribed addresses."""
    with unit_of_work(write=False) as session:
        rows = [
            newsletter_record(
                session,
                n,
                repository.subscriber_counts(session, n.id).get(repository.SUBSCRIBED, 0),
            )
            for n in service.list_newsletters(session)
        ]
    emit(rows, as_json, "Newsletters")


# -- subscribers ---------------------------------------------------------------------------------


def subscriber_record(session: Session, subscriber: Subscriber) -> dict[str, Any]:
    return {
        "email": subscriber.email,
        "first_name": subscriber.first_name,
        "last_name": subscriber.last_name,
        "status": subscriber.status,
        "contact": session.get_one(Contact, subscriber.contact_id).guid,
        "created_at": subscriber.created_at,
        "unsubscribed_at": subscriber.unsubscribed_at,
        "confirmation_sent_at": subscriber.confirmation_sent_at,
        "confirmed_at": subscriber.confirmed_at,
    }


@subscriber_app.command("add")
def subscriber_add(
    email: str,
    newsletter: str = NewsletterOption,
    first_name: str | None = typer.Option(None, help="First name (for personalisation)."),
    last_name: str | None = typer.Option(None, help="Last name."),
    confirmed: bool = typer.Option(
        False,
        help="Double opt-in newsletters: subscribe at once (you vouch for the person's consent)"
        " instead of sending the confirmation email.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Subscribe an address (subscribes an unsubscribed address again).

    On a double opt-in newsletter the address stays unconfirmed and gets the confirmation email
    (through the configured SMTP server) unless --confirmed is given.
    """
    with _database() as (settings, database):
        with database.write() as session:
            subscriber, confirmation = optin.add_subscriber(
                session,
                newsletter,
                email,
                first_name,
                last_name,
                confirmed=confirmed,
                signer=signing.link_signer(settings),
                actor=CLI_ACTOR,
            )
            record = {"newsletter": newsletter, **subscriber_record(session, subscriber)}
        if confirmation is not None and not optin.send_now(database, settings, confirmation):
            raise optin.not_sent()
    emit(record, as_json, "Subscriber")


@subscriber_app.command("list")
def subscriber_list(
    newsletter: str = NewsletterOption,
    status: str | None = typer.Option(
        None, help="Only `subscribed`, `unsubscribed` or `unconfirmed` (double opt-in) ones."
    ),
    as_json: bool = JsonOption,
) -> None:
    """List a newsletter's subscribers in the order they were added."""
    with unit_of_work(write=False) as session:
        subscribers = service.list_subscribers(session, newsletter, status=status)
        wanted = {s.contact_id for s in subscribers}
        contacts = dict(
            session.execute(select(Contact.id, Contact.guid).where(Contact.id.in_(wanted))).all()
        )
        rows = [
            {
                "email": s.email,
                "first_name": s.first_name,
                "last_name": s.last_name,
                "status": s.status,
                "contact": contacts[s.contact_id],
                "created_at": s.created_at,
            }
            for s in subscribers
        ]
    emit(rows, as_json, "Subscribers")


@subscriber_app.command("import")
def subscriber_import(
    file: Path = CsvFileArgument,
    newsletter: str = NewsletterOption,
    chunk_size: int = typer.Option(
        importer.DEFAULT_CHUNK_SIZE, min=1, help="Subscribers committed together."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Import subscribers from CSV; bad rows are reported (line and reason) and skipped.

    Columns: `email` (required), `first_name`, `last_name` (also `Email`, `FirstName`,
    `LastName`); others are ignored. Running an import again skips the addresses already added.
    """
    with _database() as (_, database):
        if not file.is_file():
            raise InvalidInput(f"No file {file}.", code="invalid_file")
        with database.read() as session:
            service.get_newsletter(session, newsletter)
        # Shown from the first committed chunk: a file refused before that (unreadable at
        # some line) gets its one-line error alone.
        bar = _progress()
        task = bar.add_task("Importing", total=None)

        def advance(done: int, total: int) -> None:
            bar.start()
            bar.update(task, completed=done - 1, total=max(total - 1, 1))

        try:
            report = importer.import_file(
                database,
                newsletter,
                file,
                chunk_size=chunk_size,
                progress=advance,
                actor=CLI_ACTOR,
            )
        finally:
            if bar.live.is_started:
                bar.stop()
    _print_import(report, as_json)


def _print_import(report: ImportReport, as_json: bool) -> None:
    summary: dict[str, Any] = {
        "rows": report.rows,
        "added": report.added,
        "already_subscribed": report.already_subscribed,
        "unsubscribed_not_added": report.unsubscribed,
        "bad_rows": report.bad_count,
        "ignored_columns": report.ignored_columns,
    }
    bad = [{"line": b.line, "email": b.email, "reason": b.reason} for b in report.bad_rows]
    if as_json:
        emit({**summary, "bad_rows": bad, "bad_row_count": report.bad_count}, True)
        return
    emit(summary, False, "Import")
    if bad:
        emit(bad[:MAX_BAD_ROWS_SHOWN], False, "Bad rows (skipped)")
        if report.bad_count > MAX_BAD_ROWS_SHOWN:
            console.print(
                f"[dim]… and {report.bad_count - MAX_BAD_ROWS_SHOWN} more bad rows "
                "(--json lists them all).[/dim]"
            )


# -- issues --------------------------------------------------------------------------------------


def issue_record(session: Session, issue: EmailIssue) -> dict[str, Any]:
    summary = service.describe_issue(session, issue)
    return {
        "guid": issue.guid,
        "newsletter": summary.newsletter_name,
        "subject": issue.subject,
        "group": summary.group_name or summary.deleted_group,
        "group_deleted": summary.deleted_group is not None,
        "status": issue.status,
        "links": len([link for link in summary.links if not link.hidden]),
        "created_at": issue.created_at,
        "sent_at": issue.sent_at,
        "scheduled_at": issue.scheduled_at,
        "scheduled_by": issue.scheduled_by,
    }


@issue_app.command("create")
def issue_create(
    newsletter: str = NewsletterOption,
    subject: str = typer.Option(..., help="Subject; may use placeholders, e.g. {{ first_name }}."),
    html_file: Path = HtmlFileOption,
    text_file: Path | None = TextFileOption,
    group: str | None = typer.Option(
        None,
        help="Send it only to the subscribers who are members of this contact group "
        "(default: every subscriber).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Create a draft issue from an HTML file; prints its GUID (what `issue send` takes).

    Placeholders: {{ first_name }}, {{ last_name }}, {{ email }}, {{ first_name | "there" }},
    {{ unsubscribe_url }}, {{ view_in_browser_url }}. Every http(s) link is tracked.
    """
    with unit_of_work() as session:
        html = _read_text(html_file, "HTML file")
        text = _read_text(text_file, "text file") if text_file is not None else None
        issue = service.create_issue(
            session, newsletter, subject, html, text, group=group, actor=CLI_ACTOR
        )
        record = issue_record(session, issue)
    emit(record, as_json, "Issue")


@issue_app.command("set-group")
def issue_set_group(
    issue: str = typer.Argument(..., help="GUID of the issue."),
    group: str | None = typer.Argument(
        None, help="Name of a contact group; omit to send to every subscriber."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Send a draft issue only to the members of a contact group, or (without GROUP) to every
    subscriber. Refused once the issue's sending has started."""
    with unit_of_work() as session:
        found = service.set_issue_group(
            session, service.get_issue(session, issue), group, actor=CLI_ACTOR
        )
        record = issue_record(session, found)
    emit(record, as_json, "Issue")


@issue_app.command("list")
def issue_list(newsletter: str = NewsletterOption, as_json: bool = JsonOption) -> None:
    """List a newsletter's issues, newest first."""
    with unit_of_work(write=False) as session:
        rows = [issue_record(session, i) for i in service.list_issues(session, newsletter)]
    emit(rows, as_json, "Issues")


@issue_app.command("send")
def issue_send(
    issue: str = typer.Argument(..., help="GUID of the issue."),
    retry_in_doubt: bool = typer.Option(
        False,
        help="Also send again the messages a crashed run left in doubt (they may then arrive "
        "twice).",
    ),
    chunk_size: int = typer.Option(
        sending.DEFAULT_CHUNK_SIZE, min=1, help="Messages sent between two commits."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Send an issue to every subscriber who has not had it yet, through the SMTP server of the
    configuration. Running it again resumes; nobody gets it twice."""
    with _database() as (settings, database):
        signer = signing.link_signer(settings)
        with database.read() as session:
            # Refuse a bad GUID, or an issue whose group is gone, before drawing a progress bar.
            service.refuse_if_group_deleted(service.get_issue(session, issue))
        with _progress() as bar:
            task = bar.add_task("Sending", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = sending.send_with_settings(
                database,
                settings,
                issue,
                signer=signer,
                progress=advance,
                chunk_size=chunk_size,
                retry_in_doubt=retry_in_doubt,
                actor=CLI_ACTOR,
            )
    _print_send(report, as_json)
    if report.stopped is not None:
        report_error(
            f"sending stopped: {report.stopped}\n"
            "Nothing is lost: run `contacthub issue send` again to resume.",
            code="sending_stopped",
        )


def _print_send(report: SendReport, as_json: bool) -> None:
    if as_json:
        emit(report.as_dict(), True)
        return
    summary = report.as_dict()
    failures = summary.pop("failures")
    summary.pop("totals")
    reasons = summary.pop("suppressed_reasons")
    if reasons:  # "2 (hard_bounce 1, complaint 1)"
        summary["skipped_suppressed"] = (
            f"{report.skipped_suppressed} ("
            + ", ".join(f"{reason} {count}" for reason, count in reasons.items())
            + ")"
        )
    if report.group is None:  # sent to every subscriber: no group figures to show
        for key in ("group", "skipped_left_group", "not_members"):
            summary.pop(key)
    emit(summary, False, "Send")
    if failures:
        for failure in failures:
            failure["next_attempt_at"] = failure["next_attempt_at"] or "-"
        emit(failures, False, "Not sent")
    if report.in_doubt:
        console.print(
            f"[yellow]{report.in_doubt} message(s) are in doubt[/yellow] (a run was interrupted "
            "while sending them, or another run is sending them now): they are not sent again "
            "unless you run `contacthub issue send --retry-in-doubt`."
        )
    if report.waiting_deferred:
        when = report.next_attempt_at
        start = f"from {when:%Y-%m-%d %H:%M:%S} UTC" if when is not None else "now"
        console.print(
            f"{report.waiting_deferred} message(s) failed for now (temporary failures): the hub "
            f"tries them again {start}, or run `contacthub issue send` again after that."
        )


@issue_app.command("stats")
def issue_stats(
    issue: str = typer.Argument(..., help="GUID of the issue."), as_json: bool = JsonOption
) -> None:
    """An issue's statistics: deliveries, bounces, complaints, opens, clicks per link,
    unsubscribes, rates."""
    with unit_of_work(write=False) as session:
        figures = stats.issue_stats(session, issue.strip()).as_dict()
    if as_json:
        emit(figures, True)
        return
    _print_stats(figures)


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def _print_stats(figures: dict[str, Any]) -> None:
    opens, clicks = figures["opens"], figures["clicks"]
    emit(
        {
            "issue": figures["issue"],
            "subject": figures["subject"],
            "sent": figures["sent"],
            "failed": figures["failed"],
            "delivered": figures["delivered"],
            "bounced (hard)": figures["bounced_hard"],
            "bounced (soft)": figures["bounced_soft"],
            "complaints": figures["complaints"],
            "skipped (suppressed)": figures["skipped_suppressed"],
            "opens (human)": f"{opens['human']['total']} ({opens['human']['unique']} unique)",
            "opens (machine)": f"{opens['machine']['total']} ({opens['machine']['unique']} unique)",
            "clicks (human)": f"{clicks['human']['total']} ({clicks['human']['unique']} unique)",
            "clicks (machine)": (
                f"{clicks['machine']['total']} ({clicks['machine']['unique']} unique)"
            ),
            "unsubscribes": figures["unsubscribes"],
            "open rate": _percent(figures["open_rate"]),
            "click-through rate": _percent(figures["click_through_rate"]),
        },
        False,
        "Issue statistics",
    )
    emit(
        [
            {
                "position": link["position"],
                "target": link["target_url"] + (" (hidden honeypot)" if link["hidden"] else ""),
                "human clicks": link["clicks"]["human"]["total"],
                "unique": link["clicks"]["human"]["unique"],
                "machine clicks": link["clicks"]["machine"]["total"],
            }
            for link in figures["links"]
        ],
        False,
        "Links",
    )


# -- schedules and test sends (email/schedule.py, email/testsend.py) -----------------------------


@issue_app.command("schedule")
def issue_schedule(
    issue: str = typer.Argument(..., help="GUID of the issue."),
    at: str = typer.Option(
        ...,
        "--at",
        help="When to send it: ISO 8601 with its UTC offset, e.g. 2026-12-24T09:00+01:00 or "
        "2026-12-24T08:00Z.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Schedule a draft issue to be sent at a time (again: reschedule it). A running hub sends
    it then, once; a schedule the hub misses by more than `schedule_grace` waits for
    `issue confirm-schedule`."""
    with unit_of_work() as session:
        when = schedule.parse_time(at)
        found = schedule.schedule_issue(
            session, service.get_issue(session, issue), when, actor=CLI_ACTOR
        )
        record = issue_record(session, found)
    emit(record, as_json, "Issue")


@issue_app.command("unschedule")
def issue_unschedule(
    issue: str = typer.Argument(..., help="GUID of the issue."), as_json: bool = JsonOption
) -> None:
    """Cancel an issue's schedule (also a missed one): it is a draft again."""
    with unit_of_work() as session:
        found = schedule.cancel_schedule(
            session, service.get_issue(session, issue), actor=CLI_ACTOR
        )
        record = issue_record(session, found)
    emit(record, as_json, "Issue")


@issue_app.command("confirm-schedule")
def issue_confirm_schedule(
    issue: str = typer.Argument(..., help="GUID of the issue."),
    chunk_size: int = typer.Option(
        sending.DEFAULT_CHUNK_SIZE, min=1, help="Messages sent between two commits."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Send now an issue whose schedule was missed (status schedule_missed), here, through the
    SMTP server of the configuration, as `issue send` does."""
    with _database() as (settings, database):
        signer = signing.link_signer(settings)
        with database.write() as session:
            found = schedule.confirm_schedule(
                session, service.get_issue(session, issue), actor=CLI_ACTOR
            )
            guid = str(found.guid)
        with _progress() as bar:
            task = bar.add_task("Sending", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = sending.send_with_settings(
                database, settings, guid, signer=signer, progress=advance, chunk_size=chunk_size
            )
    _print_send(report, as_json)
    if report.stopped is not None:
        report_error(
            f"sending stopped: {report.stopped}\n"
            "Nothing is lost: run `contacthub issue send` again to resume.",
            code="sending_stopped",
        )


TestRecipientsOption = typer.Option(
    ..., "--to", help=f"An address to send the test to (1 to {testsend.MAX_RECIPIENTS})."
)


@issue_app.command("test-send")
def issue_test_send(
    issue: str = typer.Argument(..., help="GUID of the issue."),
    to: list[str] = TestRecipientsOption,
    as_json: bool = JsonOption,
) -> None:
    """Send a test copy of an issue (any status) to a few addresses: subject prefixed
    "[Test] ", no tracking, not counted in the statistics."""
    with _database() as (settings, database):
        signer = signing.link_signer(settings)
        with sending.smtp_mailer(settings) as mailer:
            report = testsend.send_test(database, issue, to, mailer, signer=signer, actor=CLI_ACTOR)
    if as_json:
        emit(report.as_dict(), True)
    else:
        emit(
            {"issue": report.issue_guid, "subject": report.subject, "sent": ", ".join(report.sent)},
            False,
            "Test send",
        )
        if report.failed:
            emit([{"email": f.email, "reason": f.reason} for f in report.failed], False, "Not sent")
    if report.failed:
        report_error(
            f"{len(report.failed)} of {len(report.failed) + len(report.sent)} test message(s) "
            "were not sent (see above).",
            code="test_send_failed",
        )
