"""Conditions compiled to SQL: one predicate over `contacts.id`, the same on SQLite and PostgreSQL.

Every leaf that reads another table becomes `contacts.id IN (SELECT contact_id FROM … WHERE …)`:
an uncorrelated subquery that each database runs once and probes per contact (a hash semi-join
on PostgreSQL, an ephemeral index on SQLite), never a per-contact loop in Python. Every
predicate is true or false, never NULL, so that `not` means what it says (a contact without a
city is "not in Prague").

Under an `any` or a `not`, PostgreSQL cannot join: it runs an IN subquery as a "subplan", hashed
only while the subquery's rows fit in `work_mem`, and otherwise reads them again for every
contact (minutes, at a million activities). There the leaves are subqueries correlated with the
contact instead (`EXISTS (… WHERE activities.contact_id = contacts.id …)`, the latest consent
event by `ORDER BY id DESC LIMIT 1`), which both databases answer with one probe of an index
that starts with the contact. Email leaves stay uncorrelated (no index starts with
`subscribers.contact_id`), each contact once: a newsletter's subscribers are few enough to hash.

Evaluating a few contacts (the live membership job): pass `among`, a SELECT of contact ids.
Each subquery is then restricted to those contacts, which the indexes that lead with
`contact_id` serve (activities, consent agreements), instead of reading a whole window of the
activity log. The predicate then answers only for contacts in `among`.

Time windows: the activity log has one index, (contact_id, id), and its ids follow time (see
`Activity`). Given a session, a window becomes an id range too, found by probing the primary
key (`id_bracket`: three small queries), so that a window reads only its part of the log;
`created_at` is compared as well, so the id range only narrows what is read.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Select,
    and_,
    case,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

from contacthub.contacts.search import _escape_like, _like
from contacthub.email.repository import SUBSCRIBED, UNSUBSCRIBED
from contacthub.groups.conditions import (
    ActivityCondition,
    AllOf,
    AnyOf,
    Condition,
    ConsentCondition,
    EmailCondition,
    FieldCondition,
    GroupCondition,
    Not,
)
from contacthub.storage.models import (
    Activity,
    ConsentAgreement,
    Contact,
    EmailClick,
    EmailOpen,
    GroupMember,
    Subscriber,
)

AmongContacts = Select[int]
# Ids around moments of the activity log (`id_bracket`), shared by the compilations of one
# transaction: the live job compiles every group for the same `now`, so one search serves all.
Brackets = dict[datetime, tuple[int, int | None]]


class _LikeIgnoringCase(ColumnElement[bool]):
    """`column LIKE pattern` ignoring case, spelled per database as the contact search spells it
    (`contacts.search._like`); the dialect is known only when the statement is compiled."""

    # The pattern is a plain string, part of the statement cache key: `_like` makes its bound
    # parameter only when the statement is compiled.
    inherit_cache = False
    type = Boolean()
    _traverse_internals = [  # noqa: RUF012
        ("column", InternalTraversal.dp_clauseelement),
        ("pattern", InternalTraversal.dp_string),
    ]

    def __init__(self, column: ColumnElement[Any], pattern: str) -> None:
        self.column = column
        self.pattern = pattern

    @property
    def _from_objects(self) -> list[Any]:
        return self.column._from_objects


@compiles(_LikeIgnoringCase)
def _compile_like(element: _LikeIgnoringCase, compiler: SQLCompiler, **kw: Any) -> str:
    expression = _like(element.column, element.pattern, compiler.dialect.name)
    return compiler.process(expression, **kw)


def like_ignoring_case(column: Any, pattern: str) -> ColumnElement[bool]:
    """`column` matches the LIKE `pattern` (escaped with `contacts.search._escape_like`),
    ignoring case: never NULL (a NULL column does not match)."""
    return and_(column.is_not(None), _LikeIgnoringCase(column, pattern))


def compile_condition(
    condition: Condition,
    *,
    now: datetime,
    session: Session | None = None,
    among: AmongContacts | None = None,
    brackets: Brackets | None = None,
) -> ColumnElement[bool]:
    """The condition as a predicate over `Contact.id`, for `now` (the relative windows' end).

    `session`, when given, turns activity time windows into id ranges (cheaper; see the module
    docstring); `brackets`, a dict kept for the same session's transaction, shares those
    searches between compilations. `among` restricts every subquery to those contact ids: the
    predicate is then meaningful only for them (`matching_ids_query` adds the restriction
    itself).
    """
    compiler = _Compiler(now, session, among)
    if brackets is not None:
        compiler.brackets = brackets
    return compiler.compile(condition)


def matching_ids_query(
    condition: Condition,
    *,
    now: datetime,
    among: AmongContacts | None = None,
    session: Session | None = None,
    brackets: Brackets | None = None,
) -> Select[int]:
    """SELECT the ids of the contacts that match (among `among`, when given)."""
    query: Select[int] = select(Contact.id).where(
        compile_condition(condition, now=now, session=session, among=among, brackets=brackets)
    )
    if among is not None:
        query = query.where(Contact.id.in_(among))
    return query


def count_matching(session: Session, condition: Condition, *, now: datetime) -> int:
    """How many contacts match the condition now."""
    predicate = compile_condition(condition, now=now, session=session)
    return int(session.scalar(select(func.count()).select_from(Contact).where(predicate)) or 0)


PROBES = 64
PROBE_ROUNDS = 2


def id_bracket(session: Session, moment: datetime) -> tuple[int, int | None]:
    """Ids around `moment` in the activity log, whose ids follow time: every activity with an id
    below the first number is older than `moment`; every one with an id from the second on
    (None: unknown) is not.

    Found by probing the primary key: `PROBES` ids spread over the range in one query, then as
    many again between the two nearest, so three queries in all narrow the range to about
    1/4,096 of the log (for a million activities, some 250 ids too many to read, which the
    `created_at` comparison that goes with the range drops). A binary search would take twenty.
    """
    # Two subqueries: SQLite reads min() and max() off the key only when each is alone.
    lowest, highest = session.execute(
        select(
            select(func.min(Activity.id)).scalar_subquery(),
            select(func.max(Activity.id)).scalar_subquery(),
        )
    ).one()
    if lowest is None:
        return 0, None
    low, high = lowest, highest + 1
    for _ in range(PROBE_ROUNDS):
        if high - low <= 1:
            break
        step = (high - low) / PROBES
        probes = sorted({low + int(step * k) for k in range(PROBES)})
        rows = session.execute(
            select(Activity.id, Activity.created_at).where(Activity.id.in_(probes))
        ).all()
        older = [row.id for row in rows if row.created_at < moment]
        newer = [row.id for row in rows if row.created_at >= moment]
        if older:
            low = max(low, max(older) + 1)
        if newer:
            high = max(low, min(high, min(newer)))
    return low, (high if high <= highest else None)


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


class _Compiler:
    def __init__(self, now: datetime, session: Session | None, among: AmongContacts | None):
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        self.now = now
        self.session = session
        self.among = among
        self.brackets: Brackets = {}
        # Under `any` and `not`: each leaf is a subquery correlated with the contact.
        self.per_contact = False

    def restricted_to(self, among: AmongContacts) -> _Compiler:
        """A compiler for the same moment whose subqueries read only the contacts `among`."""
        narrower = _Compiler(self.now, self.session, among)
        narrower.brackets = self.brackets
        narrower.per_contact = self.per_contact
        return narrower

    def correlated(self) -> _Compiler:
        """A compiler for the items of an `any` or a `not` (see the module docstring)."""
        if self.per_contact:
            return self
        inner = _Compiler(self.now, self.session, self.among)
        inner.brackets = self.brackets
        inner.per_contact = True
        return inner

    def compile(self, condition: Condition) -> ColumnElement[bool]:
        if isinstance(condition, AllOf):
            return self.all_of(condition)
        if isinstance(condition, AnyOf):
            if not condition.items:
                return false()
            inner = self.correlated()
            return or_(*(inner.compile(item) for item in condition.items))
        if isinstance(condition, Not):
            return not_(self.correlated().compile(condition.item))
        if isinstance(condition, FieldCondition):
            return self.field(condition)
        if isinstance(condition, ConsentCondition):
            return self.consent(condition)
        if isinstance(condition, ActivityCondition):
            return self.activity(condition)
        if isinstance(condition, EmailCondition):
            return self.email(condition)
        return self.group(condition)

    def all_of(self, condition: AllOf) -> ColumnElement[bool]:
        """Every item; the activity items read the log only for the contacts that the other
        items let through.

        An activity leaf costs a read of (its window of) the activity log, the other leaves
        tables the size of the contacts'. So the others are compiled first, and the activity
        items are restricted to the contacts they match, as `among` restricts them: the log is
        then read through its (contact_id, id) index for those contacts only. A contact that
        the other items refuse fails the `all` whatever the activity items answer for it.
        """
        if not condition.items:
            return true()
        light = [item for item in condition.items if not _reads_activities(item)]
        heavy = [item for item in condition.items if _reads_activities(item)]
        compiled = [self.compile(item) for item in light]
        if heavy and light and not self.per_contact:
            candidates = select(Contact.id).where(*compiled)
            if self.among is not None:
                candidates = candidates.where(Contact.id.in_(self.among))
            narrower = self.restricted_to(candidates)
            compiled += [narrower.compile(item) for item in heavy]
        else:
            compiled += [self.compile(item) for item in heavy]
        return and_(*compiled)

    def _restricted(self, query: Select[Any], column: Any) -> Select[Any]:
        if self.per_contact:
            return query.where(column == Contact.id)
        return query if self.among is None else query.where(column.in_(self.among))

    # -- fields --

    def field(self, condition: FieldCondition) -> ColumnElement[bool]:
        column: ColumnElement[Any] = getattr(Contact, condition.field)
        op, value = condition.op, condition.value
        if op == "is_empty":
            if condition.field in ("birthday", "created_at", "updated_at"):
                return column.is_(None)
            return or_(column.is_(None), column == "")
        present = column.is_not(None)
        if condition.field in ("country", "state"):
            if op == "in":
                assert isinstance(value, tuple)
                return and_(present, column.in_(value))
            return and_(present, column == value)
        if op == "in":
            assert isinstance(value, tuple)
            lowered = [func.lower(literal(item)) for item in value]
            return and_(present, func.lower(column).in_(lowered))
        if op in ("equals", "contains", "starts_with", "ends_with"):
            assert isinstance(value, str)
            escaped = _escape_like(value)
            pattern = {
                "equals": escaped,
                "contains": f"%{escaped}%",
                "starts_with": f"{escaped}%",
                "ends_with": f"%{escaped}",
            }[op]
            return like_ignoring_case(column, pattern)
        return and_(present, self.date_field(condition, column))

    def date_field(
        self, condition: FieldCondition, column: ColumnElement[Any]
    ) -> ColumnElement[bool]:
        op, value = condition.op, condition.value
        is_day = condition.field == "birthday"
        if op == "within_days":
            assert isinstance(value, int)
            cutoff = self.now - timedelta(days=value)
            return column >= (cutoff.astimezone(UTC).date() if is_day else cutoff)
        assert isinstance(value, date)
        if is_day:
            return column < value if op == "before" else column > value
        # A day of a timestamp is its UTC day: before it is before its start, after it is from
        # the start of the next day.
        if op == "before":
            return column < _start_of(value)
        return column >= _start_of(value + timedelta(days=1))

    # -- consents --

    def consent(self, condition: ConsentCondition) -> ColumnElement[bool]:
        agreement = ConsentAgreement
        of_consent = select(agreement.contact_id).where(
            agreement.consent_id == condition.consent_id
        )
        if condition.state == "never":
            # Correlated everywhere: an anti-join on PostgreSQL, an index probe on SQLite.
            return not_(
                exists().where(
                    agreement.contact_id == Contact.id,
                    agreement.consent_id == condition.consent_id,
                )
            )
        of_consent = self._restricted(of_consent, agreement.contact_id)
        # The latest event (highest id) is of the wanted kind when it is also the latest event
        # of that kind.
        if condition.state == "revoked":
            wanted: ColumnElement[bool] = agreement.agreed.is_(False)
        elif condition.revision_id is not None:
            wanted = and_(
                agreement.agreed.is_(True), agreement.revision_id == condition.revision_id
            )
        else:
            wanted = agreement.agreed.is_(True)
        if self.per_contact:
            # The contact's latest event, one probe of the (contact_id, consent_id, id) index.
            latest_is_wanted = (
                of_consent.with_only_columns(case((wanted, 1), else_=0))
                .order_by(agreement.id.desc())
                .limit(1)
                .scalar_subquery()
            )
            return func.coalesce(latest_is_wanted, 0) == 1
        latest = of_consent.group_by(agreement.contact_id).having(
            func.max(agreement.id) == func.max(case((wanted, agreement.id)))
        )
        return Contact.id.in_(latest)

    # -- activities --

    def bracket(self, moment: datetime) -> tuple[int, int | None]:
        assert self.session is not None
        if moment not in self.brackets:
            self.brackets[moment] = id_bracket(self.session, moment)
        return self.brackets[moment]

    def activity(self, condition: ActivityCondition) -> ColumnElement[bool]:
        query = select(Activity.contact_id).where(Activity.type == condition.type)
        if condition.url_contains is not None:
            pattern = f"%{_escape_like(condition.url_contains)}%"
            query = query.where(like_ignoring_case(Activity.url, pattern))
        if condition.value_equals is not None:
            query = query.where(
                like_ignoring_case(Activity.value, _escape_like(condition.value_equals))
            )
        if condition.channel_id is not None:
            query = query.where(Activity.channel_id == condition.channel_id)
        start = end = None
        if condition.within_days is not None:
            start = self.now - timedelta(days=condition.within_days)
        elif condition.between is not None:
            start = _start_of(condition.between[0])
            end = _start_of(condition.between[1] + timedelta(days=1))
        if start is not None:
            query = query.where(Activity.created_at >= start)
            if self.session is not None:
                query = query.where(Activity.id >= self.bracket(start)[0])
        if end is not None:
            query = query.where(Activity.created_at < end)
            # Only a past end is final: activities logged after this search get higher ids.
            ceiling = self.bracket(end)[1] if self.session is not None and end <= self.now else None
            if ceiling is not None:
                query = query.where(Activity.id < ceiling)
        query = self._restricted(query, Activity.contact_id)
        if self.per_contact:
            if condition.at_least == 1:
                return exists(query)
            counted = query.with_only_columns(func.count()).scalar_subquery()
            return counted >= condition.at_least
        if condition.at_least > 1:
            # Grouped by an expression, not the column: given the column, SQLite walks the
            # whole (contact_id, id) index for its order instead of reading the id range.
            contact = (Activity.contact_id + 0).label("contact_id")
            query = (
                query.with_only_columns(contact)
                .group_by(contact)
                .having(func.count() >= condition.at_least)
            )
        return Contact.id.in_(query)

    # -- email --

    def email(self, condition: EmailCondition) -> ColumnElement[bool]:
        query = select(Subscriber.contact_id).where(
            Subscriber.newsletter_id == condition.newsletter_id
        )
        cutoff = (
            None
            if condition.within_days is None
            else self.now - timedelta(days=condition.within_days)
        )
        if condition.event == "subscribed":
            query = query.where(Subscriber.status == SUBSCRIBED)
        elif condition.event == "unsubscribed":
            query = query.where(Subscriber.status == UNSUBSCRIBED)
            if condition.issue_id is not None:
                query = query.where(Subscriber.unsubscribed_issue_id == condition.issue_id)
            if cutoff is not None:
                query = query.where(Subscriber.unsubscribed_at >= cutoff)
        else:
            hit: type[EmailOpen] | type[EmailClick] = (
                EmailOpen if condition.event == "opened" else EmailClick
            )
            query = query.join(hit, hit.subscriber_id == Subscriber.id)
            if condition.issue_id is not None:
                query = query.where(hit.issue_id == condition.issue_id)
            if condition.human_only:
                query = query.where(hit.is_machine.is_(False))
            if cutoff is not None:
                query = query.where(hit.created_at >= cutoff)
        if self.per_contact:
            # No index leads with subscribers.contact_id: the newsletter's (small) set of
            # contacts, each once, which PostgreSQL hashes once under an `any` or a `not`.
            inner = (
                query if self.among is None else query.where(Subscriber.contact_id.in_(self.among))
            )
            return Contact.id.in_(inner.distinct())
        return Contact.id.in_(self._restricted(query, Subscriber.contact_id))

    # -- groups --

    def group(self, condition: GroupCondition) -> ColumnElement[bool]:
        query = select(GroupMember.contact_id).where(GroupMember.group_id == condition.group_id)
        if self.per_contact:
            return exists(self._restricted(query, GroupMember.contact_id))
        return Contact.id.in_(self._restricted(query, GroupMember.contact_id))


def _reads_activities(condition: Condition) -> bool:
    """Whether the condition reads the activity log (the one table that can be large)."""
    if isinstance(condition, ActivityCondition):
        return True
    if isinstance(condition, AllOf | AnyOf):
        return any(_reads_activities(item) for item in condition.items)
    if isinstance(condition, Not):
        return _reads_activities(condition.item)
    return False
