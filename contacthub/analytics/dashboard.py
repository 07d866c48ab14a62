"""The dashboard: what the audience did in a range of UTC days, in one read.

Everything here stays fast however large the activity log and the contacts grow: activity
counts, the top pages and clicks, new contacts per day and the number of contacts come from the
rollups (`analytics.rollups`, which count live only the few activities and contacts not rolled up
yet), and the figures of the five latest email issues from the indexes on the email tables, kept
for a minute (`RecentFigures`).

Scoped to a group (`group`), the figures count only the group's current members: their
activities, top pages and clicks, and new contacts, and `contacts` is the number of members. The
rollups are not kept per contact, so these are counted from the activity log (and the members'
new contacts from the index on `contacts.created_at`): the range of days
becomes a range of ids (ids follow time: `activities.log.first_id_at_or_after`), and only the
members' activities in it are read, through `group_members`' primary key. That costs in
proportion to the activities in the range, where the unscoped dashboard reads only the rollups;
the unscoped dashboard is unchanged. The latest email issues are the hub's, in either case.

Email opens and clicks in the range are the `emailopen` and `emailclick` activities: human
hits only (machine ones are never logged as activities), an open counted once per subscriber
and issue (the first human open), a click every time.
"""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from contacthub.activities.log import BOUNDARY_SLACK, first_id_at_or_after
from contacthub.activities.rules import CLICK, DATA_INPUT, EMAIL_CLICK, EMAIL_OPEN, PAGE_VISIT
from contacthub.analytics import rollups
from contacthub.email.stats import issue_stats
from contacthub.errors import HubError, InvalidInput, NotFound
from contacthub.groups.service import get_group
from contacthub.storage.models import (
    Activity,
    ActivityType,
    Channel,
    Contact,
    EmailIssue,
    GroupMember,
    Newsletter,
)

DEFAULT_DAYS = 30
MAX_DAYS = 366
TOP_COUNT = 10
LATEST_ISSUES = 5
# How old the latest issues' open and click rates may be (see `RecentFigures`).
ISSUE_FIGURES_TTL = 60.0
EMAIL_CHANNEL_NAME = "Email"
BUILT_IN_TYPE_NAMES = {
    PAGE_VISIT: "Page visits",
    CLICK: "Clicks",
    DATA_INPUT: "Data inputs",
    EMAIL_OPEN: "Email opens",
    EMAIL_CLICK: "Email clicks",
}


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a chart: a count per day of the range (`Dashboard.days`), in order."""

    key: str  # the activity type's code name, or the channel's id ("0": email)
    name: str
    values: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.values)


@dataclass(frozen=True, slots=True)
class Totals:
    """The figures of the stat tiles; all but `contacts` count within the range."""

    activities: int
    new_contacts: int
    contacts: int
    email_opens: int
    email_clicks: int


@dataclass(frozen=True, slots=True)
class TopEntry:
    """A visited URL (top pages) or a clicked element's value (top clicks), and its count."""

    key: str
    count: int


@dataclass(frozen=True, slots=True)
class LatestIssue:
    """One of the latest email issues, with its human open and click rates over sent messages."""

    guid: uuid.UUID
    subject: str
    newsletter: str
    status: str
    sent_at: datetime | None
    sent: int
    open_rate: float | None
    click_rate: float | None


@dataclass(frozen=True, slots=True)
class Dashboard:
    """Everything the dashboard shows for the days from `start` to `end` (both included)."""

    start: date
    end: date
    days: tuple[date, ...]
    totals: Totals
    by_type: tuple[Series, ...]
    by_channel: tuple[Series, ...]
    new_contacts: tuple[int, ...]
    top_pages: tuple[TopEntry, ...]
    top_clicks: tuple[TopEntry, ...]
    latest_issues: tuple[LatestIssue, ...]
    # The group the figures are scoped to (its name); None for the whole audience.
    group: str | None = None


def utc_today() -> date:
    """Today's date in UTC: the dashboard's days are UTC days."""
    return datetime.now(UTC).date()


def default_range(today: date | None = None) -> tuple[date, date]:
    """The last `DEFAULT_DAYS` days, today included."""
    end = today or utc_today()
    return end - timedelta(days=DEFAULT_DAYS - 1), end


def resolve_range(
    start: date | None, end: date | None, today: date | None = None
) -> tuple[date, date]:
    """The range asked for, checked; a missing end is today, a missing start 30 days before it."""
    end = end or today or utc_today()
    if start is None:
        # Never before date.min (day 1), whatever end was typed.
        start = end - timedelta(days=min(DEFAULT_DAYS - 1, end.toordinal() - 1))
    check_range(start, end)
    return start, end


