"""Everything the contact page shows: fields, consents with their history, the activity timeline
and email engagement.

Each part is one or a few indexed queries, so that a contact page stays fast with a million
activities in the log: the timeline pages by keyset on the `(contact_id, id)` index of
`activities`, consent history reads the `(contact_id, consent_id, id)` index of
`consent_agreements`, and email engagement the `subscriber_id` indexes of `email_opens` and
`email_clicks`. The results are plain dataclasses, read inside the unit of work, so that pages and
API answers can use them after it ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from contacthub.activities.rules import EMAIL_CLICK, EMAIL_OPEN
from contacthub.contacts import repository
from contacthub.contacts.fields import CONTACT_FIELDS
from contacthub.errors import InvalidInput, NotFound
from contacthub.identifiers import MAX_BIG_ID, parse_cursor
from contacthub.storage.models import (
    Activity,
    Channel,
    Consent,
    ConsentAgreement,
    ConsentRevision,
    Contact,
    Delivery,
    EmailClick,
    EmailIssue,
    EmailOpen,
    Newsletter,
    Subscriber,
)

TIMELINE_PAGE = 50
MAX_TIMELINE_PAGE = 200
# The engagement card lists the latest issues; the export has them all.
ENGAGEMENT_ISSUES = 100
EMAIL_CHANNEL = "Email"

# Labels of the contact fields, in the order of the seed's list.
FIELD_LABELS: dict[str, str] = {
    "email": "Email",
    "first_name": "First name",
    "middle_name": "Middle name",
    "last_name": "Last name",
    "birthday": "Birthday",
    "mobile_phone": "Mobile phone",
    "business_phone": "Business phone",
    "company_name": "Company",
    "job_title": "Job title",
    "address1": "Address",
    "city": "City",
    "zip": "ZIP",
    "country": "Country",
    "state": "State",
    "notes": "Notes",
}


def find_contact(session: Session, guid: str | uuid.UUID) -> Contact:
    """The contact with this GUID; NotFound also when the text is no GUID at all (an address
    typed by hand is simply a contact that does not exist)."""
    key: uuid.UUID | None = guid if isinstance(guid, uuid.UUID) else None
    if key is None and isinstance(guid, str) and 32 <= len(guid.strip()) <= 38:
        try:
            key = uuid.UUID(guid.strip())
        except ValueError:
            key = None
    contact = repository.contact_by_guid(session, key) if key is not None else None
    if contact is None:
        raise NotFound(f"No contact with GUID {str(guid)[:40]!r}.", code="unknown_contact")
    return contact


# -- fields --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContactFields:
    """A contact's identity and fields (attribute -> value, None when not given)."""

    id: int
    guid: uuid.UUID
    created_at: datetime
    updated_at: datetime
    values: dict[str, str | date | None]

    @property
    def email(self) -> str | None:
        value = self.values.get("email")
        return value if isinstance(value, str) else None

    @property
    def name(self) -> str:
        """First and last name, as far as known."""
        parts = (self.values.get("first_name"), self.values.get("last_name"))
        return " ".join(str(part) for part in parts if part)

    @property
    def labelled(self) -> list[tuple[str, str | date | None]]:
        """(label, value) in the seed's order, for display."""
        return [(label, self.values.get(attribute)) for attribute, label in FIELD_LABELS.items()]


def wire_fields(fields: ContactFields) -> dict[str, str | None]:
    """The fields under the tracking API's names (`ContactEmail` …), dates as YYYY-MM-DD."""
    values: dict[str, str | None] = {}
    for spec in CONTACT_FIELDS:
        value = fields.values.get(spec.attribute)
        values[spec.wire_name] = value.isoformat() if isinstance(value, date) else value
    return values


def contact_fields(contact: Contact) -> ContactFields:
    """The contact's fields, detached from the session."""
    return ContactFields(
        contact.id,
        contact.guid,
        contact.created_at,
        contact.updated_at,
        {attribute: getattr(contact, attribute) for attribute in FIELD_LABELS},
    )


# -- consents ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConsentEvent:
    """One agree or revoke event, with the revision of the texts it was given for."""

    agreed: bool
    revision: int
    channel: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class ConsentState:
    """A consent as far as this contact is concerned: agreed now or not, and the history.

    `agreed` is None when the contact never answered; `history` is newest first.
    """

    code_name: str
    display_name: str
    current_revision: int
    agreed: bool | None
    history: list[ConsentEvent]

    @property
    def agreed_revision(self) -> int | None:
        """The revision of the latest agreement, while it stands."""
        return self.history[0].revision if self.agreed else None

    @property
    def outdated(self) -> bool:
        """Agreed, but to older texts than the current ones."""
        revision = self.agreed_revision
        return revision is not None and revision < self.current_revision


@dataclass(frozen=True, slots=True)
class AgreementRow:
    """One stored agreement event, with what it refers to spelt out."""

    id: int
    consent_id: int
    consent: str
    display_name: str
    agreed: bool
    revision: int
    channel: str | None
    at: datetime


