"""What the admin UI and the management API list: newsletters with their figures, subscribers
and issues page by page, and where an issue's sending stands.

Read-only. Lists that grow are paged by keyset on the id (newest first), never by OFFSET: a page
costs the same on page 1 and page 2,000, and never skips or repeats a row while rows are added.
The figures of a page of issues come from a few grouped queries over that page's ids.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select, union
from sqlalchemy.orm import Session

from contacthub.email import compose, repository, service
from contacthub.email.hashing import LinkSigner
from contacthub.email.repository import (
    DEFERRED,
    FAILED,
    PENDING,
    SENDING,
    SENT,
    SKIPPED,
    SUBSCRIBED,
    SUBSCRIBER_STATES,
    UNCONFIRMED,
    UNSUBSCRIBED,
)
from contacthub.errors import InvalidInput, NotFound
from contacthub.identifiers import guid_or_none
from contacthub.storage.models import (
    Contact,
    Delivery,
    EmailClick,
    EmailIssue,
    EmailOpen,
    Newsletter,
    Subscriber,
)

PAGE_SIZE = 50
# Each issue on a page costs a count of its deliveries: fewer per page than other lists.
ISSUE_PAGE_SIZE = 25
MAX_PAGE_SIZE = 500
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, newest first, and the cursors of its neighbours.

    `older` is the `before` of the next (older) page, `newer` the `after` of the previous
    (newer) one; None when there is no such page.
    """

    items: list[T]
    newer: int | None
    older: int | None


def _page(
    session: Session,
    query: Select[Any],
    id_column: Any,
    *,
    before: int | None,
    after: int | None,
    limit: int,
) -> Page[Any]:
    """Run a keyset-paged query: `limit + 1` rows tell whether there is one more page."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(
            f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}.",
            code="invalid_parameter",
            field="limit",
        )
    if after is not None:
        rows = list(
            session.scalars(query.where(id_column > after).order_by(id_column).limit(limit + 1))
        )
        more_newer = len(rows) > limit
        items = rows[:limit][::-1]
        # We came from an older page: it is still there.
        return Page(items, items[0].id if more_newer else None, items[-1].id if items else None)
    if before is not None:
        query = query.where(id_column < before)
    rows = list(session.scalars(query.order_by(id_column.desc()).limit(limit + 1)))
    items = rows[:limit]
    older = items[-1].id if len(rows) > limit else None
    newer = items[0].id if before is not None and items else None
    return Page(items, newer, older)


# -- newsletters ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewsletterSummary:
    """A newsletter with its subscriber and issue counts."""

    newsletter: Newsletter
    subscribed: int
    unsubscribed: int
    issues: int


def find_newsletter(session: Session, key: str, *, field: str | None = None) -> Newsletter:
    """The newsletter with this GUID or, failing that, this name; NotFound otherwise."""
    key = key.strip()
    guid = guid_or_none(key)
    if guid is not None:
        found = session.scalar(select(Newsletter).where(Newsletter.guid == guid))
        if found is not None:
            return found
    return service.get_newsletter(session, key, field=field)


def newsletter_summaries(session: Session) -> list[NewsletterSummary]:
    """Every newsletter by name, with its counts (three queries, whatever their number)."""
    newsletters = service.list_newsletters(session)
    subscribers: dict[tuple[int, str], int] = {
        (newsletter_id, status): count
        for newsletter_id, status, count in session.execute(
            select(Subscriber.newsletter_id, Subscriber.status, func.count()).group_by(
                Subscriber.newsletter_id, Subscriber.status
            )
        )
    }
    issues: dict[int, int] = dict(
        session.execute(
            select(EmailIssue.newsletter_id, func.count()).group_by(EmailIssue.newsletter_id)
        ).all()
    )
    return [
        NewsletterSummary(
            n,
            subscribers.get((n.id, SUBSCRIBED), 0),
            subscribers.get((n.id, UNSUBSCRIBED), 0),
            issues.get(n.id, 0),
        )
        for n in newsletters
    ]


def newsletter_summary(session: Session, newsletter: Newsletter) -> NewsletterSummary:
    """One newsletter with its counts."""
    counts = repository.subscriber_counts(session, newsletter.id)
    issues = session.scalar(select(func.count()).where(EmailIssue.newsletter_id == newsletter.id))
    return NewsletterSummary(
        newsletter, counts.get(SUBSCRIBED, 0), counts.get(UNSUBSCRIBED, 0), issues or 0
    )


# -- subscribers ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubscriberRow:
    """A subscriber with the GUID of its contact."""

    subscriber: Subscriber
    contact_guid: uuid.UUID


def subscriber_page(
    session: Session,
    newsletter: Newsletter,
    *,
    status: str | None = None,
    search: str = "",
    before: int | None = None,
    after: int | None = None,
    limit: int = PAGE_SIZE,
) -> Page[SubscriberRow]:
    """The newsletter's subscribers, newest first; `search` keeps addresses containing it."""
    if status is not None and status not in SUBSCRIBER_STATES:
        raise InvalidInput(
            f"A subscriber status is {SUBSCRIBED!r}, {UNSUBSCRIBED!r} or {UNCONFIRMED!r}.",
            code="invalid_status",
            field="status",
        )
    query = select(Subscriber).where(Subscriber.newsletter_id == newsletter.id)
    if status is not None:
        query = query.where(Subscriber.status == status)
    if search.strip():
        # Addresses are stored lower-cased; LIKE's wildcards in the search are literal.
        pattern = search.strip().lower()
        for special in ("\\", "%", "_"):
            pattern = pattern.replace(special, "\\" + special)
        query = query.where(Subscriber.email.like(f"%{pattern}%", escape="\\"))
    page: Page[Subscriber] = _page(
        session, query, Subscriber.id, before=before, after=after, limit=limit
    )
    wanted = {s.contact_id for s in page.items}
    guids: dict[int, uuid.UUID] = (
        dict(session.execute(select(Contact.id, Contact.guid).where(Contact.id.in_(wanted))).all())
        if wanted
        else {}
    )
    rows = [SubscriberRow(s, guids[s.contact_id]) for s in page.items]
    return Page(rows, page.newer, page.older)


