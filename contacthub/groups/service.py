"""Contact groups: every change to a group or to its members goes through here.

A group is `static` (members added and removed by hand, by CSV, by API) or `dynamic` (a
condition tree, docs/groups.md; its members are computed). A dynamic group's members are
computed in full when it is created, when its conditions change and when it is rebuilt, in the
same transaction; in between the live job (`membership.refresh`) keeps them exact. Every entry
and exit is written to the membership history with a reason a person can read.

Changes are recorded in the audit log, in the caller's unit of work, when the caller names an
`actor` (every entry point does: a user's address, or `cli`).

Changes of a dynamic group's members take the live job's state row FOR UPDATE first
(`repository.lock_state`), so that the job and these changes never interleave (on PostgreSQL;
SQLite has one writer at a time anyway).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from contacthub.analytics import rollups
from contacthub.audit import service as audit
from contacthub.contacts import repository as contact_repository
from contacthub.email import repository as email_repository
from contacthub.email.service import normalise_email
from contacthub.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from contacthub.events import changes
from contacthub.groups import compiler, repository
from contacthub.groups import conditions as language
from contacthub.groups.queue import enqueue_contacts, has_dynamic_group
from contacthub.groups.repository import DYNAMIC, STATIC
from contacthub.identifiers import check_label, parse_cursor, parse_guid, refuse_nul
from contacthub.storage.models import Activity, Contact, ContactGroup, EmailClick, EmailOpen
from contacthub.storage.types import utcnow

__all__ = [
    "AddReport",
    "GroupSummary",
    "HistoryEntry",
    "ItemProblem",
    "Member",
    "MembersPage",
    "Membership",
    "RebuildReport",
    "RemoveReport",
    "add_members",
    "contact_groups",
    "create_group",
    "delete_group",
    "enqueue_contacts",
    "get_group",
    "has_dynamic_group",
    "iter_members",
    "list_groups",
    "member_count",
    "members_page",
    "membership_history",
    "preview_count",
    "rebuild_group",
    "remove_members",
    "update_group",
]

KINDS = (STATIC, DYNAMIC)
MAX_DESCRIPTION = 1_000
MAX_ITEMS = 10_000
MAX_PAGE = 1_000
HISTORY_LIMIT = 50
MAX_HISTORY = 500


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """A group with its number of members."""

    group: ContactGroup
    members: int


@dataclass(frozen=True, slots=True)
class Member:
    """A contact in a group, since when."""

    contact: Contact
    since: datetime


@dataclass(frozen=True, slots=True)
class MembersPage:
    """A page of members by contact id; `next_cursor` fetches the next page (None: last)."""

    members: list[Member]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ItemProblem:
    """One item of an add or remove request that named no contact, and why."""

    item: str
    code: str
    message: str


@dataclass(slots=True)
class AddReport:
    """What adding contacts to a static group did; `problems` are the items left out."""

    added: int = 0
    already_members: int = 0
    problems: list[ItemProblem] = field(default_factory=list)


@dataclass(slots=True)
class RemoveReport:
    """What removing contacts from a static group did; `problems` are the items left out."""

    removed: int = 0
    not_members: int = 0
    problems: list[ItemProblem] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RebuildReport:
    """Contacts that entered and left a dynamic group when its members were computed anew."""

    entered: int
    left: int


@dataclass(frozen=True, slots=True)
class Membership:
    """A group the contact is a member of, since when."""

    group: ContactGroup
    since: datetime


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """A contact entering (`entered`) or leaving a group, when and why."""

    group_name: str
    group_guid: uuid.UUID
    entered: bool
    reason: str
    created_at: datetime


# -- checks --------------------------------------------------------------------------------------


def _check_name(name: str) -> str:
    name = check_label(name, "A group name", code="invalid_name", field="name", minimum=1)
    # The management API addresses a group by name in its URL path; "." and ".." would vanish
    # from a path (clients resolve them).
    if "/" in name or name in (".", ".."):
        raise InvalidInput(
            "A group name cannot contain '/' or be '.' or '..'.", code="invalid_name", field="name"
        )
    return name


def _check_description(description: str) -> str:
    description = refuse_nul(description, "description").strip()
    if len(description) > MAX_DESCRIPTION:
        raise InvalidInput(
            f"A group description has at most {MAX_DESCRIPTION} characters.",
            code="invalid_description",
            field="description",
        )
    return description


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInput(
            f"A group's kind is {STATIC!r} or {DYNAMIC!r} ({kind!r} given).",
            code="invalid_kind",
            field="kind",
        )
    return kind


def _by(actor: str | None) -> str:
    return f" by {actor}" if actor else ""


# -- groups --------------------------------------------------------------------------------------


def create_group(
    session: Session,
    name: str,
    *,
    kind: str = DYNAMIC,
    conditions: object | None = None,
    description: str = "",
    actor: str | None = None,
    now: datetime | None = None,
) -> ContactGroup:
    """Create a group; a dynamic one gets its members in the same transaction."""
    name = _check_name(name)
    kind = _check_kind(kind)
    description = _check_description(description)
    now = now or utcnow()
    if repository.group_by_name(session, name) is not None:
        raise Conflict(f"A group named {name!r} already exists.", code="group_exists", field="name")
    condition = None
    if kind == DYNAMIC:
        if conditions is None:
            raise InvalidInput(
                "A dynamic group needs conditions.", code="invalid_conditions", field="conditions"
            )
        condition = _parse(session, conditions)
    elif conditions is not None:
        raise InvalidInput(
            "A static group has no conditions: its members are added by hand.",
            code="invalid_conditions",
            field="conditions",
        )
    # The first dynamic group: nothing was queued for the live job while there was none.
    first_dynamic = kind == DYNAMIC and not has_dynamic_group(session)
    group = ContactGroup(
        name=name,
        kind=kind,
        description=description,
        conditions=_stored(condition) if condition is not None else None,
        created_at=now,
        updated_at=now,
    )
    session.add(group)
    session.flush()
    members = 0
    if condition is not None:
        report = _recompute(
            session,
            group,
            condition,
            now=now,
            why="group created",
            actor=actor,
            first_dynamic=first_dynamic,
        )
        members = report.entered
    if actor is not None:
        audit.record(
            session,
            actor,
            "group.created",
            group.name,
            {"guid": str(group.guid), "kind": kind, "members": members},
        )
    return group


def update_group(
    session: Session,
    name: str,
    *,
    new_name: str | None = None,
    conditions: object | None = None,
    description: str | None = None,
    actor: str | None = None,
    now: datetime | None = None,
) -> ContactGroup:
    """Rename a group, change its description or (dynamic) its conditions; new conditions
    compute its members anew, with history. Groups that refer to it keep referring to it."""
    group = get_group(session, name)
    now = now or utcnow()
    changed: list[str] = []
    details: dict[str, Any] = {}
    if new_name is not None:
        new_name = _check_name(new_name)
        if new_name != group.name:
            other = repository.group_by_name(session, new_name)
            if other is not None:
                raise Conflict(
                    f"A group named {new_name!r} already exists.", code="group_exists", field="name"
                )
            details["old_name"] = group.name
            changed.append("name")
    if description is not None:
        description = _check_description(description)
        if description != group.description:
            changed.append("description")
    condition = None
    if conditions is not None:
        if group.kind != DYNAMIC:
            raise InvalidInput(
                f"{group.name!r} is a static group: it has no conditions.",
                code="group_is_static",
                field="conditions",
            )
        condition = _parse(session, conditions)
        language.check_no_cycle(session, group.id, condition)
        if _stored(condition) != group.conditions:
            changed.append("conditions")
    if not changed:
        return group
    if "name" in changed:
        assert new_name is not None
        group.name = new_name
    if "description" in changed:
        assert description is not None
        group.description = description
    group.updated_at = now
    if "conditions" in changed:
        assert condition is not None
        group.conditions = _stored(condition)
        session.flush()
        report = _recompute(
            session, group, condition, now=now, why="conditions changed", actor=actor
        )
        details.update(entered=report.entered, left=report.left)
    else:
        details.update(entered=0, left=0)
    session.flush()
    if actor is not None:
        audit.record(
            session, actor, "group.updated", group.name, {"changed": sorted(changed), **details}
        )
    return group


def delete_group(session: Session, name: str, *, actor: str | None = None) -> None:
    """Delete a group and its members (not the contacts). Refused while another group's
    conditions refer to it or an issue not sent yet targets it."""
    group = get_group(session, name)
    users = [g.name for g in _groups_referring_to(session, group)]
    issues = repository.unsent_issues_for(session, group.id)
    if users or issues:
        reasons = []
        if users:
            reasons.append("the conditions of " + _listed("group", users))
        if issues:
            reasons.append(
                _listed(
                    "issue", [f"{i.subject!r} ({i.status}, {i.guid})" for i in issues], quote=False
                )
                + " not sent yet"
            )
        raise Conflict(
            f"Group {group.name!r} is used by {' and by '.join(reasons)}: change those first.",
            code="group_in_use",
        )
    members = repository.member_ids(session, group.id)
    if group.kind == DYNAMIC:
        repository.lock_state(session)
    email_repository.keep_group_name(session, group.id, group.name)
    session.delete(group)
    session.flush()
    # Groups that refer to it cannot exist; but its members may have been the reason of
    # nothing else: still, a group that is gone changes no answer, so nothing is queued.
    if actor is not None:
        audit.record(
            session,
            actor,
            "group.deleted",
            group.name,
            {"guid": str(group.guid), "members": len(members)},
        )


def get_group(session: Session, name: str) -> ContactGroup:
    """The group with this name, or NotFound."""
    group = repository.group_by_name(session, name)
    if group is None:
        raise NotFound(f"No group named {name!r}.", code="unknown_group")
    return group


def list_groups(session: Session) -> list[GroupSummary]:
    """Every group with its number of members, by name."""
    return [GroupSummary(g, n) for g, n in repository.groups_with_member_counts(session)]


def preview_count(session: Session, conditions: object, *, now: datetime | None = None) -> int:
    """How many contacts match `conditions` now: validated, counted, nothing saved."""
    return compiler.count_matching(session, _parse(session, conditions), now=now or utcnow())


def member_count(session: Session, group_id: int) -> int:
    """The number of members of the group with this id."""
    return repository.member_count(session, group_id)


# -- members -------------------------------------------------------------------------------------


def members_page(session: Session, name: str, *, cursor: str | None, limit: int) -> MembersPage:
    """A page of the group's members by contact id; `cursor` is a previous page's
    `next_cursor`."""
    group = get_group(session, name)
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(
            f"limit is from 1 to {MAX_PAGE}.", code="invalid_parameter", field="limit"
        )
    after = parse_cursor(cursor or "", "cursor") or 0
    rows = repository.members_after(session, group.id, after, limit + 1)
    members = [Member(contact, since) for contact, since in rows[:limit]]
    next_cursor = str(members[-1].contact.id) if len(rows) > limit else None
    return MembersPage(members, next_cursor)


def iter_members(session: Session, name: str, *, actor: str | None = None) -> Iterator[Member]:
    """Every member of the group by contact id, streamed (an export: CSV or JSON).

    With an `actor`, the export is recorded (`group.exported`) at once, in the caller's unit of
    work, before the first member is read.
    """
    group = get_group(session, name)
    if actor is not None:
        audit.record(
            session,
            actor,
            "group.exported",
            group.name,
            {"members": repository.member_count(session, group.id)},
        )
    return (
        Member(contact, since) for contact, since in repository.stream_members(session, group.id)
    )


def add_members(
    session: Session, name: str, contacts: Sequence[str], *, actor: str | None = None
) -> AddReport:
    """Add contacts (each named by GUID or email address) to a static group. Items that name
    no contact are reported one by one and left out; the others are added."""
    group = _static_group(session, name)
    found, problems = _resolve(session, contacts)
    existing = repository.member_ids(session, group.id, found)
    new = found - existing
    reason, now = f"added{_by(actor)}", utcnow()
    repository.enter(session, group.id, new, reason, now)
    changes.group_membership(session, group.id, new, entered=True, reason=reason, moment=now)
    enqueue_contacts(session, new)
    report = AddReport(added=len(new), already_members=len(existing), problems=problems)
    if actor is not None and new:
        audit.record(
            session,
            actor,
            "group.members_added",
            group.name,
            {
                "added": report.added,
                "already_members": report.already_members,
                "unknown": len(problems),
            },
        )
    return report


def remove_members(
    session: Session, name: str, contacts: Sequence[str], *, actor: str | None = None
) -> RemoveReport:
    """Remove contacts (each named by GUID or email address) from a static group. Items that
    name no contact are reported one by one; the others are removed."""
    group = _static_group(session, name)
    found, problems = _resolve(session, contacts)
    existing = repository.member_ids(session, group.id, found)
    reason, now = f"removed{_by(actor)}", utcnow()
    repository.leave(session, group.id, existing, reason, now)
    changes.group_membership(session, group.id, existing, entered=False, reason=reason, moment=now)
    enqueue_contacts(session, existing)
    report = RemoveReport(
        removed=len(existing), not_members=len(found - existing), problems=problems
    )
    if actor is not None and existing:
        audit.record(
            session,
            actor,
            "group.members_removed",
            group.name,
            {
                "removed": report.removed,
                "not_members": report.not_members,
                "unknown": len(problems),
            },
        )
    return report


def rebuild_group(
    session: Session, name: str, *, actor: str | None = None, now: datetime | None = None
) -> RebuildReport:
    """Compute a dynamic group's members anew from its conditions (the live job keeps them
    exact; this is the check, and the remedy if anything went wrong)."""
    group = get_group(session, name)
    if group.kind != DYNAMIC:
        raise InvalidInput(
            f"{group.name!r} is a static group: its members are not computed.",
            code="group_is_static",
        )
    now = now or utcnow()
    report = _recompute(
        session, group, _loaded(session, group), now=now, why="rebuild", actor=actor
    )
    group.rebuilt_at = now
    session.flush()
    if actor is not None:
        audit.record(
            session,
            actor,
            "group.rebuilt",
            group.name,
            {
                "entered": report.entered,
                "left": report.left,
                "members": repository.member_count(session, group.id),
            },
        )
    return report


def contact_groups(session: Session, contact_id: int) -> list[Membership]:
    """The groups the contact is a member of now, by name."""
    return [Membership(g, since) for g, since in repository.memberships_of(session, contact_id)]


def membership_history(
    session: Session, contact_id: int, *, limit: int = HISTORY_LIMIT
) -> list[HistoryEntry]:
    """The contact's latest group entries and exits, newest first."""
    limit = max(1, min(limit, MAX_HISTORY))
    return [
        HistoryEntry(group.name, group.guid, event.entered, event.reason, event.created_at)
        for event, group in repository.history_of(session, contact_id, limit)
    ]