def agreement_rows(session: Session, contact_id: int) -> list[AgreementRow]:
    """The contact's agree/revoke events, oldest first, with consent, revision and channel."""
    rows = session.execute(
        select(
            ConsentAgreement.id,
            ConsentAgreement.consent_id,
            Consent.code_name,
            Consent.display_name,
            ConsentAgreement.agreed,
            ConsentRevision.number,
            Channel.name,
            ConsentAgreement.created_at,
        )
        .join(Consent, Consent.id == ConsentAgreement.consent_id)
        .join(ConsentRevision, ConsentRevision.id == ConsentAgreement.revision_id)
        .outerjoin(Channel, Channel.id == ConsentAgreement.channel_id)
        .where(ConsentAgreement.contact_id == contact_id)
        .order_by(ConsentAgreement.id)
    )
    return [AgreementRow(*row) for row in rows]


def consent_states(session: Session, contact_id: int) -> list[ConsentState]:
    """Every consent, with whether the contact agrees now and the history of their answers."""
    current = dict(
        session.execute(
            select(ConsentRevision.consent_id, func.max(ConsentRevision.number)).group_by(
                ConsentRevision.consent_id
            )
        ).all()
    )
    history: dict[int, list[ConsentEvent]] = {}
    for row in agreement_rows(session, contact_id):
        events = history.setdefault(row.consent_id, [])
        events.insert(0, ConsentEvent(row.agreed, row.revision, row.channel, row.at))
    states = []
    for consent in session.scalars(select(Consent).order_by(Consent.code_name)):
        events = history.get(consent.id, [])
        states.append(
            ConsentState(
                consent.code_name,
                consent.display_name,
                current.get(consent.id, 0),
                events[0].agreed if events else None,
                events,
            )
        )
    return states


# -- the timeline --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimelineItem:
    """One activity of the contact, with the name of its channel (`Email` for opens and clicks)."""

    id: int
    type: str
    title: str
    value: str | None
    url: str | None
    referrer: str | None
    channel: str | None
    created_at: datetime

    @property
    def is_email(self) -> bool:
        return self.type in (EMAIL_OPEN, EMAIL_CLICK)


@dataclass(frozen=True, slots=True)
class TimelinePage:
    """Activities newest first; `next_before` fetches the older ones (None on the last page)."""

    items: list[TimelineItem]
    next_before: int | None


def check_before(text: str) -> int | None:
    """The `before` cursor of a timeline (an activity id), or None when not given."""
    return parse_cursor(text, "before", maximum=MAX_BIG_ID)


def channel_names(session: Session, ids: Collection[int | None]) -> dict[int, str]:
    """Channel id -> name for the ids given (channels are few, but fetch only these)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return dict(
        session.execute(select(Channel.id, Channel.name).where(Channel.id.in_(wanted))).all()
    )


def timeline(
    session: Session, contact_id: int, *, before: int | None = None, limit: int = TIMELINE_PAGE
) -> TimelinePage:
    """The contact's activities on every channel, email opens and clicks included, newest first.

    Keyset paging on the `(contact_id, id)` index: ids follow time, so "before this id" is
    "older than this activity".
    """
    if not 1 <= limit <= MAX_TIMELINE_PAGE:
        raise InvalidInput(
            f"limit must be from 1 to {MAX_TIMELINE_PAGE}.", code="invalid_parameter", field="limit"
        )
    query = select(
        Activity.id,
        Activity.type,
        Activity.title,
        Activity.value,
        Activity.url,
        Activity.referrer,
        Activity.channel_id,
        Activity.created_at,
    ).where(Activity.contact_id == contact_id)
    if before is not None:
        query = query.where(Activity.id < before)
    rows = session.execute(query.order_by(Activity.id.desc()).limit(limit + 1)).all()
    page = rows[:limit]
    names = channel_names(session, [row.channel_id for row in page])
    items = [
        TimelineItem(
            row.id,
            row.type,
            row.title,
            row.value,
            row.url,
            row.referrer,
            _channel_name(row.channel_id, names),
            row.created_at,
        )
        for row in page
    ]
    return TimelinePage(items, page[-1].id if len(rows) > limit else None)


def _channel_name(channel_id: int | None, names: dict[int, str]) -> str | None:
    if channel_id is None:
        return EMAIL_CHANNEL
    # A channel deleted since keeps its activities; say which it was.
    return names.get(channel_id, f"channel #{channel_id}")


# -- email engagement ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubscriptionInfo:
    """One newsletter the contact's address is (or was) subscribed to."""

    subscriber_id: int
    newsletter: str
    email: str
    status: str
    subscribed_at: datetime
    unsubscribed_at: datetime | None


