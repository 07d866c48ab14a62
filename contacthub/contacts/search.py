"""Finding contacts: search by GUID, email or name, sorted, paged by keyset.

What `q` matches:
- a GUID (any usual spelling): that contact only, exactly;
- otherwise the start of the email address, or any part of the first name, the last name or
  "first last", all ignoring case. When `q` holds an "@" it can only be an address, and only
  addresses are searched.

Emails are stored as given (mixed case possible: only the domain is lower-cased on input), so
the comparison ignores case on both sides: `lower() LIKE lower()` on PostgreSQL, SQLite's own
`LIKE` (which ignores the case of ASCII letters). SQLite folds the case of ASCII letters only:
there "čapek" does not find "Čapek" (PostgreSQL folds every letter).

Searches read indexes (migration 0011; docs/admin.md, "Contacts"): the email prefix is an
index range (PostgreSQL: `lower(email) text_pattern_ops`; SQLite: `email COLLATE NOCASE`, for its
LIKE optimisation), the name a trigram index of the lower-cased "first last" (`_name_matches`:
PostgreSQL's GIN index, SQLite's FTS5 table, which proposes candidates that the LIKE then
judges, so that the results are the LIKE's). Where pg_trgm or SQLite's trigram tokenizer is
missing, the name search reads the table, as it did before (docs/decisions.md).

Filters (`ContactFilter`, built by `parse_filter`) narrow the list further, all together and
with the search text: members of a group, contacts who agree now to a consent (their latest
event for it is an agreement), subscribers of a newsletter (not unsubscribed), a country, and
contacts active within the last N days or with no activity in the last N days. Each predicate
is an `IN` or correlated `EXISTS` subquery on an index: `group_members`' primary key,
`subscribers`' (newsletter_id, email), `consent_agreements`' (contact_id, consent_id, id) and
`activities`' (contact_id, id), a time bound on activities being an id bound (ids follow time,
`activities.log.first_id_at_or_after`).

Sorting (`sort`): `-created` (newest first, the default), `created`, `email`, `-email`,
`last_name`, `-last_name`. Emails and last names sort without regard to case, blanks last in
either direction, then by id. Pages are cut by keyset: the cursor `next_after` carries the last
row's sort value and id, so paging never skips or repeats a contact while new ones arrive. A page
is read from the index on (lower(key), id) in either direction, the contacts without the key
apart (`_ordered_page`), so a page deep in a million contacts costs what the first one does.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    SQLColumnExpression,
    and_,
    exists,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    table,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.orm import Session

from contacthub.activities.log import BOUNDARY_SLACK, first_id_at_or_after
from contacthub.consents import repository as consent_repository
from contacthub.consents.service import get_consent
from contacthub.contacts.fields import country_code
from contacthub.email.repository import all_newsletters
from contacthub.email.service import get_newsletter
from contacthub.errors import HubError, InvalidInput
from contacthub.groups.conditions import (
    AllOf,
    Condition,
    ConsentCondition,
    EmailCondition,
    FieldCondition,
    GroupCondition,
)
from contacthub.identifiers import MAX_ID, guid_or_none, refuse_nul, whole_number
from contacthub.storage.models import CONTACT_NAME_TRIGRAMS, Activity, Contact, ContactGroup
from contacthub.storage.types import utcnow

DEFAULT_SORT = "-created"
SORTS = ("-created", "created", "email", "-email", "last_name", "-last_name")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_QUERY_LENGTH = 254
# The longest activity window a filter takes, in days (ten years).
MAX_FILTER_DAYS = 3_650
# The filters' names, as every entry point spells them (query parameters, form fields, options).
FILTER_NAMES = ("group", "consent", "newsletter", "country", "active_within", "inactive_for")
_LIKE_ESCAPE = "\\"


@dataclass(frozen=True, slots=True)
class ContactSummary:
    """A contact as a list shows it."""

    guid: uuid.UUID
    email: str | None
    first_name: str | None
    last_name: str | None
    company_name: str | None
    created_at: datetime
    job_title: str | None = None
    city: str | None = None
    country: str | None = None
    # The time of the contact's latest activity; None when it has none.
    last_activity_at: datetime | None = None

    @property
    def name(self) -> str:
        """First and last name, as far as known."""
        return " ".join(part for part in (self.first_name, self.last_name) if part)


@dataclass(frozen=True, slots=True)
class ContactPage:
    """One page of contacts, and the cursor of the next page (None on the last page)."""

    contacts: list[ContactSummary]
    next_after: str | None


def check_sort(sort: str | None) -> str:
    """A valid sort name; the default when none is given."""
    if not sort:
        return DEFAULT_SORT
    if sort not in SORTS:
        raise InvalidInput(
            f"sort must be one of {', '.join(SORTS)}.", code="invalid_sort", field="sort"
        )
    return sort


def check_query(q: str | None) -> str:
    """The search text, stripped; refused when no contact could match it."""
    text = (q or "").strip()
    if len(text) > MAX_QUERY_LENGTH:
        raise InvalidInput(
            f"The search text is longer than {MAX_QUERY_LENGTH} characters.",
            code="invalid_query",
            field="q",
        )
    return refuse_nul(text, "q")


def _escape_like(text: str) -> str:
    return (
        text.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2)
        .replace("%", _LIKE_ESCAPE + "%")
        .replace("_", _LIKE_ESCAPE + "_")
    )


def _like(column: SQLColumnExpression[Any], pattern: str, dialect: str) -> ColumnElement[bool]:
    """`column` matches the LIKE `pattern`, ignoring case.

    SQLite's LIKE already ignores the case of ASCII letters (and its lower() knows no others).
    On PostgreSQL, lower() on both sides and LIKE measured twice as fast as ILIKE.
    """
    if dialect == "sqlite":
        return column.like(pattern, escape=_LIKE_ESCAPE)
    return func.lower(column).like(func.lower(pattern), escape=_LIKE_ESCAPE)


def _full_name() -> ColumnElement[str]:
    """The full name, "first last", as the name indexes hold it (migration 0011): the same SQL
    text on both databases, so that PostgreSQL's expression index matches it (the constants are
    inline, not bound); a missing part is empty, not NULL."""
    empty: ColumnElement[str] = literal_column("''")
    return (
        func.coalesce(Contact.first_name, empty)
        + literal_column("' '")
        + func.coalesce(Contact.last_name, empty)
    )


def _has_trigrams(session: Session) -> bool:
    """The SQLite store has the FTS5 trigram table of names (migration 0011 makes it where
    SQLite has the trigram tokenizer, 3.34 or newer)."""
    return (
        session.scalar(
            text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"),
            {"name": CONTACT_NAME_TRIGRAMS},
        )
        is not None
    )


def _name_matches(session: Session, q: str, pattern: str, dialect: str) -> ColumnElement[bool]:
    """Any part of "first last" contains `q` (`pattern` is `%q%`, escaped).

    One condition on the full name serves both fields: `q` is stripped, so it can only span the
    space between them if it has a space itself, and otherwise it is in the full name exactly
    when it is in one of the two. PostgreSQL reads it from the GIN trigram index on
    `lower(full name)` where pg_trgm exists, else from the table. On SQLite the FTS5 trigram
    table finds the candidates (its MATCH of a phrase is a substring search that folds the case
    of every letter) and SQLite's own LIKE decides, so exactly the rows the LIKE alone finds
    come back: "čapek" still does not find "Čapek". The trigram table cannot find fewer than
    three characters; those read the table.
    """
    full_name = _like(_full_name(), pattern, dialect)
    if dialect != "sqlite" or len(q) < 3 or not _has_trigrams(session):
        return full_name
    phrase = '"' + q.replace('"', '""') + '"'
    candidates: Select[Any] = (
        select(literal_column("rowid"))
        .select_from(table(CONTACT_NAME_TRIGRAMS))
        .where(literal_column(CONTACT_NAME_TRIGRAMS).op("MATCH")(phrase))
    )
    return and_(Contact.id.in_(candidates), full_name)


def _matches(session: Session, q: str) -> ColumnElement[bool] | None:
    """The condition for the search text; None when it is empty (every contact matches)."""
    if not q:
        return None
    guid = guid_or_none(q)
    if guid is not None:
        return Contact.guid == guid
    dialect = _dialect(session)
    escaped = _escape_like(q)
    # An index range on both databases (migration 0011): the pattern index on lower(email) on
    # PostgreSQL, the NOCASE index on email for SQLite's LIKE optimisation.
    email = _like(Contact.email, escaped + "%", dialect)
    if "@" in q:
        return email
    return or_(email, _name_matches(session, q, "%" + escaped + "%", dialect))


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _sort_key(sort: str) -> ColumnElement[Any] | None:
    column = sort.lstrip("-")
    if column == "email":
        return func.lower(Contact.email)
    if column == "last_name":
        return func.lower(Contact.last_name)
    return None  # by id


# -- filters -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContactFilter:
    """What a list of contacts is narrowed to besides the search text; every part optional.

    Made by `parse_filter` from what an entry point received, so that each kind of value has one
    rule; the names (group, consent, newsletter) are looked up when the list is read.
    """

    group: str | None = None
    consent: str | None = None
    newsletter: str | None = None
    country: str | None = None
    active_within: int | None = None  # days: some activity in the last N days
    inactive_for: int | None = None  # days: no activity in the last N days

    def as_dict(self) -> dict[str, str | int]:
        """The filters given, by name (for links, and the audit log's details)."""
        return {name: value for name in FILTER_NAMES if (value := getattr(self, name)) is not None}

    def __bool__(self) -> bool:
        return bool(self.as_dict())


NO_FILTER = ContactFilter()


def _text_filter(value: str | None, field: str) -> str | None:
    text = (value or "").strip()
    return refuse_nul(text, field) if text else None


def _days_filter(value: str | int | None, field: str) -> int | None:
    text = str(value).strip() if value is not None else ""
    if not text:
        return None
    days = whole_number(text, maximum=MAX_FILTER_DAYS)
    if days is None or days < 1:
        raise InvalidInput(
            f"{field} must be a number of days from 1 to {MAX_FILTER_DAYS}.",
            code="invalid_parameter",
            field=field,
        )
    return days


def parse_filter(
    *,
    group: str | None = None,
    consent: str | None = None,
    newsletter: str | None = None,
    country: str | None = None,
    active_within: str | int | None = None,
    inactive_for: str | int | None = None,
) -> ContactFilter:
    """The filters as typed (empty means not given), checked; a 400 naming the one at fault."""
    country_text = _text_filter(country, "country")
    if country_text is not None:
        try:
            country_text = country_code(country_text)
        except ValueError as error:
            raise InvalidInput(
                f"country {error}.", code="invalid_country", field="country"
            ) from None
    return ContactFilter(
        group=_text_filter(group, "group"),
        consent=_text_filter(consent, "consent"),
        newsletter=_text_filter(newsletter, "newsletter"),
        country=country_text,
        active_within=_days_filter(active_within, "active_within"),
        inactive_for=_days_filter(inactive_for, "inactive_for"),
    )


def _unknown(error: HubError, field: str) -> InvalidInput:
    """A name that names nothing, in a filter: the filter is at fault (400), not the page."""
    return InvalidInput(error.message, code=error.code, field=field)


def _active_since(session: Session, moment: datetime) -> ColumnElement[bool]:
    """The contact has an activity (of any type) at or after `moment`.

    Through the (contact_id, id) index: the moment is turned into an id bound (ids follow time),
    widened by `BOUNDARY_SLACK` ids, and the rows near it are tested against the time exactly.
    (The condition language's activity node always names a type; this is "any activity".)
    """
    first_id = first_id_at_or_after(session, moment) - BOUNDARY_SLACK
    return exists(
        select(literal(1)).where(
            Activity.contact_id == Contact.id,
            Activity.id >= first_id,
            Activity.created_at >= moment,
        )
    )


def _as_conditions(session: Session, filters: ContactFilter) -> list[Condition]:
    """The filters as nodes of the groups' condition language, their names looked up: one rule
    for "member of a group", "agrees now", "subscribed" and "country is" (groups/compiler.py)."""
    # Here, not at the top: groups.service and groups.compiler use this module's LIKE helpers.
    from contacthub.groups.service import get_group

    nodes: list[Condition] = []
    try:
        if filters.group is not None:
            group = get_group(session, filters.group)
            nodes.append(GroupCondition(group.id, group.name))
    except HubError as error:
        raise _unknown(error, "group") from None
    try:
        if filters.consent is not None:
            consent = get_consent(session, filters.consent)
            nodes.append(ConsentCondition(consent.id, consent.code_name, "agreed"))
    except HubError as error:
        raise _unknown(error, "consent") from None
    try:
        if filters.newsletter is not None:
            newsletter = get_newsletter(session, filters.newsletter)
            nodes.append(EmailCondition("subscribed", newsletter.id, newsletter.name))
    except HubError as error:
        raise _unknown(error, "newsletter") from None
    if filters.country is not None:
        nodes.append(FieldCondition("country", "equals", filters.country))
    return nodes


def _filter_conditions(
    session: Session, filters: ContactFilter, now: datetime
) -> list[ColumnElement[bool]]:
    """The filters as conditions on `Contact`; a 400 naming a filter whose name is unknown."""
    from contacthub.groups.compiler import compile_condition

    conditions: list[ColumnElement[bool]] = []
    nodes = _as_conditions(session, filters)
    if nodes:
        conditions.append(compile_condition(AllOf(tuple(nodes)), now=now, session=session))
    if filters.active_within is not None:
        conditions.append(_active_since(session, now - timedelta(days=filters.active_within)))
    if filters.inactive_for is not None:
        conditions.append(not_(_active_since(session, now - timedelta(days=filters.inactive_for))))
    return conditions


def _where(
    session: Session, q: str, filters: ContactFilter, now: datetime | None
) -> list[ColumnElement[bool]]:
    """Every condition of the search text and the filters."""
    conditions = _filter_conditions(session, filters, now or utcnow()) if filters else []
    matches = _matches(session, q)
    return conditions if matches is None else [matches, *conditions]


@dataclass(frozen=True, slots=True)
class FilterChoices:
    """What a filter form offers: every group, consent (code, display name) and newsletter."""

    groups: list[str]
    consents: list[tuple[str, str]]
    newsletters: list[str]


def group_names(session: Session) -> list[str]:
    """Every group's name, in order: what a group select offers."""
    return list(session.scalars(select(ContactGroup.name).order_by(ContactGroup.name)))


def filter_choices(session: Session) -> FilterChoices:
    """The names a filter form's selects list, each by name."""
    return FilterChoices(
        groups=group_names(session),
        consents=[(c.code_name, c.display_name) for c in consent_repository.all_consents(session)],
        newsletters=[n.name for n in all_newsletters(session)],
    )


def last_activity_times(session: Session, contact_ids: Sequence[int]) -> dict[int, datetime]:
    """Contact id -> the time of its latest activity, for the contacts that have one.

    Each contact's highest id is read off the (contact_id, id) index.
    """
    if not contact_ids:
        return {}
    latest = (
        select(func.max(Activity.id))
        .where(Activity.contact_id.in_(contact_ids))
        .group_by(Activity.contact_id)
    )
    rows = session.execute(
        select(Activity.contact_id, Activity.created_at).where(Activity.id.in_(latest))
    )
    return dict(rows.all())


# -- cursors -------------------------------------------------------------------------------------


def encode_cursor(sort: str, value: str | None, contact_id: int) -> str:
    """An opaque cursor: the sort, the last row's sort value and its id."""
    raw = json.dumps([sort, value, contact_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[str | None, int]:
    """The sort value and id a cursor carries; refused if it is not one of this sort's."""
    problem = InvalidInput(
        "after is not a cursor of this list (take next_after from the previous page, with the "
        "same sort).",
        code="invalid_cursor",
        field="after",
    )
    if len(cursor) > 1_000:
        raise problem
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError):
        raise problem from None
    if not (
        isinstance(decoded, list)
        and len(decoded) == 3
        and decoded[0] == sort
        and (decoded[1] is None or (isinstance(decoded[1], str) and "\x00" not in decoded[1]))
        and isinstance(decoded[2], int)
        and not isinstance(decoded[2], bool)
        and 0 <= decoded[2] <= MAX_ID
    ):
        raise problem
    return decoded[1], decoded[2]


def _ordered_page(
    query: Select[Any],
    sort: str,
    key: ColumnElement[Any] | None,
    cursor: tuple[str | None, int] | None,
    limit: int,
) -> Select[Any]:
    """`query` limited to the `limit` rows after the cursor (all from the start without one), in
    the sort's order: by `key` ignoring case, blanks (NULL) last in both directions, then by id.

    No single index order is "NULLs last" both ways on both databases (SQLite puts NULLs first
    and has no NULLS LAST in indexes), so the page is read in two parts from the one index on
    (key, id), each an index range in the index's order or its reverse: the rows with a key
    (`key >= ''`, which every string meets and NULL does not) after the cursor, and the blanks
    (`key IS NULL`) after it; each part reads at most `limit` rows, and the page is the first
    `limit` of the two together. A cursor among the blanks needs only the second part.
    """
    descending = sort.startswith("-")
    by_id = Contact.id.desc() if descending else Contact.id.asc()
    after_id = None
    if cursor is not None:
        after_id = Contact.id < cursor[1] if descending else Contact.id > cursor[1]
    if key is None:
        by_id_query = query if after_id is None else query.where(after_id)
        return by_id_query.order_by(by_id).limit(limit)
    blanks = query.where(key.is_(None))
    if after_id is not None and cursor is not None and cursor[0] is None:
        return blanks.where(after_id).order_by(by_id).limit(limit)
    filled = query.where(key >= "")
    if cursor is not None:
        # The row value is an index range of both columns on PostgreSQL; SQLite ranges over the
        # key (the plain bound) and filters the ties with the row value.
        value, row = cursor[0], tuple_(key, Contact.id)
        if descending:
            filled = filled.where(key <= value, row < tuple_(value, cursor[1]))
        else:
            filled = filled.where(key >= value, row > tuple_(value, cursor[1]))
    filled = filled.order_by(key.desc() if descending else key.asc(), by_id).limit(limit)
    blanks = blanks.order_by(by_id).limit(limit)
    # Each part in a subquery of its own: SQLite allows no ORDER BY or LIMIT in a compound's
    # members.
    both = union_all(select(filled.subquery()), select(blanks.subquery())).subquery()
    by_key = both.c.sort_value.desc() if descending else both.c.sort_value.asc()
    both_by_id = both.c.id.desc() if descending else both.c.id.asc()
    return select(both).order_by(by_key.nulls_last(), both_by_id).limit(limit)


# -- the searches --------------------------------------------------------------------------------


def search_contacts(
    session: Session,
    q: str = "",
    sort: str = DEFAULT_SORT,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
    *,
    filters: ContactFilter = NO_FILTER,
    now: datetime | None = None,
) -> ContactPage:
    """One page of the contacts matching `q` and `filters`, in the order `sort` names, after
    the cursor. `now` (default: now) is when the activity windows end."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(
            f"limit must be from 1 to {MAX_LIMIT}.", code="invalid_parameter", field="limit"
        )
    return contacts_page(session, q, sort, after, limit, filters=filters, now=now)


def contacts_page(
    session: Session,
    q: str,
    sort: str,
    after: str | None,
    limit: int,
    *,
    filters: ContactFilter = NO_FILTER,
    now: datetime | None = None,
) -> ContactPage:
    """`search_contacts` without the bound on `limit`: for exports, which read larger chunks."""
    q = check_query(q)
    sort = check_sort(sort)
    key = _sort_key(sort)
    query = select(
        Contact.id,
        (key if key is not None else literal(None)).label("sort_value"),
        Contact.guid,
        Contact.email,
        Contact.first_name,
        Contact.last_name,
        Contact.company_name,
        Contact.created_at,
        Contact.job_title,
        Contact.city,
        Contact.country,
    ).where(*_where(session, q, filters, now))
    cursor = decode_cursor(after, sort) if after else None
    # One row more than the page tells whether there is a next page.
    rows: Sequence[Any] = session.execute(_ordered_page(query, sort, key, cursor, limit + 1)).all()
    page = rows[:limit]
    last_activity = last_activity_times(session, [row[0] for row in page])
    contacts = [
        ContactSummary(
            guid=row.guid,
            email=row.email,
            first_name=row.first_name,
            last_name=row.last_name,
            company_name=row.company_name,
            created_at=row.created_at,
            job_title=row.job_title,
            city=row.city,
            country=row.country,
            last_activity_at=last_activity.get(row.id),
        )
        for row in page
    ]
    next_after = None
    if len(rows) > limit:
        last = page[-1]
        next_after = encode_cursor(sort, last.sort_value, last.id)
    return ContactPage(contacts, next_after)


def contact_count(
    session: Session,
    q: str = "",
    *,
    filters: ContactFilter = NO_FILTER,
    now: datetime | None = None,
) -> int:
    """How many contacts match `q` and `filters` (all of them when neither is given)."""
    query = (
        select(func.count())
        .select_from(Contact)
        .where(*_where(session, check_query(q), filters, now))
    )
    return int(session.scalar(query) or 0)
