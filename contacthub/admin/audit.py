"""The audit log page: who did what, newest first."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session
from starlette.responses import Response
from starlette.routing import Route

from contacthub.activities.log import parse_cursor
from contacthub.admin.web import Admin, page
from contacthub.audit import service as audit
from contacthub.storage.models import AuditEvent


@dataclass(frozen=True, slots=True)
class EventRow:
    """One audit event as the page shows it; details as (name, value) pairs."""

    id: int
    created_at: datetime
    actor: str
    action: str
    subject: str
    details: list[tuple[str, str]]


def detail_pairs(details: str | None) -> list[tuple[str, str]]:
    """An event's JSON details as (name, value) text pairs, for a readable list."""
    if not details:
        return []
    try:
        parsed = json.loads(details)
    except ValueError:
        return [("", details)]
    if not isinstance(parsed, dict):
        return [("", details)]
    return [
        (str(name), value if isinstance(value, str) else json.dumps(value, sort_keys=True))
        for name, value in parsed.items()
    ]


def _row(event: AuditEvent) -> EventRow:
    return EventRow(
        event.id,
        event.created_at,
        event.actor,
        event.action,
        event.subject,
        detail_pairs(event.details),
    )


async def audit_list(admin: Admin) -> Response:
    """The latest events; `?before=` pages back."""
    before = parse_cursor(admin.param("before"), "before")
    size = audit.PAGE_SIZE

    def work(session: Session) -> list[EventRow]:
        return [_row(e) for e in audit.latest(session, before_id=before, limit=size + 1)]

    rows = await admin.hub.read(work)
    return admin.render(
        "audit/list.html",
        events=rows[:size],
        older_before=rows[size - 1].id if len(rows) > size else None,
        paged=before is not None,
    )


routes = [Route("/admin/audit", page(audit_list), methods=["GET"])]
