"""Queries for newsletters, subscribers, issues, links and deliveries.

Subscriber addresses are stored lower-cased, so they compare with `==`; contact addresses are
stored as given, so they compare through `lower()`.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    exists,
    false,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from contacthub.storage.models import (
    ConsentAgreement,
    Contact,
    Delivery,
    EmailIssue,
    GroupMember,
    IssueLink,
    Newsletter,
    Subscriber,
    Suppression,
)

SUBSCRIBED = "subscribed"
UNSUBSCRIBED = "unsubscribed"
# Double opt-in: subscribed through the public form or API, confirmation link not yet followed.
# Never mailed (sending takes `subscribed` only); expires (subscriptions/optin.py).
UNCONFIRMED = "unconfirmed"
SUBSCRIBER_STATES = (SUBSCRIBED, UNSUBSCRIBED, UNCONFIRMED)

# Delivery states. `sending` marks a message handed to the SMTP server whose outcome is not yet
# recorded; after a crash it stays there, "in doubt", and is never sent again on its own.
PENDING = "pending"
SENDING = "sending"
SENT = "sent"
# A temporary failure: tried again once `next_attempt_at` has come (by a run, or the hub's job).
DEFERRED = "deferred"
FAILED = "failed"  # a permanent failure, or a temporary one that ran out of attempts
# The subscriber unsubscribed (or left the group) before it went out, or the address is
# suppressed (`error` is then "suppressed: <reason>").
SKIPPED = "skipped"
UNSUBSCRIBED_REASON = "unsubscribed before sending"
LEFT_GROUP_REASON = "left the group before sending"
SUPPRESSED_PREFIX = "suppressed: "
DELIVERY_STATES = (PENDING, SENDING, SENT, DEFERRED, FAILED, SKIPPED)


# -- newsletters ---------------------------------------------------------------------------------


def newsletter_by_name(session: Session, name: str) -> Newsletter | None:
    return session.scalar(select(Newsletter).where(Newsletter.name == name))


def all_newsletters(session: Session) -> Sequence[Newsletter]:
    return session.scalars(select(Newsletter).order_by(Newsletter.name)).all()


# -- subscribers ---------------------------------------------------------------------------------


def subscriber_by_email(session: Session, newsletter_id: int, email: str) -> Subscriber | None:
    """The newsletter's subscriber with this (lower-cased) address, whatever its status."""
    return session.scalar(
        select(Subscriber).where(
            Subscriber.newsletter_id == newsletter_id, Subscriber.email == email.lower()
        )
    )


def subscriber_statuses(
    session: Session, newsletter_id: int, emails: Collection[str]
) -> dict[str, str]:
    """Status of each of `emails` (lower-cased) already known to the newsletter, in one query."""
    if not emails:
        return {}
    rows = session.execute(
        select(Subscriber.email, Subscriber.status).where(
            Subscriber.newsletter_id == newsletter_id, Subscriber.email.in_(emails)
        )
    )
    return dict(rows.all())


def subscribers_of(
    session: Session, newsletter_id: int, *, status: str | None = None
) -> Sequence[Subscriber]:
    """The newsletter's subscribers in the order they were added, optionally of one status."""
    query = select(Subscriber).where(Subscriber.newsletter_id == newsletter_id)
    if status is not None:
        query = query.where(Subscriber.status == status)
    return session.scalars(query.order_by(Subscriber.id)).all()


def subscriber_counts(session: Session, newsletter_id: int) -> dict[str, int]:
    """Number of the newsletter's subscribers per status."""
    rows = session.execute(
        select(Subscriber.status, func.count())
        .where(Subscriber.newsletter_id == newsletter_id)
        .group_by(Subscriber.status)
    )
    return dict(rows.all())


def oldest_contacts_with_emails(session: Session, emails: Collection[str]) -> dict[str, Contact]:
    """For each lower-cased address among `emails`, the first contact that got it, in one query.

    The contacts are held FOR KEY SHARE until the transaction ends (the subscriber about to point
    at one must not find it erased: `contacts.repository.contact_by_guid`); one erased while the
    lock waited drops out, and the next contact with its address, if any, is the first.
    """
    if not emails:
        return {}
    found: dict[str, Contact] = {}
    contacts = session.scalars(
        select(Contact)
        .where(func.lower(Contact.email).in_(emails))
        .order_by(Contact.id)
        .with_for_update(key_share=True)
    )
    for contact in contacts:
        assert contact.email is not None
        found.setdefault(contact.email.lower(), contact)
    return found