# -- helpers -------------------------------------------------------------------------------------


def _static_group(session: Session, name: str) -> ContactGroup:
    group = get_group(session, name)
    if group.kind != STATIC:
        raise InvalidInput(
            f"{group.name!r} is a dynamic group: its members follow its conditions.",
            code="group_is_dynamic",
        )
    return group


def _resolve(session: Session, items: Sequence[str]) -> tuple[set[int], list[ItemProblem]]:
    """The contact ids that `items` (GUIDs or email addresses) name, and the items that name
    none. A GUID names its contact; an address the oldest contact with it."""
    if len(items) > MAX_ITEMS:
        raise PayloadTooLarge(
            f"At most {MAX_ITEMS:,} contacts at a time ({len(items):,} given).",
            code="too_many_contacts",
        )
    problems: dict[int, ItemProblem] = {}  # by position, to report them in the items' order
    guids: dict[uuid.UUID, tuple[int, str]] = {}
    emails: dict[str, tuple[int, str]] = {}
    for position, raw in enumerate(items):
        item = str(raw).strip()
        try:
            if "@" in item:
                emails.setdefault(normalise_email(item, "contact"), (position, item))
            else:
                guids.setdefault(parse_guid(item, "Contact"), (position, item))
        except InvalidInput as error:
            problems[position] = ItemProblem(
                item[:300],
                "invalid_contact",
                f"Not a contact GUID or an email address: {error.message}",
            )
    found: set[int] = set()
    by_guid = contact_repository.contacts_by_guid(session, guids)
    for guid, (position, item) in guids.items():
        contact = by_guid.get(guid)
        if contact is None:
            problems[position] = ItemProblem(
                item, "unknown_contact", f"No contact with GUID {guid}."
            )
        else:
            found.add(contact.id)
    by_email = email_repository.oldest_contacts_with_emails(session, set(emails))
    for address, (position, item) in emails.items():
        contact = by_email.get(address)
        if contact is None:
            problems[position] = ItemProblem(
                item, "unknown_contact", f"No contact with the address {address}."
            )
        else:
            found.add(contact.id)
    ordered = [problems[position] for position in sorted(problems)]
    return found, ordered


