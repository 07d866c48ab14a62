"""`/api/newsletters` and `/api/issues`: newsletters, subscribers, issues, sending, statistics.

The same service functions as the admin pages and the CLI (`email.service`, `email.importer`,
`email.overview`, `email.background`, `email.stats`). Sending answers 202 at once and goes on in
the background; `GET /api/issues/{guid}` shows its progress.
"""

from __future__ import annotations

import io
import uuid
from datetime import datetime
from typing import cast

import anyio.to_thread
import msgspec
from sqlalchemy.orm import Session

from contacthub.api.routing import ApiCall, ApiRouter, QueryParam
from contacthub.email import (
    background,
    importer,
    overview,
    schedule,
    sending,
    service,
    stats,
    testsend,
)
from contacthub.email.background import SendRun
from contacthub.email.importer import ImportReport
from contacthub.email.overview import IssueRow, NewsletterSummary, SubscriberRow
from contacthub.errors import InvalidInput, UnsupportedMediaType
from contacthub.http import read_body
from contacthub.identifiers import MAX_ID
from contacthub.storage.models import EmailIssue
from contacthub.subscriptions import optin

router = ApiRouter("Email")

MAX_CSV_BYTES = 20 * 1_024 * 1_024
LIMIT = QueryParam(
    "limit",
    f"Items per page, 1 to {overview.MAX_PAGE_SIZE} (default {overview.PAGE_SIZE}).",
    "integer",
    minimum=1,
    maximum=overview.MAX_PAGE_SIZE,
)
BEFORE = QueryParam(
    "before",
    "Cursor: `next_before` of the previous page.",
    "integer",
    minimum=1,
    maximum=MAX_ID,
)


# -- bodies and answers --------------------------------------------------------------------------


class NewsletterIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    sender_name: str
    sender_email: str
    base_url: str
    double_opt_in: bool = False
    consent: str | None = None
    tracking_consent: str | None = None


class NewsletterChange(msgspec.Struct, forbid_unknown_fields=True):
    """Absent: unchanged; `consent` or `tracking_consent` null: removed."""

    double_opt_in: bool | msgspec.UnsetType = msgspec.UNSET
    consent: str | msgspec.UnsetType | None = msgspec.UNSET
    tracking_consent: str | msgspec.UnsetType | None = msgspec.UNSET


class NewsletterOut(msgspec.Struct):
    guid: uuid.UUID
    name: str
    sender_name: str
    sender_email: str
    base_url: str
    subscribed: int
    unsubscribed: int
    issues: int
    created_at: datetime
    double_opt_in: bool
    consent: str | None
    tracking_consent: str | None


class SubscriberIn(msgspec.Struct, forbid_unknown_fields=True):
    email: str
    first_name: str | None = None
    last_name: str | None = None
    # Double opt-in newsletters: true subscribes at once (the operator vouches for the consent);
    # false leaves the address `unconfirmed` and sends the confirmation email.
    confirmed: bool = False


class SubscriberOut(msgspec.Struct):
    id: int
    email: str
    first_name: str | None
    last_name: str | None
    status: str
    contact: uuid.UUID
    created_at: datetime
    unsubscribed_at: datetime | None
    confirmation_sent_at: datetime | None
    confirmed_at: datetime | None


class SubscriberPageOut(msgspec.Struct):
    subscribers: list[SubscriberOut]
    next_before: int | None


class BadRowOut(msgspec.Struct):
    line: int
    email: str
    reason: str


class ImportOut(msgspec.Struct):
    rows: int
    added: int
    already_subscribed: int
    unsubscribed_not_added: int
    bad_row_count: int
    bad_rows: list[BadRowOut]
    ignored_columns: list[str]


class IssueIn(msgspec.Struct, forbid_unknown_fields=True):
    newsletter: str
    subject: str
    html_body: str
    text_body: str | None = None
    group: str | None = None


class IssueChange(msgspec.Struct, forbid_unknown_fields=True):
    group: str | None


class LinkOut(msgspec.Struct):
    guid: uuid.UUID
    position: int
    target_url: str
    hidden: bool


