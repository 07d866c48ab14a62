"""Email tracking: opens, clicks, browser views and unsubscribes (SPEC §3, seed 003).

Rules:
- The hash is checked before anything is logged; an invalid or missing hash logs nothing. A
  click with a bad hash still learns its link's *own* stored target (never a URL from the
  request), with placeholders left empty: the request proves no subscriber, so no subscriber's
  data goes into the URL.
- Only subscribers of the issue's newsletter are logged (whatever their status now: an
  unsubscribed reader still opened the email). Any other address logs nothing.
- Every open and click is classified by `machine.classify` and stored with its verdict, human or
  machine; nothing is discarded.
- Human hits are also activities on the subscriber's contact: each click, and the first open of
  an issue (reopening an email adds no news to the timeline). Machine hits are not: a proxy
  fetching images or a scanner following links is not something the person did.
- A click on an aggregate link (no address and no hash: the copy of a reader who did not agree
  to tracking, see `compose.Tracking.AGGREGATE`) is stored for its link with no subscriber, is
  classified like any other, and is never an activity: it proves nobody. It redirects to the
  link's own stored target with placeholders left empty (aggregate copies link placeholder
  targets directly, so there are none to fill). An address without a hash, or a hash without an
  address, is a broken personal link: redirected, not logged.
- A browser view is not stored on its own: the page is the recipient's copy, with its open
  pixel and tracked links, which log themselves when the browser loads and follows them.

Opens and clicks are the hot path: `process_hits` is the batch function of the hub's email
group-commit writer, so that thousands of hits per second cost a few transactions. It looks up
the issues, links, subscribers and deliveries of the whole batch in a few queries and inserts
the hits and activities in bulk. Browser views and unsubscribes are rare and run in ordinary
units of work.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, bindparam, exists, select
from sqlalchemy.orm import Session

from contacthub.activities.repository import ActivityRow, insert_activities
from contacthub.activities.rules import (
    EMAIL_CLICK,
    EMAIL_OPEN,
    MAX_TITLE_LENGTH,
    MAX_VALUE_LENGTH,
)
from contacthub.channels import repository as channel_repository
from contacthub.channels.service import check_key
from contacthub.email import compose, repository, service
from contacthub.email.hashing import LinkSigner, Purpose
from contacthub.email.machine import DEFAULT_MIN_HUMAN_SECONDS, HitKind, Verdict, classify
from contacthub.errors import Forbidden, HubError, InvalidInput, NotFound
from contacthub.events import changes
from contacthub.identifiers import parse_guid
from contacthub.storage.models import (
    Delivery,
    EmailIssue,
    EmailOpen,
    IssueLink,
    Newsletter,
    Subscriber,
)
from contacthub.storage.types import sqlite_datetime

ACCESS = "email"
MAX_EMAIL = 254
MAX_USER_AGENT = 500
MAX_IP = 45

MIN_HUMAN_SECONDS = DEFAULT_MIN_HUMAN_SECONDS

# Why a hit was not logged (the API says so; the public handlers keep it to themselves).
INVALID_HASH = "invalid_hash"
UNKNOWN_SUBSCRIBER = "unknown_subscriber"


@dataclass(frozen=True, slots=True)
class Visitor:
    """Who sent a request, as far as machine classification needs to know."""

    user_agent: str | None
    ip: str | None
    method: str
    at: datetime


@dataclass(frozen=True, slots=True)
class HitJob:
    """One open or click, as its link gave it: the GUID parsed, the address and hash as given.

    `key_hash` is set for requests of the headless API, whose email key the batch checks.
    """

    kind: HitKind
    guid: uuid.UUID
    email: str
    hash: str | None
    visitor: Visitor
    key_hash: str | None = None

    @property
    def aggregate(self) -> bool:
        """A click on an aggregate link: neither an address nor a hash."""
        return self.kind is HitKind.CLICK and not self.email and not self.hash


@dataclass(frozen=True, slots=True)
class HitOutcome:
    """What became of a hit: an error (unknown issue or link, bad key), or logged or not.

    `target_url` is the click's destination; `verdict` is set when the hit was logged;
    `reason` says why it was not.
    """

    error: HubError | None = None
    logged: bool = False
    reason: str | None = None
    verdict: Verdict | None = None
    target_url: str | None = None


# -- checks without the database -----------------------------------------------------------------


def clean_email(email: str | None) -> str:
    """The address of a link, as given but trimmed; empty when missing."""
    return (email or "").strip()


def hit_job(
    kind: HitKind,
    guid: str | None,
    email: str | None,
    hash: str | None,
    visitor: Visitor,
    key_hash: str | None = None,
) -> HitJob:
    """An open (`HitKind.OPEN`, issue GUID) or click (`HitKind.CLICK`, link GUID) to submit.

    Raises InvalidInput when the GUID is missing or malformed. The hash is checked by the batch:
    HMAC releases the GIL, and on the event loop's thread every release hands the interpreter to
    the writer thread for a whole switch interval; in the writer it costs nothing but the HMAC.
    """
    what = "issueguid" if kind is HitKind.OPEN else "linkguid"
    if not guid:
        raise InvalidInput(f"The {what} parameter is missing.", code=f"missing_{what}")
    return HitJob(kind, parse_guid(guid.strip(), what), clean_email(email), hash, visitor, key_hash)


# -- the batch function --------------------------------------------------------------------------


class _Issue(NamedTuple):
    id: int
    newsletter_id: int
    subject: str


class _Link(NamedTuple):
    id: int
    issue: _Issue
    target_url: str
    hidden: bool


class _Subscriber(NamedTuple):
    id: int
    contact_id: int
    email: str
    first_name: str | None
    last_name: str | None
    sent_at: datetime | None


@dataclass(slots=True)
class _Batch:
    """What a batch looked up once for all its hits, and the rows it will insert."""

    keys: dict[str, channel_repository.KeyRecord]
    issues: dict[uuid.UUID, _Issue]
    links: dict[uuid.UUID, _Link]
    subscribers: dict[tuple[int, str], _Subscriber]
    human_openers: set[tuple[int, int]]
    verified: set[int]
    opens: list[tuple[Any, ...]]
    clicks: list[tuple[Any, ...]]
    activities: list[ActivityRow]
    # The subscribers' hits, for the email.opened / email.clicked events.
    open_hits: list[changes.Hit] = field(default_factory=list)
    click_hits: list[changes.Hit] = field(default_factory=list)


def _verified(signer: LinkSigner, job: HitJob) -> bool:
    purpose = Purpose.OPEN if job.kind is HitKind.OPEN else Purpose.CLICK
    return bool(job.email) and signer.verify(purpose, job.guid, job.email, job.hash)


def process_hits(session: Session, signer: LinkSigner, jobs: Sequence[HitJob]) -> list[HitOutcome]:
    """Log a batch of opens and clicks; answer one outcome per hit, in order."""
    batch = _look_up(session, signer, jobs)
    outcomes = [
        _process(job, position in batch.verified, batch) for position, job in enumerate(jobs)
    ]
    _insert(session, "email_opens", OPEN_COLUMNS, batch.opens)
    _insert(session, "email_clicks", CLICK_COLUMNS, batch.clicks)
    insert_activities(session, batch.activities)
    # Webhook events: no query, nothing written, unless an endpoint wants them.
    changes.email_hits(session, batch.open_hits, batch.click_hits)
    changes.email_activities(session, batch.activities)
    return outcomes


def _look_up(session: Session, signer: LinkSigner, jobs: Sequence[HitJob]) -> _Batch:
    connection = session.connection()
    keys = channel_repository.keys_by_hash(session, {j.key_hash for j in jobs if j.key_hash})
    issues = _issues_by_guid(connection, {j.guid for j in jobs if j.kind is HitKind.OPEN})
    links = _links_by_guid(connection, {j.guid for j in jobs if j.kind is HitKind.CLICK})
    verified: set[int] = set()  # positions in `jobs`
    wanted: dict[_Issue, set[str]] = {}
    for position, job in enumerate(jobs):
        issue = _issue_of(job, issues, links)
        # Only hashes of known issues and links are worth an HMAC.
        if issue is not None and _verified(signer, job):
            verified.add(position)
            if len(job.email) <= MAX_EMAIL:
                wanted.setdefault(issue, set()).add(job.email.lower())
    subscribers, human_openers = _subscribers(connection, wanted)
    return _Batch(keys, issues, links, subscribers, human_openers, verified, [], [], [])


def _issue_of(
    job: HitJob, issues: dict[uuid.UUID, _Issue], links: dict[uuid.UUID, _Link]
) -> _Issue | None:
    if job.kind is HitKind.OPEN:
        return issues.get(job.guid)
    link = links.get(job.guid)
    return link.issue if link is not None else None


def _process(job: HitJob, verified: bool, batch: _Batch) -> HitOutcome:
    if job.key_hash is not None:
        try:
            check_key(batch.keys.get(job.key_hash), job.key_hash, ACCESS)
        except HubError as error:
            return HitOutcome(error=error)
    if job.kind is HitKind.OPEN:
        return _open(job, verified, batch)
    return _click(job, verified, batch)


def _open(job: HitJob, verified: bool, batch: _Batch) -> HitOutcome:
    issue = batch.issues.get(job.guid)
    if issue is None:
        return HitOutcome(error=_unknown_issue(job.guid))
    if not verified:
        return HitOutcome(reason=INVALID_HASH)
    subscriber = batch.subscribers.get((issue.id, job.email.lower()))
    if subscriber is None:
        return HitOutcome(reason=UNKNOWN_SUBSCRIBER)
    visitor = job.visitor
    verdict = _classify(HitKind.OPEN, visitor, seconds_since_delivery=None, hidden_link=False)
    batch.opens.append(
        (issue.id, subscriber.id, *_hit_columns(verdict, visitor), visitor.at),
    )
    batch.open_hits.append(
        changes.Hit(
            subscriber.contact_id,
            subscriber.email,
            issue.id,
            verdict.is_machine,
            verdict.reason,
            visitor.at,
        )
    )
    if not verdict.is_machine and (issue.id, subscriber.id) not in batch.human_openers:
        batch.human_openers.add((issue.id, subscriber.id))
        batch.activities.append(
            ActivityRow(
                contact_id=subscriber.contact_id,
                channel_id=None,
                type=EMAIL_OPEN,
                title=f"Opened email '{issue.subject}'"[:MAX_TITLE_LENGTH],
                value=issue.subject[:MAX_VALUE_LENGTH],
                url=None,
                referrer=None,
                created_at=visitor.at,
            )
        )
    return HitOutcome(logged=True, verdict=verdict)


def _click(job: HitJob, verified: bool, batch: _Batch) -> HitOutcome:
    link = batch.links.get(job.guid)
    if link is None:
        return HitOutcome(error=NotFound(f"No tracked link {job.guid}.", code="unknown_link"))
    if not verified:
        # The link's own target, with no subscriber's data in it.
        anonymous = compose.personalise_url(link.target_url, compose.Recipient(email=""))
        if job.aggregate:
            return _aggregate_click(job, link, anonymous, batch)
        return HitOutcome(reason=INVALID_HASH, target_url=anonymous)
    issue = link.issue
    subscriber = batch.subscribers.get((issue.id, job.email.lower()))
    if subscriber is None:
        # The hash proves the address, but it is nobody's on this list (any more).
        proven = compose.personalise_url(link.target_url, compose.Recipient(email=job.email))
        return HitOutcome(reason=UNKNOWN_SUBSCRIBER, target_url=proven)
    target = compose.personalise_url(
        link.target_url,
        compose.Recipient(subscriber.email, subscriber.first_name, subscriber.last_name),
    )
    visitor = job.visitor
    since_delivery = (
        (visitor.at - subscriber.sent_at).total_seconds()
        if subscriber.sent_at is not None
        else None
    )
    verdict = _classify(
        HitKind.CLICK, visitor, seconds_since_delivery=since_delivery, hidden_link=link.hidden
    )
    batch.clicks.append(
        (link.id, issue.id, subscriber.id, *_hit_columns(verdict, visitor), visitor.at),
    )
    batch.click_hits.append(
        changes.Hit(
            subscriber.contact_id,
            subscriber.email,
            issue.id,
            verdict.is_machine,
            verdict.reason,
            visitor.at,
            link.id,
            target,
        )
    )
    if not verdict.is_machine:
        batch.activities.append(
            ActivityRow(
                contact_id=subscriber.contact_id,
                channel_id=None,
                type=EMAIL_CLICK,
                title=f"Clicked link in email '{issue.subject}'"[:MAX_TITLE_LENGTH],
                value=issue.subject[:MAX_VALUE_LENGTH],
                url=target,
                referrer=None,
                created_at=visitor.at,
            )
        )
    return HitOutcome(logged=True, verdict=verdict, target_url=target)


def _aggregate_click(job: HitJob, link: _Link, target: str, batch: _Batch) -> HitOutcome:
    """Count a click for its link alone (subscriber_id NULL); no activity: it names nobody."""
    visitor = job.visitor
    verdict = _classify(
        HitKind.CLICK, visitor, seconds_since_delivery=None, hidden_link=link.hidden
    )
    batch.clicks.append((link.id, link.issue.id, None, *_hit_columns(verdict, visitor), visitor.at))
    return HitOutcome(logged=True, verdict=verdict, target_url=target)


def _classify(
    kind: HitKind, visitor: Visitor, *, seconds_since_delivery: float | None, hidden_link: bool
) -> Verdict:
    """`machine.classify`, remembering its verdicts for the user agents and addresses seen.

    Hits come in runs from the same few clients: an image proxy or a security gateway fetches
    for thousands of recipients from one pool of addresses with one user agent, and a reader
    opens again from the same device. The rules are a pure function of what they look at, and
    the delivery time matters only as "within `min_human_seconds` or not", so that is what the
    remembered verdict is keyed on.
    """
    fast = seconds_since_delivery is not None and seconds_since_delivery < MIN_HUMAN_SECONDS
    agent = visitor.user_agent
    if agent is not None and len(agent) > MAX_USER_AGENT:
        return classify(
            kind,
            method=visitor.method,
            user_agent=agent,
            ip=visitor.ip,
            seconds_since_delivery=seconds_since_delivery,
            hidden_link=hidden_link,
            min_human_seconds=MIN_HUMAN_SECONDS,
        )
    return _remembered_verdict(kind, visitor.method, agent, visitor.ip, fast, hidden_link)


@lru_cache(maxsize=16_384)
def _remembered_verdict(
    kind: HitKind,
    method: str,
    user_agent: str | None,
    ip: str | None,
    fast: bool,
    hidden_link: bool,
) -> Verdict:
    return classify(
        kind,
        method=method,
        user_agent=user_agent,
        ip=ip,
        seconds_since_delivery=0.0 if fast else None,
        hidden_link=hidden_link,
        min_human_seconds=MIN_HUMAN_SECONDS,
    )


def _hit_columns(verdict: Verdict, visitor: Visitor) -> tuple[Any, ...]:
    return (
        verdict.is_machine,
        verdict.reason[:100] if verdict.reason else None,
        visitor.user_agent[:MAX_USER_AGENT] if visitor.user_agent else None,
        visitor.ip[:MAX_IP] if visitor.ip else None,
    )


def _unknown_issue(guid: uuid.UUID) -> NotFound:
    return NotFound(f"No email issue {guid}.", code="unknown_issue")


# -- queries of the batch ------------------------------------------------------------------------


# The batch's queries are built once: building a statement costs more than running it.
_ISSUES = select(
    EmailIssue.guid, EmailIssue.id, EmailIssue.newsletter_id, EmailIssue.subject
).where(EmailIssue.guid.in_(bindparam("guids", expanding=True)))
_LINKS = (
    select(
        IssueLink.guid,
        IssueLink.id,
        IssueLink.target_url,
        IssueLink.hidden,
        EmailIssue.id,
        EmailIssue.newsletter_id,
        EmailIssue.subject,
    )
    .join(EmailIssue, EmailIssue.id == IssueLink.issue_id)
    .where(IssueLink.guid.in_(bindparam("guids", expanding=True)))
)
# The newsletter's subscribers with these addresses, their delivery of the issue, and whether
# they have a human open of it already (EXISTS stops at the first, however many there are).
_SUBSCRIBERS = (
    select(
        Subscriber.id,
        Subscriber.contact_id,
        Subscriber.email,
        Subscriber.first_name,
        Subscriber.last_name,
        Delivery.sent_at,
        exists()
        .where(
            EmailOpen.issue_id == bindparam("issue_id"),
            EmailOpen.subscriber_id == Subscriber.id,
            EmailOpen.is_machine.is_(False),
        )
        .label("opened"),
    )
    .outerjoin(
        Delivery,
        and_(Delivery.subscriber_id == Subscriber.id, Delivery.issue_id == bindparam("issue_id")),
    )
    .where(
        Subscriber.newsletter_id == bindparam("newsletter_id"),
        Subscriber.email.in_(bindparam("emails", expanding=True)),
    )
)


def _issues_by_guid(connection: Connection, guids: set[uuid.UUID]) -> dict[uuid.UUID, _Issue]:
    if not guids:
        return {}
    rows = connection.execute(_ISSUES, {"guids": list(guids)})
    return {guid: _Issue(id_, newsletter_id, subject) for guid, id_, newsletter_id, subject in rows}


def _links_by_guid(connection: Connection, guids: set[uuid.UUID]) -> dict[uuid.UUID, _Link]:
    if not guids:
        return {}
    rows = connection.execute(_LINKS, {"guids": list(guids)})
    return {row[0]: _Link(row[1], _Issue(row[4], row[5], row[6]), row[2], row[3]) for row in rows}


def _subscribers(
    connection: Connection, wanted: dict[_Issue, set[str]]
) -> tuple[dict[tuple[int, str], _Subscriber], set[tuple[int, int]]]:
    """(issue id, lower-cased address) -> the newsletter's subscriber, with their delivery;
    and the (issue id, subscriber id) pairs with a human open stored."""
    found: dict[tuple[int, str], _Subscriber] = {}
    opened: set[tuple[int, int]] = set()
    for issue, emails in wanted.items():
        rows = connection.execute(
            _SUBSCRIBERS,
            {"issue_id": issue.id, "newsletter_id": issue.newsletter_id, "emails": list(emails)},
        )
        for row in rows:
            found[(issue.id, row[2])] = _Subscriber(*row[:6])
            if row[6]:
                opened.add((issue.id, row[0]))
    return found, opened


OPEN_COLUMNS = (
    "issue_id",
    "subscriber_id",
    "is_machine",
    "machine_reason",
    "user_agent",
    "ip",
    "created_at",
)
CLICK_COLUMNS = ("link_id", *OPEN_COLUMNS)


# Rows per INSERT: a few fixed sizes, so that the drivers keep each statement prepared; 64 rows
# of 8 columns stay under SQLite's oldest limit of 999 parameters.
_CHUNKS = (64, 16, 4, 1)


def _insert(
    session: Session, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert many hits at once, in multi-row INSERTs straight to the driver.

    Not executemany, whose every row is a step on SQLite, and each step releases the GIL: with
    the event loop on the same core, a thread switch per row. Not COPY on PostgreSQL either: for
    the few dozen rows of a batch, its extra round trips cost more than it saves.
    """
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        # The last column is the time, stored as UTCDateTime stores it on SQLite.
        values = [(*row[:-1], sqlite_datetime(row[-1])) for row in rows]
        mark = "?"
    else:
        values = list(rows)
        mark = "%s"
    one_row = "(" + ", ".join([mark] * len(columns)) + ")"
    statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "  # noqa: S608 - constants
    start = 0
    for size in _CHUNKS:
        while len(values) - start >= size:
            chunk = values[start : start + size]
            connection.exec_driver_sql(
                statement + ", ".join([one_row] * size),
                tuple(value for row in chunk for value in row),
            )
            start += size


