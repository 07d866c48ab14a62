"""Live membership: the job that keeps every dynamic group's members exact as things happen.

Each hub process runs `refresh` every `group_refresh_interval` seconds (app.py; less often
while runs are slow, `pause_after`). A run
evaluates again only the contacts whose answer may have changed since the last run (the
candidates):
- the contacts queued in `group_pending_contacts` by a change that is not an activity
  (consents, fields, subscriptions, imports, static group members: `queue.enqueue_contacts`,
  written in the change's own transaction);
- the contacts of activities, email opens and email clicks with an id above the job's cursors
  (`group_membership_state`), up to a final high id (`rollups.final_high_ids`: on PostgreSQL no
  lower id can still commit); ingest itself does no extra work;
- the contacts whose answer may change because time passed: for every relative window of the
  groups' conditions ("within N days"), those with a dated record (an activity, an open, a
  click, a subscription, a contact date) that crossed the window's edge between the last run
  (`evaluated_at`) and now;
- within the run, groups are evaluated in dependency order (a group after the groups its
  conditions name), so a contact that enters or leaves a group is evaluated, in the same run,
  for the groups that name it.

Each dynamic group is evaluated for the candidates only (its compiled condition AND contact id
IN candidates), compared with its members, and entries and exits are written with history.
The run holds the state row FOR UPDATE (on PostgreSQL; SQLite has one writer at a time), so
several hub processes can run the job at once: they take turns, and the cursors move once.
The queue rows it evaluated are removed only if no change queued them again meanwhile. On
SQLite a run evaluates in a read transaction and only writes under the write lock, after
checking that what it read is unchanged (`refresh`).

No dynamic group: one query, nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, Table, bindparam, delete, func, select
from sqlalchemy.orm import Session

from contacthub.activities.rules import DATA_INPUT
from contacthub.analytics import rollups
from contacthub.errors import InvalidInput
from contacthub.events import changes
from contacthub.groups import compiler, conditions, repository
from contacthub.groups.queue import has_dynamic_group
from contacthub.storage import leases
from contacthub.storage.database import Database
from contacthub.storage.models import (
    Activity,
    Contact,
    ContactGroup,
    EmailClick,
    EmailOpen,
    GroupMembershipState,
    GroupPendingContact,
    Subscriber,
)
from contacthub.storage.types import utcnow

# Activities looked at per transaction, so that a large backlog (the first dynamic group on a
# big hub) commits its progress as it goes.
CHUNK = 100_000
logger = logging.getLogger(__name__)
# Under load a run costs the hub's process CPU (and SQLite's write lock) mostly per run, not per
# activity: the pause after a run is at least (1 - BUSY_SHARE) / BUSY_SHARE times as long as the
# run took, so the job takes about BUSY_SHARE of the time at most; but never above MAX_PAUSE
# seconds (or the configured interval, if longer), so that membership stays within seconds.
BUSY_SHARE = 0.05
MAX_PAUSE = 3.0
# The job runs in one hub process at a time (storage/leases.py).
LEASE = "groups"
ENTERED = "conditions met"
LEFT = "conditions no longer met"


@dataclass(slots=True)
class RefreshReport:
    """What one run did: contacts evaluated, entries and exits; `skipped` when it could not
    run now (PostgreSQL's lock was not granted in time) and will at the next run, or when
    another hub process holds the job's lease and runs it."""

    candidates: int = 0
    entered: int = 0
    left: int = 0
    skipped: bool = False


@dataclass(slots=True)
class _Cursors:
    """The state row's values: how far the job has looked."""

    activity: int = 0
    email_open: int = 0
    email_click: int = 0
    evaluated_at: datetime | None = None

    @classmethod
    def of(cls, state: GroupMembershipState | None) -> _Cursors:
        if state is None:
            return cls()
        return cls(
            state.last_activity_id,
            state.last_email_open_id,
            state.last_email_click_id,
            state.evaluated_at,
        )


@dataclass(slots=True)
class _Run:
    """What one transaction of a run found: the cursors it started from and moves to, the
    queue rows it evaluated, its candidates, what it read of the groups and memberships, and
    the entries and exits it decided."""

    seen: _Cursors
    moved_to: _Cursors
    pending: dict[int, datetime]
    contacts: set[int]
    groups: list[tuple[int, str | None]]
    memberships: dict[int, set[int]]
    changes: list[tuple[int, set[int], set[int]]]  # group id, entered, left

    def still_true(self, session: Session, state: GroupMembershipState) -> bool:
        """Whether what this run read is still so (the caller holds the write lock): the state
        row, the dynamic groups and every candidate's memberships are unchanged."""
        if _Cursors.of(state) != self.seen:
            return False
        if _group_signature(repository.dynamic_groups(session)) != self.groups:
            return False
        return repository.memberships(session, self.contacts) == self.memberships


def refresh(
    database: Database,
    *,
    now: datetime | None = None,
    lease_seconds: float | None = None,
    holder: str = leases.PROCESS,
) -> RefreshReport:
    """Bring every dynamic group's members up to date with what happened since the last run.

    With `lease_seconds` (the app's periodic job), only while `holder` holds the lease "groups"
    (else the run is `skipped`): every hub process runs the job, and without the lease each
    worker would evaluate the same contacts, all but one throwing their work away.

    On SQLite, where a write transaction holds the hub's one write lock (and ingest waits for
    it), each part of the run is evaluated in a read transaction first; the write transaction
    then only checks that nothing it read has changed (the state row, the dynamic groups, the
    candidates' memberships: one query each) and writes the entries, exits and cursors. If
    something changed, or a group names a group whose members the run changes (its SQL must
    see them written), the part is evaluated again inside the write transaction, as on
    PostgreSQL, where the job's transaction does not hold ingest back.
    """
    now = now or utcnow()
    report = RefreshReport()
    with database.read() as session:
        if not has_dynamic_group(session):
            return report
    if lease_seconds is not None and not leases.held(database, LEASE, lease_seconds, holder):
        report.skipped = True
        return report
    highs = rollups.final_high_ids(database, [Activity.id, EmailOpen.id, EmailClick.id])
    if highs is None:
        report.skipped = True
        return report
    first = True
    while True:
        planned = None
        if database.is_sqlite:
            with database.read() as session:
                seen = _Cursors.of(session.get(GroupMembershipState, repository.STATE_ID))
                planned = _plan(session, seen, highs, now, first, write=False)
        with database.write() as session:
            state = repository.lock_state(session)
            if planned is not None and planned.still_true(session, state):
                for group_id, entered, left in planned.changes:
                    repository.enter(session, group_id, entered, ENTERED, now)
                    repository.leave(session, group_id, left, LEFT, now)
                    _emit(session, group_id, entered, left, now)
                run = planned
            else:
                written = _plan(session, _Cursors.of(state), highs, now, first, write=True)
                assert written is not None  # None only without `write`
                run = written
            state.last_activity_id = run.moved_to.activity
            state.last_email_open_id = run.moved_to.email_open
            state.last_email_click_id = run.moved_to.email_click
            state.evaluated_at = run.moved_to.evaluated_at
            _forget_pending(session, run.pending)
        report.candidates += len(run.contacts)
        for _, entered, left in run.changes:
            report.entered += len(entered)
            report.left += len(left)
        first = False
        if run.moved_to.activity >= highs[0]:
            return report


def _emit(
    session: Session, group_id: int, entered: set[int], left: set[int], now: datetime
) -> None:
    """The `group.entered` and `group.left` events of entries and exits just written."""
    changes.group_membership(session, group_id, entered, entered=True, reason=ENTERED, moment=now)
    changes.group_membership(session, group_id, left, entered=False, reason=LEFT, moment=now)


def pause_after(interval: float, took: float) -> float:
    """Seconds to wait before the next run, after a run that took `took` seconds: the
    configured `interval`, longer when runs are slow (see `BUSY_SHARE`)."""
    return max(interval, min(took * (1 - BUSY_SHARE) / BUSY_SHARE, MAX_PAUSE))


def _plan(
    session: Session,
    seen: _Cursors,
    highs: Sequence[int],
    now: datetime,
    first: bool,
    *,
    write: bool,
) -> _Run | None:
    """One part of a run, from the cursors `seen`: the activities of the next chunk up to the
    final high ids, and (the `first` part) the queue, opens, clicks and time. With `write`,
    entries and exits are written as each group is evaluated; without, they are only decided,
    and None means the part must be evaluated in a write transaction (see `_evaluate`)."""
    activity_high, open_high, click_high = highs
    low = seen.activity
    upper = max(low, min(activity_high, low + CHUNK))
    moved_to = _Cursors(upper, seen.email_open, seen.email_click, seen.evaluated_at)
    active = _activity_contacts(session, low, upper)
    # Contacts to evaluate for every group; `active` ones only where their new activities can
    # change the answer (see `_evaluate`).
    every = {c for c, types in active.items() if DATA_INPUT in types}
    pending: dict[int, datetime] = {}
    groups = repository.dynamic_groups(session)
    if first:
        pending = _pending(session)
        every |= pending.keys()
        every |= _email_contacts(session, seen, open_high, click_high)
        moved_to.email_open = max(seen.email_open, open_high)
        moved_to.email_click = max(seen.email_click, click_high)
        every |= _time_contacts(session, groups, seen.evaluated_at, now)
        if seen.evaluated_at is None or seen.evaluated_at < now:
            moved_to.evaluated_at = now
    contacts = every | active.keys()
    memberships = repository.memberships(session, contacts) if contacts else {}
    changes = _evaluate(session, groups, every, active, memberships, now, write=write)
    if changes is None:
        return None
    return _Run(seen, moved_to, pending, contacts, _group_signature(groups), memberships, changes)


def _group_signature(groups: Sequence[ContactGroup]) -> list[tuple[int, str | None]]:
    return [(g.id, g.conditions) for g in groups]


def _activity_contacts(session: Session, low: int, high: int) -> dict[int, set[str]]:
    """The contacts of the activities with ids in (low, high], with their types (lower case)."""
    active: dict[int, set[str]] = {}
    if high <= low:
        return active
    rows = session.execute(
        select(Activity.contact_id, Activity.type)
        .where(Activity.id > low, Activity.id <= high)
        .distinct()
    )
    for contact_id, type_name in rows:
        active.setdefault(contact_id, set()).add(type_name.lower())
    return active


def _pending(session: Session) -> dict[int, datetime]:
    rows = session.execute(select(GroupPendingContact.contact_id, GroupPendingContact.queued_at))
    return dict(rows.all())


def _forget_pending(session: Session, pending: dict[int, datetime]) -> None:
    """Remove the queue rows evaluated, unless a change queued the contact again meanwhile
    (it set a new `queued_at`; on PostgreSQL its row lock makes this wait for it)."""
    if not pending:
        return
    table = GroupPendingContact.__table__
    assert isinstance(table, Table)
    session.execute(
        delete(table).where(
            table.c.contact_id == bindparam("contact"), table.c.queued_at == bindparam("queued")
        ),
        [{"contact": c, "queued": q} for c, q in sorted(pending.items())],
    )


def _email_contacts(session: Session, seen: _Cursors, open_high: int, click_high: int) -> set[int]:
    """Contacts of the opens and clicks recorded after the cursors `seen`, up to the highs."""
    found: set[int] = set()
    for model, low, high in (
        (EmailOpen, seen.email_open, open_high),
        (EmailClick, seen.email_click, click_high),
    ):
        if high > low:
            found.update(
                session.scalars(
                    select(Subscriber.contact_id)
                    .join(model, model.subscriber_id == Subscriber.id)
                    .where(model.id > low, model.id <= high)
                    .distinct()
                )
            )
    return found


def _time_contacts(
    session: Session, groups: Sequence[ContactGroup], since: datetime | None, now: datetime
) -> set[int]:
    """Contacts with a dated record that crossed the edge of one of the groups' relative time
    windows between `since` and `now`: their answer may have changed as time passed."""
    if since is None or since >= now:
        return set()
    windows: set[conditions.TimeWindow] = set()
    for group in groups:
        condition = _condition(session, group)
        if condition is not None:
            windows.update(conditions.time_windows(condition))
    found: set[int] = set()
    for window in sorted(windows, key=lambda w: (w.days, w.source, w.name)):
        edge = timedelta(days=window.days)
        found.update(_crossed(session, window, since - edge, now - edge))
    return found


def _crossed(
    session: Session, window: conditions.TimeWindow, start: datetime, end: datetime
) -> set[int]:
    """Contacts with a record of the window's source dated from `start` to `end` (both
    included: a superset of those whose answer changed is harmless, a subset would not be)."""
    queries: list[Select[int]] = []
    if window.source == "activity":
        # Activity ids follow time (see `Activity`): the range is an id range, found by probing
        # the primary key (`compiler.id_bracket`), so the log is not scanned.
        first = compiler.id_bracket(session, start)[0]
        ceiling = compiler.id_bracket(session, end + timedelta(microseconds=1))[1]
        query = select(Activity.contact_id).where(
            Activity.id >= first,
            Activity.created_at.between(start, end),
            func.lower(Activity.type) == window.name.lower(),
        )
        queries.append(query if ceiling is None else query.where(Activity.id < ceiling))
    elif window.source == "field" and window.name == "birthday":
        # A birthday is a day: a day either side covers every way of comparing it with a time.
        queries.append(
            select(Contact.id).where(
                Contact.birthday.between(
                    start.date() - timedelta(days=1), end.date() + timedelta(days=1)
                )
            )
        )
    elif window.source == "field" and window.name in ("created_at", "updated_at"):
        column = getattr(Contact, window.name)
        queries.append(select(Contact.id).where(column.between(start, end)))
    elif window.source == "email" and window.name in ("opened", "clicked"):
        hit = EmailOpen if window.name == "opened" else EmailClick
        queries.append(
            select(Subscriber.contact_id)
            .join(hit, hit.subscriber_id == Subscriber.id)
            .where(hit.created_at.between(start, end))
        )
    else:
        # Any other dated email event (an unsubscription, a subscription).
        queries += [
            select(Subscriber.contact_id).where(Subscriber.unsubscribed_at.between(start, end)),
            select(Subscriber.contact_id).where(Subscriber.created_at.between(start, end)),
        ]
    found: set[int] = set()
    for query in queries:
        found.update(session.scalars(query.distinct()))
    return found


# Conditions as parsed, by group id and stored text: parsing looks up every reference, and the
# job runs every second. A changed group has a new text, so a stale entry is never used.
_parsed: dict[tuple[int, str], conditions.Condition] = {}
MAX_PARSED = 1_000


def _condition(session: Session, group: ContactGroup) -> conditions.Condition | None:
    """A dynamic group's condition; None (logged) if its stored text no longer loads, e.g. it
    names something deleted since: that group waits for a fix, the others go on."""
    assert group.conditions is not None
    key = (group.id, group.conditions)
    condition = _parsed.get(key)
    if condition is None:
        try:
            condition = conditions.load_conditions(session, group.conditions)
        except InvalidInput as error:
            logger.warning("Group %r cannot be evaluated: %s", group.name, error.message)
            return None
        if len(_parsed) >= MAX_PARSED:
            _parsed.clear()
        _parsed[key] = condition
    return condition


def dependency_order(
    groups: Sequence[ContactGroup], references: dict[int, set[int]]
) -> list[ContactGroup]:
    """`groups` ordered so that each comes after the groups it names (by id otherwise)."""
    by_id = {g.id: g for g in groups}
    ordered: list[ContactGroup] = []
    placed: set[int] = set()
    visiting: set[int] = set()

    def place(group_id: int) -> None:
        if group_id in placed or group_id in visiting or group_id not in by_id:
            return  # placed, a cycle (refused when saved), or not dynamic
        visiting.add(group_id)
        for needed in sorted(references.get(group_id, ())):
            place(needed)
        visiting.discard(group_id)
        placed.add(group_id)
        ordered.append(by_id[group_id])

    for group in sorted(groups, key=lambda g: g.id):
        place(group.id)
    return ordered


def _evaluate(
    session: Session,
    dynamic: Sequence[ContactGroup],
    every: Collection[int],
    active: dict[int, set[str]],
    members: dict[int, set[int]],
    now: datetime,
    *,
    write: bool,
) -> list[tuple[int, set[int], set[int]]] | None:
    """Evaluate the `dynamic` groups, in dependency order, for `every` contact and for the
    `active` ones (new activities, by type) whose answer the activities can change; returns
    the entries and exits, by group. `members`: the memberships of all those contacts, by
    group. With `write`, each group's entries and exits are written (with history) before the
    groups that name it are evaluated, whose SQL reads them; without, None as soon as a group
    names one whose members change.

    A new activity only adds to what a contact did. So it cannot change the answer of a group
    whose conditions read no activity of its type; and where every activity condition of a
    group counts positively (not under an odd number of `not`), it can make a contact enter but
    never leave: members need no evaluation (non-members, symmetrically, where every one counts
    negatively). Leaving as the activities age out of a window is time's doing
    (`_time_contacts`). This keeps a busy contact, already in its groups, from being evaluated
    again at every run.
    """
    changes: list[tuple[int, set[int], set[int]]] = []
    if not every and not active:
        return changes
    loaded = [(g, _condition(session, g)) for g in dynamic]
    parsed = {g.id: c for g, c in loaded if c is not None}
    groups = [g for g, c in loaded if c is not None]
    references = {g.id: conditions.referenced_groups(parsed[g.id]) for g in groups}
    # Each group is evaluated once, after the groups it names, so `members` (read before the
    # run changes any) holds its members; every candidate is one of those contacts (`moved`
    # ones come from them too).
    brackets: compiler.Brackets = {}  # one search of the log per window edge, for every group
    moved: dict[int, set[int]] = {}  # by group: the contacts that entered or left this run
    for group in dependency_order(groups, references):
        condition = parsed[group.id]
        current_members = members.get(group.id, set())
        candidates = set(every)
        for named in references[group.id]:
            if moved.get(named) and not write:
                return None
            candidates |= moved.get(named, set())
        candidates |= _affected(condition, current_members, active, candidates)
        if not candidates:
            continue
        matching = _matching(session, condition, candidates, now, brackets)
        current = current_members & candidates
        entered, left = matching - current, current - matching
        if write:
            repository.enter(session, group.id, entered, ENTERED, now)
            repository.leave(session, group.id, left, LEFT, now)
            _emit(session, group.id, entered, left, now)
        moved[group.id] = entered | left
        if entered or left:
            changes.append((group.id, entered, left))
    return changes


def _affected(
    condition: conditions.Condition,
    members: set[int],
    active: dict[int, set[str]],
    already: set[int],
) -> set[int]:
    """The `active` contacts (not `already` chosen) whose new activities can change the
    group's answer for them (see `_evaluate`); `members`: the group's members among them."""
    types = {t.lower() for t in conditions.depends_on(condition).activity_types}
    relevant = {c for c, done in active.items() if c not in already and done & types}
    if not relevant:
        return relevant
    signs = _activity_signs(condition)
    if signs == {True}:
        relevant -= members
    elif signs == {False}:
        relevant &= members
    return relevant


def _activity_signs(condition: conditions.Condition, positive: bool = True) -> set[bool]:
    """How the condition's activity conditions count: True where more activities can only make
    it true (an even number of `not` above), False where they can only make it false."""
    if isinstance(condition, conditions.ActivityCondition):
        return {positive}
    if isinstance(condition, conditions.Not):
        return _activity_signs(condition.item, not positive)
    if isinstance(condition, conditions.AllOf | conditions.AnyOf):
        signs: set[bool] = set()
        for item in condition.items:
            signs |= _activity_signs(item, positive)
        return signs
    return set()


def _matching(
    session: Session,
    condition: conditions.Condition,
    among: Iterable[int],
    now: datetime,
    brackets: compiler.Brackets,
) -> set[int]:
    found: set[int] = set()
    for part in repository.chunks(among):
        candidates = select(Contact.id).where(Contact.id.in_(part))
        query = compiler.matching_ids_query(
            condition, now=now, among=candidates, session=session, brackets=brackets
        )
        found.update(session.scalars(query))
    return found


__all__ = ["CHUNK", "RefreshReport", "dependency_order", "pause_after", "refresh"]
