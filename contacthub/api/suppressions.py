"""`/api/suppressions` and `/api/feedback-rejections`: the suppression list and the bounce
reports and webhook calls that were refused.

Thin handlers over `suppressions.service` and `suppressions.rejections`, the same functions as
the admin pages and the CLI. Adding by hand is reason `manual` with an evidence note; an address
already suppressed keeps its first suppression (409 `already_suppressed`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.orm import Session
from starlette.responses import StreamingResponse

from contacthub.activities.log import parse_cursor
from contacthub.api.routing import ApiCall, ApiRouter, QueryParam
from contacthub.csv_export import MEDIA_TYPE, attachment
from contacthub.identifiers import MAX_BIG_ID, MAX_ID
from contacthub.identifiers import parse_cursor as parse_id_cursor
from contacthub.storage.models import FeedbackRejection
from contacthub.suppressions import output, rejections
from contacthub.suppressions import service as suppressions

router = ApiRouter("Suppressions")


class SuppressionIn(msgspec.Struct, forbid_unknown_fields=True):
    email: str
    # Why the address is suppressed (a request by phone, a complaint by letter, …).
    evidence: str = ""


class SuppressionOut(msgspec.Struct):
    email: str
    reason: str
    source: str
    evidence: str
    # The delivery whose bounce or complaint suppressed the address, and its issue.
    delivery_id: int | None
    issue: uuid.UUID | None
    issue_subject: str | None
    created_by: str | None
    created_at: datetime


class SuppressionPageOut(msgspec.Struct):
    suppressions: list[SuppressionOut]
    total: int
    counts: dict[str, int]
    next_before: int | None


class RejectionCountOut(msgspec.Struct):
    source: str
    reason: str
    last_day: int
    last_week: int
    total: int


class RejectionOut(msgspec.Struct):
    id: int
    source: str
    reason: str
    detail: str
    created_at: datetime


class RejectionsOut(msgspec.Struct):
    counts: list[RejectionCountOut]
    rejections: list[RejectionOut]
    next_before: int | None


def suppression_out(row: suppressions.SuppressionRow) -> SuppressionOut:
    s = row.suppression
    return SuppressionOut(
        s.email,
        s.reason,
        s.source,
        s.evidence,
        s.delivery_id,
        row.issue_guid,
        row.issue_subject,
        s.created_by,
        s.created_at,
    )


def rejection_out(rejection: FeedbackRejection) -> RejectionOut:
    return RejectionOut(
        rejection.id, rejection.source, rejection.reason, rejection.detail, rejection.created_at
    )


def _before(maximum: int) -> QueryParam:
    return QueryParam(
        "before",
        "Cursor: `next_before` of the previous page.",
        "integer",
        minimum=0,
        maximum=maximum,
    )


@router.get(
    "/api/suppressions",
    response=SuppressionPageOut,
    raw_response="text/csv",
    query=(
        QueryParam("search", "A part of the address (case does not matter)."),
        QueryParam("reason", "Only this reason.", enum=suppressions.REASONS),
        _before(MAX_ID),
        QueryParam(
            "limit",
            f"Suppressions per page, 1 to {suppressions.MAX_PAGE} "
            f"(default {suppressions.PAGE_SIZE}).",
            "integer",
            minimum=1,
            maximum=suppressions.MAX_PAGE,
        ),
        QueryParam(
            "format",
            "`csv` for every matching suppression as CSV (streamed; recorded as "
            "`suppression.list_exported`), `json` (default) for a page. `Accept: text/csv` asks "
            "for CSV too.",
            enum=("json", "csv"),
        ),
    ),
)
async def list_suppressions(call: ApiCall) -> Any:
    """The suppressed addresses, newest first, a page at a time, with how many match (`total`)
    and how many there are of each reason (`counts`, all of them).

    Pass `next_before` back as `before` for the next page; it is null on the last page. With
    `format=csv`, every matching suppression (the cursor and limit do not apply).
    """
    search = call.query("search")
    reason = call.query("reason")
    # Suppression ids are integers (not big ones): a cursor beyond them is a 400.
    before = parse_id_cursor(call.query("before"), "before", code="invalid_parameter")
    limit = call.query_int("limit", suppressions.PAGE_SIZE, maximum=suppressions.MAX_PAGE)
    if call.wants_csv():
        await call.hub.write(
            lambda s: output.start_export(s, search=search, reason=reason, actor=call.actor)
        )
        return StreamingResponse(
            output.stream(call.hub.read, search=search, reason=reason),
            media_type=MEDIA_TYPE,
            headers=attachment("suppressions.csv"),
        )

    def work(session: Session) -> SuppressionPageOut:
        page = suppressions.list_suppressions(
            session, search=search, reason=reason, before=before, limit=limit
        )
        return SuppressionPageOut(
            [suppression_out(row) for row in page.rows],
            suppressions.count_suppressions(session, search=search, reason=reason),
            suppressions.counts_by_reason(session),
            page.next_before,
        )

    return await call.hub.read(work)


@router.post("/api/suppressions", body=SuppressionIn, response=SuppressionOut, status=201)
async def add_suppression(call: ApiCall, body: SuppressionIn) -> SuppressionOut:
    """Suppress an address by hand (reason `manual`), with an evidence note → 201.

    Nothing is sent to it again, whatever newsletter it is subscribed to. An address already
    suppressed keeps its first suppression: 409 `already_suppressed`.
    """

    def work(session: Session) -> SuppressionOut:
        row = suppressions.add_manual(
            session, body.email, evidence=body.evidence, source="api", actor=call.actor
        )
        return suppression_out(suppressions.get_suppression(session, row.email))

    return await call.hub.write(work)


@router.get("/api/suppressions/{email}", response=SuppressionOut)
async def get_suppression(call: ApiCall) -> SuppressionOut:
    """The suppression of one address; 404 `not_suppressed` when it is not suppressed."""
    email = call.path("email")
    return await call.hub.read(
        lambda session: suppression_out(suppressions.get_suppression(session, email))
    )


@router.delete("/api/suppressions/{email}", status=204)
async def lift_suppression(call: ApiCall) -> None:
    """Lift an address's suppression → 204: it may be sent to again.

    404 `not_suppressed` when it is not suppressed. The lifted suppression (reason, source) is
    kept in the audit log.
    """
    email = call.path("email")
    await call.hub.write(lambda session: suppressions.lift(session, email, actor=call.actor))


@router.get(
    "/api/feedback-rejections",
    response=RejectionsOut,
    query=(
        QueryParam("source", "Only the rejections of this source (e.g. `ses`, `imap`)."),
        _before(MAX_BIG_ID),
        QueryParam(
            "limit",
            f"Rejections per page, 1 to {rejections.MAX_PAGE} (default {rejections.PAGE_SIZE}).",
            "integer",
            minimum=1,
            maximum=rejections.MAX_PAGE,
        ),
    ),
)
async def feedback_rejections(call: ApiCall) -> RejectionsOut:
    """Bounce reports and provider webhook calls that were refused or could not be used:
    counts by source and reason (last 24 hours, last 7 days, ever) and the latest ones.

    Pass `next_before` back as `before` for older rejections; it is null on the last page.
    """
    source = call.query("source")
    before = parse_cursor(call.query("before"), "before")
    limit = call.query_int("limit", rejections.PAGE_SIZE, maximum=rejections.MAX_PAGE)

    def work(session: Session) -> RejectionsOut:
        page = rejections.latest_rejections(session, source=source, before=before, limit=limit)
        return RejectionsOut(
            [
                RejectionCountOut(c.source, c.reason, c.last_day, c.last_week, c.total)
                for c in rejections.rejection_counts(session)
            ],
            [rejection_out(r) for r in page.rejections],
            page.next_before,
        )

    return await call.hub.read(work)
