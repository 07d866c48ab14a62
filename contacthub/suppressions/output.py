"""The suppression list as CSV (admin, management API, CLI): one set of columns for all.

An export is counted and recorded in the audit log (`suppression.list_exported`, with the
filters) before its first byte leaves, as a contact list's export is: the file holds addresses
and why they are suppressed. The rows are then read a chunk at a time, newest first, each chunk
in a unit of work of its own (keyset paging on the id: none skipped or repeated).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

from sqlalchemy.orm import Session

from contacthub.audit import service as audit
from contacthub.csv_export import csv_line
from contacthub.suppressions.service import (
    SuppressionRow,
    check_reason,
    count_suppressions,
    list_suppressions,
)

COLUMNS = (
    "email",
    "reason",
    "source",
    "evidence",
    "delivery_id",
    "issue",
    "issue_subject",
    "created_by",
    "created_at",
)
CHUNK = 1_000
Read = Callable[[Callable[[Session], Any]], Awaitable[Any]]


def csv_header() -> str:
    return csv_line(COLUMNS)


def csv_row(row: SuppressionRow) -> str:
    s = row.suppression
    return csv_line(
        (
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
    )


def start_export(
    session: Session, *, search: str | None, reason: str | None, actor: str | None
) -> int:
    """Check the filters, count what matches and record the export (when `actor` is given)."""
    count = count_suppressions(session, search=search, reason=reason)
    if actor is not None:
        details: dict[str, object] = {"suppressions": count}
        if check_reason(reason):
            details["reason"] = reason
        if search and search.strip():
            details["search"] = search.strip()
        audit.record(session, actor, "suppression.list_exported", details=details)
    return count


def _chunk(
    session: Session, *, search: str | None, reason: str | None, before: int | None
) -> tuple[str, int | None]:
    page = list_suppressions(session, search=search, reason=reason, before=before, limit=CHUNK)
    return "".join(csv_row(row) for row in page.rows), page.next_before


async def stream(read: Read, *, search: str | None, reason: str | None) -> AsyncIterator[str]:
    """The CSV, header first, a chunk of rows per unit of work (`read` runs one)."""
    yield csv_header()
    before: int | None = None
    while True:
        lines, before = await read(partial(_chunk, search=search, reason=reason, before=before))
        yield lines
        if before is None:
            return
