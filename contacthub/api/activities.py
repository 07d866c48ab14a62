"""`/api/activities`: the activity log, filtered and paged by keyset."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec
from sqlalchemy.orm import Session

from contacthub.activities import log
from contacthub.activities.log import LogEntry, LogFilters
from contacthub.api.routing import ApiCall, ApiRouter, QueryParam
from contacthub.identifiers import MAX_BIG_ID

router = ApiRouter("Activities")


class ActivityLogEntry(msgspec.Struct):
    id: int
    created_at: datetime
    type: str
    # The channel's name; null for activities without a channel (email opens and clicks).
    channel: str | None
    channel_id: int | None
    # The contact's GUID; null only if the contact no longer exists.
    contact: uuid.UUID | None
    title: str
    value: str | None
    url: str | None
    referrer: str | None


class ActivityLogPage(msgspec.Struct):
    activities: list[ActivityLogEntry]
    next_before: int | None
    next_after: int | None
    searched_to: datetime | None


def entry_out(entry: LogEntry) -> ActivityLogEntry:
    return ActivityLogEntry(
        entry.id,
        entry.created_at,
        entry.type,
        entry.channel,
        entry.channel_id,
        entry.contact,
        entry.title,
        entry.value,
        entry.url,
        entry.referrer,
    )


@router.get(
    "/api/activities",
    response=ActivityLogPage,
    query=(
        QueryParam(
            "channel",
            "A channel's name, id or tracking identifier; `email` for activities without a "
            "channel (email opens and clicks).",
        ),
        QueryParam(
            "type",
            "An activity type: pagevisit, click, datainput, emailopen, "
            "emailclick or a custom type's code name (any case).",
        ),
        QueryParam("contact", "A contact's GUID.", format="uuid"),
        QueryParam("url", "Only activities whose URL contains this text (ignoring case)."),
        QueryParam("start", "First UTC day, YYYY-MM-DD.", format="date"),
        QueryParam("end", "Last UTC day, YYYY-MM-DD, included.", format="date"),
        QueryParam(
            "before",
            "Cursor: the `next_before` of the previous page.",
            "integer",
            minimum=0,
            maximum=MAX_BIG_ID,
        ),
        QueryParam(
            "after",
            "Cursor: the `next_after` of a page, to go back up.",
            "integer",
            minimum=0,
            maximum=MAX_BIG_ID,
        ),
        QueryParam(
            "limit",
            f"Activities per page, 1 to {log.MAX_PAGE_SIZE} (default {log.PAGE_SIZE}).",
            "integer",
            minimum=1,
            maximum=log.MAX_PAGE_SIZE,
        ),
    ),
)
async def list_activities(call: ApiCall) -> ActivityLogPage:
    """List activities, newest first, filtered; paged by keyset.

    Pass `next_before` back as `before` for the next (older) page; `next_before` is null on the
    last page. Filters by channel, type and URL look through at most 200,000 activities per
    request: when that search ends before the page is full, the page is short, `searched_to`
    is the time it reached, and `next_before` continues the search. `next_after`, passed as
    `after`, leads back up to the newer page (null on the newest).
    """
    filters = LogFilters.from_query(call.request.query_params)
    before = log.parse_cursor(call.query("before"), "before")
    after = log.parse_cursor(call.query("after"), "after")
    limit = call.query_int("limit", log.PAGE_SIZE, maximum=log.MAX_PAGE_SIZE)

    def work(session: Session) -> ActivityLogPage:
        page = log.activity_log(session, filters, before, limit, after_id=after)
        return ActivityLogPage(
            [entry_out(e) for e in page.entries],
            page.older_before,
            page.newer_after,
            page.searched_to,
        )

    return await call.hub.read(work)
