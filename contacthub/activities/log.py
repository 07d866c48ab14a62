"""The activity log: every activity, newest first, filtered and paged by keyset.

The `activities` table is written at full ingest speed and has only two indexes on purpose:
the primary key and `(contact_id, id)`. So every query here is built to use one of them:

- **Order and paging** follow the id (the primary key), newest first. A page is "the next 50
  matching activities below id X" (`before_id`), or, going back up, "the next 50 above id X"
  (`after_id`), read upwards and shown reversed. No OFFSET, so every page costs the same, and
  pages neither skip nor repeat an activity while new ones arrive.
- **A date range is an id range.** Ids are handed out in commit order, so they follow time.
  `first_id_at_or_after` finds the first id at or after a moment by a binary search over the
  primary key (about 20 one-row probes for a million activities), not by scanning `created_at`.
  Times are taken when a request arrives and ids when its batch commits, so neighbours can be a
  moment out of order: the id range is widened by `BOUNDARY_SLACK` ids on each side and every
  row is also tested against `created_at` exactly.
- **A contact filter** walks the contact's own rows through the `(contact_id, id)` index.
- **Channel, type and URL filters** walk the primary key downwards and keep the rows that
  match, stopping at a full page: fast when matches are common. A filter that matches rarely
  or never would walk the whole table, so a request examines at most `SCAN_LIMIT` ids below
  its cursor (above it, going up). When that window holds less than a page, the page comes back
  short with `searched_to` set (the time the search reached) and `older_before` at the window's
  edge: following it continues the search where this one stopped. With a contact filter the
  index already bounds the work, so there is no such window.
- **The URL filter** keeps URLs that *contain* the text, ignoring case (`%` and `_` are plain
  characters), rather than URLs that start with it: people look for a path such as `/pricing`
  on any host, scheme or query string, which a prefix would make them type out exactly.

Filtered pages are fast on PostgreSQL when the planner walks the primary key in order and
stops at a full page; it does so with current statistics (autovacuum's ANALYZE). Without
them it may read the whole scan window first: slower, but still bounded by `SCAN_LIMIT`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from contacthub import identifiers
from contacthub.activities import repository
from contacthub.activities.rules import (
    BUILT_IN_TYPES,
    CLICK,
    DATA_INPUT,
    EMAIL_CLICK,
    EMAIL_OPEN,
    MAX_URL_LENGTH,
    PAGE_VISIT,
)
from contacthub.channels import repository as channel_repository
from contacthub.contacts import repository as contact_repository
from contacthub.errors import InvalidInput
from contacthub.identifiers import MAX_BIG_ID, parse_day
from contacthub.storage.models import Activity, Contact

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# At most this many ids are examined per request when no index narrows the search.
SCAN_LIMIT = 200_000
# How far beyond a date bound found by id the exact `created_at` test still looks (see above).
BOUNDARY_SLACK = 10_000
# The channel filter's word for activities without a channel: email opens and clicks.
EMAIL_CHANNEL = "email"
BUILT_IN_TYPE_NAMES = {
    PAGE_VISIT: "Page visit",
    CLICK: "Click",
    DATA_INPUT: "Data input",
    EMAIL_OPEN: "Email open",
    EMAIL_CLICK: "Email click",
}


@dataclass(frozen=True, slots=True)
class LogFilters:
    """What the log is filtered by, as given (checked for form, not yet looked up).

    `channel` is a channel's id, name or tracking identifier, or `email` for activities without
    a channel. `url` matches URLs that contain it, ignoring case. `start` and `end` are UTC days,
    both included.
    """

    channel: str | None = None
    type: str | None = None
    contact: uuid.UUID | None = None
    url: str | None = None
    start: date | None = None
    end: date | None = None

    @classmethod
    def parse(
        cls,
        *,
        channel: str = "",
        activity_type: str = "",
        contact: str = "",
        url: str = "",
        start: str = "",
        end: str = "",
    ) -> LogFilters:
        """Filters from text (a form or a query string); empty means "any"."""
        contact_guid = None
        if contact:
            try:
                contact_guid = uuid.UUID(contact) if 32 <= len(contact) <= 38 else None
            except ValueError:
                contact_guid = None
            if contact_guid is None:
                raise InvalidInput(
                    "The contact must be a GUID, e.g. 06b035b8-6658-4a1b-b1de-5994e4975fb1.",
                    code="invalid_contact",
                    field="contact",
                )
        if len(url) > MAX_URL_LENGTH or "\x00" in url:
            raise InvalidInput(
                f"The URL filter has at most {MAX_URL_LENGTH} characters and no NUL.",
                code="invalid_url_filter",
                field="url",
            )
        first, last = parse_day(start, "start"), parse_day(end, "end")
        if first is not None and last is not None and last < first:
            raise InvalidInput(
                "The end day is before the start day.", code="invalid_date_range", field="end"
            )
        return cls(
            channel=channel or None,
            type=activity_type or None,
            contact=contact_guid,
            url=url or None,
            start=first,
            end=last,
        )

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> LogFilters:
        """Filters from query parameters named as `as_query` names them (`type`, not
        `activity_type`); surrounding spaces are ignored."""
        return cls.parse(
            channel=params.get("channel", "").strip(),
            activity_type=params.get("type", "").strip(),
            contact=params.get("contact", "").strip(),
            url=params.get("url", "").strip(),
            start=params.get("start", "").strip(),
            end=params.get("end", "").strip(),
        )

    def as_query(self) -> dict[str, str]:
        """The filters as query parameters (for links to other pages of the same log)."""
        params = {
            "channel": self.channel,
            "type": self.type,
            "contact": str(self.contact) if self.contact else None,
            "url": self.url,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
        }
        return {name: value for name, value in params.items() if value}


def parse_cursor(text: str, name: str) -> int | None:
    """A paging cursor (`before` or `after`) of the activity log or the audit log (big ids), the
    id a previous page gave; None when empty."""
    return identifiers.parse_cursor(text, name, maximum=MAX_BIG_ID, code="invalid_parameter")


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One activity as the log shows it: with its channel's name and its contact's GUID, name
    and address."""

    id: int
    created_at: datetime
    type: str
    channel_id: int | None
    # None for activities without a channel (email opens and clicks).
    channel: str | None
    # None only if the contact no longer exists.
    contact: uuid.UUID | None
    title: str
    value: str | None
    url: str | None
    referrer: str | None
    # The contact's name, else their email address; None when neither is known.
    contact_name: str | None = None


