"""Suppressing addresses and lifting suppressions; the rule the send path applies.

An address is suppressed after a hard bounce, a complaint or repeated soft bounces (the feedback
processor, bounces/processor.py) or by hand (admin, management API, CLI). A suppressed address
is never sent to, whatever newsletter it is subscribed to: `not_suppressed` is the one SQL rule
the send path uses. The first suppression of an address is kept: later evidence (another bounce)
does not overwrite it.

Suppressions made by someone (`actor`) are recorded in the audit log; automatic ones carry
their evidence in the row itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import InstrumentedAttribute, Session

from contacthub.audit import service as audit
from contacthub.email.service import normalise_email
from contacthub.errors import Conflict, InvalidInput, NotFound
from contacthub.storage.models import Delivery, EmailIssue, Suppression

HARD_BOUNCE = "hard_bounce"
COMPLAINT = "complaint"
SOFT_BOUNCES = "soft_bounces"
MANUAL = "manual"
REASONS = (HARD_BOUNCE, COMPLAINT, SOFT_BOUNCES, MANUAL)
MAX_EVIDENCE = 2000


def suppress(
    session: Session,
    email: str,
    *,
    reason: str,
    source: str,
    evidence: str = "",
    delivery_id: int | None = None,
    actor: str | None = None,
) -> tuple[Suppression, bool]:
    """Suppress the address; (the suppression, True when it is new).

    An address already suppressed keeps its first suppression (returned with False). One
    INSERT … ON CONFLICT DO NOTHING: of two suppressions of an address at once, the second
    (on PostgreSQL it waits for the first to commit) finds the first, as if it came after it.
    """
    if reason not in REASONS:
        raise InvalidInput(
            f"Unknown suppression reason {reason!r}; one of {', '.join(REASONS)}.",
            code="invalid_reason",
            field="reason",
        )
    address = normalise_email(email, field="email")
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert
    added = session.scalar(
        insert(Suppression)
        .values(
            email=address,
            reason=reason,
            source=source,
            evidence=evidence[:MAX_EVIDENCE],
            delivery_id=delivery_id,
            created_by=actor,
        )
        .on_conflict_do_nothing(index_elements=["email"])
        .returning(Suppression.id)
    )
    suppression = session.scalar(select(Suppression).where(Suppression.email == address))
    if suppression is None:
        # The suppression in the way was lifted in between (PostgreSQL): suppress anew.
        return suppress(
            session,
            address,
            reason=reason,
            source=source,
            evidence=evidence,
            delivery_id=delivery_id,
            actor=actor,
        )
    if added is None:
        return suppression, False
    if actor is not None:
        details = {"reason": reason, "evidence": evidence[:200]} if evidence else {"reason": reason}
        audit.record(session, actor, "suppression.added", address, details)
    return suppression, True


def lift(session: Session, email: str, *, actor: str) -> Suppression:
    """Lift the address's suppression (it may be sent to again); NotFound when there is none."""
    address = normalise_email(email, field="email")
    suppression = session.scalar(select(Suppression).where(Suppression.email == address))
    if suppression is None:
        raise NotFound(f"{address} is not suppressed.", code="not_suppressed")
    details = {"reason": suppression.reason, "source": suppression.source}
    session.delete(suppression)
    session.flush()
    audit.record(session, actor, "suppression.lifted", address, details)
    return suppression


def is_suppressed(session: Session, email: str) -> bool:
    """True when the (valid) address is suppressed."""
    address = email.strip().lower()
    return session.scalar(select(exists().where(Suppression.email == address))) or False


def not_suppressed(email_column: InstrumentedAttribute[str]) -> ColumnElement[bool]:
    """SQL: the lower-cased address in `email_column` is not suppressed (the send path's rule)."""
    return ~exists().where(Suppression.email == email_column)


# -- manual additions ---------------------------------------------------------------------------

# Where a suppression made by someone comes from: the entry point they used.
MANUAL_SOURCES = ("admin", "api", "cli")


def add_manual(
    session: Session, email: str, *, evidence: str, source: str, actor: str
) -> Suppression:
    """Suppress an address by hand (reason `manual`) with a note of why.

    An address already suppressed keeps its first suppression, whatever its reason: adding it
    again is refused (409 `already_suppressed`, saying since when and why), so that nobody
    believes their note was kept. A note over MAX_EVIDENCE characters is refused, not cut: what
    someone typed is kept whole or not at all.
    """
    if source not in MANUAL_SOURCES:
        raise ValueError(f"Unknown source of a manual suppression: {source!r}")
    note = evidence.strip()
    if len(note) > MAX_EVIDENCE:
        raise InvalidInput(
            f"The evidence note has {len(note):,} characters; at most {MAX_EVIDENCE:,}.",
            code="evidence_too_long",
            field="evidence",
        )
    suppression, created = suppress(
        session, email, reason=MANUAL, source=source, evidence=note, actor=actor
    )
    if not created:
        raise Conflict(
            f"{suppression.email} is already suppressed ({suppression.reason}, since "
            f"{suppression.created_at:%Y-%m-%d %H:%M} UTC); its suppression is kept as it is.",
            code="already_suppressed",
            field="email",
        )
    return suppression


