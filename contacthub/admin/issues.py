"""Admin pages for email issues: list, compose, preview, send (with progress), statistics.

- `/admin/issues`: the issues of every newsletter, newest first, with their rates.
- `/admin/issues/new`: compose an issue (a draft), for every subscriber or a contact group's.
- `POST /admin/issues/{guid}/group`: change the group a draft is sent to.
- `/admin/issues/{guid}`: details, sending progress, the send button, and the preview: a
  sandboxed iframe of `/admin/issues/{guid}/preview`, the issue as a subscriber receives it,
  served with a CSP of its own (no scripts, framed by the admin only).
- `POST /admin/issues/{guid}/send`: starts sending in the background (`email.background`) and
  goes back to the issue page, which refreshes itself while this process sends.
- `/admin/issues/{guid}/stats`: the statistics, human and machine apart, per link.
- `/admin/issues/{guid}/engagement`: who opened or clicked, a page at a time (human only unless
  `?machines=yes`); `POST …/engagement/export` downloads them all as CSV (audited as
  `issue.engagement_exported`). The issue page shows opens and clicks over time as a chart.
- `POST /admin/issues/{guid}/schedule` (and `/schedule/cancel`, `/schedule/confirm`): schedule
  a draft for a time (`email.schedule`), cancel it, or send now a missed schedule.
- `POST /admin/issues/{guid}/test`: send a test copy to a few addresses (`email.testsend`).
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

import anyio.to_thread
from markupsafe import Markup
from sqlalchemy.orm import Session
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

from contacthub.admin import charts
from contacthub.admin.email import cursor, detached
from contacthub.admin.web import Admin, form_errors, page, public_origin
from contacthub.csv_export import MEDIA_TYPE, attachment
from contacthub.email import (
    background,
    engagement,
    overview,
    schedule,
    sending,
    service,
    stats,
    testsend,
)
from contacthub.email.compose import TrackedLink
from contacthub.email.pages import EMAIL_CONTENT_POLICY
from contacthub.errors import HubError
from contacthub.groups import service as groups
from contacthub.storage.models import Newsletter

ISSUE_FIELDS = ("newsletter", "group", "subject", "html_body", "text_body")
ALL_SUBSCRIBERS = "All subscribers"

# The preview is the email's own HTML: it may style itself inline and load remote images (as
# mail clients do), but runs nothing, submits nothing, and only the admin may frame it.
PREVIEW_HEADERS = {
    "Content-Security-Policy": f"{EMAIL_CONTENT_POLICY}; frame-ancestors 'self'; sandbox",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "no-referrer",
}


def issue_path(guid: object) -> str:
    return f"/admin/issues/{guid}"


def hub_url(admin: Admin) -> str:
    """This hub's own URL: previews point their (dead) tracking links here, not at the
    newsletter's public site, so that showing one loads nothing from elsewhere."""
    return public_origin(admin.request)


def _guid(admin: Admin) -> str:
    return str(admin.request.path_params["guid"])


async def issues(admin: Admin) -> Response:
    """Every issue, newest first, optionally of one newsletter."""
    chosen = admin.param("newsletter")
    before, after = cursor(admin, "before"), cursor(admin, "after")

    def work(session: Session) -> dict[str, Any]:
        newsletter = overview.find_newsletter(session, chosen) if chosen else None
        return detached(
            session,
            {
                "page_of": overview.issue_page(
                    session, newsletter=newsletter, before=before, after=after
                ),
                "newsletters": [n.name for n in service.list_newsletters(session)],
            },
        )

    context = await admin.hub.read(work)
    page_of = context["page_of"]

    def link(**changes: int | None) -> str:
        merged = {k: v for k, v in {"newsletter": chosen, **changes}.items() if v not in (None, "")}
        return f"/admin/issues?{urlencode(merged)}"

    return admin.render(
        "email/issues.html",
        chosen=chosen,
        newer_url=link(after=page_of.newer) if page_of.newer is not None else None,
        older_url=link(before=page_of.older) if page_of.older is not None else None,
        **context,
    )


