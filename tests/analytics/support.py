"""Test data for the dashboard: activities at the times a test chooses, email issues."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from contacthub.analytics import rollups
from contacthub.channels import service as channels
from contacthub.contacts import service as contacts
from contacthub.email import repository as email_repository
from contacthub.email import service as email
from contacthub.storage.database import Database
from contacthub.storage.models import (
    Activity,
    ActivityRollup,
    Delivery,
    EmailClick,
    EmailOpen,
    IssueLink,
    TopRollup,
)


@dataclass(frozen=True)
class Act:
    """One activity to store; `channel_id` None is an email activity."""

    at: datetime
    type: str = "pagevisit"
    channel_id: int | None = None
    value: str | None = None
    url: str | None = None
    contact_id: int | None = None


def at(day: str, clock: str = "12:00") -> datetime:
    """A UTC moment: at("2024-05-01", "23:59")."""
    return datetime.fromisoformat(f"{day}T{clock}:00").replace(tzinfo=UTC)


def channel(db: Database, name: str) -> int:
    with db.write() as session:
        return channels.create_channel(session, name).id


def contact_id(db: Database, **fields: object) -> int:
    with db.write() as session:
        return contacts.create_contact(session, **fields).id


def add(db: Database, contact: int, *acts: Act) -> None:
    """Store the activities in one transaction, in the order given (ids follow it)."""
    with db.write() as session:
        session.add_all(
            Activity(
                contact_id=a.contact_id or contact,
                channel_id=a.channel_id,
                type=a.type,
                title=f"{a.type} '{a.value or a.url}'"[:500],
                value=a.value,
                url=a.url,
                created_at=a.at,
            )
            for a in acts
        )


def rolled(db: Database) -> dict[tuple[str, int, str], int]:
    """What the activity rollup table holds: (day, channel, type) -> count."""
    with db.read() as session:
        return {
            (r.day.isoformat(), r.channel_id, r.type): r.count
            for r in session.scalars(select(ActivityRollup))
        }


def rolled_tops(db: Database) -> dict[tuple[str, str, str], int]:
    """What the top rollup table holds: (day, kind, key) -> count."""
    with db.read() as session:
        return {
            (r.day.isoformat(), r.kind, r.key): r.count for r in session.scalars(select(TopRollup))
        }


def counts(db: Database, start: str, end: str) -> dict[tuple[str, int, str], int]:
    """`rollups.activity_counts` as a dict: (day, channel, type) -> count."""
    with db.read() as session:
        rows = rollups.activity_counts(
            session, datetime.fromisoformat(start).date(), datetime.fromisoformat(end).date()
        )
        return {(r.day.isoformat(), r.channel_id, r.type): r.count for r in rows}


def tops(db: Database, kind: str, start: str, end: str, limit: int = 10) -> list[tuple[str, int]]:
    with db.read() as session:
        return rollups.top_keys(
            session,
            kind,
            datetime.fromisoformat(start).date(),
            datetime.fromisoformat(end).date(),
            limit,
        )


NEWSLETTER = "Weekly"


def email_issue(
    db: Database,
    subject: str,
    *,
    sent_at: datetime | None = None,
    recipients: Sequence[str] = (),
    opened: Sequence[str] = (),
    machine_opened: Sequence[str] = (),
    clicked: Sequence[str] = (),
) -> str:
    """An issue of NEWSLETTER, sent at `sent_at` (a draft without it), with opens and clicks.

    Deliveries, opens and clicks are written as a send run and the tracking would leave them.
    """
    with db.write() as session:
        if email_repository.newsletter_by_name(session, NEWSLETTER) is None:
            email.create_newsletter(
                session, NEWSLETTER, "The Team", "news@example.com", "https://www.example.com"
            )
        issue = email.create_issue(
            session, NEWSLETTER, subject, '<p><a href="https://shop.example.com/">Shop</a></p>'
        )
        newsletter_id = issue.newsletter_id
        subscribers: dict[str, int] = {}
        for address in recipients:
            found = email_repository.subscriber_by_email(session, newsletter_id, address)
            subscriber = found or email.add_subscriber(session, NEWSLETTER, address)
            subscribers[address] = subscriber.id
            session.add(
                Delivery(
                    issue_id=issue.id,
                    subscriber_id=subscriber.id,
                    email=address,
                    status="sent" if sent_at else "pending",
                    attempts=1 if sent_at else 0,
                    sent_at=sent_at,
                )
            )
        if sent_at is not None:
            issue.status = "sent"
            issue.sent_at = sent_at
        link = session.scalars(
            select(IssueLink).where(IssueLink.issue_id == issue.id, IssueLink.hidden.is_(False))
        ).one()
        for address in opened:
            session.add(EmailOpen(issue_id=issue.id, subscriber_id=subscribers[address]))
        for address in machine_opened:
            session.add(
                EmailOpen(
                    issue_id=issue.id,
                    subscriber_id=subscribers[address],
                    is_machine=True,
                    machine_reason="Apple Mail Privacy Protection",
                )
            )
        for address in clicked:
            session.add(
                EmailClick(link_id=link.id, issue_id=issue.id, subscriber_id=subscribers[address])
            )
        session.flush()
        return str(issue.guid)