# -- reading ------------------------------------------------------------------------------------

PAGE_SIZE = 50
MAX_PAGE = 500
MAX_SEARCH = 254


@dataclass(frozen=True, slots=True)
class SuppressionRow:
    """A suppression with the issue of the delivery that caused it (when one did)."""

    suppression: Suppression
    issue_guid: uuid.UUID | None
    issue_subject: str | None


@dataclass(frozen=True, slots=True)
class SuppressionPage:
    """Suppressions, newest first; `next_before` is the cursor of the next page (None: last)."""

    rows: list[SuppressionRow]
    next_before: int | None


def check_reason(reason: str | None) -> str | None:
    """A reason filter: one of REASONS, or None (empty) for every reason."""
    if not reason:
        return None
    if reason not in REASONS:
        raise InvalidInput(
            f"Unknown suppression reason {reason!r}; one of {', '.join(REASONS)}.",
            code="invalid_reason",
            field="reason",
        )
    return reason


def _matching(search: str | None, reason: str | None) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    term = (search or "").strip().lower()
    if len(term) > MAX_SEARCH:
        raise InvalidInput(
            f"The search text has more than {MAX_SEARCH} characters.",
            code="invalid_search",
            field="search",
        )
    if term:
        # A part of the address, typed as is: % and _ match themselves.
        where.append(Suppression.email.contains(term, autoescape=True))
    checked = check_reason(reason)
    if checked is not None:
        where.append(Suppression.reason == checked)
    return where


def list_suppressions(
    session: Session,
    *,
    search: str | None = None,
    reason: str | None = None,
    before: int | None = None,
    limit: int = PAGE_SIZE,
) -> SuppressionPage:
    """Suppressions, newest first, whose address contains `search` and of `reason` (both
    optional); `before` (the previous page's `next_before`) pages back (keyset on the id)."""
    where = _matching(search, reason)
    if before is not None:
        where.append(Suppression.id < before)
    found = session.execute(
        select(Suppression, EmailIssue.guid, EmailIssue.subject)
        .outerjoin(Delivery, Delivery.id == Suppression.delivery_id)
        .outerjoin(EmailIssue, EmailIssue.id == Delivery.issue_id)
        .where(*where)
        .order_by(Suppression.id.desc())
        .limit(limit + 1)
    ).all()
    rows = [SuppressionRow(s, guid, subject) for s, guid, subject in found[:limit]]
    next_before = rows[-1].suppression.id if len(found) > limit else None
    return SuppressionPage(rows, next_before)


def iter_suppressions(
    session: Session, *, search: str | None = None, reason: str | None = None, chunk: int = 1_000
) -> Iterator[SuppressionRow]:
    """Every matching suppression, newest first, read a chunk at a time (for CSV exports)."""
    before: int | None = None
    while True:
        page = list_suppressions(session, search=search, reason=reason, before=before, limit=chunk)
        yield from page.rows
        if page.next_before is None:
            return
        before = page.next_before


def count_suppressions(
    session: Session, *, search: str | None = None, reason: str | None = None
) -> int:
    """How many suppressions match the filters."""
    where = _matching(search, reason)
    return session.scalar(select(func.count()).select_from(Suppression).where(*where)) or 0


def counts_by_reason(session: Session) -> dict[str, int]:
    """How many addresses are suppressed for each reason (every reason, zero if none)."""
    counts = dict.fromkeys(REASONS, 0)
    rows = session.execute(select(Suppression.reason, func.count()).group_by(Suppression.reason))
    counts.update(dict(rows.all()))
    return counts


def suppression_of(session: Session, email: str) -> SuppressionRow | None:
    """The suppression of this address (any case), with its issue; None when not suppressed."""
    address = email.strip().lower()
    found = session.execute(
        select(Suppression, EmailIssue.guid, EmailIssue.subject)
        .outerjoin(Delivery, Delivery.id == Suppression.delivery_id)
        .outerjoin(EmailIssue, EmailIssue.id == Delivery.issue_id)
        .where(Suppression.email == address)
    ).first()
    return None if found is None else SuppressionRow(*found)


def get_suppression(session: Session, email: str) -> SuppressionRow:
    """The suppression of this (valid) address; NotFound when it is not suppressed."""
    address = normalise_email(email, field="email")
    found = suppression_of(session, address)
    if found is None:
        raise NotFound(f"{address} is not suppressed.", code="not_suppressed")
    return found
