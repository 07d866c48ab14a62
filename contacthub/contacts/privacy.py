"""Data protection (SPEC §5): export everything stored about a contact, or erase it all.

What is stored about a contact, and so what both cover:
- the contact row (GUID, fields, times);
- its consent agreements (agree and revoke events, with the revision of the texts);
- its activities on every channel (the activity log has no foreign keys: deleted explicitly);
- its newsletter subscriptions, and per subscription the deliveries of issues, the opens and the
  clicks (human and machine, with the user agent and address that made them).

Both are recorded in the audit log in the same unit of work. The erasure's record names the
contact's GUID only: the audit log must not keep the personal data the erasure removed.

After an erasure the GUID is unknown everywhere: the tracking API answers 404 `unknown_contact`
for it, and the email links of its former subscriptions log nothing (the address is no longer a
subscriber).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from contacthub.analytics import rollups
from contacthub.audit import service as audit
from contacthub.contacts.profile import (
    agreement_rows,
    contact_fields,
    deliveries_of_contact,
    find_contact,
    wire_fields,
)
from contacthub.errors import InvalidInput
from contacthub.events import changes
from contacthub.storage.models import (
    Activity,
    Channel,
    ConsentAgreement,
    Contact,
    Delivery,
    EmailClick,
    EmailIssue,
    EmailOpen,
    IssueLink,
    Newsletter,
    Subscriber,
)
from contacthub.storage.types import utcnow

EXPORT_FORMAT = "contacthub.contact-export"
EXPORT_VERSION = 1
EXPORTED = "contact.exported"
ERASED = "contact.erased"


def _iso(value: datetime | date | None) -> str | None:
    return None if value is None else value.isoformat()


# -- export --------------------------------------------------------------------------------------


def export_contact(session: Session, guid: str | uuid.UUID, actor: str) -> dict[str, Any]:
    """Everything stored about the contact, as JSON-ready data; recorded as `contact.exported`.

    Contact fields carry the tracking API's names (`ContactEmail` …); times are ISO 8601 UTC.
    """
    contact = find_contact(session, guid)
    channels: dict[int, str] = dict(session.execute(select(Channel.id, Channel.name)).all())
    subscribers = session.execute(
        select(Subscriber, Newsletter.name)
        .join(Newsletter, Newsletter.id == Subscriber.newsletter_id)
        .where(Subscriber.contact_id == contact.id)
        .order_by(Subscriber.id)
    ).all()
    subscriber_ids = [subscriber.id for subscriber, _ in subscribers]
    issues = _issues_of(session, contact.id, subscriber_ids, subscribers)
    data = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": _iso(utcnow()),
        "contact": {
            "guid": str(contact.guid),
            "created_at": _iso(contact.created_at),
            "updated_at": _iso(contact.updated_at),
            "fields": wire_fields(contact_fields(contact)),
        },
        "consent_agreements": [
            {
                "consent": row.consent,
                "consent_display_name": row.display_name,
                "agreed": row.agreed,
                "revision": row.revision,
                "channel": row.channel,
                "at": _iso(row.at),
            }
            for row in agreement_rows(session, contact.id)
        ],
        "activities": _activities(session, contact.id, channels),
        "subscriptions": [
            {
                "newsletter": newsletter,
                "email": subscriber.email,
                "first_name": subscriber.first_name,
                "last_name": subscriber.last_name,
                "status": subscriber.status,
                "subscribed_at": _iso(subscriber.created_at),
                "unsubscribed_at": _iso(subscriber.unsubscribed_at),
                "unsubscribed_from_issue": _issue_guid(issues, subscriber.unsubscribed_issue_id),
            }
            for subscriber, newsletter in subscribers
        ],
        "deliveries": [
            {
                **_issue_ref(issues, row.issue_id),
                "email": row.email,
                "status": row.status,
                "error": row.error,
                "attempts": row.attempts,
                "sent_at": _iso(row.sent_at),
            }
            for row in deliveries_of_contact(session, contact.id)
        ],
        "email_opens": _opens(session, subscriber_ids, issues),
        "email_clicks": _clicks(session, subscriber_ids, issues),
    }
    audit.record(session, actor, EXPORTED, str(contact.guid))
    return data


def _activities(
    session: Session, contact_id: int, channels: dict[int, str]
) -> list[dict[str, Any]]:
    rows = session.execute(
        select(
            Activity.id,
            Activity.type,
            Activity.title,
            Activity.value,
            Activity.url,
            Activity.referrer,
            Activity.channel_id,
            Activity.created_at,
        )
        .where(Activity.contact_id == contact_id)
        .order_by(Activity.id)
    )
    return [
        {
            "id": row.id,
            "type": row.type,
            "title": row.title,
            "value": row.value,
            "url": row.url,
            "referrer": row.referrer,
            # No channel: logged by the hub itself (email opens and clicks).
            "channel": None if row.channel_id is None else channels.get(row.channel_id),
            "at": _iso(row.created_at),
        }
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class _IssueInfo:
    guid: uuid.UUID
    subject: str
    newsletter: str


def _issues_of(
    session: Session, contact_id: int, subscriber_ids: list[int], subscribers: Any
) -> dict[int, _IssueInfo]:
    """The issues the contact's subscriptions touch (deliveries, hits, unsubscribes)."""
    ids = {row.issue_id for row in deliveries_of_contact(session, contact_id)}
    ids |= {s.unsubscribed_issue_id for s, _ in subscribers if s.unsubscribed_issue_id}
    if subscriber_ids:
        for table in (EmailOpen, EmailClick):
            ids |= set(
                session.scalars(
                    select(table.issue_id).where(table.subscriber_id.in_(subscriber_ids)).distinct()
                )
            )
    if not ids:
        return {}
    rows = session.execute(
        select(EmailIssue.id, EmailIssue.guid, EmailIssue.subject, Newsletter.name)
        .join(Newsletter, Newsletter.id == EmailIssue.newsletter_id)
        .where(EmailIssue.id.in_(ids))
    )
    return {row[0]: _IssueInfo(row[1], row[2], row[3]) for row in rows}