@dataclass(frozen=True, slots=True)
class LogPage:
    """One page of the log, newest first, and the cursors to the pages around it."""

    entries: list[LogEntry]
    # Pass as `before_id` for the next, older page; None when there is nothing older.
    older_before: int | None
    # Pass as `after_id` for the previous, newer page; None on the newest page.
    newer_after: int | None
    # Set when the search stopped at the scan limit before filling the page: how far back it got.
    searched_to: datetime | None = None


@dataclass(frozen=True, slots=True)
class _Plan:
    conditions: list[ColumnElement[bool]]
    # The ids that can match: low included, high excluded.
    low: int
    high: int
    # The (contact_id, id) index bounds the work; no scan window is needed.
    indexed: bool


def type_choices(session: Session) -> list[tuple[str, str]]:
    """Every activity type the log can be filtered by: (code name, label), built-in first."""
    choices = list(BUILT_IN_TYPE_NAMES.items())
    for custom in repository.all_types(session):
        label = custom.display_name if custom.enabled else f"{custom.display_name} (disabled)"
        choices.append((custom.code_name, label))
    return choices


def channel_choices(session: Session) -> list[tuple[str, str]]:
    """Every channel the log can be filtered by: (id, name), with email (no channel) first."""
    return [(EMAIL_CHANNEL, "Email (no channel)")] + [
        (str(channel.id), channel.name) for channel in channel_repository.all_channels(session)
    ]


