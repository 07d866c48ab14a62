"""Queries for contacts."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from contacthub.storage.models import Contact


def contact_by_guid(session: Session, guid: uuid.UUID, *, hold: bool = False) -> Contact | None:
    """The contact with this GUID; `hold` locks it FOR KEY SHARE until the transaction ends.

    Hold a contact whose id the transaction will write into another row (an activity, an
    agreement): an erasure (which locks the contact FOR UPDATE) then waits and deletes that row
    too, or, having committed first, leaves nothing to find. Key-share locks never conflict with
    each other or with updates of the contact's fields. PostgreSQL only: SQLite's write
    transactions hold the one write lock from their start.
    """
    statement = select(Contact).where(Contact.guid == guid)
    if hold:
        statement = statement.with_for_update(key_share=True)
    return session.scalar(statement)


def contacts_by_guid(session: Session, guids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Contact]:
    """The contacts among `guids`, in one query."""
    wanted = set(guids)
    if not wanted:
        return {}
    return {c.guid: c for c in session.scalars(select(Contact).where(Contact.guid.in_(wanted)))}


def oldest_contact_with_email(session: Session, email: str) -> Contact | None:
    """The first contact that got this address (addresses compare case-insensitively), held
    FOR KEY SHARE until the transaction ends (see `contact_by_guid`)."""
    oldest = (
        select(Contact)
        .where(func.lower(Contact.email) == email.lower())
        .order_by(Contact.id)
        .limit(1)
    )
    while True:
        contact = session.scalar(oldest.with_for_update(key_share=True))
        # A row erased while the lock waited drops out after the LIMIT: look again (a new
        # snapshot) unless no contact has the address any more.
        if contact is not None or session.scalar(oldest.with_only_columns(Contact.id)) is None:
            return contact


def latest_contacts(session: Session, limit: int) -> Sequence[Contact]:
    return session.scalars(select(Contact).order_by(Contact.id.desc()).limit(limit)).all()