class RunOut(msgspec.Struct):
    """The last background send run of the issue in the process that answers."""

    running: bool
    started_by: str
    started_at: datetime
    finished_at: datetime | None
    handled: int
    to_send: int
    sent: int | None
    failed: int | None
    deferred: int | None
    skipped_left_group: int | None
    not_members: int | None
    # Deliveries the run skipped because their address is suppressed, per reason.
    skipped_suppressed: int | None
    suppressed_reasons: dict[str, int] | None
    stopped: str | None


class IssueSummaryOut(msgspec.Struct):
    guid: uuid.UUID
    newsletter: str
    subject: str
    status: str
    created_at: datetime
    sent_at: datetime | None
    # When it is (or was) scheduled to go out, and who scheduled it (email/schedule.py).
    scheduled_at: datetime | None
    scheduled_by: str | None
    recipients: int
    sent: int
    open_rate: float | None
    click_rate: float | None


class IssuePageOut(msgspec.Struct):
    issues: list[IssueSummaryOut]
    next_before: int | None


class IssueOut(IssueSummaryOut):
    html_body: str
    text_body: str | None
    links: list[LinkOut]
    deliveries: dict[str, int]
    subscribed: int
    group: str | None
    # True when `group` was deleted after the issue was sent: it may not be sent again.
    group_deleted: bool
    audience: int
    not_members: int
    # Skipped deliveries per reason ("unsubscribed before sending", "suppressed: hard_bounce"),
    # those skipped because their address is suppressed, and the earliest next try of the
    # deferred ones (temporary failures; null when none is deferred).
    skipped: dict[str, int]
    skipped_suppressed: int
    next_attempt_at: datetime | None
    sending: bool
    last_run: RunOut | None


class SendIn(msgspec.Struct, forbid_unknown_fields=True):
    retry_in_doubt: bool = False


class PreviewOut(msgspec.Struct):
    email: str
    first_name: str | None
    last_name: str | None
    subject: str
    html: str
    text: str


class CountOut(msgspec.Struct):
    total: int
    unique: int


class SplitOut(msgspec.Struct):
    human: CountOut
    machine: CountOut
    all: CountOut


class LinkStatsOut(msgspec.Struct):
    guid: uuid.UUID
    position: int
    target_url: str
    hidden: bool
    clicks: SplitOut


class IssueStatsOut(msgspec.Struct):
    issue: uuid.UUID
    subject: str
    sent: int
    failed: int
    # From bounce reports and provider webhooks: sent copies that did not bounce, copies that
    # bounced (hard; soft, each copy once), complaints, and copies not sent (suppressed).
    delivered: int
    bounced_hard: int
    bounced_soft: int
    complaints: int
    skipped_suppressed: int
    bounce_rate: float | None
    complaint_rate: float | None
    deliveries: dict[str, int]
    opens: SplitOut
    clicks: SplitOut
    unsubscribes: int
    open_rate: float | None
    click_through_rate: float | None
    click_to_open_rate: float | None
    links: list[LinkStatsOut]
    # Consent-gated tracking: clicks counted per link only, and copies sent untracked.
    aggregate_clicks: int = 0
    untracked_copies: int = 0


# -- conversions ---------------------------------------------------------------------------------


def newsletter_out(session: Session, summary: NewsletterSummary) -> NewsletterOut:
    n = summary.newsletter
    options = service.newsletter_settings(session, n)
    return NewsletterOut(
        n.guid,
        n.name,
        n.sender_name,
        n.sender_email,
        n.base_url,
        summary.subscribed,
        summary.unsubscribed,
        summary.issues,
        n.created_at,
        n.double_opt_in,
        cast(str | None, options["consent"]),
        cast(str | None, options["tracking_consent"]),
    )


def subscriber_out(row: SubscriberRow) -> SubscriberOut:
    s = row.subscriber
    return SubscriberOut(
        s.id,
        s.email,
        s.first_name,
        s.last_name,
        s.status,
        row.contact_guid,
        s.created_at,
        s.unsubscribed_at,
        s.confirmation_sent_at,
        s.confirmed_at,
    )


def issue_summary_out(row: IssueRow) -> IssueSummaryOut:
    issue = row.issue
    return IssueSummaryOut(
        guid=issue.guid,
        newsletter=row.newsletter,
        subject=issue.subject,
        status=issue.status,
        created_at=issue.created_at,
        sent_at=issue.sent_at,
        scheduled_at=issue.scheduled_at,
        scheduled_by=issue.scheduled_by,
        recipients=row.recipients,
        sent=row.sent,
        open_rate=row.open_rate,
        click_rate=row.click_rate,
    )


