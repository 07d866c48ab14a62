"""Contacts: creating them, finding them, and filling their fields from data input.

Dynamic groups (groups/membership.py): a contact created here is queued for the live job in
the same transaction, since a new contact may match a group at once. A data input needs no
queue: it comes with its activity, logged for the contact the data went to, and the job
follows activities (so ingest does no extra work for groups).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from contacthub.contacts import repository
from contacthub.errors import NotFound
from contacthub.events import changes
from contacthub.groups.queue import enqueue_contacts
from contacthub.identifiers import parse_guid
from contacthub.storage.models import Contact


def create_contact(session: Session, **fields: Any) -> Contact:
    """A new contact, anonymous unless fields are given."""
    contact = _new_contact(session, **fields)
    enqueue_contacts(session, [contact.id])  # it may match a dynamic group at once
    changes.contact_created(session, contact)
    return contact


def _new_contact(session: Session, **fields: Any) -> Contact:
    contact = Contact(guid=uuid.uuid4(), **fields)
    session.add(contact)
    session.flush()
    return contact


def get_contact(session: Session, guid: str | uuid.UUID, *, hold: bool = False) -> Contact:
    """The contact with this GUID, or NotFound; `hold` keeps an erasure off it until the
    transaction ends (for a row that will point at it: `repository.contact_by_guid`)."""
    key = guid if isinstance(guid, uuid.UUID) else parse_guid(guid, "Contact")
    contact = repository.contact_by_guid(session, key, hold=hold)
    if contact is None:
        raise NotFound(f"No contact with GUID {key}.", code="unknown_contact")
    return contact


def apply_data_input(session: Session, contact: Contact, fields: Mapping[str, Any]) -> Contact:
    """Fill a contact's fields; answer the contact the data now belongs to.

    A data input never overwrites an existing, different email (the vendor's rule since 2024):
    the data then belongs to the oldest contact that has that email, or to a new contact.
    Called by ingest only, whose activity brings the contact to the groups' live job.
    """
    new_email = fields.get("email")
    target = contact
    created = False
    if new_email and contact.email and contact.email.lower() != new_email.lower():
        found = repository.oldest_contact_with_email(session, new_email)
        target, created = (found, False) if found is not None else (_new_contact(session), True)
    before = changes.fields_of(target, fields)
    for attribute, value in fields.items():
        if attribute == "email" and target.email and target.email.lower() == value.lower():
            continue  # keep the address as first stored
        setattr(target, attribute, value)
    session.flush()
    if created:
        changes.contact_created(session, target)
    else:
        changes.contact_updated(session, target, before, source="data_input")
    return target
