"""Queries for contacts."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from contacthub.storage.models import Contact


def contact_by_guid(session: Session, guid: uuid.UUID) -> Contact | None:
    return session.scalar(select(Contact).where(Contact.guid == guid))


def contacts_by_guid(session: Session, guids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Contact]:
    """The contacts among `guids`, in one query."""
    wanted = set(guids)
    if not wanted:
        return {}
    return {c.guid: c for c in session.scalars(select(Contact).where(Contact.guid.in_(wanted)))}


def oldest_contact_with_email(session: Session, email: str) -> Contact | None:
    """The first contact that got this address (addresses compare case-insensitively)."""
    return session.scalar(
        select(Contact)
        .where(func.lower(Contact.email) == email.lower())
        .order_by(Contact.id)
        .limit(1)
    )


def latest_contacts(session: Session, limit: int) -> Sequence[Contact]:
    return session.scalars(select(Contact).order_by(Contact.id.desc()).limit(limit)).all()
