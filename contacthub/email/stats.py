"""Statistics of one email issue: deliveries, opens, clicks per link, unsubscribes, rates.

Every figure comes in three flavours: `human`, `machine` (mail privacy proxies, link scanners:
see `docs/email.md`) and `all`. A `total` counts hits; a `unique` counts subscribers, each once.

Clicks on aggregate links (copies sent without per-person tracking, see docs/email.md
"Consent-gated tracking") have no subscriber: they count in the totals, per link and overall,
but in no `unique` figure and so in no rate; `aggregate_clicks` says how many there are and
`untracked_copies` how many sent copies had no per-person tracking.

A click counts as an open too, as the vendor does: a subscriber whose mail client blocked the
pixel but who clicked a link did open the email. So the unique openers of a kind are the
subscribers with an open *or* a click of that kind, and the total opens of a kind are the
pixel hits plus one implied open for each such clicker the pixel never saw. `all` is counted
over both kinds together, so a subscriber seen by a proxy and by a human counts once there.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select, union
from sqlalchemy.orm import Session

from contacthub.email.repository import FAILED, SENT, SKIPPED, delivery_counts
from contacthub.errors import NotFound
from contacthub.identifiers import parse_guid
from contacthub.storage.models import (
    Delivery,
    DeliveryEvent,
    EmailClick,
    EmailIssue,
    EmailOpen,
    IssueLink,
    Subscriber,
)


@dataclass(frozen=True, slots=True)
class Count:
    """Hits (`total`) and distinct subscribers (`unique`)."""

    total: int = 0
    unique: int = 0


@dataclass(frozen=True, slots=True)
class Split:
    """One figure for human hits, machine hits and both together."""

    human: Count
    machine: Count
    all: Count

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {
            kind: {"total": count.total, "unique": count.unique}
            for kind, count in (("human", self.human), ("machine", self.machine), ("all", self.all))
        }


@dataclass(frozen=True, slots=True)
class LinkStats:
    """The clicks on one tracked link."""

    guid: uuid.UUID
    position: int
    target_url: str
    hidden: bool
    clicks: Split


@dataclass(frozen=True, slots=True)
class Deliverability:
    """What became of the sent copies, from the bounce reports and provider webhooks
    (delivery_events), and the copies not sent because the address is suppressed.

    Each figure counts deliveries, each once: a copy that bounced soft and then hard counts as a
    hard bounce only, so `bounced_hard + bounced_soft` is every bounced copy.
    """

    bounced_hard: int = 0
    bounced_soft: int = 0
    complaints: int = 0
    skipped_suppressed: int = 0


@dataclass(frozen=True, slots=True)
class IssueStats:
    """What one issue did. Rates are over the sent messages, None while nothing was sent."""

    issue_guid: uuid.UUID
    subject: str
    deliveries: Mapping[str, int]
    opens: Split
    clicks: Split
    links: list[LinkStats]
    unsubscribes: int
    aggregate_clicks: int = 0  # clicks counted per link only, human and machine
    untracked_copies: int = 0  # sent copies without per-person tracking (no consent)
    deliverability: Deliverability = Deliverability()

    @property
    def sent(self) -> int:
        return self.deliveries.get(SENT, 0)

    @property
    def failed(self) -> int:
        return self.deliveries.get(FAILED, 0)

    @property
    def bounced(self) -> int:
        """Copies that bounced (hard or soft), each once."""
        return self.deliverability.bounced_hard + self.deliverability.bounced_soft

    @property
    def delivered(self) -> int:
        """Sent copies that did not bounce (sent - bounced; never below zero)."""
        return max(self.sent - self.bounced, 0)

    @property
    def bounce_rate(self) -> float | None:
        """Bounced copies per sent copy."""
        return _rate(self.bounced, self.sent)

    @property
    def complaint_rate(self) -> float | None:
        """Complaints per sent copy."""
        return _rate(self.deliverability.complaints, self.sent)

    @property
    def open_rate(self) -> float | None:
        """Unique human openers per sent message."""
        return _rate(self.opens.human.unique, self.sent)

    @property
    def click_through_rate(self) -> float | None:
        """Unique human clickers per sent message."""
        return _rate(self.clicks.human.unique, self.sent)

    @property
    def click_to_open_rate(self) -> float | None:
        """Unique human clickers per unique human opener."""
        return _rate(self.clicks.human.unique, self.opens.human.unique)

    def as_dict(self) -> dict[str, Any]:
        """The statistics as plain data, for JSON."""
        return {
            "issue": str(self.issue_guid),
            "subject": self.subject,
            "sent": self.sent,
            "failed": self.failed,
            "delivered": self.delivered,
            "bounced_hard": self.deliverability.bounced_hard,
            "bounced_soft": self.deliverability.bounced_soft,
            "complaints": self.deliverability.complaints,
            "skipped_suppressed": self.deliverability.skipped_suppressed,
            "bounce_rate": self.bounce_rate,
            "complaint_rate": self.complaint_rate,
            "deliveries": dict(self.deliveries),
            "opens": self.opens.as_dict(),
            "clicks": self.clicks.as_dict(),
            "unsubscribes": self.unsubscribes,
            "aggregate_clicks": self.aggregate_clicks,
            "untracked_copies": self.untracked_copies,
            "open_rate": self.open_rate,
            "click_through_rate": self.click_through_rate,
            "click_to_open_rate": self.click_to_open_rate,
            "links": [
                {
                    "guid": str(link.guid),
                    "position": link.position,
                    "target_url": link.target_url,
                    "hidden": link.hidden,
                    "clicks": link.clicks.as_dict(),
                }
                for link in self.links
            ],
        }


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def issue_stats(session: Session, issue_guid: str | uuid.UUID) -> IssueStats:
    """The statistics of the issue with this GUID, or NotFound."""
    guid = issue_guid if isinstance(issue_guid, uuid.UUID) else parse_guid(issue_guid, "Issue")
    issue = session.scalar(select(EmailIssue).where(EmailIssue.guid == guid))
    if issue is None:
        raise NotFound(f"No email issue with GUID {guid}.", code="unknown_issue")
    return IssueStats(
        issue_guid=issue.guid,
        subject=issue.subject,
        deliveries=delivery_counts(session, issue.id),
        opens=_opens(session, issue.id),
        clicks=_split(session, EmailClick, issue.id),
        links=_links(session, issue.id),
        unsubscribes=session.scalar(
            select(func.count()).where(Subscriber.unsubscribed_issue_id == issue.id)
        )
        or 0,
        **_aggregate(session, issue.id),
        deliverability=deliverability(session, issue.id),
    )


def _aggregate(session: Session, issue_id: int) -> dict[str, int]:
    """Consent-gated tracking: clicks with no subscriber, and copies sent untracked."""
    clicks = select(func.count()).where(
        EmailClick.issue_id == issue_id, EmailClick.subscriber_id.is_(None)
    )
    copies = select(func.count()).where(
        Delivery.issue_id == issue_id, Delivery.status == SENT, Delivery.tracked.is_(False)
    )
    return {
        "aggregate_clicks": session.scalar(clicks) or 0,
        "untracked_copies": session.scalar(copies) or 0,
    }


# The error a delivery skipped for a suppressed address carries: "suppressed: <reason>".
SUPPRESSED_ERROR = "suppressed"


def deliverability(session: Session, issue_id: int) -> Deliverability:
    """Bounces, complaints (distinct deliveries) and copies skipped for a suppression."""
    kinds = (
        select(
            DeliveryEvent.delivery_id,
            func.max(case((DeliveryEvent.kind == "hard_bounce", 1), else_=0)).label("hard"),
            func.max(case((DeliveryEvent.kind == "soft_bounce", 1), else_=0)).label("soft"),
            func.max(case((DeliveryEvent.kind == "complaint", 1), else_=0)).label("complaint"),
        )
        .where(DeliveryEvent.issue_id == issue_id)
        .group_by(DeliveryEvent.delivery_id)
        .subquery()
    )
    hard, soft, complaints = session.execute(
        select(
            func.coalesce(func.sum(kinds.c.hard), 0),
            func.coalesce(
                func.sum(case(((kinds.c.soft == 1) & (kinds.c.hard == 0), 1), else_=0)), 0
            ),
            func.coalesce(func.sum(kinds.c.complaint), 0),
        )
    ).one()
    skipped = session.scalar(
        select(func.count()).where(
            Delivery.issue_id == issue_id,
            Delivery.status == SKIPPED,
            Delivery.error.startswith(SUPPRESSED_ERROR, autoescape=True),
        )
    )
    return Deliverability(int(hard), int(soft), int(complaints), skipped or 0)


def _split(session: Session, table: type[EmailOpen] | type[EmailClick], issue_id: int) -> Split:
    """Hits and distinct subscribers of one table, per kind and for both kinds together."""
    where = table.issue_id == issue_id
    per_kind = {
        is_machine: Count(total, unique)
        for is_machine, total, unique in session.execute(
            select(table.is_machine, func.count(), func.count(table.subscriber_id.distinct()))
            .where(where)
            .group_by(table.is_machine)
        )
    }
    total, unique = session.execute(
        select(func.count(), func.count(table.subscriber_id.distinct())).where(where)
    ).one()
    empty = Count()
    return Split(per_kind.get(False, empty), per_kind.get(True, empty), Count(total, unique))


def _opens(session: Session, issue_id: int) -> Split:
    """Pixel hits plus the opens the clicks imply (see the module docstring)."""
    pixel = _split(session, EmailOpen, issue_id)
    seen = union(
        select(EmailOpen.subscriber_id, EmailOpen.is_machine).where(EmailOpen.issue_id == issue_id),
        select(EmailClick.subscriber_id, EmailClick.is_machine).where(
            EmailClick.issue_id == issue_id
        ),
    ).subquery()
    openers: dict[bool | None, int] = dict(
        session.execute(
            select(seen.c.is_machine, func.count(seen.c.subscriber_id.distinct())).group_by(
                seen.c.is_machine
            )
        ).all()
    )
    openers[None] = session.scalar(select(func.count(seen.c.subscriber_id.distinct()))) or 0

    def with_clicks(kind: bool | None, from_pixel: Count) -> Count:
        unique = openers.get(kind, 0)
        # Each opener the pixel never saw adds the one open their click implies.
        return Count(from_pixel.total + unique - from_pixel.unique, unique)

    return Split(
        with_clicks(False, pixel.human),
        with_clicks(True, pixel.machine),
        with_clicks(None, pixel.all),
    )


def _links(session: Session, issue_id: int) -> list[LinkStats]:
    per_link: dict[tuple[int, bool], Count] = {
        (link_id, is_machine): Count(total, unique)
        for link_id, is_machine, total, unique in session.execute(
            select(
                EmailClick.link_id,
                EmailClick.is_machine,
                func.count(),
                func.count(EmailClick.subscriber_id.distinct()),
            )
            .where(EmailClick.issue_id == issue_id)
            .group_by(EmailClick.link_id, EmailClick.is_machine)
        )
    }
    unique_all: dict[int, int] = dict(
        session.execute(
            select(EmailClick.link_id, func.count(EmailClick.subscriber_id.distinct()))
            .where(EmailClick.issue_id == issue_id)
            .group_by(EmailClick.link_id)
        ).all()
    )
    links = session.scalars(
        select(IssueLink).where(IssueLink.issue_id == issue_id).order_by(IssueLink.position)
    )
    empty = Count()
    stats = []
    for link in links:
        human = per_link.get((link.id, False), empty)
        machine = per_link.get((link.id, True), empty)
        both = Count(human.total + machine.total, unique_all.get(link.id, 0))
        stats.append(
            LinkStats(
                link.guid, link.position, link.target_url, link.hidden, Split(human, machine, both)
            )
        )
    return stats