def check_range(start: date, end: date) -> None:
    """Refuse a range that ends before it starts, or that spans more than `MAX_DAYS` days."""
    if start > end:
        raise InvalidInput(
            "The end date is before the start date.", code="date_range_reversed", field="end"
        )
    if (end - start).days + 1 > MAX_DAYS:
        raise InvalidInput(
            f"The range is at most {MAX_DAYS} days: pick a later start date.",
            code="date_range_too_long",
            field="start",
        )


def dashboard(session: Session, start: date, end: date, *, group: str | None = None) -> Dashboard:
    """The dashboard of the days from `start` to `end`, both included (UTC days); with
    `group`, of that group's members only (a 400 naming `group` if there is no such group)."""
    check_range(start, end)
    days = tuple(start + timedelta(days=n) for n in range((end - start).days + 1))
    if group is None:
        counts = rollups.activity_counts(session, start, end)
        contact_counts = rollups.contact_counts(session, start, end)
        new_contacts, contacts = contact_counts.per_day, contact_counts.total
        top_pages = _top(session, rollups.PAGE, start, end)
        top_clicks = _top(session, rollups.CLICK_KIND, start, end)
        group_name = None
    else:
        group_id, group_name = _group(session, group)
        members = select(GroupMember.contact_id).where(GroupMember.group_id == group_id)
        in_range = (*_activities_in(session, start, end), Activity.contact_id.in_(members))
        counts = rollups.counts_from_log(session, *in_range)
        new_contacts = _new_contacts_per_day(session, start, end, Contact.id.in_(members))
        contacts = session.scalar(select(func.count()).select_from(members.subquery())) or 0
        top_pages = _top_from_log(session, rollups.PAGE, in_range)
        top_clicks = _top_from_log(session, rollups.CLICK_KIND, in_range)
    by_type: dict[str, dict[date, int]] = defaultdict(dict)
    by_channel: dict[int, dict[date, int]] = defaultdict(dict)
    for row in counts:
        per_type = by_type[row.type]
        per_type[row.day] = per_type.get(row.day, 0) + row.count
        per_channel = by_channel[row.channel_id]
        per_channel[row.day] = per_channel.get(row.day, 0) + row.count
    type_names = _type_names(session)
    channel_names = _channel_names(session)
    new_contact_values = tuple(new_contacts.get(day, 0) for day in days)
    type_totals = {key: sum(per_day.values()) for key, per_day in by_type.items()}
    return Dashboard(
        start=start,
        end=end,
        days=days,
        totals=Totals(
            activities=sum(row.count for row in counts),
            new_contacts=sum(new_contact_values),
            contacts=contacts,
            email_opens=type_totals.get(EMAIL_OPEN, 0),
            email_clicks=type_totals.get(EMAIL_CLICK, 0),
        ),
        by_type=_series(
            days, ((key, type_names.get(key, key), per_day) for key, per_day in by_type.items())
        ),
        by_channel=_series(
            days,
            (
                (str(channel_id), _channel_name(channel_id, channel_names), per_day)
                for channel_id, per_day in by_channel.items()
            ),
        ),
        new_contacts=new_contact_values,
        top_pages=top_pages,
        top_clicks=top_clicks,
        latest_issues=latest_issues(session),
        group=group_name,
    )


def _group(session: Session, name: str) -> tuple[int, str]:
    """The id and name of the group the dashboard is scoped to; a 400 naming `group` if none."""
    try:
        found = get_group(session, name)
    except HubError as error:
        raise InvalidInput(error.message, code=error.code, field="group") from None
    return found.id, found.name


def _activities_in(session: Session, start: date, end: date) -> tuple[ColumnElement[bool], ...]:
    """The activities of the days from `start` to `end`: an id range (widened by
    `BOUNDARY_SLACK`, as ids and times can be a moment out of order) and the exact times."""
    first = datetime.combine(start, time.min, UTC)
    after_last = datetime.combine(end, time.min, UTC) + timedelta(days=1)
    low = first_id_at_or_after(session, first) - BOUNDARY_SLACK
    high = first_id_at_or_after(session, after_last) + BOUNDARY_SLACK
    return (
        Activity.id >= low,
        Activity.id < high,
        Activity.created_at >= first,
        Activity.created_at < after_last,
    )


def _top_from_log(
    session: Session, kind: str, where: tuple[ColumnElement[bool], ...]
) -> tuple[TopEntry, ...]:
    return tuple(
        TopEntry(key, n)
        for key, n in rollups.top_keys_from_log(session, kind, *where, limit=TOP_COUNT)
    )


def _series(
    days: tuple[date, ...], rows: Iterable[tuple[str, str, Mapping[date, int]]]
) -> tuple[Series, ...]:
    """Series with a value for every day, the largest first (then by name, for a stable order)."""
    series = [
        Series(key, name, tuple(per_day.get(day, 0) for day in days)) for key, name, per_day in rows
    ]
    return tuple(sorted(series, key=lambda s: (-s.total, s.name.lower(), s.key)))


