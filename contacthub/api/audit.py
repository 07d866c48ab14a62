"""`/api/audit`: the audit log, newest first, paged by keyset."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.orm import Session

from contacthub.activities.log import parse_cursor
from contacthub.api.routing import ApiCall, ApiRouter, QueryParam
from contacthub.audit import service as audit
from contacthub.identifiers import MAX_BIG_ID
from contacthub.storage.models import AuditEvent

router = ApiRouter("Audit")
MAX_PAGE_SIZE = 500


class AuditEventOut(msgspec.Struct):
    id: int
    created_at: datetime
    actor: str
    action: str
    subject: str
    details: Any


class AuditPage(msgspec.Struct):
    events: list[AuditEventOut]
    next_before: int | None


def event_out(event: AuditEvent) -> AuditEventOut:
    details: Any = None
    if event.details:
        try:
            details = json.loads(event.details)
        except ValueError:
            details = event.details
    return AuditEventOut(
        event.id, event.created_at, event.actor, event.action, event.subject, details
    )


@router.get(
    "/api/audit",
    response=AuditPage,
    query=(
        QueryParam(
            "before",
            "Cursor: the `next_before` of the previous page.",
            "integer",
            minimum=0,
            maximum=MAX_BIG_ID,
        ),
        QueryParam(
            "limit",
            f"Events per page, 1 to {MAX_PAGE_SIZE} (default {audit.PAGE_SIZE}).",
            "integer",
            minimum=1,
            maximum=MAX_PAGE_SIZE,
        ),
    ),
)
async def list_audit_events(call: ApiCall) -> AuditPage:
    """List audit events (who did what), newest first; paged by keyset.

    `details` is the event's JSON object (or null). Pass `next_before` back as `before` for the
    next page; it is null on the last page.
    """
    before = parse_cursor(call.query("before"), "before")
    limit = call.query_int("limit", audit.PAGE_SIZE, maximum=MAX_PAGE_SIZE)

    def work(session: Session) -> AuditPage:
        events = [event_out(e) for e in audit.latest(session, before_id=before, limit=limit + 1)]
        return AuditPage(events[:limit], events[limit - 1].id if len(events) > limit else None)

    return await call.hub.read(work)
