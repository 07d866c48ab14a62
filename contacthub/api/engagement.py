"""`/api/issues/{guid}/engagement`: an issue's opens and clicks over time, and who opened or
clicked (JSON pages, or every one as CSV).

Thin handlers over `email.engagement`, the same functions as the admin pages and the CLI. Both
count human hits only unless `?include_machines=true`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.orm import Session
from starlette.responses import Response, StreamingResponse

from contacthub.api.routing import ApiCall, ApiRouter, QueryParam
from contacthub.csv_export import MEDIA_TYPE, attachment
from contacthub.email import engagement
from contacthub.errors import InvalidInput
from contacthub.identifiers import MAX_ID, parse_cursor

router = ApiRouter("Email")

INCLUDE_MACHINES = QueryParam(
    "include_machines",
    "`true` to count machine hits too (mail privacy proxies, link scanners); "
    "`false` (default): human hits only.",
    "boolean",
)


class BucketOut(msgspec.Struct):
    start: datetime
    end: datetime | None  # null: the last bucket, which holds everything later too
    unit: str  # hour | day
    opens: int
    clicks: int


class TimelineOut(msgspec.Struct):
    issue: str
    subject: str
    started_at: datetime | None  # the hour the first copy went out; null while not sent
    include_machines: bool
    opens: int
    clicks: int
    buckets: list[BucketOut]


class PersonOut(msgspec.Struct):
    email: str
    first_name: str | None
    last_name: str | None
    contact_guid: str
    first_opened_at: datetime
    last_seen_at: datetime
    opens: int
    clicks: int


class PeoplePageOut(msgspec.Struct):
    people: list[PersonOut]
    total: int
    next_after: int | None


def include_machines(call: ApiCall) -> bool:
    """The `include_machines` flag: true or false (any case); 400 for anything else."""
    text = call.query("include_machines").lower()
    if text in ("", "false"):
        return False
    if text == "true":
        return True
    raise InvalidInput(
        "include_machines must be true or false.",
        code="invalid_parameter",
        field="include_machines",
    )


def timeline_out(line: engagement.Timeline) -> TimelineOut:
    return TimelineOut(
        str(line.issue_guid),
        line.subject,
        line.started_at,
        line.include_machines,
        line.opens,
        line.clicks,
        [
            BucketOut(b.start, b.end, "hour" if b.hourly else "day", b.opens, b.clicks)
            for b in line.buckets
        ],
    )


def person_out(person: engagement.Person) -> PersonOut:
    return PersonOut(
        person.email,
        person.first_name,
        person.last_name,
        str(person.contact_guid),
        person.first_opened_at,
        person.last_seen_at,
        person.opens,
        person.clicks,
    )


@router.get("/api/issues/{guid}/engagement", response=TimelineOut, query=(INCLUDE_MACHINES,))
async def issue_timeline(call: ApiCall) -> TimelineOut:
    """The issue's opens and clicks over time: a bucket per hour for the first 48 hours after
    the first copy went out, then a bucket per day (at most 90; the last holds anything later).
    No buckets while the issue is not sent."""
    guid = call.path("guid")
    machines = include_machines(call)
    return await call.hub.read(
        lambda s: timeline_out(engagement.timeline(s, guid, include_machines=machines))
    )


@router.get(
    "/api/issues/{guid}/engagement/people",
    response=PeoplePageOut,
    raw_response="text/csv",
    query=(
        INCLUDE_MACHINES,
        QueryParam(
            "after",
            "Cursor: `next_after` of the previous page.",
            "integer",
            minimum=1,
            maximum=MAX_ID,
        ),
        QueryParam(
            "limit",
            f"People per page, 1 to {engagement.MAX_PEOPLE_PAGE} "
            f"(default {engagement.PEOPLE_PAGE}).",
            "integer",
            minimum=1,
            maximum=engagement.MAX_PEOPLE_PAGE,
        ),
        QueryParam(
            "format",
            "`csv` for everyone as CSV (streamed; recorded as `issue.engagement_exported`), "
            "`json` (default) for a page. `Accept: text/csv` asks for CSV too.",
            enum=("json", "csv"),
        ),
    ),
)
async def issue_people(call: ApiCall) -> Any:
    """Who opened or clicked the issue, by subscriber (oldest subscription first): first open
    (a click counts as one), last hit, opens and clicks. Pass `next_after` back as `after` for
    the next page; it is null on the last page."""
    guid = call.path("guid")
    machines = include_machines(call)
    if call.wants_csv():
        return await _people_csv(call, guid, machines)
    after = parse_cursor(call.query("after"), "after")
    limit = call.query_int("limit", engagement.PEOPLE_PAGE, maximum=engagement.MAX_PEOPLE_PAGE)

    def work(session: Session) -> PeoplePageOut:
        page = engagement.people_page(
            session, guid, after=after, limit=limit, include_machines=machines
        )
        return PeoplePageOut([person_out(p) for p in page.people], page.total, page.next_after)

    return await call.hub.read(work)


async def _people_csv(call: ApiCall, guid: str, machines: bool) -> Response:
    """Everyone as CSV, recorded before the first byte leaves, streamed a chunk at a time."""

    def start(session: Session) -> engagement.PeopleExport:
        return engagement.start_export(session, guid, include_machines=machines, actor=call.actor)

    started = await call.hub.write(start)
    return StreamingResponse(
        engagement.stream(call.hub.read, started),
        media_type=MEDIA_TYPE,
        headers=attachment(started.filename),
    )
