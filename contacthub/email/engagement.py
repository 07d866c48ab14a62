"""Engagement of one email issue: opens and clicks over time, and who opened or clicked.

The timeline starts at the hour the first copy went out (the earliest delivery's `sent_at`,
else the issue's) and has one bucket per hour for the first 48 hours, when nearly everything
happens, then one per day (24 hours each, counted from the start) until now, at most
`MAX_DAYS` of them: the last daily bucket also holds anything later. It counts hits, as stored:
pixel opens and clicks (aggregate clicks of untracked copies included: they are clicks too).

The people list has one row per subscriber with an open or a click of the issue: their first
open (a click counts as an open, as in the statistics: the earliest of their opens and clicks),
their last hit, and how many opens and clicks. It lists subscribers by id (oldest subscription
first), a page at a time with a keyset cursor, so that an export reads it in chunks without
skipping or repeating anyone. Aggregate clicks name nobody and are not in it.

Both count human hits only unless `include_machines` is set: mail privacy proxies fetch every
image, link scanners follow every link, and those are not people engaging.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, func, literal, select, union_all
from sqlalchemy.orm import Session

from contacthub.audit import service as audit
from contacthub.csv_export import csv_line
from contacthub.email.service import get_issue
from contacthub.storage.models import (
    Contact,
    Delivery,
    EmailClick,
    EmailIssue,
    EmailOpen,
    Subscriber,
)
from contacthub.storage.types import utc_from_driver, utcnow

HOURLY_HOURS = 48
MAX_DAYS = 90
PEOPLE_PAGE = 50
MAX_PEOPLE_PAGE = 500

PEOPLE_COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "contact_guid",
    "first_opened_at",
    "last_seen_at",
    "opens",
    "clicks",
)


# -- the timeline --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bucket:
    """Hits from `start` (included) to `end` (excluded; None: the last bucket, open-ended)."""

    start: datetime
    end: datetime | None
    hourly: bool
    opens: int
    clicks: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat() if self.end is not None else None,
            "unit": "hour" if self.hourly else "day",
            "opens": self.opens,
            "clicks": self.clicks,
        }


@dataclass(frozen=True, slots=True)
class Timeline:
    """Opens and clicks of an issue over time; no buckets while nothing was sent."""

    issue_guid: uuid.UUID
    subject: str
    started_at: datetime | None
    include_machines: bool
    buckets: list[Bucket]

    @property
    def opens(self) -> int:
        return sum(bucket.opens for bucket in self.buckets)

    @property
    def clicks(self) -> int:
        return sum(bucket.clicks for bucket in self.buckets)

    def as_dict(self) -> dict[str, Any]:
        return {
            "issue": str(self.issue_guid),
            "subject": self.subject,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "include_machines": self.include_machines,
            "opens": self.opens,
            "clicks": self.clicks,
            "buckets": [bucket.as_dict() for bucket in self.buckets],
        }


def _hour_of(session: Session, column: Any) -> ColumnElement[Any]:
    """The UTC hour a UTCDateTime column falls in, as the database computes it (for GROUP BY)."""
    if session.get_bind().dialect.name == "sqlite":
        # SQLite stores "YYYY-MM-DD HH:MM:SS.ffffff" in UTC.
        return func.substr(column, 1, 13)
    return func.date_trunc("hour", func.timezone("UTC", column))


def _parse_hour(value: datetime | str) -> datetime:
    if isinstance(value, str):
        return datetime.strptime(value, "%Y-%m-%d %H").replace(tzinfo=UTC)
    moment = utc_from_driver(value)
    assert moment is not None
    return moment


def _hits_per_hour(
    session: Session,
    table: type[EmailOpen] | type[EmailClick],
    issue_id: int,
    include_machines: bool,
) -> list[tuple[datetime, int]]:
    hour = _hour_of(session, table.created_at)
    query = select(hour, func.count()).where(table.issue_id == issue_id)
    if not include_machines:
        query = query.where(table.is_machine.is_(False))
    rows = session.execute(query.group_by(hour))
    return [(_parse_hour(at), count) for at, count in rows]


def started_at(session: Session, issue: EmailIssue) -> datetime | None:
    """When the issue's first copy went out (None: not sent yet)."""
    first = session.scalar(select(func.min(Delivery.sent_at)).where(Delivery.issue_id == issue.id))
    return first or issue.sent_at