# -- browser views and unsubscribes --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedLink:
    """The parameters of a signed issue link (view in browser, unsubscribe), as given."""

    issue_guid: str | None
    email: str | None
    hash: str | None


@dataclass(frozen=True, slots=True)
class Subscription:
    """A subscriber as the unsubscribe page shows them."""

    email: str
    newsletter: str
    unsubscribed: bool


def _verified_subscriber(
    session: Session, signer: LinkSigner, purpose: Purpose, link: SignedLink
) -> tuple[EmailIssue, Newsletter, Subscriber]:
    """The issue, newsletter and subscriber a signed link names, once its hash is checked."""
    if not link.issue_guid:
        raise InvalidInput("The issueguid parameter is missing.", code="missing_issueguid")
    guid = parse_guid(link.issue_guid.strip(), "issueguid")
    email = clean_email(link.email)
    if not email or not signer.verify(purpose, guid, email, link.hash):
        raise Forbidden("This link is not valid (its hash does not match).", code=INVALID_HASH)
    issue = repository.issue_by_guid(session, guid)
    if issue is None:
        raise _unknown_issue(guid)
    newsletter = session.get_one(Newsletter, issue.newsletter_id)
    subscriber = (
        repository.subscriber_by_email(session, newsletter.id, email)
        if len(email) <= MAX_EMAIL
        else None
    )
    if subscriber is None:
        raise NotFound(
            "This address is not a subscriber of the newsletter.", code=UNKNOWN_SUBSCRIBER
        )
    return issue, newsletter, subscriber