def _issue_guid(issues: dict[int, _IssueInfo], issue_id: int | None) -> str | None:
    info = issues.get(issue_id) if issue_id is not None else None
    return str(info.guid) if info else None


def _issue_ref(issues: dict[int, _IssueInfo], issue_id: int) -> dict[str, Any]:
    info = issues[issue_id]
    return {"issue": str(info.guid), "subject": info.subject, "newsletter": info.newsletter}


def _hit(row: Any) -> dict[str, Any]:
    return {
        "machine": row.is_machine,
        "machine_reason": row.machine_reason,
        "user_agent": row.user_agent,
        "ip": row.ip,
        "at": _iso(row.created_at),
    }


def _opens(
    session: Session, subscriber_ids: list[int], issues: dict[int, _IssueInfo]
) -> list[dict[str, Any]]:
    if not subscriber_ids:
        return []
    rows = session.execute(
        select(EmailOpen).where(EmailOpen.subscriber_id.in_(subscriber_ids)).order_by(EmailOpen.id)
    ).scalars()
    return [{**_issue_ref(issues, row.issue_id), **_hit(row)} for row in rows]


def _clicks(
    session: Session, subscriber_ids: list[int], issues: dict[int, _IssueInfo]
) -> list[dict[str, Any]]:
    if not subscriber_ids:
        return []
    rows = session.execute(
        select(EmailClick, IssueLink.guid, IssueLink.target_url)
        .join(IssueLink, IssueLink.id == EmailClick.link_id)
        .where(EmailClick.subscriber_id.in_(subscriber_ids))
        .order_by(EmailClick.id)
    ).all()
    return [
        {
            **_issue_ref(issues, click.issue_id),
            "link": str(link_guid),
            "url": target_url,
            **_hit(click),
        }
        for click, link_guid, target_url in rows
    ]


# -- erasure -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Erasure:
    """What an erasure deleted, counted (the GUID is all that is left of the contact)."""

    guid: str
    activities: int
    consent_agreements: int
    subscriptions: int
    deliveries: int
    email_opens: int
    email_clicks: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "erased": self.guid,
            "activities": self.activities,
            "consent_agreements": self.consent_agreements,
            "subscriptions": self.subscriptions,
            "deliveries": self.deliveries,
            "email_opens": self.email_opens,
            "email_clicks": self.email_clicks,
        }


def _deleted(session: Session, statement: Any) -> int:
    result = session.execute(statement.execution_options(synchronize_session=False))
    return max(int(getattr(result, "rowcount", 0) or 0), 0)