def run_out(run: SendRun) -> RunOut:
    report = run.report
    return RunOut(
        running=run.running,
        started_by=run.started_by,
        started_at=run.started_at,
        finished_at=run.finished_at,
        handled=run.handled,
        to_send=run.to_send,
        sent=report.sent if report is not None else None,
        failed=report.failed if report is not None else None,
        deferred=report.deferred if report is not None else None,
        skipped_left_group=report.skipped_left_group if report is not None else None,
        not_members=report.not_members if report is not None else None,
        skipped_suppressed=report.skipped_suppressed if report is not None else None,
        suppressed_reasons=dict(report.suppressed_reasons) if report is not None else None,
        stopped=run.stopped_reason,
    )


def _split(split: stats.Split) -> SplitOut:
    return SplitOut(
        CountOut(split.human.total, split.human.unique),
        CountOut(split.machine.total, split.machine.unique),
        CountOut(split.all.total, split.all.unique),
    )


def stats_out(figures: stats.IssueStats) -> IssueStatsOut:
    return IssueStatsOut(
        issue=figures.issue_guid,
        subject=figures.subject,
        sent=figures.sent,
        failed=figures.failed,
        delivered=figures.delivered,
        bounced_hard=figures.deliverability.bounced_hard,
        bounced_soft=figures.deliverability.bounced_soft,
        complaints=figures.deliverability.complaints,
        skipped_suppressed=figures.deliverability.skipped_suppressed,
        bounce_rate=figures.bounce_rate,
        complaint_rate=figures.complaint_rate,
        deliveries=dict(figures.deliveries),
        opens=_split(figures.opens),
        clicks=_split(figures.clicks),
        unsubscribes=figures.unsubscribes,
        open_rate=figures.open_rate,
        click_through_rate=figures.click_through_rate,
        click_to_open_rate=figures.click_to_open_rate,
        links=[
            LinkStatsOut(
                link.guid, link.position, link.target_url, link.hidden, _split(link.clicks)
            )
            for link in figures.links
        ],
        aggregate_clicks=figures.aggregate_clicks,
        untracked_copies=figures.untracked_copies,
    )


def import_out(report: ImportReport) -> ImportOut:
    return ImportOut(
        rows=report.rows,
        added=report.added,
        already_subscribed=report.already_subscribed,
        unsubscribed_not_added=report.unsubscribed,
        bad_row_count=report.bad_count,
        bad_rows=[BadRowOut(b.line, b.email, b.reason) for b in report.bad_rows],
        ignored_columns=list(report.ignored_columns),
    )


def _cursor(call: ApiCall, name: str) -> int | None:
    return call.query_int(name, 0, minimum=1, maximum=MAX_ID) or None


def _limit(call: ApiCall) -> int:
    return call.query_int("limit", overview.PAGE_SIZE, maximum=overview.MAX_PAGE_SIZE)


# -- newsletters ---------------------------------------------------------------------------------


@router.get("/api/newsletters", response=list[NewsletterOut])
async def list_newsletters(call: ApiCall) -> list[NewsletterOut]:
    """List the newsletters with their subscriber and issue counts."""
    return await call.hub.read(
        lambda s: [newsletter_out(s, n) for n in overview.newsletter_summaries(s)]
    )


@router.post("/api/newsletters", body=NewsletterIn, response=NewsletterOut, status=201)
async def create_newsletter(call: ApiCall, body: NewsletterIn) -> NewsletterOut:
    """Create a newsletter: its name, sender, and the public base URL its tracking links use;
    optionally `double_opt_in`, its `consent` and a `tracking_consent` (consent code names)."""

    def work(session: Session) -> NewsletterOut:
        newsletter = service.create_newsletter(
            session,
            body.name,
            body.sender_name,
            body.sender_email,
            body.base_url,
            double_opt_in=body.double_opt_in,
            consent=body.consent,
            tracking_consent=body.tracking_consent,
            actor=call.actor,
        )
        return newsletter_out(session, overview.newsletter_summary(session, newsletter))

    return await call.hub.write(work)