def browser_view(session: Session, signer: LinkSigner, link: SignedLink) -> str:
    """The issue's HTML as the subscriber received it (their copy, links and pixel included).

    A copy sent untracked (`Delivery.tracked` false: no consent to tracking) is shown untracked
    too: aggregate links, no pixel.
    """
    issue, newsletter, subscriber = _verified_subscriber(
        session, signer, Purpose.BROWSER_VIEW, link
    )
    tracked = session.scalar(
        select(Delivery.tracked).where(
            Delivery.issue_id == issue.id, Delivery.subscriber_id == subscriber.id
        )
    )
    links = [
        compose.TrackedLink(row.guid, row.target_url, row.hidden)
        for row in repository.links_of(session, issue.id)
    ]
    rendered = compose.render_for_recipient(
        compose.IssueTemplate(issue.guid, issue.subject, issue.html_body, issue.text_body),
        links,
        compose.Recipient(subscriber.email, subscriber.first_name, subscriber.last_name),
        base_url=newsletter.base_url,
        signer=signer,
        tracking=compose.Tracking.AGGREGATE if tracked is False else compose.Tracking.PERSONAL,
    )
    return rendered.html


def subscription(session: Session, signer: LinkSigner, link: SignedLink) -> Subscription:
    """Who an unsubscribe link names, changing nothing (what the confirmation page shows)."""
    _, newsletter, subscriber = _verified_subscriber(session, signer, Purpose.UNSUBSCRIBE, link)
    return _subscription(newsletter, subscriber)


def unsubscribe(session: Session, signer: LinkSigner, link: SignedLink) -> Subscription:
    """Unsubscribe the subscriber an unsubscribe link names; again is no change."""
    issue, newsletter, subscriber = _verified_subscriber(session, signer, Purpose.UNSUBSCRIBE, link)
    service.unsubscribe(session, subscriber, issue)
    return _subscription(newsletter, subscriber)


def _subscription(newsletter: Newsletter, subscriber: Subscriber) -> Subscription:
    return Subscription(
        subscriber.email, newsletter.name, subscriber.status == repository.UNSUBSCRIBED
    )