def group_options(session: Session) -> list[tuple[str, str]]:
    """(name, label) of every contact group an issue may be sent to, with its member count."""
    return [
        (g.group.name, f"{g.group.name} ({g.members:,} contacts)")
        for g in groups.list_groups(session)
    ]


async def _options(admin: Admin) -> dict[str, Any]:
    """The choices of the compose form: newsletters, and the groups an issue may go to."""

    def work(session: Session) -> dict[str, Any]:
        return {
            "options": [(n.name, n.name) for n in service.list_newsletters(session)],
            "group_options": group_options(session),
        }

    return await admin.hub.read(work)


async def new_issue(admin: Admin) -> Response:
    """The form that composes an issue (`?newsletter=` and `?group=` preselect them)."""
    values = {"newsletter": admin.param("newsletter"), "group": admin.param("group")}
    return admin.render("email/issue_new.html", values=values, errors={}, **await _options(admin))


async def create_issue(admin: Admin) -> Response:
    """Create a draft issue; on a mistake, the form again with the message by the field."""
    values = {name: admin.field(name) for name in ISSUE_FIELDS}
    # Bodies keep their whitespace (`field` strips): it may matter in <pre> or plain text.
    for name in ("html_body", "text_body"):
        raw = admin.form.get(name) if admin.form is not None else None
        values[name] = raw if isinstance(raw, str) else ""

    def work(session: Session) -> str:
        issue = service.create_issue(
            session,
            values["newsletter"],
            values["subject"],
            values["html_body"],
            values["text_body"] or None,
            group=values["group"] or None,
            actor=admin.actor,
        )
        return str(issue.guid)

    try:
        guid = await admin.hub.write(work)
    except HubError as error:
        return admin.render(
            "email/issue_new.html",
            status=error.status_code,
            values=values,
            errors=form_errors(error),
            **await _options(admin),
        )
    return admin.redirect(
        issue_path(guid), flash="Issue created as a draft. Preview it, then send."
    )


async def issue(admin: Admin) -> Response:
    """An issue: details, progress, preview and the send button."""
    return await _issue_page(admin)


async def _issue_page(
    admin: Admin,
    status: int = 200,
    *,
    schedule_values: dict[str, str] | None = None,
    schedule_errors: dict[str, str] | None = None,
    test_to: str = "",
    test_errors: dict[str, str] | None = None,
    test_report: testsend.TestSendReport | None = None,
) -> Response:
    """The issue page, with what a schedule or test-send form left to show (its errors)."""
    guid = _guid(admin)
    preview_as = admin.param("email")[:254]
    here = hub_url(admin)
    machines = _with_machines(admin)

    def work(session: Session) -> dict[str, Any]:
        found = service.get_issue(session, guid)
        summary = service.describe_issue(session, found)
        line = engagement.timeline(session, found.guid, include_machines=machines)
        [row] = overview.issue_rows(session, [found])
        try:
            preview = overview.preview_issue(session, found, preview_as or None, base_url=here)
            preview_error = None
        except HubError as error:
            preview = overview.preview_issue(session, found, base_url=here)
            preview_error = error.message
        return detached(
            session,
            {
                "issue": found,
                "newsletter": summary.newsletter_name,
                "newsletter_guid": session.get_one(Newsletter, found.newsletter_id).guid,
                "links": [
                    TrackedLink(link.guid, link.target_url, link.hidden) for link in summary.links
                ],
                "row": row,
                "progress": overview.send_progress(session, found),
                "group_options": group_options(session) if found.status == "draft" else [],
                "preview": preview,
                "preview_error": preview_error,
                "timeline": line,
            },
        )

    context = await admin.hub.read(work)
    run = background.registry_of(admin.request).get(context["issue"].guid)
    preview_src = f"{issue_path(context['issue'].guid)}/preview"
    if preview_as and context["preview_error"] is None:
        preview_src += "?" + urlencode({"email": preview_as})
    return admin.render(
        "email/issue.html",
        status,
        run=run,
        preview_as=preview_as,
        preview_src=preview_src,
        machines=machines,
        timeline_chart=timeline_chart(context["timeline"]),
        schedule_values=schedule_values or {},
        schedule_errors=schedule_errors or {},
        test_to=test_to,
        test_errors=test_errors or {},
        test_report=test_report,
        max_test_recipients=testsend.MAX_RECIPIENTS,
        **context,
    )


