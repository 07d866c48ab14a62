"""The events of changes: one small function per event type, building its `data` and writing
it to the outbox (`outbox.emit`) in the caller's transaction.

Services call these right where the change happens, before their unit of work commits, so the
event commits with the change or not at all. Every function first asks whether some enabled
endpoint wants the type (`wanted`, answered from the subscriptions read once per unit of
work): without such an endpoint a function does no query and writes nothing, which keeps the
hot paths (data input, the open pixel and clicks, the send loop) as cheap as before.

The payloads are documented in docs/webhooks.md ("Event types") and kept stable: fields are
only ever added. Every event about a contact names it as `"contact": "<GUID>"`; contact fields
use the tracking API's names (`ContactEmail`, `ContactFirstName` …); times are ISO 8601 UTC.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from contacthub.activities.repository import ActivityRow
from contacthub.contacts.fields import CONTACT_FIELDS
from contacthub.events import outbox
from contacthub.storage.models import (
    Channel,
    Consent,
    ConsentRevision,
    Contact,
    ContactGroup,
    Delivery,
    EmailIssue,
    IssueLink,
    Newsletter,
    OutboxEvent,
    Subscriber,
    WebhookDelivery,
)
from contacthub.storage.types import utcnow

_WIRE_NAMES = {field.attribute: field.wire_name for field in CONTACT_FIELDS}
_CHUNK = 500  # ids per IN (...): within every database's limit


def wanted(session: Session, event_type: str) -> bool:
    """Whether some enabled endpoint wants this type (no query after the first per unit of
    work)."""
    return any(s.wants(event_type) for s in outbox.subscriptions(session))


def _chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _guids(session: Session, contact_ids: Collection[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    ordered = sorted(set(contact_ids))
    for chunk in _chunks(ordered):
        for contact_id, guid in session.execute(
            select(Contact.id, Contact.guid).where(Contact.id.in_(chunk))
        ):
            found[contact_id] = str(guid)
    return found


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


def _write(session: Session, events: Sequence[tuple[str, int | None, dict[str, Any]]]) -> int:
    """Write many events in one INSERT (their types already known to be wanted)."""
    if not events:
        return 0
    now = utcnow()
    outbox.insert_events(session, [(t, contact_id, data, now) for t, contact_id, data in events])
    return len(events)


# -- contacts ------------------------------------------------------------------------------------


def fields_of(contact: Contact, attributes: Iterable[str] | None = None) -> dict[str, Any]:
    """The contact's fields (all, or `attributes`) by Contact attribute: what `contact_updated`
    compares against. Cheap: no query."""
    names = _WIRE_NAMES if attributes is None else attributes
    return {name: getattr(contact, name) for name in names if name in _WIRE_NAMES}


def _created(contact: Contact) -> dict[str, Any]:
    fields = {
        _WIRE_NAMES[name]: _iso(value)
        for name, value in fields_of(contact).items()
        if value is not None
    }
    return {"contact": str(contact.guid), "fields": fields}


def _updated(contact: Contact, before: Mapping[str, Any], source: str) -> dict[str, Any] | None:
    changed = {
        _WIRE_NAMES[name]: _iso(getattr(contact, name))
        for name, old in before.items()
        if name in _WIRE_NAMES and getattr(contact, name) != old
    }
    if not changed:
        return None
    return {
        "contact": str(contact.guid),
        "changed": sorted(changed),
        "fields": changed,
        "source": source,
    }


def contact_created(session: Session, contact: Contact) -> bool:
    """`contact.created`: a contact was created (anonymous by the tracking API, or with an
    address by a subscription, an import or data input). Data: the contact and those of its
    fields that have a value."""
    if not wanted(session, outbox.CONTACT_CREATED):
        return False
    return outbox.emit(
        session, outbox.CONTACT_CREATED, contact_id=contact.id, data=_created(contact)
    )


def contact_updated(
    session: Session, contact: Contact, before: Mapping[str, Any], *, source: str
) -> bool:
    """`contact.updated`: fields of a contact changed (`before`: their values before, from
    `fields_of`). Data: the contact, the wire names of the fields that changed, their new
    values, and what changed them (`source`: `data_input`, `subscription`, `import`). Nothing
    is written when no field changed."""
    if not wanted(session, outbox.CONTACT_UPDATED):
        return False
    data = _updated(contact, before, source)
    if data is None:
        return False
    return outbox.emit(session, outbox.CONTACT_UPDATED, contact_id=contact.id, data=data)


def contacts_changed(
    session: Session,
    created: Sequence[Contact],
    updated: Sequence[tuple[Contact, Mapping[str, Any]]],
    *,
    source: str,
) -> int:
    """`contact.created` and `contact.updated` for many contacts at once (an import chunk), in
    one INSERT."""
    events: list[tuple[str, int | None, dict[str, Any]]] = []
    if created and wanted(session, outbox.CONTACT_CREATED):
        events += [(outbox.CONTACT_CREATED, c.id, _created(c)) for c in created]
    if updated and wanted(session, outbox.CONTACT_UPDATED):
        for contact, before in updated:
            data = _updated(contact, before, source)
            if data is not None:
                events.append((outbox.CONTACT_UPDATED, contact.id, data))
    return _write(session, events)


def contact_erased(session: Session, contact_id: int, guid: str) -> bool:
    """Erasure: first delete every outbox event of the contact and its webhook deliveries (they
    carry its data), then write `contact.erased`, whose data is the GUID alone. Call it in the
    erasure's transaction, before or after the contact's rows go."""
    session.execute(
        delete(WebhookDelivery)
        .where(WebhookDelivery.contact_id == contact_id)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        delete(OutboxEvent)
        .where(OutboxEvent.contact_id == contact_id)
        .execution_options(synchronize_session=False)
    )
    return outbox.emit(
        session, outbox.CONTACT_ERASED, contact_id=contact_id, data={"contact": guid}
    )


# -- consents ------------------------------------------------------------------------------------


def consent_recorded(
    session: Session,
    contact_id: int,
    consent_id: int,
    revision_id: int,
    *,
    agreed: bool,
    channel_id: int | None = None,
    source: str,
) -> bool:
    """`consent.agreed` / `consent.revoked`: a contact agreed to (or revoked) a consent's
    current revision. Data: the contact, the consent's code name, the revision number, the
    channel's GUID when a channel recorded it (else null), and the source (`tracking`,
    `double_opt_in`, `preferences`)."""
    event_type = outbox.CONSENT_AGREED if agreed else outbox.CONSENT_REVOKED
    if not wanted(session, event_type):
        return False
    row = session.execute(
        select(Contact.guid, Consent.code_name, ConsentRevision.number)
        .select_from(Contact)
        .join(Consent, Consent.id == consent_id)
        .join(ConsentRevision, ConsentRevision.id == revision_id)
        .where(Contact.id == contact_id)
    ).one()
    channel = (
        session.scalar(select(Channel.guid).where(Channel.id == channel_id))
        if channel_id is not None
        else None
    )
    return outbox.emit(
        session,
        event_type,
        contact_id=contact_id,
        data={
            "contact": str(row.guid),
            "consent": row.code_name,
            "revision": row.number,
            "channel": None if channel is None else str(channel),
            "source": source,
        },
    )


# -- groups --------------------------------------------------------------------------------------


def group_membership(
    session: Session,
    group_id: int,
    contact_ids: Collection[int],
    *,
    entered: bool,
    reason: str,
    moment: datetime,
) -> int:
    """`group.entered` / `group.left`, one per contact: contacts entered or left a group (added
    or removed by hand, or a dynamic group's conditions became true or false for them). Data:
    the contact, the group's GUID and name, the reason as the membership history records it,
    and when. How many were written."""
    event_type = outbox.GROUP_ENTERED if entered else outbox.GROUP_LEFT
    if not contact_ids or not wanted(session, event_type):
        return 0
    group = session.execute(
        select(ContactGroup.guid, ContactGroup.name).where(ContactGroup.id == group_id)
    ).one()
    guids = _guids(session, contact_ids)
    at = moment.isoformat()
    return _write(
        session,
        [
            (
                event_type,
                contact_id,
                {
                    "contact": guids[contact_id],
                    "group": {"guid": str(group.guid), "name": group.name},
                    "reason": reason,
                    "at": at,
                },
            )
            for contact_id in sorted(contact_ids)
            if contact_id in guids
        ],
    )


# -- email ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _DeliveryInfo:
    contact_id: int
    contact: str
    email: str
    issue: str
    subject: str
    newsletter: str


def _deliveries(session: Session, delivery_ids: Collection[int]) -> dict[int, _DeliveryInfo]:
    found: dict[int, _DeliveryInfo] = {}
    for chunk in _chunks(sorted(set(delivery_ids))):
        rows = session.execute(
            select(
                Delivery.id,
                Subscriber.contact_id,
                Contact.guid,
                Delivery.email,
                EmailIssue.guid.label("issue_guid"),
                EmailIssue.subject,
                Newsletter.name,
            )
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .join(Contact, Contact.id == Subscriber.contact_id)
            .join(EmailIssue, EmailIssue.id == Delivery.issue_id)
            .join(Newsletter, Newsletter.id == EmailIssue.newsletter_id)
            .where(Delivery.id.in_(chunk))
        )
        for delivery_id, contact_id, guid, email, issue, subject, newsletter in rows:
            found[delivery_id] = _DeliveryInfo(
                contact_id, str(guid), email, str(issue), subject, newsletter
            )
    return found


def _email_data(info: _DeliveryInfo, delivery_id: int) -> dict[str, Any]:
    return {
        "contact": info.contact,
        "email": info.email,
        "newsletter": info.newsletter,
        "issue": info.issue,
        "subject": info.subject,
        "delivery": delivery_id,
    }


def emails_sent(session: Session, delivery_ids: Sequence[int], moment: datetime) -> int:
    """`email.sent`, one per delivery the mail server accepted (a chunk of the send loop at a
    time). Data: the contact, the address, the newsletter's name, the issue's GUID and subject,
    the delivery's id, and when it was sent."""
    if not delivery_ids or not wanted(session, outbox.EMAIL_SENT):
        return 0
    infos = _deliveries(session, delivery_ids)
    at = moment.isoformat()
    return _write(
        session,
        [
            (
                outbox.EMAIL_SENT,
                infos[d].contact_id,
                {**_email_data(infos[d], d), "sentAt": at},
            )
            for d in delivery_ids
            if d in infos
        ],
    )


@dataclass(frozen=True, slots=True)
class Hit:
    """An open or click of a subscriber, as the tracking batch stored it."""

    contact_id: int
    email: str
    issue_id: int
    machine: bool
    machine_reason: str | None
    at: datetime
    link_id: int | None = None  # clicks
    url: str | None = None  # clicks: the target the reader was sent to


def email_hits(session: Session, opens: Sequence[Hit], clicks: Sequence[Hit]) -> int:
    """`email.opened` / `email.clicked`, one per stored open or click of a subscriber (human
    or machine: `machine` and `machineReason` say which; a click on an aggregate link names
    nobody and is no event). Data: the contact, the address, the newsletter's name, the issue's
    GUID and subject, the machine verdict and when; clicks also the link's GUID and target."""
    want_opens = bool(opens) and wanted(session, outbox.EMAIL_OPENED)
    want_clicks = bool(clicks) and wanted(session, outbox.EMAIL_CLICKED)
    if not (want_opens or want_clicks):
        return 0
    hits = [*(opens if want_opens else ()), *(clicks if want_clicks else ())]
    guids = _guids(session, {h.contact_id for h in hits})
    issues = {
        issue_id: (str(guid), subject, newsletter)
        for issue_id, guid, subject, newsletter in session.execute(
            select(EmailIssue.id, EmailIssue.guid, EmailIssue.subject, Newsletter.name)
            .join(Newsletter, Newsletter.id == EmailIssue.newsletter_id)
            .where(EmailIssue.id.in_({h.issue_id for h in hits}))
        )
    }
    link_ids = {h.link_id for h in hits if h.link_id is not None}
    links = (
        {
            link_id: str(guid)
            for link_id, guid in session.execute(
                select(IssueLink.id, IssueLink.guid).where(IssueLink.id.in_(link_ids))
            )
        }
        if link_ids
        else {}
    )
    events = []
    for hit in hits:
        if hit.contact_id not in guids or hit.issue_id not in issues:
            continue
        issue, subject, newsletter = issues[hit.issue_id]
        data: dict[str, Any] = {
            "contact": guids[hit.contact_id],
            "email": hit.email,
            "newsletter": newsletter,
            "issue": issue,
            "subject": subject,
            "machine": hit.machine,
            "machineReason": hit.machine_reason,
            "at": hit.at.isoformat(),
        }
        if hit.link_id is None:
            events.append((outbox.EMAIL_OPENED, hit.contact_id, data))
        else:
            data["link"] = links.get(hit.link_id)
            data["url"] = hit.url
            events.append((outbox.EMAIL_CLICKED, hit.contact_id, data))
    return _write(session, events)


def email_activities(session: Session, activities: Iterable[ActivityRow]) -> int:
    """`activity.stored` for the activities email tracking stored (human opens and clicks)."""
    return outbox.emit_activities(session, activities)


# The feedback kinds of bounces/processor.py, and the event each one is.
_FEEDBACK = {
    "hard_bounce": (outbox.EMAIL_BOUNCED, "hard"),
    "soft_bounce": (outbox.EMAIL_BOUNCED, "soft"),
    "complaint": (outbox.EMAIL_COMPLAINED, None),
}


def email_feedback(session: Session, rows: Sequence[Mapping[str, Any]]) -> int:
    """`email.bounced` (hard or soft) and `email.complained`, one per new feedback event stored
    by the feedback processor (a replayed report is no new event; `delivered` reports are no
    event). Data: the contact, the address, the newsletter, the issue, the delivery's id, the
    source (imap, smtp, ses, sendgrid, postmark, mailgun), the enhanced status code and the
    remote server's text (bounces: `bounce` is `hard` or `soft`), and when it occurred."""
    chosen = [
        row
        for row in rows
        if row["kind"] in _FEEDBACK and wanted(session, _FEEDBACK[row["kind"]][0])
    ]
    if not chosen:
        return 0
    infos = _deliveries(session, [row["delivery_id"] for row in chosen])
    events = []
    for row in chosen:
        info = infos.get(row["delivery_id"])
        if info is None:
            continue
        event_type, bounce = _FEEDBACK[row["kind"]]
        data = {
            **_email_data(info, row["delivery_id"]),
            "email": row["email"],
            "source": row["source"],
            "statusCode": row["status_code"],
            "diagnostic": row["diagnostic"],
            "occurredAt": _iso(row["occurred_at"] or row["created_at"]),
        }
        if bounce is not None:
            data["bounce"] = bounce
        events.append((event_type, info.contact_id, data))
    return _write(session, events)


def email_unsubscribed(
    session: Session, subscriber: Subscriber, issue: EmailIssue | None, *, source: str
) -> bool:
    """`email.unsubscribed`: a subscriber left a newsletter (by the link in an issue, the
    preferences page, or an operator). Data: the contact, the address, the newsletter's name,
    the issue whose link was used (GUID, else null), the source and when."""
    if not wanted(session, outbox.EMAIL_UNSUBSCRIBED):
        return False
    row = session.execute(
        select(Contact.guid, Newsletter.name)
        .select_from(Contact)
        .join(Newsletter, Newsletter.id == subscriber.newsletter_id)
        .where(Contact.id == subscriber.contact_id)
    ).one()
    moment = subscriber.unsubscribed_at or utcnow()
    return outbox.emit(
        session,
        outbox.EMAIL_UNSUBSCRIBED,
        contact_id=subscriber.contact_id,
        data={
            "contact": str(row.guid),
            "email": subscriber.email,
            "newsletter": row.name,
            "issue": None if issue is None else str(issue.guid),
            "source": source,
            "at": moment.isoformat(),
        },
    )