def _change(value: str | msgspec.UnsetType | None) -> str | None:
    # The service's convention: None leaves a setting as it is, "" removes it.
    if value is msgspec.UNSET:
        return None
    return "" if value is None else value


@router.patch("/api/newsletters/{name}", body=NewsletterChange, response=NewsletterOut)
async def change_newsletter(call: ApiCall, body: NewsletterChange) -> NewsletterOut:
    """Change a newsletter's subscription settings: `double_opt_in` (needs a `consent`),
    `consent` and `tracking_consent` (consent code names; null removes one). Absent
    properties stay as they are."""
    key = call.path("name")

    def work(session: Session) -> NewsletterOut:
        found = overview.find_newsletter(session, key)
        newsletter = service.update_newsletter(
            session,
            found.name,
            double_opt_in=None if body.double_opt_in is msgspec.UNSET else body.double_opt_in,
            consent=_change(body.consent),
            tracking_consent=_change(body.tracking_consent),
            actor=call.actor,
        )
        return newsletter_out(session, overview.newsletter_summary(session, newsletter))

    return await call.hub.write(work)


@router.get("/api/newsletters/{name}", response=NewsletterOut)
async def get_newsletter(call: ApiCall) -> NewsletterOut:
    """A newsletter, by name or GUID."""
    key = call.path("name")
    return await call.hub.read(
        lambda s: newsletter_out(
            s, overview.newsletter_summary(s, overview.find_newsletter(s, key))
        )
    )


# -- subscribers ---------------------------------------------------------------------------------


@router.get(
    "/api/newsletters/{name}/subscribers",
    response=SubscriberPageOut,
    query=(
        QueryParam(
            "status",
            "Only `subscribed`, `unsubscribed` or `unconfirmed` (double opt-in) subscribers.",
            enum=("subscribed", "unsubscribed", "unconfirmed"),
        ),
        QueryParam("q", "Only addresses containing this text."),
        BEFORE,
        LIMIT,
    ),
)
async def list_subscribers(call: ApiCall) -> SubscriberPageOut:
    """A newsletter's subscribers, newest first, paged by keyset (`next_before`)."""
    key, wanted, search = call.path("name"), call.query("status"), call.query("q")[:254]
    before, limit = _cursor(call, "before"), _limit(call)

    def work(session: Session) -> SubscriberPageOut:
        newsletter = overview.find_newsletter(session, key)
        page = overview.subscriber_page(
            session,
            newsletter,
            status=wanted or None,
            search=search,
            before=before,
            limit=limit,
        )
        return SubscriberPageOut([subscriber_out(r) for r in page.items], page.older)

    return await call.hub.read(work)


@router.post(
    "/api/newsletters/{name}/subscribers", body=SubscriberIn, response=SubscriberOut, status=201
)
async def add_subscriber(call: ApiCall, body: SubscriberIn) -> SubscriberOut:
    """Subscribe an address (linked to its contact); subscribes an unsubscribed one again.

    On a double opt-in newsletter the address stays `unconfirmed` and gets the confirmation
    email, unless `confirmed` is true (the operator vouches for the person's consent). 503
    `confirmation_not_sent` when the SMTP server did not take it (the address is kept
    unconfirmed: add it again to retry).
    """
    key = call.path("name")
    hub = call.hub

    def work(session: Session) -> tuple[SubscriberOut, optin.Confirmation | None]:
        newsletter = overview.find_newsletter(session, key)
        subscriber, confirmation = optin.add_subscriber(
            session,
            newsletter.name,
            body.email,
            body.first_name,
            body.last_name,
            confirmed=body.confirmed,
            signer=hub.link_signer,
            actor=call.actor,
        )
        return _subscriber(session, newsletter.name, subscriber.email), confirmation

    added, confirmation = await hub.write(work)
    if confirmation is not None:
        sent = await anyio.to_thread.run_sync(
            optin.send_now, hub.database, hub.settings, confirmation
        )
        if not sent:
            raise optin.not_sent()
    return added


def _subscriber(session: Session, newsletter: str, email: str) -> SubscriberOut:
    subscriber = service.get_subscriber(session, newsletter, email)
    contact = overview.contact_guid(session, subscriber.contact_id)
    return subscriber_out(SubscriberRow(subscriber, contact))


