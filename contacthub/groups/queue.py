"""The live membership job's queue: contacts whose group memberships must be evaluated again.

A change that is not an activity (a consent given or revoked, a field changed, a subscription,
an unsubscription, an import, a static group's members) queues its contacts here, in its own
transaction, so that the change and the promise to look at it again commit together. The job
(`membership.refresh`) takes the queue; activities and email opens and clicks need no queue,
the job follows them by id.

Kept apart from `service` so that every other service can call it without importing the
groups' own dependencies (which import those services).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import exists, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from contacthub.storage.models import ContactGroup, GroupPendingContact
from contacthub.storage.types import utcnow

DYNAMIC = "dynamic"


def has_dynamic_group(session: Session) -> bool:
    """Whether any dynamic group exists (one indexed query)."""
    return bool(session.scalar(select(exists().where(ContactGroup.kind == DYNAMIC))))


def enqueue_contacts(session: Session, contact_ids: Iterable[int]) -> None:
    """Queue contacts for the live job, in the caller's transaction; a no-op (one query) when
    no dynamic group exists, since only dynamic groups are evaluated.

    A contact already queued gets a new `queued_at` (INSERT … ON CONFLICT DO UPDATE, on both
    databases): the job removes a queued row only if it is still the one it evaluated, so a
    change committed while the job was evaluating the contact is evaluated again. On PostgreSQL
    the update also locks the row until this transaction ends, so the job cannot remove it in
    between. Ids are written in order, so that two transactions never wait on each other.
    """
    ids = sorted({int(i) for i in contact_ids})
    if not ids or not has_dynamic_group(session):
        return
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert
    statement = insert(GroupPendingContact)
    now = utcnow()
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["contact_id"], set_={"queued_at": statement.excluded.queued_at}
        ),
        [{"contact_id": contact_id, "queued_at": now} for contact_id in ids],
    )