def _type_names(session: Session) -> dict[str, str]:
    names = dict(BUILT_IN_TYPE_NAMES)
    names.update(session.execute(select(ActivityType.code_name, ActivityType.display_name)).all())
    return names


def _channel_names(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Channel.id, Channel.name)).all())


def _channel_name(channel_id: int, names: Mapping[int, str]) -> str:
    if channel_id == rollups.NO_CHANNEL:
        return EMAIL_CHANNEL_NAME
    # The activity log keeps the activities of a channel that was deleted since.
    return names.get(channel_id, f"Deleted channel #{channel_id}")


def _new_contacts_per_day(
    session: Session, start: date, end: date, *among: ColumnElement[bool]
) -> dict[date, int]:
    """Contacts created per UTC day of those `among` selects (a group's members): a range of
    the index on `contacts.created_at`. The unscoped dashboard reads the rollup instead
    (`rollups.contact_counts`): this range costs in proportion to the contacts created in it,
    over a second at a million contacts."""
    return dict(
        rollups.contacts_per_day(
            session,
            Contact.created_at >= datetime.combine(start, time.min, UTC),
            # The last instant of the end day, rather than the next midnight, cannot overflow.
            Contact.created_at <= datetime.combine(end, time.max, UTC),
            *among,
        )
    )


def _top(session: Session, kind: str, start: date, end: date) -> tuple[TopEntry, ...]:
    return tuple(
        TopEntry(key, n) for key, n in rollups.top_keys(session, kind, start, end, TOP_COUNT)
    )


@dataclass(frozen=True, slots=True)
class _IssueFigures:
    sent: int
    open_rate: float | None
    click_rate: float | None


class RecentFigures:
    """Issue figures computed less than `ttl` seconds ago, in this process.

    `issue_stats` counts distinct openers over every open and click of an issue: tens of
    milliseconds per 10,000 recipients, even through the indexes, so five large issues would
    cost the dashboard more than everything else on it. Rates move slowly once an issue is out,
    so the dashboard shows figures up to `ttl` seconds old (the issue's own page counts live).
    An issue whose status changes (sending, sent) is counted afresh at once.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[tuple[uuid.UUID, str], tuple[float, _IssueFigures]] = {}

    def get(self, key: tuple[uuid.UUID, str], now: float) -> _IssueFigures | None:
        with self._lock:
            entry = self._entries.get(key)
        return entry[1] if entry is not None and now - entry[0] < self.ttl else None

    def put(self, key: tuple[uuid.UUID, str], figures: _IssueFigures, now: float) -> None:
        with self._lock:
            self._entries[key] = (now, figures)

    def __len__(self) -> int:
        return len(self._entries)

    def keep_only(self, keys: Iterable[tuple[uuid.UUID, str]]) -> None:
        """Forget the issues no longer shown, so that the cache never grows."""
        kept = set(keys)
        with self._lock:
            for key in [k for k in self._entries if k not in kept]:
                del self._entries[key]


recent_figures = RecentFigures(ttl=ISSUE_FIGURES_TTL)


def latest_issues(
    session: Session, limit: int = LATEST_ISSUES, *, now: float | None = None
) -> tuple[LatestIssue, ...]:
    """The latest issues: sent ones first, the last sent first; then the others, newest first.

    Their figures may be up to `ISSUE_FIGURES_TTL` seconds old (see `RecentFigures`).
    """
    moment = monotonic() if now is None else now
    rows = session.execute(
        select(
            EmailIssue.guid,
            EmailIssue.subject,
            EmailIssue.status,
            EmailIssue.sent_at,
            Newsletter.name,
        )
        .join(Newsletter, Newsletter.id == EmailIssue.newsletter_id)
        .order_by(
            EmailIssue.sent_at.is_(None),
            EmailIssue.sent_at.desc(),
            EmailIssue.created_at.desc(),
            EmailIssue.id.desc(),
        )
        .limit(limit)
    ).all()
    summaries = []
    for guid, subject, status, sent_at, newsletter in rows:
        key = (guid, status)
        figures = recent_figures.get(key, moment)
        if figures is None:
            # Every query of issue_stats is bounded by an index on the issue.
            try:
                stats = issue_stats(session, guid)
            except NotFound:  # deleted since the query above (read committed)
                continue
            figures = _IssueFigures(stats.sent, stats.open_rate, stats.click_through_rate)
            recent_figures.put(key, figures, moment)
        summaries.append(
            LatestIssue(
                guid=guid,
                subject=subject,
                newsletter=newsletter,
                status=status,
                sent_at=sent_at,
                sent=figures.sent,
                open_rate=figures.open_rate,
                click_rate=figures.click_rate,
            )
        )
    recent_figures.keep_only((guid, status) for guid, _, status, _, _ in rows)
    return tuple(summaries)