@router.post("/api/newsletters/{name}/subscribers/{email}/unsubscribe", response=SubscriberOut)
async def unsubscribe(call: ApiCall) -> SubscriberOut:
    """Unsubscribe an address, as its unsubscribe link would (idempotent)."""
    key, email = call.path("name"), call.path("email")

    def work(session: Session) -> SubscriberOut:
        newsletter = overview.find_newsletter(session, key)
        subscriber = service.get_subscriber(session, newsletter.name, email)
        service.unsubscribe(session, subscriber, actor=call.actor)
        return _subscriber(session, newsletter.name, subscriber.email)

    return await call.hub.write(work)


@router.post("/api/newsletters/{name}/subscribers/import", response=ImportOut, raw_body="text/csv")
async def import_subscribers(call: ApiCall) -> ImportOut:
    """Import subscribers from a CSV body (`Content-Type: text/csv`, UTF-8, at most 20 MiB).

    A header row, then one subscriber a line: `email` (required), `first_name`, `last_name`.
    Bad rows are skipped and listed with their line and reason; addresses already known to the
    newsletter are left alone (an import never subscribes an unsubscribed address again).
    """
    key = call.path("name")
    media_type = call.request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type not in ("text/csv", "text/plain"):
        raise UnsupportedMediaType(
            "Send the CSV with Content-Type: text/csv.", code="unsupported_media_type"
        )
    name = await call.hub.read(lambda s: overview.find_newsletter(s, key).name)
    body = await read_body(call.request, MAX_CSV_BYTES)
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInput(
            f"The body is not UTF-8 text (byte {error.start}).", code="invalid_csv"
        ) from None
    report = await anyio.to_thread.run_sync(
        lambda: importer.import_csv(
            call.hub.database, name, io.StringIO(text, newline=""), actor=call.actor
        )
    )
    return import_out(report)


# -- issues --------------------------------------------------------------------------------------


@router.get(
    "/api/issues",
    response=IssuePageOut,
    query=(
        QueryParam("newsletter", "Only the issues of this newsletter (name or GUID)."),
        BEFORE,
        QueryParam(
            "limit",
            f"Issues per page, 1 to {overview.MAX_PAGE_SIZE} (default {overview.ISSUE_PAGE_SIZE}).",
            "integer",
            minimum=1,
            maximum=overview.MAX_PAGE_SIZE,
        ),
    ),
)
async def list_issues(call: ApiCall) -> IssuePageOut:
    """Issues of every newsletter, newest first, with their rates; paged by `next_before`."""
    key, before = call.query("newsletter"), _cursor(call, "before")
    limit = call.query_int("limit", overview.ISSUE_PAGE_SIZE, maximum=overview.MAX_PAGE_SIZE)

    def work(session: Session) -> IssuePageOut:
        newsletter = overview.find_newsletter(session, key, field="newsletter") if key else None
        page = overview.issue_page(session, newsletter=newsletter, before=before, limit=limit)
        return IssuePageOut([issue_summary_out(row) for row in page.items], page.older)

    return await call.hub.read(work)


@router.post("/api/issues", body=IssueIn, response=IssueOut, status=201)
async def create_issue(call: ApiCall, body: IssueIn) -> IssueOut:
    """Create a draft issue; every http(s) link of its HTML becomes a tracked link.

    `group` (a contact group's name) sends it only to the subscribers who are members of that
    group when it is sent; left out (or null), it goes to every subscriber.
    Placeholders: `{{ first_name }}`, `{{ last_name }}`, `{{ email }}`,
    `{{ first_name | "there" }}`, `{{ unsubscribe_url }}`, `{{ view_in_browser_url }}`.
    """

    def work(session: Session) -> IssueOut:
        newsletter = overview.find_newsletter(session, body.newsletter, field="newsletter")
        issue = service.create_issue(
            session,
            newsletter.name,
            body.subject,
            body.html_body,
            body.text_body,
            group=body.group,
            actor=call.actor,
        )
        return _issue_out(session, issue, None)

    return await call.hub.write(work)


