"""Activities in volume for log tests, inserted the way ingest inserts them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from contacthub.activities.repository import ActivityRow, insert_activities
from contacthub.channels import service as channels
from contacthub.contacts import service as contacts
from contacthub.storage.database import Database
from contacthub.storage.models import Activity

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def row(
    contact_id: int,
    at: datetime,
    *,
    channel_id: int | None = None,
    type: str = "pagevisit",
    value: str | None = "Home",
    url: str | None = "https://example.com/",
    referrer: str | None = None,
    title: str | None = None,
) -> ActivityRow:
    """One activity to insert."""
    return ActivityRow(
        contact_id=contact_id,
        channel_id=channel_id,
        type=type,
        title=title if title is not None else f"Page visit '{value}'",
        value=value,
        url=url,
        referrer=referrer,
        created_at=at,
    )


def insert(database: Database, rows: Sequence[ActivityRow]) -> list[int]:
    """Insert the rows in order, in one transaction; answers their ids, in the same order."""
    with database.write() as session:
        highest = session.scalar(select(func.max(Activity.id))) or 0
        insert_activities(session, rows)
        ids = session.scalars(
            select(Activity.id).where(Activity.id > highest).order_by(Activity.id)
        ).all()
    assert len(ids) == len(rows)
    return list(ids)


def new_contact(database: Database) -> tuple[int, str]:
    """A contact: (id, GUID)."""
    with database.write() as session:
        contact = contacts.create_contact(session)
        return contact.id, str(contact.guid)


def new_channel(database: Database, name: str) -> tuple[int, str]:
    """A channel: (id, tracking identifier)."""
    with database.write() as session:
        channel = channels.create_channel(session, name)
        return channel.id, str(channel.guid)


def minutes(n: int) -> datetime:
    """T0 plus n minutes."""
    return T0 + timedelta(minutes=n)
