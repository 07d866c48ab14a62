"""`/api/dashboard`: the admin dashboard's figures, as JSON."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import msgspec
from sqlalchemy.orm import Session

from contacthub.analytics import dashboard as service
from contacthub.api.routing import ApiCall, ApiRouter, QueryParam

router = ApiRouter("Dashboard")


class DashboardTotals(msgspec.Struct):
    activities: int
    new_contacts: int
    contacts: int
    email_opens: int
    email_clicks: int


class DashboardSeries(msgspec.Struct):
    key: str
    name: str
    total: int
    values: list[int]


class DashboardTopEntry(msgspec.Struct):
    key: str
    count: int


class DashboardIssue(msgspec.Struct):
    guid: uuid.UUID
    subject: str
    newsletter: str
    status: str
    sent_at: datetime | None
    sent: int
    open_rate: float | None
    click_rate: float | None


class DashboardOut(msgspec.Struct):
    start: date
    end: date
    days: list[date]
    totals: DashboardTotals
    activities_by_type: list[DashboardSeries]
    activities_by_channel: list[DashboardSeries]
    new_contacts: list[int]
    top_pages: list[DashboardTopEntry]
    top_clicks: list[DashboardTopEntry]
    latest_issues: list[DashboardIssue]
    group: str | None


def _series(series: tuple[service.Series, ...]) -> list[DashboardSeries]:
    return [DashboardSeries(s.key, s.name, s.total, list(s.values)) for s in series]


def dashboard_out(board: service.Dashboard) -> DashboardOut:
    totals = board.totals
    return DashboardOut(
        start=board.start,
        end=board.end,
        days=list(board.days),
        totals=DashboardTotals(
            totals.activities,
            totals.new_contacts,
            totals.contacts,
            totals.email_opens,
            totals.email_clicks,
        ),
        activities_by_type=_series(board.by_type),
        activities_by_channel=_series(board.by_channel),
        new_contacts=list(board.new_contacts),
        top_pages=[DashboardTopEntry(e.key, e.count) for e in board.top_pages],
        top_clicks=[DashboardTopEntry(e.key, e.count) for e in board.top_clicks],
        latest_issues=[
            DashboardIssue(
                i.guid,
                i.subject,
                i.newsletter,
                i.status,
                i.sent_at,
                i.sent,
                i.open_rate,
                i.click_rate,
            )
            for i in board.latest_issues
        ],
        group=board.group,
    )


@router.get(
    "/api/dashboard",
    response=DashboardOut,
    query=(
        QueryParam(
            "start", "First UTC day, YYYY-MM-DD (default: 29 days before `end`).", format="date"
        ),
        QueryParam("end", "Last UTC day, YYYY-MM-DD, included (default: today).", format="date"),
        QueryParam(
            "group",
            "Count only the current members of the group with this name (default: everyone).",
        ),
    ),
)
async def get_dashboard(call: ApiCall) -> DashboardOut:
    """The dashboard's figures for a range of UTC days (at most 366; the last 30 by default).

    `days` lists every day of the range; each series' `values` and `new_contacts` hold one
    count per day, in the same order. Activity series are keyed by type code name
    (`activities_by_type`) or channel id (`activities_by_channel`, `"0"`: email, which has no
    channel). Email opens and clicks count human hits only; `open_rate` and `click_rate` are
    unique human openers and clickers per sent message (null while nothing was sent).

    With `group`, activities, top pages and clicks and new contacts count only the group's
    current members, `totals.contacts` is its number of members, and `group` echoes its name
    (null otherwise); an unknown group is a 400 `unknown_group`. The latest issues are the
    hub's either way.
    """
    start, end = service.resolve_range(call.query_date("start"), call.query_date("end"))
    group = call.query("group") or None

    def work(session: Session) -> DashboardOut:
        return dashboard_out(service.dashboard(session, start, end, group=group))

    return await call.hub.read(work)