def activity_log(
    session: Session,
    filters: LogFilters,
    before_id: int | None = None,
    limit: int = PAGE_SIZE,
    *,
    after_id: int | None = None,
    scan_limit: int = SCAN_LIMIT,
) -> LogPage:
    """A page of matching activities, newest first.

    Without a cursor, the newest page. With `before_id`, the page of activities below that id;
    with `after_id`, the page just above it (the way back up). See the module docstring for
    which index each filter uses and how the scan limit bounds the work.
    """
    if before_id is not None and after_id is not None:
        raise InvalidInput(
            "Page with before or after, not both.", code="invalid_parameter", field="after"
        )
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    plan = _plan(session, filters)
    if plan is None:
        return LogPage([], None, None)
    if after_id is not None:
        newer = _page_above(session, plan, after_id, limit, scan_limit)
        if newer is not None:
            return newer
        # Less than a page above the cursor: that is the newest page, shown full.
        before_id = None
    return _page_below(session, plan, before_id, limit, scan_limit)


def _page_below(
    session: Session, plan: _Plan, before_id: int | None, limit: int, scan_limit: int
) -> LogPage:
    top = plan.high if before_id is None else max(plan.low, min(before_id, plan.high))
    floor = plan.low if plan.indexed else max(plan.low, top - scan_limit)
    query = (
        _select(plan)
        .where(Activity.id >= floor, Activity.id < top)
        .order_by(Activity.id.desc())
        .limit(limit + 1)
    )
    rows = session.execute(query).all()
    entries = _entries(session, rows[:limit])
    newer = None if before_id is None else (entries[0].id if entries else top - 1)
    if len(rows) > limit:
        return LogPage(entries, entries[-1].id, newer)
    if floor > plan.low:
        # The scan window ended before the page filled: continue below it next time.
        return LogPage(entries, floor, newer, _time_at(session, floor))
    return LogPage(entries, None, newer)


def _page_above(
    session: Session, plan: _Plan, after_id: int, limit: int, scan_limit: int
) -> LogPage | None:
    bottom = min(plan.high, max(plan.low, after_id + 1))
    ceiling = plan.high if plan.indexed else min(plan.high, bottom + scan_limit)
    query = (
        _select(plan)
        .where(Activity.id >= bottom, Activity.id < ceiling)
        .order_by(Activity.id.asc())
        .limit(limit + 1)
    )
    rows = session.execute(query).all()
    if len(rows) <= limit and ceiling >= plan.high:
        return None
    entries = _entries(session, list(reversed(rows[:limit])))
    older = entries[-1].id if entries else bottom
    if len(rows) > limit:
        return LogPage(entries, older, entries[0].id)
    # The scan window ended before the page filled: the next newer page starts above it.
    return LogPage(entries, older, ceiling - 1)


def _select(plan: _Plan) -> Select[*tuple[Any, ...]]:
    return select(
        Activity.id,
        Activity.created_at,
        Activity.type,
        Activity.channel_id,
        Activity.contact_id,
        Activity.title,
        Activity.value,
        Activity.url,
        Activity.referrer,
    ).where(*plan.conditions)


def _entries(session: Session, rows: Sequence[Any]) -> list[LogEntry]:
    """Rows with their channel names (a small table, mapped here) and their contacts' GUIDs and
    names, read in one query for the whole page."""
    if not rows:
        return []
    channels = {c.id: c.name for c in channel_repository.all_channels(session)}
    contact_ids = {row.contact_id for row in rows}
    query = select(
        Contact.id, Contact.guid, Contact.first_name, Contact.last_name, Contact.email
    ).where(Contact.id.in_(contact_ids))
    guids: dict[int, uuid.UUID] = {}
    names: dict[int, str] = {}
    for contact in session.execute(query):
        guids[contact.id] = contact.guid
        name = " ".join(part for part in (contact.first_name, contact.last_name) if part)
        if name or contact.email:
            names[contact.id] = name or contact.email
    return [
        LogEntry(
            id=row.id,
            created_at=row.created_at,
            type=row.type,
            channel_id=row.channel_id,
            channel=(
                None
                if row.channel_id is None
                else channels.get(row.channel_id, f"#{row.channel_id}")
            ),
            contact=guids.get(row.contact_id),
            contact_name=names.get(row.contact_id),
            title=row.title,
            value=row.value,
            url=row.url,
            referrer=row.referrer,
        )
        for row in rows
    ]