def _listed(noun: str, names: Sequence[str], *, quote: bool = True) -> str:
    shown = [repr(n) if quote else n for n in names]
    return f"{noun}{'s' if len(names) > 1 else ''} {', '.join(shown)}"


def _parse(session: Session, raw: object) -> language.Condition:
    return language.parse_conditions(session, raw)


def _stored(condition: language.Condition) -> str:
    """The stored text of a condition tree (its canonical JSON: groups by id)."""
    return language.dump_conditions_text(condition)


def _loaded(session: Session, group: ContactGroup) -> language.Condition:
    """A dynamic group's stored conditions, as a condition tree."""
    assert group.conditions is not None
    return language.load_conditions(session, group.conditions)


def _groups_referring_to(session: Session, group: ContactGroup) -> list[ContactGroup]:
    """The dynamic groups whose conditions name `group` (read from the stored text)."""
    return [
        other
        for other in repository.dynamic_groups(session)
        if other.id != group.id
        and group.id in language.stored_group_references(other.conditions, {})
    ]


def _recompute(
    session: Session,
    group: ContactGroup,
    condition: language.Condition,
    *,
    now: datetime,
    why: str,
    actor: str | None,
    first_dynamic: bool = False,
) -> RebuildReport:
    """Compute a dynamic group's members in full and write the difference, with history.

    Takes the live job's state row first (so the job does not run meanwhile) and moves its
    time mark back to `now` if it is later: the job then re-checks time windows from the moment
    these members were computed for.

    For the `first_dynamic` group, the job's cursors move first to the final high ids of the
    activities, opens and clicks (`rollups.final_high_ids_now`), so that the job does not read
    the whole history the group has just been computed from: every record up to them is in
    this computation, which comes after; later ones are the job's.
    """
    state = repository.lock_state(session)
    if state.evaluated_at is None or state.evaluated_at > now:
        state.evaluated_at = now
    if first_dynamic:
        highs = rollups.final_high_ids_now(session, [Activity.id, EmailOpen.id, EmailClick.id])
        if highs is not None:  # else the job reads them (the lock was not granted in time)
            activity_high, open_high, click_high = highs
            state.last_activity_id = max(state.last_activity_id, activity_high)
            state.last_email_open_id = max(state.last_email_open_id, open_high)
            state.last_email_click_id = max(state.last_email_click_id, click_high)
    query = compiler.matching_ids_query(condition, now=now, session=session)
    desired = set(session.scalars(query))
    current = repository.member_ids(session, group.id)
    entered, left = desired - current, current - desired
    met, unmet = (
        f"conditions met ({why}{_by(actor)})",
        f"conditions no longer met ({why}{_by(actor)})",
    )
    repository.enter(session, group.id, entered, met, now)
    repository.leave(session, group.id, left, unmet, now)
    changes.group_membership(session, group.id, entered, entered=True, reason=met, moment=now)
    changes.group_membership(session, group.id, left, entered=False, reason=unmet, moment=now)
    if (entered or left) and _groups_referring_to(session, group):
        # Groups that name this one may answer differently for these contacts now.
        enqueue_contacts(session, entered | left)
    return RebuildReport(entered=len(entered), left=len(left))