# -- issues and links ----------------------------------------------------------------------------


def issue_by_guid(session: Session, guid: uuid.UUID) -> EmailIssue | None:
    return session.scalar(select(EmailIssue).where(EmailIssue.guid == guid))


def lock_issue(session: Session, issue_id: int) -> EmailIssue:
    """The issue, its row locked until the end of the transaction (PostgreSQL; SQLite's write
    transactions are serialised anyway), so that two send runs prepare one after the other."""
    return session.execute(
        select(EmailIssue).where(EmailIssue.id == issue_id).with_for_update()
    ).scalar_one()


def issues_of(session: Session, newsletter_id: int) -> Sequence[EmailIssue]:
    """The newsletter's issues, newest first."""
    return session.scalars(
        select(EmailIssue)
        .where(EmailIssue.newsletter_id == newsletter_id)
        .order_by(EmailIssue.id.desc())
    ).all()


def links_of(session: Session, issue_id: int) -> Sequence[IssueLink]:
    """The issue's tracked links in document order (the hidden honeypot link last)."""
    return session.scalars(
        select(IssueLink).where(IssueLink.issue_id == issue_id).order_by(IssueLink.position)
    ).all()


def link_by_guid(session: Session, guid: uuid.UUID) -> IssueLink | None:
    return session.scalar(select(IssueLink).where(IssueLink.guid == guid))


# -- deliveries ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """One claimed delivery with what rendering its message needs."""

    delivery_id: int
    subscriber_id: int
    email: str
    first_name: str | None
    last_name: str | None
    attempts: int
    # Whether this copy tracks its reader personally (`compose.Tracking.PERSONAL`) or only in
    # aggregate: see `tracking_allowed`.
    tracked: bool = True


def _not_suppressed(email: InstrumentedAttribute[str]) -> ColumnElement[bool]:
    """The suppression list's own rule (`suppressions.service.not_suppressed`), imported when
    used: that module uses email/service.py, which uses this one."""
    from contacthub.suppressions.service import not_suppressed as rule

    return rule(email)


def _sendable(max_attempts: int, now: datetime) -> ColumnElement[bool]:
    """Pending, or deferred with attempts left and its next try due; never to a suppressed
    address (the rule is part of every claim, so a suppression made mid-run holds at once)."""
    due = or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now)
    return and_(
        or_(
            Delivery.status == PENDING,
            and_(Delivery.status == DEFERRED, Delivery.attempts < max_attempts, due),
        ),
        _not_suppressed(Delivery.email),
    )


def _in_group(group_id: int) -> ColumnElement[bool]:
    """The subscriber's contact is a member of the group now (`group_members`, kept live by
    groups/membership.py)."""
    return Subscriber.contact_id.in_(
        select(GroupMember.contact_id).where(GroupMember.group_id == group_id)
    )


def in_audience(issue: EmailIssue) -> ColumnElement[bool]:
    """Subscribers the issue goes to: subscribed to its newsletter and, when it targets a
    group, members of that group."""
    wanted = and_(Subscriber.newsletter_id == issue.newsletter_id, Subscriber.status == SUBSCRIBED)
    if issue.group_id is not None:
        wanted = and_(wanted, _in_group(issue.group_id))
    return wanted


