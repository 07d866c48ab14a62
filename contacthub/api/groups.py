"""`/api/groups`: contact groups (static and dynamic), their members, and a contact's groups.

Thin handlers over `groups.service`, the same functions as the admin pages and the CLI. A
condition tree that is refused answers 400 with `field` = the JSON path of the faulty node
(`conditions.all[2].at_least`); the condition language is in docs/groups.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from functools import partial
from typing import Annotated, Any

import msgspec
from sqlalchemy.orm import Session
from starlette.responses import Response, StreamingResponse

from contacthub.api.routing import ApiCall, ApiRouter, QueryParam, documented
from contacthub.contacts import profile
from contacthub.csv_export import MEDIA_TYPE, attachment
from contacthub.groups import service
from contacthub.groups.output import csv_header, member_line, shown_conditions
from contacthub.identifiers import MAX_ID, parse_cursor
from contacthub.storage.models import ContactGroup

router = ApiRouter("Groups")

# Members read per unit of work while a CSV export streams: memory stays flat on any group.
CSV_CHUNK = 1_000
MEMBERS_PAGE = 50
MAX_MEMBERS_PAGE = 500


# -- bodies and answers --------------------------------------------------------------------------


class GroupIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    kind: Annotated[str, documented(enum=list(service.KINDS))] = "dynamic"
    # The condition tree (docs/groups.md) of a dynamic group; the service checks it.
    conditions: Any = None
    description: str = ""


class GroupChange(msgspec.Struct, forbid_unknown_fields=True):
    """What to change; a property left out (or null) stays as it is."""

    name: str | None = None
    conditions: Any = None
    description: str | None = None


class ConditionsIn(msgspec.Struct, forbid_unknown_fields=True):
    conditions: Any


class ContactsIn(msgspec.Struct, forbid_unknown_fields=True):
    # Contact GUIDs or email addresses: more than the service takes is 400 `invalid_body`.
    contacts: Annotated[list[str], msgspec.Meta(max_length=service.MAX_ITEMS)]


class GroupOut(msgspec.Struct):
    guid: str
    name: str
    description: str
    kind: str
    conditions: Any
    members: int
    created_at: datetime
    updated_at: datetime
    rebuilt_at: datetime | None


class CountOut(msgspec.Struct):
    count: int


class MemberOut(msgspec.Struct):
    guid: str
    email: str | None
    first_name: str | None
    last_name: str | None
    since: datetime


class MemberPageOut(msgspec.Struct):
    members: list[MemberOut]
    total: int
    next_after: int | None


class ProblemOut(msgspec.Struct):
    contact: str
    code: str
    error: str


class MembersAddedOut(msgspec.Struct):
    added: int
    already_members: int
    problems: list[ProblemOut]
    members: int


class MembersRemovedOut(msgspec.Struct):
    removed: int
    not_members: int
    problems: list[ProblemOut]
    members: int


class RebuildOut(msgspec.Struct):
    entered: int
    left: int
    members: int


class MembershipOut(msgspec.Struct):
    group: str
    guid: str
    kind: str
    since: datetime


class MembershipEventOut(msgspec.Struct):
    group: str
    entered: bool
    reason: str
    at: datetime


class ContactGroupsOut(msgspec.Struct):
    groups: list[MembershipOut]
    history: list[MembershipEventOut]


# -- conversions ---------------------------------------------------------------------------------


def group_out(session: Session, group: ContactGroup, members: int) -> GroupOut:
    return GroupOut(
        str(group.guid),
        group.name,
        group.description,
        group.kind,
        shown_conditions(session, group),
        members,
        group.created_at,
        group.updated_at,
        group.rebuilt_at,
    )


def _group_answer(session: Session, group: ContactGroup) -> GroupOut:
    return group_out(session, group, service.member_count(session, group.id))


def _problems(problems: list[service.ItemProblem]) -> list[ProblemOut]:
    return [ProblemOut(p.item, p.code, p.message) for p in problems]


def member_out(member: service.Member) -> MemberOut:
    contact = member.contact
    return MemberOut(
        str(contact.guid), contact.email, contact.first_name, contact.last_name, member.since
    )


# -- groups --------------------------------------------------------------------------------------


@router.get("/api/groups", response=list[GroupOut])
async def list_groups(call: ApiCall) -> list[GroupOut]:
    """List the groups, by name, with their number of members."""
    return await call.hub.read(
        lambda session: [
            group_out(session, s.group, s.members) for s in service.list_groups(session)
        ]
    )


@router.post("/api/groups", body=GroupIn, response=GroupOut, status=201)
async def create_group(call: ApiCall, body: GroupIn) -> GroupOut:
    """Create a group: `dynamic` (the default) with its `conditions`, or `static`.

    A dynamic group's members are computed at once; a static one starts empty. An invalid
    condition tree is 400 with `field` naming the faulty node; a name taken is 409.
    """

    def work(session: Session) -> GroupOut:
        group = service.create_group(
            session,
            body.name,
            kind=body.kind,
            conditions=body.conditions,
            description=body.description,
            actor=call.actor,
        )
        return _group_answer(session, group)

    return await call.hub.write(work)


@router.post("/api/groups/preview", body=ConditionsIn, response=CountOut)
async def preview_group(call: ApiCall, body: ConditionsIn) -> CountOut:
    """Count the contacts a condition tree matches now; saves nothing."""
    return await call.hub.read(
        lambda session: CountOut(service.preview_count(session, body.conditions))
    )


@router.get("/api/groups/{name}", response=GroupOut)
async def get_group(call: ApiCall) -> GroupOut:
    """One group, by name, with its conditions and number of members."""
    name = call.path("name")
    return await call.hub.read(
        lambda session: _group_answer(session, service.get_group(session, name))
    )


@router.patch("/api/groups/{name}", body=GroupChange, response=GroupOut)
async def change_group(call: ApiCall, body: GroupChange) -> GroupOut:
    """Rename a group, change its description, or (dynamic) its conditions.

    New conditions recompute the members at once; each contact that enters or leaves gets an
    entry in its membership history. Groups whose conditions name this one keep working after
    a rename.
    """
    name = call.path("name")

    def work(session: Session) -> GroupOut:
        group = service.update_group(
            session,
            name,
            new_name=body.name,
            conditions=body.conditions,
            description=body.description,
            actor=call.actor,
        )
        return _group_answer(session, group)

    return await call.hub.write(work)


@router.delete("/api/groups/{name}", status=204)
async def delete_group(call: ApiCall) -> None:
    """Delete a group → 204.

    Refused (409 `group_in_use`, naming them) while another group's conditions name it or an
    issue that is not sent yet targets it.
    """
    name = call.path("name")
    await call.hub.write(lambda session: service.delete_group(session, name, actor=call.actor))


@router.post("/api/groups/{name}/rebuild", response=RebuildOut)
async def rebuild_group(call: ApiCall) -> RebuildOut:
    """Compute a dynamic group's members again from scratch (live membership keeps them
    exact; this is for peace of mind). Answers how many entered and left."""
    name = call.path("name")

    def work(session: Session) -> RebuildOut:
        report = service.rebuild_group(session, name, actor=call.actor)
        group = service.get_group(session, name)
        return RebuildOut(report.entered, report.left, service.member_count(session, group.id))

    return await call.hub.write(work)


# -- members -------------------------------------------------------------------------------------


@router.get(
    "/api/groups/{name}/members",
    response=MemberPageOut,
    raw_response="text/csv",
    query=(
        QueryParam(
            "after",
            "Cursor: `next_after` of the previous page.",
            "integer",
            minimum=1,
            maximum=MAX_ID,
        ),
        QueryParam(
            "limit",
            f"Members per page, 1 to {MAX_MEMBERS_PAGE} (default {MEMBERS_PAGE}).",
            "integer",
            minimum=1,
            maximum=MAX_MEMBERS_PAGE,
        ),
        QueryParam(
            "format",
            "`csv` for every member as CSV (streamed; recorded as `group.exported`), "
            "`json` (default) for a page. `Accept: text/csv` asks for CSV too.",
            enum=("json", "csv"),
        ),
    ),
)
async def list_members(call: ApiCall) -> Any:
    """A group's members, by contact (oldest contact first), a page at a time; or all of them
    as CSV.

    Pass `next_after` back as `after` for the next page; it is null on the last page.
    """
    name = call.path("name")
    if call.wants_csv():
        return await _members_csv(call, name)
    after = parse_cursor(call.query("after"), "after")
    limit = call.query_int("limit", MEMBERS_PAGE, maximum=MAX_MEMBERS_PAGE)

    def work(session: Session) -> MemberPageOut:
        page = service.members_page(
            session, name, cursor=str(after) if after else None, limit=limit
        )
        group = service.get_group(session, name)
        return MemberPageOut(
            [member_out(m) for m in page.members],
            service.member_count(session, group.id),
            int(page.next_cursor) if page.next_cursor is not None else None,
        )

    return await call.hub.read(work)


async def _members_csv(call: ApiCall, name: str) -> Response:
    """Every member as CSV, streamed a chunk of members at a time, each chunk read in a unit
    of work of its own (keyset paging: no member is skipped or repeated). The export is
    recorded before the first byte leaves."""

    def record(session: Session) -> ContactGroup:
        # Recorded at once, in this unit of work; the members are read below, a chunk at a time.
        service.iter_members(session, name, actor=call.actor)
        return service.get_group(session, name)

    group = await call.hub.write(record)

    async def rows() -> AsyncIterator[str]:
        yield csv_header()
        cursor: str | None = None
        while True:
            page = await call.hub.read(partial(_members_chunk, name=group.name, cursor=cursor))
            lines, cursor = page
            yield "".join(lines)
            if cursor is None:
                return

    filename = f"group-{group.guid}.csv"
    return StreamingResponse(
        rows(),
        media_type=MEDIA_TYPE,
        headers=attachment(filename),
    )


def _members_chunk(
    session: Session, *, name: str, cursor: str | None
) -> tuple[list[str], str | None]:
    # Lines made inside the unit of work: its rollback at the end expires the contacts.
    page = service.members_page(session, name, cursor=cursor, limit=CSV_CHUNK)
    return [member_line(m) for m in page.members], page.next_cursor


@router.post("/api/groups/{name}/members", body=ContactsIn, response=MembersAddedOut)
async def add_members(call: ApiCall, body: ContactsIn) -> MembersAddedOut:
    """Add contacts (GUIDs or email addresses) to a static group.

    Items that name no contact are listed in `problems` (`invalid_contact`,
    `unknown_contact`) and left out; the others are added. A dynamic group refuses
    (400 `group_is_dynamic`).
    """
    name = call.path("name")

    def work(session: Session) -> MembersAddedOut:
        report = service.add_members(session, name, body.contacts, actor=call.actor)
        group = service.get_group(session, name)
        return MembersAddedOut(
            report.added,
            report.already_members,
            _problems(report.problems),
            service.member_count(session, group.id),
        )

    return await call.hub.write(work)


@router.delete("/api/groups/{name}/members", body=ContactsIn, response=MembersRemovedOut)
async def remove_members(call: ApiCall, body: ContactsIn) -> MembersRemovedOut:
    """Remove contacts (GUIDs or email addresses) from a static group.

    Items that name no contact are listed in `problems`; the others are removed. A dynamic
    group refuses (400 `group_is_dynamic`).
    """
    name = call.path("name")

    def work(session: Session) -> MembersRemovedOut:
        report = service.remove_members(session, name, body.contacts, actor=call.actor)
        group = service.get_group(session, name)
        return MembersRemovedOut(
            report.removed,
            report.not_members,
            _problems(report.problems),
            service.member_count(session, group.id),
        )

    return await call.hub.write(work)


# -- a contact's groups --------------------------------------------------------------------------


@router.get("/api/contacts/{guid}/groups", response=ContactGroupsOut)
async def contact_groups(call: ApiCall) -> ContactGroupsOut:
    """The groups a contact is in now, and its latest entries and exits (newest first)."""
    guid = call.path("guid")

    def work(session: Session) -> ContactGroupsOut:
        contact = profile.find_contact(session, guid)
        return ContactGroupsOut(
            [
                MembershipOut(m.group.name, str(m.group.guid), m.group.kind, m.since)
                for m in service.contact_groups(session, contact.id)
            ],
            [
                MembershipEventOut(e.group_name, e.entered, e.reason, e.created_at)
                for e in service.membership_history(session, contact.id)
            ],
        )

    return await call.hub.read(work)
