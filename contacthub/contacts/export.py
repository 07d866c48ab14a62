"""The contacts list as CSV: every contact the search text and filters select, streamed.

The export is checked, counted and recorded in the audit log (`contact.list_exported`, with the
filters and the count) before its first byte leaves; then the contacts are read `CHUNK` at a
time, each chunk in a unit of work of its own, by the list's keyset cursor: memory stays flat
however many contacts match, and no contact is skipped or repeated while others arrive. The
activity windows ("active within N days") end at the moment the export started, for every
chunk alike. The count recorded is the count when the export started: contacts created or erased
while it streams can make the file differ from it by those.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from sqlalchemy.orm import Session

from contacthub.audit import service as audit
from contacthub.contacts.search import (
    NO_FILTER,
    ContactFilter,
    ContactSummary,
    check_query,
    check_sort,
    contact_count,
    contacts_page,
)
from contacthub.csv_export import csv_line
from contacthub.storage.types import utcnow

CHUNK = 1_000
COLUMNS = (
    "guid",
    "email",
    "first_name",
    "last_name",
    "company_name",
    "job_title",
    "city",
    "country",
    "created_at",
    "last_activity_at",
)


@dataclass(frozen=True, slots=True)
class ListExport:
    """An export under way: what it selects, when it started, and how many matched then."""

    q: str
    sort: str
    filters: ContactFilter
    now: datetime
    contacts: int

    @property
    def filename(self) -> str:
        return f"contacts-{self.now:%Y%m%d-%H%M%S}.csv"


def start_list_export(
    session: Session,
    q: str = "",
    sort: str = "",
    filters: ContactFilter = NO_FILTER,
    *,
    actor: str | None = None,
    now: datetime | None = None,
) -> ListExport:
    """Check the search and filters, count what they match, and record the export (when an
    `actor` asks for it): a 400 naming the input at fault, and nothing recorded, otherwise."""
    q = check_query(q)
    sort = check_sort(sort)
    moment = now or utcnow()
    count = contact_count(session, q, filters=filters, now=moment)
    if actor is not None:
        details: dict[str, object] = {"contacts": count, **filters.as_dict()}
        if q:
            details["q"] = q
        audit.record(session, actor, "contact.list_exported", details=details)
    return ListExport(q, sort, filters, moment, count)


# A chunk of CSV lines, and the cursor after it (None after the last chunk).
Chunk = tuple[str, str | None]


def header() -> str:
    """The CSV header line."""
    return csv_line(COLUMNS)


def _line(contact: ContactSummary) -> str:
    return csv_line(
        (
            contact.guid,
            contact.email,
            contact.first_name,
            contact.last_name,
            contact.company_name,
            contact.job_title,
            contact.city,
            contact.country,
            contact.created_at,
            contact.last_activity_at,
        )
    )


def export_chunk(session: Session, export: ListExport, after: str | None) -> Chunk:
    """The CSV lines of the next `CHUNK` contacts after the cursor, and the cursor after them
    (None after the last chunk)."""
    page = contacts_page(
        session, export.q, export.sort, after, CHUNK, filters=export.filters, now=export.now
    )
    return "".join(_line(contact) for contact in page.contacts), page.next_after


async def stream(
    read: Callable[[Callable[[Session], Chunk]], Awaitable[Chunk]], export: ListExport
) -> AsyncIterator[str]:
    """The whole CSV, a chunk at a time; `read` runs each chunk in a read-only unit of work
    (`Hub.read`)."""
    yield header()
    after: str | None = None
    while True:
        chunk, after = await read(partial(export_chunk, export=export, after=after))
        if chunk:
            yield chunk
        if after is None:
            return