def create_missing_deliveries(session: Session, issue: EmailIssue) -> int:
    """A delivery for every subscriber in the issue's audience (`in_audience`) without one:
    pending, or skipped ("suppressed: <reason>") when the address is suppressed.

    One INSERT … SELECT, so that 100,000 subscribers cost one statement, not 100,000 objects;
    the group is intersected in the same statement (a semi-join on `group_members`), and the
    suppression list is joined in it too (by its unique address).

    Subscribers who have a delivery already are left out by an anti-join on `deliveries`, but
    only when the issue has deliveries: on the first run there is nothing to leave out, and the
    anti-join would read the very table the statement fills. PostgreSQL, planning for a
    `deliveries` table still empty, chose a sequential scan of it per subscriber, through the
    rows the statement had inserted so far: minutes for 100,000 subscribers instead of a second.
    """
    count = select(func.count()).where(Delivery.issue_id == issue.id)
    before = session.scalar(count) or 0
    where = [in_audience(issue)]
    if before:
        where.append(
            ~exists().where(Delivery.issue_id == issue.id, Delivery.subscriber_id == Subscriber.id)
        )
    suppressed = Suppression.id.is_not(None)
    candidates = (
        select(
            literal(issue.id),
            Subscriber.id,
            Subscriber.email,
            case((suppressed, literal(SKIPPED)), else_=literal(PENDING)),
            case((suppressed, literal(SUPPRESSED_PREFIX) + Suppression.reason), else_=null()),
            literal(0),
        )
        .select_from(Subscriber)
        .outerjoin(Suppression, Suppression.email == Subscriber.email)
        .where(*where)
    )
    session.execute(
        insert(Delivery).from_select(
            ["issue_id", "subscriber_id", "email", "status", "error", "attempts"], candidates
        )
    )
    # Counted, not read from rowcount: psycopg does not always report it for INSERT … SELECT.
    return (session.scalar(count) or 0) - before


def _skip(session: Session, issue_id: int, gone: ColumnElement[bool], reason: str) -> int:
    result = session.execute(
        update(Delivery)
        .where(Delivery.issue_id == issue_id, Delivery.status.in_((PENDING, DEFERRED)), gone)
        .values(status=SKIPPED, error=reason)
        .execution_options(synchronize_session=False)
    )
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


def skip_unsubscribed_deliveries(session: Session, issue_id: int) -> int:
    """Mark the issue's unsent deliveries to subscribers who have since unsubscribed as skipped."""
    gone = exists().where(Subscriber.id == Delivery.subscriber_id, Subscriber.status != SUBSCRIBED)
    return _skip(session, issue_id, gone, UNSUBSCRIBED_REASON)