def timeline(
    session: Session,
    issue_guid: str | uuid.UUID,
    *,
    include_machines: bool = False,
    now: datetime | None = None,
) -> Timeline:
    """The issue's opens and clicks over time (see the module docstring), or NotFound."""
    issue = get_issue(session, issue_guid)
    start = started_at(session, issue)
    if start is None:
        return Timeline(issue.guid, issue.subject, None, include_machines, [])
    origin = start.replace(minute=0, second=0, microsecond=0)
    moment = now or utcnow()
    opens = _hits_per_hour(session, EmailOpen, issue.id, include_machines)
    clicks = _hits_per_hour(session, EmailClick, issue.id, include_machines)
    latest = max([moment, *(at for at, _ in opens), *(at for at, _ in clicks)])
    elapsed_hours = max(0, int((latest - origin) // timedelta(hours=1)))
    hourly = min(HOURLY_HOURS, elapsed_hours + 1)
    daily = 0
    if elapsed_hours >= HOURLY_HOURS:
        daily = min(MAX_DAYS, (elapsed_hours - HOURLY_HOURS) // 24 + 1)
    counts = [[0, 0] for _ in range(hourly + daily)]
    for kind, rows in ((0, opens), (1, clicks)):
        for at, count in rows:
            counts[_bucket_index(origin, at, hourly, daily)][kind] += count
    buckets = []
    for index, (open_count, click_count) in enumerate(counts):
        if index < HOURLY_HOURS:
            begin = origin + timedelta(hours=index)
            end: datetime | None = begin + timedelta(hours=1)
        else:
            begin = origin + timedelta(hours=HOURLY_HOURS, days=index - HOURLY_HOURS)
            end = begin + timedelta(days=1)
        if index == len(counts) - 1 and daily == MAX_DAYS:
            end = None  # the last daily bucket holds everything later too
        buckets.append(Bucket(begin, end, index < HOURLY_HOURS, open_count, click_count))
    return Timeline(issue.guid, issue.subject, origin, include_machines, buckets)


def _bucket_index(origin: datetime, at: datetime, hourly: int, daily: int) -> int:
    # Hits before the first copy (a test of the links, clocks apart) count in the first hour.
    hours = max(0, int((at - origin) // timedelta(hours=1)))
    if hours < HOURLY_HOURS:
        return min(hours, hourly - 1)
    day = (hours - HOURLY_HOURS) // 24
    return HOURLY_HOURS + min(day, daily - 1)


def bucket_label(timeline: Timeline, bucket: Bucket) -> str:
    """A bucket's place relative to the start, for an axis: "+5 h", "+3 d"."""
    assert timeline.started_at is not None
    hours = int((bucket.start - timeline.started_at) // timedelta(hours=1))
    return f"+{hours} h" if bucket.hourly else f"+{hours // 24} d"


# -- who opened or clicked -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Person:
    """A subscriber's engagement with the issue."""

    subscriber_id: int
    email: str
    first_name: str | None
    last_name: str | None
    contact_guid: uuid.UUID
    first_opened_at: datetime
    last_seen_at: datetime
    opens: int
    clicks: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "contact_guid": str(self.contact_guid),
            "first_opened_at": self.first_opened_at.isoformat(),
            "last_seen_at": self.last_seen_at.isoformat(),
            "opens": self.opens,
            "clicks": self.clicks,
        }

    def csv_values(self) -> tuple[object, ...]:
        return (
            self.email,
            self.first_name,
            self.last_name,
            self.contact_guid,
            self.first_opened_at,
            self.last_seen_at,
            self.opens,
            self.clicks,
        )


@dataclass(frozen=True, slots=True)
class PeoplePage:
    """A page of people; `next_after` is the cursor of the next page (None: the last page)."""

    people: list[Person]
    total: int
    next_after: int | None


def _hits(issue_id: int, include_machines: bool, after: int) -> Any:
    """Every hit of the issue that names a subscriber above `after`: (subscriber, time, kind)."""

    def of(table: type[EmailOpen] | type[EmailClick], is_open: int) -> Any:
        query = select(
            table.subscriber_id.label("subscriber_id"),
            table.created_at.label("at"),
            literal(is_open).label("is_open"),
            literal(1 - is_open).label("is_click"),
        ).where(
            table.issue_id == issue_id,
            table.subscriber_id.is_not(None),
            table.subscriber_id > after,
        )
        if not include_machines:
            query = query.where(table.is_machine.is_(False))
        return query

    return union_all(of(EmailOpen, 1), of(EmailClick, 0)).subquery()


def people_page(
    session: Session,
    issue_guid: str | uuid.UUID,
    *,
    after: int | None = None,
    limit: int = PEOPLE_PAGE,
    include_machines: bool = False,
) -> PeoplePage:
    """A page of the people who opened or clicked the issue, by subscriber; or NotFound."""
    issue = get_issue(session, issue_guid)
    return _page(session, issue, after or 0, limit, include_machines)


def _page(
    session: Session, issue: EmailIssue, after: int, limit: int, include_machines: bool
) -> PeoplePage:
    hits = _hits(issue.id, include_machines, after)
    per_person = (
        select(
            hits.c.subscriber_id,
            func.min(hits.c.at).label("first_at"),
            func.max(hits.c.at).label("last_at"),
            func.sum(hits.c.is_open).label("opens"),
            func.sum(hits.c.is_click).label("clicks"),
        )
        .group_by(hits.c.subscriber_id)
        .order_by(hits.c.subscriber_id)
        .limit(limit + 1)
        .subquery()
    )
    rows = session.execute(
        select(
            Subscriber.id,
            Subscriber.email,
            Subscriber.first_name,
            Subscriber.last_name,
            Contact.guid,
            per_person.c.first_at,
            per_person.c.last_at,
            per_person.c.opens,
            per_person.c.clicks,
        )
        .join(Subscriber, Subscriber.id == per_person.c.subscriber_id)
        .join(Contact, Contact.id == Subscriber.contact_id)
        .order_by(Subscriber.id)
    ).all()
    people = [
        Person(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            _moment(row[5]),
            _moment(row[6]),
            int(row[7]),
            int(row[8]),
        )
        for row in rows[:limit]
    ]
    total = 0
    if after == 0 and len(rows) <= limit:
        total = len(people)  # one page holds everyone: no need to count
    else:
        everyone = _hits(issue.id, include_machines, 0)
        total = session.scalar(select(func.count(everyone.c.subscriber_id.distinct()))) or 0
    next_after = people[-1].subscriber_id if len(rows) > limit else None
    return PeoplePage(people, total, next_after)


def _moment(value: datetime | str) -> datetime:
    # MIN and MAX over a UNION lose the column type: SQLite answers the stored text.
    moment = utc_from_driver(value)
    assert moment is not None
    return moment


EXPORT_CHUNK = 1_000


@dataclass(frozen=True, slots=True)
class PeopleExport:
    """An export under way: which issue, which hits, and the file's name."""

    issue_id: int
    issue_guid: uuid.UUID
    include_machines: bool

    @property
    def filename(self) -> str:
        return f"issue-{self.issue_guid}-engagement.csv"


def start_export(
    session: Session, issue_guid: str | uuid.UUID, *, include_machines: bool, actor: str
) -> PeopleExport:
    """Record that `actor` exports the issue's people (`issue.engagement_exported`, with how
    many), before the first byte leaves; NotFound for an unknown issue."""
    issue = get_issue(session, issue_guid)
    hits = _hits(issue.id, include_machines, 0)
    people = session.scalar(select(func.count(hits.c.subscriber_id.distinct()))) or 0
    details = {"people": people, "include_machines": include_machines}
    audit.record(session, actor, "issue.engagement_exported", str(issue.guid), details)
    return PeopleExport(issue.id, issue.guid, include_machines)


def csv_header() -> str:
    return csv_line(PEOPLE_COLUMNS)


def export_chunk(session: Session, *, export: PeopleExport, after: int) -> tuple[str, int | None]:
    """The CSV lines of the people above `after`, and the cursor of the next chunk."""
    issue = session.get_one(EmailIssue, export.issue_id)
    page = _page(session, issue, after, EXPORT_CHUNK, export.include_machines)
    return "".join(csv_line(person.csv_values()) for person in page.people), page.next_after


async def stream(
    read: Callable[
        [Callable[[Session], tuple[str, int | None]]], Awaitable[tuple[str, int | None]]
    ],
    export: PeopleExport,
) -> AsyncIterator[str]:
    """The whole CSV, a chunk at a time; `read` runs each chunk in a read-only unit of work
    (`Hub.read`), so no transaction stays open while the client downloads."""
    yield csv_header()
    after: int | None = 0
    while after is not None:
        chunk, after = await read(partial(export_chunk, export=export, after=after))
        if chunk:
            yield chunk


def export_lines(session: Session, export: PeopleExport) -> Iterator[str]:
    """The whole CSV in one unit of work, a chunk at a time (the command line's export)."""
    yield csv_header()
    after: int | None = 0
    while after is not None:
        chunk, after = export_chunk(session, export=export, after=after)
        if chunk:
            yield chunk