async def preview(admin: Admin) -> Response:
    """The issue's HTML as a subscriber receives it (tracking links dead), for the iframe."""
    guid = _guid(admin)
    email = admin.param("email")[:254]
    here = hub_url(admin)

    def work(session: Session) -> str:
        found = service.get_issue(session, guid)
        return overview.preview_issue(session, found, email or None, base_url=here).email.html

    html = await admin.hub.read(work)
    # Set before the wrapper adds the admin's headers, which it adds only where none is set.
    return HTMLResponse(html, 200, PREVIEW_HEADERS)


async def send(admin: Admin) -> Response:
    """Start sending the issue in the background; the issue page shows the progress."""
    guid = _guid(admin)
    run = await background.start_send(
        admin.hub,
        background.registry_of(admin.request),
        guid,
        admin.actor,
        retry_in_doubt=admin.field("retry_in_doubt") == "yes",
    )
    return admin.redirect(issue_path(run.issue_guid), flash="Sending started.")


async def set_group(admin: Admin) -> Response:
    """Send a draft to a contact group's members, or (no group chosen) to every subscriber."""
    guid = _guid(admin)
    group = admin.field("group") or None

    def work(session: Session) -> str:
        found = service.set_issue_group(
            session, service.get_issue(session, guid), group, actor=admin.actor
        )
        return str(found.guid)

    guid = await admin.hub.write(work)
    flash = (
        f"It will go to the members of {group}."
        if group
        else f"It will go to {ALL_SUBSCRIBERS.lower()}."
    )
    return admin.redirect(issue_path(guid), flash=flash)


# -- schedules and test sends (email/schedule.py, email/testsend.py) -----------------------------


async def schedule_send(admin: Admin) -> Response:
    """Schedule (or reschedule) the issue: `at` is a `datetime-local` value in the time zone
    `timezone` (the browser's, which admin.js fills in; UTC without JavaScript)."""
    guid = _guid(admin)
    values = {"at": admin.field("at"), "timezone": admin.field("timezone")}
    try:
        at = schedule.local_time(values["at"], values["timezone"])

        def work(session: Session) -> None:
            schedule.schedule_issue(
                session, service.get_issue(session, guid), at, actor=admin.actor
            )

        await admin.hub.write(work)
    except HubError as error:
        return await _issue_page(
            admin, error.status_code, schedule_values=values, schedule_errors=form_errors(error)
        )
    zone = values["timezone"] or "UTC"
    local = "" if zone == "UTC" else f" ({values['at'].replace('T', ' ')} {zone})"
    return admin.redirect(
        issue_path(guid),
        flash=f"Scheduled for {at.strftime('%Y-%m-%d %H:%M')} UTC{local}.",
    )


async def cancel_schedule(admin: Admin) -> Response:
    """Cancel the issue's schedule: it is a draft again."""
    guid = _guid(admin)

    def work(session: Session) -> None:
        schedule.cancel_schedule(session, service.get_issue(session, guid), actor=admin.actor)

    await admin.hub.write(work)
    return admin.redirect(issue_path(guid), flash="Schedule cancelled: the issue is a draft again.")


async def confirm_schedule(admin: Admin) -> Response:
    """Send now an issue whose schedule was missed."""
    guid = _guid(admin)

    def work(session: Session) -> uuid.UUID:
        return schedule.confirm_schedule(
            session, service.get_issue(session, guid), actor=admin.actor
        ).guid

    issue_guid = await admin.hub.write(work)
    registry = background.registry_of(admin.request)
    schedule.start_confirmed_send(admin.hub, registry, issue_guid, admin.actor)
    return admin.redirect(issue_path(guid), flash="Sending started.")


