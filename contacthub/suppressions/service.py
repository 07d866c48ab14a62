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

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from contacthub.audit import service as audit
from contacthub.email.service import normalise_email
from contacthub.errors import InvalidInput, NotFound
from contacthub.storage.models import Suppression

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

    An address already suppressed keeps its first suppression (returned with False).
    """
    if reason not in REASONS:
        raise InvalidInput(
            f"Unknown suppression reason {reason!r}; one of {', '.join(REASONS)}.",
            code="invalid_reason",
            field="reason",
        )
    address = normalise_email(email, field="email")
    existing = session.scalar(select(Suppression).where(Suppression.email == address))
    if existing is not None:
        return existing, False
    suppression = Suppression(
        email=address,
        reason=reason,
        source=source,
        evidence=evidence[:MAX_EVIDENCE],
        delivery_id=delivery_id,
        created_by=actor,
    )
    session.add(suppression)
    session.flush()
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