@router.patch("/api/issues/{guid}", body=IssueChange, response=IssueOut)
async def change_issue(call: ApiCall, body: IssueChange) -> IssueOut:
    """Set the group a draft issue is sent to: a contact group's name, or null for every
    subscriber. 409 `issue_not_draft` once its sending has started."""
    guid = call.path("guid")
    registry = background.registry_of(call.request)

    def work(session: Session) -> IssueOut:
        issue = service.get_issue(session, guid)
        issue = service.set_issue_group(session, issue, body.group, actor=call.actor)
        return _issue_out(session, issue, registry.get(issue.guid))

    return await call.hub.write(work)


def _issue_out(session: Session, issue: EmailIssue, run: SendRun | None) -> IssueOut:
    # Whether the run is going, taken before the issue is read (again): a run that ends in
    # between must not answer "not sending" with the status it had before its last commit.
    sending = run is not None and run.running
    session.refresh(issue)
    [row] = overview.issue_rows(session, [issue])
    progress = overview.send_progress(session, issue)
    summary = service.describe_issue(session, issue)
    return IssueOut(
        **msgspec.structs.asdict(issue_summary_out(row)),
        html_body=issue.html_body,
        text_body=issue.text_body,
        links=[
            LinkOut(link.guid, link.position, link.target_url, link.hidden)
            for link in summary.links
        ],
        deliveries=dict(progress.deliveries),
        subscribed=progress.subscribed,
        group=progress.group or progress.deleted_group,
        group_deleted=progress.deleted_group is not None,
        audience=progress.audience,
        not_members=progress.not_members,
        skipped=dict(progress.skipped_reasons),
        skipped_suppressed=progress.skipped_suppressed,
        next_attempt_at=progress.next_attempt_at,
        sending=sending,
        last_run=run_out(run) if run is not None else None,
    )


@router.get("/api/issues/{guid}", response=IssueOut)
async def get_issue(call: ApiCall) -> IssueOut:
    """An issue with its links and where its sending stands (delivery counts, last run)."""
    guid = call.path("guid")
    registry = background.registry_of(call.request)

    def work(session: Session) -> IssueOut:
        issue = service.get_issue(session, guid)
        return _issue_out(session, issue, registry.get(issue.guid))

    return await call.hub.read(work)


@router.get(
    "/api/issues/{guid}/preview",
    response=PreviewOut,
    query=(QueryParam("email", "Preview as this subscriber (default: the first one)."),),
)
async def preview_issue(call: ApiCall) -> PreviewOut:
    """The issue as a subscriber would receive it; its tracking links are signed with a
    throwaway key, so nothing done with a preview is counted."""
    guid, email = call.path("guid"), call.query("email")[:254]

    def work(session: Session) -> PreviewOut:
        found = overview.preview_issue(session, service.get_issue(session, guid), email or None)
        recipient, rendered = found.recipient, found.email
        return PreviewOut(
            recipient.email,
            recipient.first_name,
            recipient.last_name,
            rendered.subject,
            rendered.html,
            rendered.text,
        )

    return await call.hub.read(work)


@router.post("/api/issues/{guid}/send", body=SendIn, response=IssueOut, status=202)
async def send_issue(call: ApiCall, body: SendIn) -> IssueOut:
    """Start sending the issue in the background to every subscriber who has not had it.

    Answers 202 at once; `GET /api/issues/{guid}` shows the progress. 409 `issue_sending`
    while this server sends the issue already; 409 `group_deleted` for an issue sent to a group
    that has since been deleted (sending it again would reach every subscriber). The body is
    `{}`, or `{"retry_in_doubt": true}` to also send again the messages a crashed run left in doubt.
    """
    registry = background.registry_of(call.request)
    run = await background.start_send(
        call.hub, registry, call.path("guid"), call.actor, retry_in_doubt=body.retry_in_doubt
    )

    def work(session: Session) -> IssueOut:
        return _issue_out(session, service.get_issue(session, run.issue_guid), run)

    return await call.hub.read(work)


@router.get("/api/issues/{guid}/stats", response=IssueStatsOut)
async def issue_stats(call: ApiCall) -> IssueStatsOut:
    """The issue's statistics: deliveries, opens and clicks (human, machine, all; total and
    unique), per link, unsubscribes, and rates (human, per sent message).

    `delivered` is sent minus bounced (`bounced_hard` + `bounced_soft`, each copy once);
    `complaints` counts copies reported as spam; `skipped_suppressed` copies not sent because
    the address is on the suppression list.
    """
    guid = call.path("guid")
    return await call.hub.read(
        lambda s: stats_out(stats.issue_stats(s, service.get_issue(s, guid).guid))
    )