async def test_send(admin: Admin) -> Response:
    """Send a test copy to the addresses of the `to` field (one a line, or comma-separated)."""
    guid = _guid(admin)
    to = admin.field("to")
    addresses = [a for a in to.replace(",", "\n").split() if a]
    hub = admin.hub

    def work() -> testsend.TestSendReport:
        with sending.smtp_mailer(hub.settings) as mailer:
            return testsend.send_test(
                hub.database, guid, addresses, mailer, signer=hub.link_signer, actor=admin.actor
            )

    try:
        recipients = testsend.clean_recipients(addresses)
        report = await anyio.to_thread.run_sync(work)
    except HubError as error:
        errors = {"to": error.message} if error.field in (None, "to") else form_errors(error)
        return await _issue_page(admin, error.status_code, test_to=to, test_errors=errors)
    if report.failed:
        return await _issue_page(admin, test_to=to, test_report=report)
    return admin.redirect(issue_path(guid), flash=f"Test sent to {', '.join(recipients)}.")


async def issue_stats(admin: Admin) -> Response:
    """The issue's statistics: deliveries, opens, clicks (human, machine, all), per link."""
    guid = _guid(admin)

    def work(session: Session) -> dict[str, Any]:
        found = service.get_issue(session, guid)
        summary = service.describe_issue(session, found)
        return detached(
            session,
            {
                "issue": found,
                "newsletter": summary.newsletter_name,
                "stats": stats.issue_stats(session, found.guid),
            },
        )

    context = await admin.hub.read(work)
    figures: stats.IssueStats = context["stats"]
    return admin.render(
        "email/issue_stats.html",
        chart=engagement_chart(figures),
        link_chart=link_chart(figures),
        **context,
    )


# -- charts --------------------------------------------------------------------------------------
# Rows of two thin bars (human, machine), as long as their share of the largest figure; the
# template draws them as SVG with attributes only (the admin's CSP forbids style attributes).


def _share(value: int, largest: int) -> float:
    return round(100 * value / largest, 1) if largest > 0 else 0.0


def _bar_rows(rows: list[tuple[str, str, int, int]]) -> dict[str, Any]:
    largest = max([max(human, machine) for _, _, human, machine in rows] + [0])
    return {
        "rows": [
            {
                "label": label,
                "title": title,
                "human": human,
                "machine": machine,
                "human_share": _share(human, largest),
                "machine_share": _share(machine, largest),
            }
            for label, title, human, machine in rows
        ]
    }


def engagement_chart(figures: stats.IssueStats) -> dict[str, Any]:
    """Opens and clicks, unique and total, human against machine."""
    return _bar_rows(
        [
            ("Unique opens", "Subscribers who opened", *_pair(figures.opens, "unique")),
            ("Unique clicks", "Subscribers who clicked", *_pair(figures.clicks, "unique")),
            ("Total opens", "Opens, reopens included", *_pair(figures.opens, "total")),
            ("Total clicks", "Clicks, repeated ones included", *_pair(figures.clicks, "total")),
        ]
    )


def _pair(split: stats.Split, part: str) -> tuple[int, int]:
    return getattr(split.human, part), getattr(split.machine, part)


def link_chart(figures: stats.IssueStats) -> dict[str, Any]:
    """Each link's clicks, human against machine."""
    return _bar_rows(
        [
            (
                ("Hidden honeypot: " if link.hidden else "") + link.target_url,
                link.target_url,
                link.clicks.human.total,
                link.clicks.machine.total,
            )
            for link in figures.links
        ]
    )


# -- engagement ----------------------------------------------------------------------------------


def _with_machines(admin: Admin) -> bool:
    """Machine traffic counts only when asked (`machines=yes`, in the query or the form)."""
    return "yes" in (admin.param("machines"), admin.field("machines"))