@dataclass(slots=True)
class IssueEngagement:
    """What the contact did with one email issue: its delivery, opens and clicks."""

    issue_id: int
    guid: uuid.UUID
    subject: str
    newsletter: str
    delivery_status: str | None = None
    sent_at: datetime | None = None
    human_opens: int = 0
    machine_opens: int = 0
    human_clicks: int = 0
    machine_clicks: int = 0
    first_open_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EmailEngagement:
    """Subscriptions, and per issue (newest first) the delivery, opens and clicks."""

    subscriptions: list[SubscriptionInfo]
    issues: list[IssueEngagement] = field(default_factory=list)
    more_issues: bool = False

    @property
    def totals(self) -> dict[str, int]:
        """Sums over the issues shown: sent, opened (issues), opens and clicks by kind."""
        return {
            "sent": sum(1 for i in self.issues if i.delivery_status == "sent"),
            "opened": sum(1 for i in self.issues if i.human_opens or i.human_clicks),
            "human_opens": sum(i.human_opens for i in self.issues),
            "machine_opens": sum(i.machine_opens for i in self.issues),
            "human_clicks": sum(i.human_clicks for i in self.issues),
            "machine_clicks": sum(i.machine_clicks for i in self.issues),
        }


def subscriptions(session: Session, contact_id: int) -> list[SubscriptionInfo]:
    """The contact's subscribers, one per newsletter, in the order they subscribed."""
    rows = session.execute(
        select(
            Subscriber.id,
            Newsletter.name,
            Subscriber.email,
            Subscriber.status,
            Subscriber.created_at,
            Subscriber.unsubscribed_at,
        )
        .join(Newsletter, Newsletter.id == Subscriber.newsletter_id)
        .where(Subscriber.contact_id == contact_id)
        .order_by(Subscriber.id)
    )
    return [SubscriptionInfo(*row) for row in rows]


def deliveries_of_contact(session: Session, contact_id: int) -> Sequence[Any]:
    """The contact's deliveries (with their issue), oldest first.

    `deliveries` is indexed by (issue_id, subscriber_id) only, so they are found through the
    issues of each subscriber's newsletter, never by scanning for the subscriber.
    """
    rows: list[Any] = []
    for subscriber_id, newsletter_id in session.execute(
        select(Subscriber.id, Subscriber.newsletter_id).where(Subscriber.contact_id == contact_id)
    ).all():
        issues = select(EmailIssue.id).where(EmailIssue.newsletter_id == newsletter_id)
        rows.extend(
            session.execute(
                select(
                    Delivery.id,
                    Delivery.issue_id,
                    Delivery.email,
                    Delivery.status,
                    Delivery.error,
                    Delivery.attempts,
                    Delivery.sent_at,
                ).where(Delivery.issue_id.in_(issues), Delivery.subscriber_id == subscriber_id)
            ).all()
        )
    return sorted(rows, key=lambda row: row.id)


def email_engagement(
    session: Session, contact_id: int, *, max_issues: int = ENGAGEMENT_ISSUES
) -> EmailEngagement:
    """The contact's subscriptions, and per issue its delivery and human and machine hits."""
    subs = subscriptions(session, contact_id)
    if not subs:
        return EmailEngagement([])
    subscriber_ids = [s.subscriber_id for s in subs]
    by_issue: dict[int, dict[str, Any]] = {}
    for row in deliveries_of_contact(session, contact_id):
        by_issue.setdefault(row.issue_id, {}).update(
            delivery_status=row.status, sent_at=row.sent_at
        )
    for table, prefix in ((EmailOpen, "opens"), (EmailClick, "clicks")):
        hits = session.execute(
            select(table.issue_id, table.is_machine, func.count(), func.min(table.created_at))
            .where(table.subscriber_id.in_(subscriber_ids))
            .group_by(table.issue_id, table.is_machine)
        )
        for issue_id, is_machine, count, first in hits:
            entry = by_issue.setdefault(issue_id, {})
            entry[f"{'machine' if is_machine else 'human'}_{prefix}"] = count
            if prefix == "opens" and not is_machine:
                entry["first_open_at"] = first
    wanted = sorted(by_issue, reverse=True)[:max_issues]
    issues = []
    if wanted:
        for issue_id, guid, subject, newsletter in session.execute(
            select(EmailIssue.id, EmailIssue.guid, EmailIssue.subject, Newsletter.name)
            .join(Newsletter, Newsletter.id == EmailIssue.newsletter_id)
            .where(EmailIssue.id.in_(wanted))
            .order_by(EmailIssue.id.desc())
        ):
            issues.append(
                IssueEngagement(issue_id, guid, subject, newsletter, **by_issue[issue_id])
            )
    return EmailEngagement(subs, issues, len(by_issue) > max_issues)


# -- the whole page ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContactProfile:
    """Everything the contact page shows."""

    fields: ContactFields
    consents: list[ConsentState]
    timeline: TimelinePage
    engagement: EmailEngagement


def contact_profile(
    session: Session, guid: str | uuid.UUID, *, before: int | None = None
) -> ContactProfile:
    """The contact page's data; `before` pages the timeline back."""
    contact = find_contact(session, guid)
    return ContactProfile(
        contact_fields(contact),
        consent_states(session, contact.id),
        timeline(session, contact.id, before=before),
        email_engagement(session, contact.id),
    )