def contact_guid(session: Session, contact_id: int) -> uuid.UUID:
    """The GUID of a subscriber's contact."""
    return session.get_one(Contact, contact_id).guid


# -- issues --------------------------------------------------------------------------------------


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True, slots=True)
class IssueRow:
    """An issue with its newsletter and headline figures (rates as in `stats`: human, per sent)."""

    issue: EmailIssue
    newsletter: str
    deliveries: Mapping[str, int]
    human_openers: int
    human_clickers: int

    @property
    def sent(self) -> int:
        return self.deliveries.get(SENT, 0)

    @property
    def recipients(self) -> int:
        """Messages this issue has been or is being sent as (skipped ones left out)."""
        return sum(n for state, n in self.deliveries.items() if state != SKIPPED)

    @property
    def open_rate(self) -> float | None:
        return _rate(self.human_openers, self.sent)

    @property
    def click_rate(self) -> float | None:
        return _rate(self.human_clickers, self.sent)


def issue_page(
    session: Session,
    *,
    newsletter: Newsletter | None = None,
    before: int | None = None,
    after: int | None = None,
    limit: int = ISSUE_PAGE_SIZE,
) -> Page[IssueRow]:
    """Issues of every newsletter (or of one), newest first, with their figures."""
    query = select(EmailIssue)
    if newsletter is not None:
        query = query.where(EmailIssue.newsletter_id == newsletter.id)
    page: Page[EmailIssue] = _page(
        session, query, EmailIssue.id, before=before, after=after, limit=limit
    )
    return Page(issue_rows(session, page.items), page.newer, page.older)


def issue_rows(session: Session, issues: Sequence[EmailIssue]) -> list[IssueRow]:
    """The figures of these issues: three grouped queries for all of them."""
    ids = [issue.id for issue in issues]
    if not ids:
        return []
    names: dict[int, str] = dict(
        session.execute(
            select(Newsletter.id, Newsletter.name).where(
                Newsletter.id.in_({i.newsletter_id for i in issues})
            )
        ).all()
    )
    deliveries: dict[int, dict[str, int]] = {}
    for issue_id, state, count in session.execute(
        select(Delivery.issue_id, Delivery.status, func.count())
        .where(Delivery.issue_id.in_(ids))
        .group_by(Delivery.issue_id, Delivery.status)
    ):
        deliveries.setdefault(issue_id, {})[state] = count
    # A click counts as an open (see `stats`): openers are subscribers with either.
    seen = union(
        select(EmailOpen.issue_id, EmailOpen.subscriber_id).where(
            EmailOpen.issue_id.in_(ids), EmailOpen.is_machine.is_(False)
        ),
        select(EmailClick.issue_id, EmailClick.subscriber_id).where(
            EmailClick.issue_id.in_(ids), EmailClick.is_machine.is_(False)
        ),
    ).subquery()
    openers: dict[int, int] = dict(
        session.execute(
            select(seen.c.issue_id, func.count(seen.c.subscriber_id.distinct())).group_by(
                seen.c.issue_id
            )
        ).all()
    )
    clickers: dict[int, int] = dict(
        session.execute(
            select(EmailClick.issue_id, func.count(EmailClick.subscriber_id.distinct()))
            .where(EmailClick.issue_id.in_(ids), EmailClick.is_machine.is_(False))
            .group_by(EmailClick.issue_id)
        ).all()
    )
    return [
        IssueRow(
            issue,
            names[issue.newsletter_id],
            deliveries.get(issue.id, {}),
            openers.get(issue.id, 0),
            clickers.get(issue.id, 0),
        )
        for issue in issues
    ]