def skip_suppressed_deliveries(session: Session, issue_id: int) -> int:
    """Mark the issue's unsent deliveries to addresses suppressed since they were made as
    skipped, with the suppression's reason ("suppressed: hard_bounce")."""
    reason = (
        select(literal(SUPPRESSED_PREFIX) + Suppression.reason)
        .where(Suppression.email == Delivery.email)
        .scalar_subquery()
    )
    result = session.execute(
        update(Delivery)
        .where(
            Delivery.issue_id == issue_id,
            Delivery.status.in_((PENDING, DEFERRED)),
            ~_not_suppressed(Delivery.email),
        )
        .values(status=SKIPPED, error=reason, next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


def suppressed_counts(session: Session, issue_id: int) -> dict[str, int]:
    """The issue's deliveries skipped because their address is suppressed, per reason."""
    rows = session.execute(
        select(Delivery.error, func.count())
        .where(
            Delivery.issue_id == issue_id,
            Delivery.status == SKIPPED,
            Delivery.error.startswith(SUPPRESSED_PREFIX, autoescape=True),
        )
        .group_by(Delivery.error)
    )
    return {str(error).removeprefix(SUPPRESSED_PREFIX): count for error, count in rows.all()}


def skipped_counts(session: Session, issue_id: int) -> dict[str, int]:
    """The issue's skipped deliveries per reason (the `error` they were skipped with)."""
    rows = session.execute(
        select(Delivery.error, func.count())
        .where(Delivery.issue_id == issue_id, Delivery.status == SKIPPED)
        .group_by(Delivery.error)
    )
    return {str(error or "skipped"): count for error, count in rows.all()}


def fail_exhausted(session: Session, issue_id: int, max_attempts: int) -> int:
    """Mark deferred deliveries that have no attempt left (the limit was lowered) failed;
    they keep their last reason."""
    result = session.execute(
        update(Delivery)
        .where(
            Delivery.issue_id == issue_id,
            Delivery.status == DEFERRED,
            Delivery.attempts >= max_attempts,
        )
        .values(status=FAILED, next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


def next_deferred(session: Session, issue_id: int) -> tuple[int, datetime | None]:
    """(deferred deliveries of the issue, the earliest time one of them is tried again)."""
    row = session.execute(
        select(func.count(), func.min(Delivery.next_attempt_at)).where(
            Delivery.issue_id == issue_id, Delivery.status == DEFERRED
        )
    ).one()
    return int(row[0] or 0), row[1]


def deferred_of(session: Session, issue_id: int, *, limit: int) -> Sequence[Delivery]:
    """The issue's deferred deliveries, the next to be tried first."""
    return session.scalars(
        select(Delivery)
        .where(Delivery.issue_id == issue_id, Delivery.status == DEFERRED)
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
    ).all()


def issues_with_due_retries(session: Session, now: datetime, max_attempts: int) -> list[uuid.UUID]:
    """Issues being sent (`sending`) that have a deferred delivery due for its next try."""
    due = exists().where(
        Delivery.issue_id == EmailIssue.id,
        Delivery.status == DEFERRED,
        Delivery.attempts < max_attempts,
        or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
    )
    return list(
        session.scalars(
            select(EmailIssue.guid)
            .where(EmailIssue.status == "sending", due)
            .order_by(EmailIssue.id)
        )
    )


def skip_non_member_deliveries(session: Session, issue: EmailIssue) -> int:
    """Mark the unsent deliveries of a group's issue to subscribers whose contact has since
    left the group as skipped (none when the issue targets no group)."""
    if issue.group_id is None:
        return 0
    left = exists().where(Subscriber.id == Delivery.subscriber_id, ~_in_group(issue.group_id))
    return _skip(session, issue.id, left, LEFT_GROUP_REASON)


def left_out_count(session: Session, issue: EmailIssue) -> int:
    """Subscribed subscribers of the issue's newsletter who do not get it because they are not
    members of its group (now), among those who have not had it: no delivery, or a skipped
    one. Zero when the issue targets no group."""
    if issue.group_id is None:
        return 0
    had_it = exists().where(
        Delivery.issue_id == issue.id,
        Delivery.subscriber_id == Subscriber.id,
        Delivery.status != SKIPPED,
    )
    query = select(func.count()).where(
        Subscriber.newsletter_id == issue.newsletter_id,
        Subscriber.status == SUBSCRIBED,
        ~_in_group(issue.group_id),
        ~had_it,
    )
    return session.scalar(query) or 0


def audience_count(session: Session, issue: EmailIssue) -> int:
    """Subscribers the issue goes to now: subscribed, and members of its group if it has one."""
    return session.scalar(select(func.count()).where(in_audience(issue))) or 0


def next_sendable_ids(
    session: Session,
    issue_id: int,
    *,
    after_id: int,
    limit: int,
    max_attempts: int,
    now: datetime,
) -> list[int]:
    """The next deliveries (by id, above `after_id`) that may be sent now: pending, or
    deferred with attempts left and due; not to suppressed addresses."""
    sendable = _sendable(max_attempts, now)
    return list(
        session.scalars(
            select(Delivery.id)
            .where(Delivery.issue_id == issue_id, Delivery.id > after_id, sendable)
            .order_by(Delivery.id)
            .limit(limit)
        )
    )


def sendable_count(session: Session, issue_id: int, max_attempts: int, now: datetime) -> int:
    """Deliveries a send run would try now: pending, or deferred with attempts left and due."""
    sendable = _sendable(max_attempts, now)
    query = select(func.count()).where(Delivery.issue_id == issue_id, sendable)
    return session.scalar(query) or 0


def unskip_returned(session: Session, issue: EmailIssue) -> int:
    """Make skipped deliveries pending again where the subscriber is back in the issue's
    audience (subscribed again and, for a group's issue, a member again) and the address is
    not suppressed (any more: its suppression was lifted)."""
    back = exists().where(Subscriber.id == Delivery.subscriber_id, in_audience(issue))
    result = session.execute(
        update(Delivery)
        .where(
            Delivery.issue_id == issue.id,
            Delivery.status == SKIPPED,
            back,
            _not_suppressed(Delivery.email),
        )
        .values(status=PENDING, error=None, next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


def reset_in_doubt(session: Session, issue_id: int) -> int:
    """Make the issue's `sending` deliveries pending again (the operator chose to resend)."""
    result = session.execute(
        update(Delivery)
        .where(Delivery.issue_id == issue_id, Delivery.status == SENDING)
        .values(status=PENDING, error=None)
        .execution_options(synchronize_session=False)
    )
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


# -- consent-gated tracking (see docs/email.md "Consent-gated tracking") ----------------------


def tracking_consent_of_deliveries(session: Session, ids: Collection[int]) -> int | None:
    """The tracking consent of the newsletter these deliveries (all of one issue) belong to."""
    return session.scalar(
        select(Newsletter.tracking_consent_id)
        .join(EmailIssue, EmailIssue.newsletter_id == Newsletter.id)
        .join(Delivery, Delivery.issue_id == EmailIssue.id)
        .where(Delivery.id == min(ids))
    )


def tracking_allowed(tracking_consent_id: int | None) -> ColumnElement[bool]:
    """Whether a delivery's copy may track its reader personally, as SQL on `Delivery`.

    Always, when the newsletter has no tracking consent; otherwise only when the latest
    agreement (highest id) of the subscriber's contact to that consent is an agree: a revoke,
    or no answer at all, means aggregate tracking only.
    """
    if tracking_consent_id is None:
        return true()
    latest = (
        select(ConsentAgreement.agreed)
        .join(Subscriber, Subscriber.contact_id == ConsentAgreement.contact_id)
        .where(
            Subscriber.id == Delivery.subscriber_id,
            ConsentAgreement.consent_id == tracking_consent_id,
        )
        .order_by(ConsentAgreement.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(latest, false())


# -- claiming ----------------------------------------------------------------------------------


def claim_deliveries(
    session: Session, ids: Collection[int], max_attempts: int, now: datetime
) -> list[ClaimedDelivery]:
    """Mark these deliveries `sending` and count the attempt, if they are still sendable (and
    not suppressed meanwhile: `_sendable`).

    The UPDATE re-checks the status, and RETURNING answers only the rows this transaction changed:
    two senders running at once (SQLite serialises them; PostgreSQL re-evaluates the condition
    after the row lock) never claim the same delivery. The same UPDATE decides whether each
    copy tracks its reader (`tracking_allowed`), stored in `Delivery.tracked`, so that what was
    sent and what is recorded cannot differ.
    """
    if not ids:
        return []
    sendable = _sendable(max_attempts, now)
    tracked = tracking_allowed(tracking_consent_of_deliveries(session, ids))
    claimed = session.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids), sendable)
        .values(status=SENDING, attempts=Delivery.attempts + 1, error=None, tracked=tracked)
        .returning(
            Delivery.id,
            Delivery.subscriber_id,
            Delivery.email,
            Delivery.attempts,
            Delivery.tracked,
        )
        .execution_options(synchronize_session=False)
    ).all()
    names = {
        row.id: (row.first_name, row.last_name)
        for row in session.execute(
            select(Subscriber.id, Subscriber.first_name, Subscriber.last_name).where(
                Subscriber.id.in_([c.subscriber_id for c in claimed])
            )
        )
    }
    recipients = [
        ClaimedDelivery(
            delivery_id=c.id,
            subscriber_id=c.subscriber_id,
            email=c.email,
            first_name=names.get(c.subscriber_id, (None, None))[0],
            last_name=names.get(c.subscriber_id, (None, None))[1],
            attempts=c.attempts,
            tracked=bool(c.tracked),
        )
        for c in claimed
    ]
    return sorted(recipients, key=lambda r: r.delivery_id)


def delivery_counts(session: Session, issue_id: int) -> dict[str, int]:
    """Number of the issue's deliveries in each state (every state present, zero if none)."""
    counts = dict.fromkeys(DELIVERY_STATES, 0)
    rows = session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.issue_id == issue_id)
        .group_by(Delivery.status)
    )
    counts.update(dict(rows.all()))
    return counts


def deliveries_of(
    session: Session, issue_id: int, *, statuses: Collection[str] | None = None
) -> Sequence[Delivery]:
    """The issue's deliveries in the order they were created, optionally of some states."""
    query = select(Delivery).where(Delivery.issue_id == issue_id)
    if statuses is not None:
        query = query.where(Delivery.status.in_(statuses))
    return session.scalars(query.order_by(Delivery.id)).all()


def delivery_of(session: Session, issue_id: int, subscriber_id: int) -> Delivery | None:
    return session.scalar(
        select(Delivery).where(
            Delivery.issue_id == issue_id, Delivery.subscriber_id == subscriber_id
        )
    )


def keep_group_name(session: Session, group_id: int, name: str) -> None:
    """Write the group's current name into the issues sent to it, before it is deleted: the
    name they keep shows which group they lost (and that they may not be sent again)."""
    session.execute(
        update(EmailIssue).where(EmailIssue.group_id == group_id).values(group_name=name)
    )