def erase_contact(session: Session, guid: str | uuid.UUID, actor: str) -> Erasure:
    """Delete the contact and everything stored about it; recorded as `contact.erased`.

    Children are deleted explicitly, not left to ON DELETE CASCADE: the activity log has no
    foreign keys at all, and explicit deletes behave the same on SQLite and PostgreSQL (and find
    deliveries through their index, which a cascade from `subscribers` cannot).
    """
    contact = find_contact(session, guid)
    contact_guid = str(contact.guid)
    # Lock the contact first (PostgreSQL; SQLite has a single writer anyway), so that whatever
    # waits on this row sees it gone, not half erased.
    session.execute(select(Contact.id).where(Contact.id == contact.id).with_for_update())
    # The rollups hold counts of these activities: take them out before the rows go.
    rollups.forget_contact(session, contact.id)
    activities = _deleted(session, delete(Activity).where(Activity.contact_id == contact.id))
    agreements = _deleted(
        session, delete(ConsentAgreement).where(ConsentAgreement.contact_id == contact.id)
    )
    subscriptions = session.execute(
        select(Subscriber.id, Subscriber.newsletter_id).where(Subscriber.contact_id == contact.id)
    ).all()
    subscriber_ids = [row.id for row in subscriptions]
    opens = clicks = deliveries = 0
    if subscriber_ids:
        opens = _deleted(
            session, delete(EmailOpen).where(EmailOpen.subscriber_id.in_(subscriber_ids))
        )
        clicks = _deleted(
            session, delete(EmailClick).where(EmailClick.subscriber_id.in_(subscriber_ids))
        )
        for subscriber_id, newsletter_id in subscriptions:
            issues = select(EmailIssue.id).where(EmailIssue.newsletter_id == newsletter_id)
            deliveries += _deleted(
                session,
                delete(Delivery).where(
                    Delivery.issue_id.in_(issues), Delivery.subscriber_id == subscriber_id
                ),
            )
        _deleted(session, delete(Subscriber).where(Subscriber.id.in_(subscriber_ids)))
    _deleted(session, delete(Contact).where(Contact.id == contact.id))
    session.expunge(contact)
    # Its webhook events and deliveries go too; `contact.erased` (the GUID alone) is left.
    changes.contact_erased(session, contact.id, contact_guid)
    audit.record(session, actor, ERASED, contact_guid)
    return Erasure(
        contact_guid, activities, agreements, len(subscriber_ids), deliveries, opens, clicks
    )


@dataclass(frozen=True, slots=True)
class ErasurePreview:
    """What erasing a contact would delete, for the confirmation page."""

    guid: str
    email: str | None
    name: str
    activities: int
    consent_agreements: int
    subscriptions: int


def erasure_preview(session: Session, guid: str | uuid.UUID) -> ErasurePreview:
    """Count what an erasure of the contact would delete (each an indexed count)."""
    contact = find_contact(session, guid)
    name = " ".join(part for part in (contact.first_name, contact.last_name) if part)

    def count(statement: Any) -> int:
        return int(session.scalar(statement) or 0)

    return ErasurePreview(
        str(contact.guid),
        contact.email,
        name,
        count(select(func.count()).where(Activity.contact_id == contact.id)),
        count(select(func.count()).where(ConsentAgreement.contact_id == contact.id)),
        count(select(func.count()).where(Subscriber.contact_id == contact.id)),
    )


def check_confirmation(contact: Contact, typed: str) -> None:
    """The person erasing typed the contact's GUID (any spelling) or email (any case)."""
    text = typed.strip()
    matches_guid = False
    if 32 <= len(text) <= 38:
        try:
            matches_guid = uuid.UUID(text) == contact.guid
        except ValueError:
            matches_guid = False
    matches_email = bool(contact.email) and text.lower() == (contact.email or "").lower()
    if not (matches_guid or matches_email):
        what = "GUID or email address" if contact.email else "GUID"
        raise InvalidInput(
            f"Type the contact's {what} exactly to confirm the erasure.",
            code="confirmation_mismatch",
            field="confirm",
        )


def erase_confirmed(session: Session, guid: str | uuid.UUID, typed: str, actor: str) -> Erasure:
    """Erase the contact if `typed` is its GUID or email (the admin page's confirmation)."""
    check_confirmation(find_contact(session, guid), typed)
    return erase_contact(session, guid, actor)