# -- schedules and test sends (email/schedule.py, email/testsend.py) -----------------------------


class ScheduleIn(msgspec.Struct, forbid_unknown_fields=True):
    at: str


class TestSendIn(msgspec.Struct, forbid_unknown_fields=True):
    to: list[str]


class TestRefusalOut(msgspec.Struct):
    email: str
    reason: str


class TestSendOut(msgspec.Struct):
    issue: uuid.UUID
    subject: str
    sent: list[str]
    failed: list[TestRefusalOut]


@router.post("/api/issues/{guid}/schedule", body=ScheduleIn, response=IssueOut)
async def schedule_issue(call: ApiCall, body: ScheduleIn) -> IssueOut:
    """Schedule a draft issue to be sent at `at`, an ISO 8601 time with its UTC offset
    (`2026-12-24T09:00:00+01:00` or `…Z`), in the future; again to reschedule it.

    The hub sends it at that time (within `schedule_interval` seconds), once. 409
    `issue_not_draft` once its sending has started; 400 `invalid_time` without an offset,
    `time_in_past` for a time that has passed.
    """
    guid = call.path("guid")
    at = schedule.parse_time(body.at)
    registry = background.registry_of(call.request)

    def work(session: Session) -> IssueOut:
        issue = schedule.schedule_issue(
            session, service.get_issue(session, guid), at, actor=call.actor
        )
        return _issue_out(session, issue, registry.get(issue.guid))

    return await call.hub.write(work)


@router.delete("/api/issues/{guid}/schedule", response=IssueOut)
async def cancel_schedule(call: ApiCall) -> IssueOut:
    """Cancel the issue's schedule (also a missed one): it is a draft again. 409
    `not_scheduled` when it is not scheduled (or has fired: it is sending)."""
    guid = call.path("guid")
    registry = background.registry_of(call.request)

    def work(session: Session) -> IssueOut:
        issue = schedule.cancel_schedule(
            session, service.get_issue(session, guid), actor=call.actor
        )
        return _issue_out(session, issue, registry.get(issue.guid))

    return await call.hub.write(work)


@router.post("/api/issues/{guid}/schedule/confirm", response=IssueOut, status=202)
async def confirm_schedule(call: ApiCall) -> IssueOut:
    """Send now an issue whose schedule was missed (status `schedule_missed`: the hub was down
    at its time, for longer than `schedule_grace`). Answers 202 as sending starts, like
    `POST /api/issues/{guid}/send`. 409 `schedule_not_missed` for any other status."""
    guid = call.path("guid")
    registry = background.registry_of(call.request)

    def claim(session: Session) -> uuid.UUID:
        issue = schedule.confirm_schedule(
            session, service.get_issue(session, guid), actor=call.actor
        )
        return issue.guid

    issue_guid = await call.hub.write(claim)
    run = schedule.start_confirmed_send(call.hub, registry, issue_guid, call.actor)

    def work(session: Session) -> IssueOut:
        return _issue_out(session, service.get_issue(session, issue_guid), run)

    return await call.hub.read(work)


@router.post("/api/issues/{guid}/test", body=TestSendIn, response=TestSendOut)
async def test_send(call: ApiCall, body: TestSendIn) -> TestSendOut:
    """Send a test copy of the issue (any status) to 1 to 10 addresses (`{"to": [...]}`):
    subject prefixed `[Test] `, no tracking, not counted anywhere. Answers once the SMTP server
    has answered for each address: `sent`, and `failed` with the server's reason. 503
    `smtp_unavailable` when the server cannot be reached or refuses the login."""
    guid = call.path("guid")
    recipients = testsend.clean_recipients(body.to)
    hub = call.hub

    def work() -> testsend.TestSendReport:
        with sending.smtp_mailer(hub.settings) as mailer:
            return testsend.send_test(
                hub.database, guid, recipients, mailer, signer=hub.link_signer, actor=call.actor
            )

    report = await anyio.to_thread.run_sync(work)
    return TestSendOut(
        uuid.UUID(report.issue_guid),
        report.subject,
        report.sent,
        [TestRefusalOut(f.email, f.reason) for f in report.failed],
    )