@dataclass(frozen=True, slots=True)
class SendProgress:
    """Where an issue's sending stands, from its deliveries.

    `done` counts the deliveries that reached an end (sent, failed, skipped); `in_doubt` the
    ones a run claimed and has not recorded (being sent now, or left by a crashed run).
    """

    deliveries: Mapping[str, int]
    subscribed: int
    # The group the issue is sent to (None: every subscriber), how many subscribed subscribers
    # are members of it (the issue's audience now), and how many are left out as non-members.
    group: str | None = None
    audience: int = 0
    not_members: int = 0
    # The name of the group the issue was sent to, if that group has been deleted since: the
    # issue may not be sent again (`service.refuse_if_group_deleted`).
    deleted_group: str | None = None
    # Skipped deliveries per reason ("unsubscribed before sending", "suppressed: hard_bounce"),
    # and the earliest next try of the deferred ones (None: none deferred).
    skipped_reasons: Mapping[str, int] = field(default_factory=dict)
    next_attempt_at: datetime | None = None

    @property
    def total(self) -> int:
        return sum(self.deliveries.values())

    @property
    def done(self) -> int:
        return sum(self.deliveries.get(state, 0) for state in (SENT, FAILED, SKIPPED))

    @property
    def waiting(self) -> int:
        """Deliveries a send run would still try: pending or deferred."""
        return self.deliveries.get(PENDING, 0) + self.deliveries.get(DEFERRED, 0)

    @property
    def in_doubt(self) -> int:
        return self.deliveries.get(SENDING, 0)

    @property
    def skipped_suppressed(self) -> int:
        """Deliveries skipped because their address is suppressed."""
        return sum(
            count
            for reason, count in self.skipped_reasons.items()
            if reason.startswith(repository.SUPPRESSED_PREFIX)
        )

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


def send_progress(session: Session, issue: EmailIssue) -> SendProgress:
    """The issue's delivery counts, how many subscribers its newsletter has now and, for an
    issue sent to a group, how many of them are members."""
    counts = repository.subscriber_counts(session, issue.newsletter_id)
    subscribed = counts.get(SUBSCRIBED, 0)
    if issue.group_id is None:
        audience, not_members = subscribed, 0
    else:
        audience = repository.audience_count(session, issue)
        not_members = subscribed - audience
    deliveries = repository.delivery_counts(session, issue.id)
    skipped = repository.skipped_counts(session, issue.id) if deliveries[SKIPPED] else {}
    _, next_try = repository.next_deferred(session, issue.id) if deliveries[DEFERRED] else (0, None)
    return SendProgress(
        deliveries,
        subscribed,
        service.group_name_of(session, issue),
        audience,
        not_members,
        service.deleted_group_of(issue),
        skipped,
        next_try,
    )


def sample_recipient(
    session: Session, issue: EmailIssue, email: str | None = None
) -> tuple[str, str | None, str | None]:
    """(address, first name, last name) to preview an issue as: the subscriber with `email`,
    else the first subscriber the issue would go to (subscribed, and a member of its group if
    it has one), else a made-up one."""
    query = select(Subscriber).where(Subscriber.newsletter_id == issue.newsletter_id)
    if email:
        found = session.scalar(query.where(Subscriber.email == email.strip().lower()))
        if found is None:
            raise NotFound(
                f"{email.strip()} is not a subscriber of this newsletter.",
                code="unknown_subscriber",
                field="email",
            )
    else:
        found = session.scalar(
            query.where(repository.in_audience(issue)).order_by(Subscriber.id).limit(1)
        )
    if found is None:
        return SAMPLE_RECIPIENT
    return found.email, found.first_name, found.last_name


# `.invalid` is reserved (RFC 2606): no subscriber can have this address.
SAMPLE_RECIPIENT: tuple[str, str | None, str | None] = ("jane.doe@example.invalid", "Jane", "Doe")


@dataclass(frozen=True, slots=True)
class Preview:
    """An issue rendered for one recipient, as they would receive it."""

    recipient: compose.Recipient
    email: compose.RenderedEmail


def preview_issue(
    session: Session, issue: EmailIssue, email: str | None = None, *, base_url: str | None = None
) -> Preview:
    """The issue as `sample_recipient` would receive it, its tracking links made dead.

    The links are signed with a throwaway secret, so that nothing done with a preview (its
    images loading, a click on a link) is ever counted as that subscriber's open or click:
    the handlers log nothing for a hash they cannot verify, and still redirect to the target.
    `base_url` replaces the newsletter's in the tracking links (the admin points them at the
    hub itself, so that a preview loads nothing from the public site).
    """
    newsletter = session.get_one(Newsletter, issue.newsletter_id)
    address, first_name, last_name = sample_recipient(session, issue, email)
    links = [
        compose.TrackedLink(link.guid, link.target_url, link.hidden)
        for link in repository.links_of(session, issue.id)
    ]
    template = compose.IssueTemplate(issue.guid, issue.subject, issue.html_body, issue.text_body)
    recipient = compose.Recipient(address, first_name, last_name)
    signer = LinkSigner([secrets.token_hex(32)])
    rendered = compose.render_for_recipient(
        template, links, recipient, base_url=base_url or newsletter.base_url, signer=signer
    )
    return Preview(recipient, rendered)