def timeline_chart(line: engagement.Timeline) -> Markup | None:
    """Opens and clicks over time: an hour a slot for two days, then a day a slot."""
    if line.started_at is None:
        return None
    labels, tooltips = [], []
    for index, bucket in enumerate(line.buckets):
        # Slots are all as wide: a label every 6 hours, then on the first day and each week.
        day = (index - engagement.HOURLY_HOURS) + 2
        shown = index % 6 == 0 if bucket.hourly else day == 2 or (day % 7 == 0)
        labels.append(engagement.bucket_label(line, bucket) if shown else "")
        end = "later" if bucket.end is None else f"{bucket.end:%d %b %H:%M}"
        tooltips.append(f"{bucket.start:%d %b %Y %H:%M}–{end} UTC")
    kind = "human and machine" if line.include_machines else "human"
    return charts.line_chart(
        labels,
        tooltips,
        [
            charts.ChartSeries("Opens", [b.opens for b in line.buckets]),
            charts.ChartSeries("Clicks", [b.clicks for b in line.buckets]),
        ],
        label=f"Opens and clicks ({kind}) since the issue went out",
        empty="No opens or clicks yet.",
        divider=(engagement.HOURLY_HOURS, "daily from here")
        if len(line.buckets) > engagement.HOURLY_HOURS
        else None,
    )


async def issue_engagement(admin: Admin) -> Response:
    """Who opened or clicked the issue, a page at a time (by subscriber)."""
    guid = _guid(admin)
    machines = _with_machines(admin)
    after = cursor(admin, "after")

    def work(session: Session) -> dict[str, Any]:
        found = service.get_issue(session, guid)
        summary = service.describe_issue(session, found)
        return detached(
            session,
            {
                "issue": found,
                "newsletter": summary.newsletter_name,
                "people": engagement.people_page(
                    session, found.guid, after=after, include_machines=machines
                ),
            },
        )

    context = await admin.hub.read(work)
    base = f"{issue_path(context['issue'].guid)}/engagement"
    keep = {"machines": "yes"} if machines else {}
    people: engagement.PeoplePage = context["people"]
    next_url = (
        f"{base}?{urlencode({**keep, 'after': people.next_after})}"
        if people.next_after is not None
        else None
    )
    first_url = f"{base}?{urlencode(keep)}" if after else None
    return admin.render(
        "email/issue_engagement.html",
        machines=machines,
        next_url=next_url,
        first_url=first_url,
        **context,
    )


async def export_engagement(admin: Admin) -> Response:
    """Download everyone who opened or clicked as CSV (a POST: it is recorded in the audit log)."""
    guid = _guid(admin)
    machines = _with_machines(admin)

    def start(session: Session) -> engagement.PeopleExport:
        return engagement.start_export(session, guid, include_machines=machines, actor=admin.actor)

    started = await admin.hub.write(start)
    return StreamingResponse(
        engagement.stream(admin.hub.read, started),
        media_type=MEDIA_TYPE,
        headers=attachment(started.filename),
    )


routes = [
    Route("/admin/issues", page(issues), methods=["GET"]),
    Route("/admin/issues/new", page(new_issue), methods=["GET"]),
    Route("/admin/issues/new", page(create_issue), methods=["POST"]),
    Route("/admin/issues/{guid}", page(issue), methods=["GET"]),
    Route("/admin/issues/{guid}/preview", page(preview), methods=["GET"]),
    Route("/admin/issues/{guid}/send", page(send), methods=["POST"]),
    Route("/admin/issues/{guid}/group", page(set_group), methods=["POST"]),
    Route("/admin/issues/{guid}/stats", page(issue_stats), methods=["GET"]),
    Route("/admin/issues/{guid}/engagement", page(issue_engagement), methods=["GET"]),
    Route("/admin/issues/{guid}/engagement/export", page(export_engagement), methods=["POST"]),
    Route("/admin/issues/{guid}/schedule", page(schedule_send), methods=["POST"]),
    Route("/admin/issues/{guid}/schedule/cancel", page(cancel_schedule), methods=["POST"]),
    Route("/admin/issues/{guid}/schedule/confirm", page(confirm_schedule), methods=["POST"]),
    Route("/admin/issues/{guid}/test", page(test_send), methods=["POST"]),
]