def _plan(session: Session, filters: LogFilters) -> _Plan | None:
    """The filters looked up and turned into conditions and an id range; None if no activity."""
    conditions: list[ColumnElement[bool]] = []
    contact_id = None
    if filters.channel is not None:
        conditions.append(_channel_condition(session, filters.channel))
    if filters.type is not None:
        conditions.append(Activity.type == _canonical_type(session, filters.type))
    if filters.contact is not None:
        contact = contact_repository.contact_by_guid(session, filters.contact)
        if contact is None:
            raise InvalidInput(
                f"No contact with GUID {filters.contact}.", code="unknown_contact", field="contact"
            )
        contact_id = contact.id
        conditions.append(Activity.contact_id == contact_id)
    if filters.url is not None:
        conditions.append(Activity.url.icontains(filters.url, autoescape=True))
    # Two queries, not one: SQLite reads min() or max() off the key only when it is alone.
    lowest = session.scalar(select(func.min(Activity.id)))
    if lowest is None:
        return None
    highest: int = session.scalar(select(func.max(Activity.id))) or lowest
    low, high = lowest, highest + 1
    if filters.start is not None:
        moment = datetime.combine(filters.start, time(), UTC)
        conditions.append(Activity.created_at >= moment)
        low = max(low, _first_id_at_or_after(session, moment, low, high) - BOUNDARY_SLACK)
    if filters.end is not None:
        moment = datetime.combine(filters.end + timedelta(days=1), time(), UTC)
        conditions.append(Activity.created_at < moment)
        high = min(high, _first_id_at_or_after(session, moment, low, high) + BOUNDARY_SLACK)
    return _Plan(conditions, low, max(low, high), indexed=contact_id is not None)


def _channel_condition(session: Session, text: str) -> ColumnElement[bool]:
    if text.lower() == EMAIL_CHANNEL:
        return Activity.channel_id.is_(None)
    for channel in channel_repository.all_channels(session):
        if text in (str(channel.id), channel.name) or text.lower() == str(channel.guid):
            return Activity.channel_id == channel.id
    raise InvalidInput(f"No channel {text!r}.", code="unknown_channel", field="channel")


def _canonical_type(session: Session, text: str) -> str:
    known = {name: name for name in BUILT_IN_TYPES}
    known.update({t.code_name.lower(): t.code_name for t in repository.all_types(session)})
    canonical = known.get(text.lower())
    if canonical is None:
        raise InvalidInput(
            f"No activity type {text!r}.", code="unknown_activity_type", field="type"
        )
    return canonical


def first_id_at_or_after(session: Session, moment: datetime) -> int:
    """The first activity id created at or after `moment`; one past the last id if none is.

    A binary search over the primary key, assuming ids follow time: each step reads one row.
    """
    lowest = session.scalar(select(func.min(Activity.id)))
    if lowest is None:
        return 1
    highest: int = session.scalar(select(func.max(Activity.id))) or lowest
    return _first_id_at_or_after(session, moment, lowest, highest + 1)


def _first_id_at_or_after(session: Session, moment: datetime, low: int, high: int) -> int:
    """The search of `first_id_at_or_after` within ids [low, high)."""
    end = high
    while low < high:
        middle = (low + high) // 2
        found = _first_row_from(session, middle)
        if found is None or found.created_at >= moment:
            high = middle
        else:
            # Ids below a row of an earlier time all come before the moment too: skip the gap.
            low = min(found.id + 1, high)
    if low == end:
        return end
    # `low` may fall in a gap left by erased activities: answer the activity at its end.
    found = _first_row_from(session, low)
    return end if found is None else min(found.id, end)


def _first_row_from(session: Session, activity_id: int) -> Any:
    return session.execute(
        select(Activity.id, Activity.created_at)
        .where(Activity.id >= activity_id)
        .order_by(Activity.id)
        .limit(1)
    ).first()


def _time_at(session: Session, activity_id: int) -> datetime | None:
    """The time of the first activity at or above this id."""
    return session.scalar(
        select(Activity.created_at).where(Activity.id >= activity_id).order_by(Activity.id).limit(1)
    )
