"""The dashboard page (`/admin/`): activity, new contacts, top pages and clicks, latest emails.

A GET form picks the range of UTC days (`?start=YYYY-MM-DD&end=YYYY-MM-DD`, the last 30 days by
default) and, optionally, a group whose members alone are counted (`?group=NAME`); a malformed
or impossible range, or a group that no longer exists, is named next to its field and the page
shows the default range of the whole audience meanwhile.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy.orm import Session
from starlette.responses import Response
from starlette.routing import Route

from contacthub.admin import charts
from contacthub.admin.web import Admin, page
from contacthub.analytics import dashboard as service
from contacthub.contacts.search import group_names
from contacthub.errors import InvalidInput
from contacthub.identifiers import parse_day
from contacthub.retention import job as retention

PRESETS = (7, 30, 90)


def _read_day(admin: Admin, name: str, errors: dict[str, str]) -> date | None:
    try:
        return parse_day(admin.param(name), name)
    except InvalidInput as error:
        errors[name] = error.message
        return None


async def show_dashboard(admin: Admin) -> Response:
    """The dashboard of the range asked for (the last 30 days by default)."""
    today = service.utc_today()
    errors: dict[str, str] = {}
    start = _read_day(admin, "start", errors)
    end = _read_day(admin, "end", errors)
    if errors:
        start, end = service.default_range(today)
    else:
        try:
            start, end = service.resolve_range(start, end, today)
        except InvalidInput as error:
            errors[error.field or "start"] = error.message
            start, end = service.default_range(today)

    group = admin.param("group") or None

    def work(session: Session) -> tuple[service.Dashboard, list[str]]:
        names = group_names(session)
        try:
            return service.dashboard(session, start, end, group=group), names
        except InvalidInput as error:
            errors[error.field or "group"] = error.message
            return service.dashboard(session, *service.default_range(today)), names

    board, groups = await admin.hub.read(work)
    retention_failing = await admin.hub.read(retention.is_failing)
    presets = [
        (days, (today - timedelta(days=days - 1)).isoformat(), today.isoformat())
        for days in PRESETS
    ]
    by_type = [charts.ChartSeries(s.name, s.values) for s in board.by_type]
    by_channel = [charts.ChartSeries(s.name, s.values) for s in board.by_channel]
    return admin.render(
        "dashboard.html",
        status=400 if errors else 200,
        board=board,
        retention_failing=retention_failing,
        errors=errors,
        # What was typed stays in the fields, so that a mistake can be corrected.
        start_text=admin.param("start") if errors else board.start.isoformat(),
        end_text=admin.param("end") if errors else board.end.isoformat(),
        presets=presets,
        group_text=group or "",
        group_options=[(name, name) for name in groups],
        type_chart=charts.stacked_bars(
            board.days, by_type, label="Activities by type", empty="No activities in this range."
        ),
        channel_chart=charts.stacked_bars(
            board.days,
            by_channel,
            label="Activities by channel",
            empty="No activities in this range.",
            width=charts.NARROW,
        ),
        contacts_chart=charts.area_chart(
            board.days,
            board.new_contacts,
            label="New contacts",
            unit="new contacts",
            empty="No new contacts in this range.",
            width=charts.NARROW,
        ),
        meter=charts.meter,
    )


routes = [Route("/admin/", page(show_dashboard), methods=["GET"])]
