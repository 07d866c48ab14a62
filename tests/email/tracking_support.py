"""Test data for the tracking tests: a newsletter, subscribers and an issue that went out.

Everything goes through the services the hub uses; only the deliveries are written directly
(as a send run would leave them), with a sending time chosen by the test.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy import select

from contacthub.email import compose, service
from contacthub.email.compose import ROUTES
from contacthub.email.hashing import LinkSigner, Purpose
from contacthub.storage.database import Database
from contacthub.storage.models import (
    Activity,
    Contact,
    Delivery,
    EmailClick,
    EmailOpen,
    IssueLink,
    Subscriber,
)
from contacthub.storage.types import utcnow

NEWSLETTER = "Weekly"
BASE_URL = "https://www.example.com"
SUBJECT = "Spring news"
HTML = (
    '<html><body><h1>Hello {{ first_name | "friend" }}</h1>'
    '<p><a href="https://shop.example.com/spring?name={{ first_name }}">Spring sale</a></p>'
    '<p><a href="https://www.example.com/blog">Blog</a></p>'
    "</body></html>"
)
SALE = "https://shop.example.com/spring?name={{ first_name }}"
BLOG = "https://www.example.com/blog"
HONEYPOT = "https://www.example.com/"  # the hidden link the service adds to every issue
ANNA = "anna@example.com"
BOB = "bob@example.com"
CAROL = "carol@example.com"  # subscribed after the issue went out: no delivery


@dataclass
class SentIssue:
    """An issue sent to ANNA and BOB (CAROL has no delivery); GUIDs as strings."""

    guid: str
    links: dict[str, str] = field(default_factory=dict)  # target as written -> link GUID
    tracked: list[compose.TrackedLink] = field(default_factory=list)  # in position order
    subscriber_ids: dict[str, int] = field(default_factory=dict)
    contact_ids: dict[str, int] = field(default_factory=dict)

    @property
    def honeypot(self) -> str:
        return self.links[HONEYPOT]


def sent_issue(db: Database, *, sent_at: datetime | None = None, html: str = HTML) -> SentIssue:
    """The standard issue, sent an hour ago (or at `sent_at`) to ANNA and BOB."""
    when = sent_at or utcnow() - timedelta(hours=1)
    with db.write() as session:
        service.create_newsletter(session, NEWSLETTER, "The Team", "news@example.com", BASE_URL)
        anna = service.add_subscriber(session, NEWSLETTER, ANNA, "Anna", "Smith")
        bob = service.add_subscriber(session, NEWSLETTER, BOB)
        issue = service.create_issue(session, NEWSLETTER, SUBJECT, html)
        for subscriber in (anna, bob):
            session.add(
                Delivery(
                    issue_id=issue.id,
                    subscriber_id=subscriber.id,
                    email=subscriber.email,
                    status="sent",
                    attempts=1,
                    sent_at=when,
                )
            )
        issue.status = "sent"
        issue.sent_at = when
        carol = service.add_subscriber(session, NEWSLETTER, CAROL, "Carol")
        session.flush()
        sent = SentIssue(str(issue.guid))
        for link in session.scalars(
            select(IssueLink).where(IssueLink.issue_id == issue.id).order_by(IssueLink.position)
        ):
            sent.links[link.target_url] = str(link.guid)
            sent.tracked.append(compose.TrackedLink(link.guid, link.target_url, link.hidden))
        assert sent.tracked[-1].hidden
        assert sent.tracked[-1].target_url == HONEYPOT
        for subscriber in (anna, bob, carol):
            sent.subscriber_ids[subscriber.email] = subscriber.id
            sent.contact_ids[subscriber.email] = subscriber.contact_id
    return sent


def params(signer: LinkSigner, purpose: Purpose, guid: str, email: str) -> dict[str, str]:
    """The query parameters of a signed link, named as emails name them."""
    route = ROUTES[purpose]
    return {
        route.guid_param: guid,
        route.email_params[0]: email,
        "hash": signer.sign(purpose, guid, email),
    }


def url(path: str, values: dict[str, str]) -> str:
    return f"{path}?{urlencode(values)}"


@dataclass(frozen=True)
class Logged:
    """What the store holds of the tracking: opens, clicks and email activities."""

    opens: list[tuple[int | None, bool, str | None]]  # subscriber, machine, reason
    clicks: list[tuple[int, int | None, bool, str | None]]  # link, subscriber, machine, reason
    activities: list[tuple[int, str, str, str | None]]  # contact, type, title, url


def logged(db: Database) -> Logged:
    with db.read() as session:
        opens = session.execute(
            select(
                EmailOpen.subscriber_id, EmailOpen.is_machine, EmailOpen.machine_reason
            ).order_by(EmailOpen.id)
        )
        clicks = session.execute(
            select(
                EmailClick.link_id,
                EmailClick.subscriber_id,
                EmailClick.is_machine,
                EmailClick.machine_reason,
            ).order_by(EmailClick.id)
        )
        activities = session.execute(
            select(Activity.contact_id, Activity.type, Activity.title, Activity.url)
            .where(Activity.type.in_(("emailopen", "emailclick")))
            .order_by(Activity.id)
        )
        return Logged(list(opens), list(clicks), list(activities))


def link_id(db: Database, guid: str) -> int:
    with db.read() as session:
        found = session.scalar(select(IssueLink.id).where(IssueLink.guid == uuid.UUID(guid)))
        assert found is not None
        return found


def subscriber_status(db: Database, email: str) -> tuple[str, int | None]:
    with db.read() as session:
        row = session.execute(
            select(Subscriber.status, Subscriber.unsubscribed_issue_id).where(
                Subscriber.email == email
            )
        ).one()
        return row[0], row[1]


def contact_email(db: Database, contact_id: int) -> str | None:
    with db.read() as session:
        return session.get_one(Contact, contact_id).email
