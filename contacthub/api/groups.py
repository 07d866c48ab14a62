"""`/api/groups`: contact groups (static and dynamic), their members, and a contact's groups.

Thin handlers over `groups.service`, the same functions as the admin pages and the CLI. A
condition tree that is refused answers 400 with `field` = the JSON path of the faulty node
(`conditions.all[2].at_least`); the condition language is in docs/groups.md.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime
from functools import partial
from typing import Annotated, Any

import msgspec
from sqlalchemy.orm import Session
from starlette.responses import Response, StreamingResponse

from contacthub.api.routing import ApiCall, ApiRouter, QueryParam, documented
from contacthub.contacts import profile
from contacthub.errors import InvalidInput
from contacthub.groups import service
from contacthub.storage.models import ContactGroup

router = ApiRouter("Groups")

# Members read per unit of work while a CSV export streams: memory stays flat on any group.
CSV_CHUNK = 1_000
CSV_COLUMNS = ("guid", "email", "first_name", "last_name", "since")
KINDS = ("dynamic", "static")


# -- bodies and answers --------------------------------------------------------------------------


class GroupIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    kind: Annotated[str, documented(enum=list(KINDS))] = "dynamic"
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
    # Contact GUIDs or email addresses, at most service.MAX_CONTACTS_PER_CALL.
    contacts: list[str]


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
    next_after: str | None


class ItemOut(msgspec.Struct):
    contact: str
    result: str
    guid: str | None


class MembersChangedOut(msgspec.Struct):
    changed: int
    unchanged: int
    unknown: int
    results: list[ItemOut]
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
    group: str | None
    entered: bool
    reason: str
    at: datetime


class ContactGroupsOut(msgspec.Struct):
    groups: list[MembershipOut]
    history: list[MembershipEventOut]


# -- conversions ---------------------------------------------------------------------------------


def group_out(group: ContactGroup, members: int) -> GroupOut:
    return GroupOut(
        str(group.guid),
        group.name,
        group.description,
        group.kind,
        json.loads(group.conditions) if group.conditions is not None else None,
        members,
        group.created_at,
        group.updated_at,
        group.rebuilt_at,
    )


def _group_answer(session: Session, group: ContactGroup) -> GroupOut:
    return group_out(group, service.member_count(session, group.id))


def _members_changed(report: service.MembersReport, members: int) -> MembersChangedOut:
    return MembersChangedOut(
        changed=report.changed,
        unchanged=report.unchanged,
        unknown=report.unknown,
        results=[ItemOut(i.contact, i.result, i.guid) for i in report.items],
        members=members,
    )


def _wants_csv(call: ApiCall) -> bool:
    wanted = call.query("format").lower()
    if wanted:
        if wanted not in ("json", "csv"):
            raise InvalidInput(
                "format must be json or csv.", code="invalid_parameter", field="format"
            )
        return wanted == "csv"
    accept = call.request.headers.get("accept", "")
    return any(part.partition(";")[0].strip().lower() == "text/csv" for part in accept.split(","))


# -- groups --------------------------------------------------------------------------------------


@router.get("/api/groups", response=list[GroupOut])
async def list_groups(call: ApiCall) -> list[GroupOut]:
    """List the groups, by name, with their number of members."""
    return await call.hub.read(
        lambda session: [group_out(s.group, s.members) for s in service.list_groups(session)]
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
        QueryParam("after", "The next_after cursor of the previous page."),
        QueryParam(
            "limit",
            f"Members per page, 1 to {service.MAX_MEMBERS_PAGE} (default {service.MEMBERS_PAGE}).",
            "integer",
            minimum=1,
            maximum=service.MAX_MEMBERS_PAGE,
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
    """A group's members, oldest member first, a page at a time; or all of them as CSV.

    Pass `next_after` back as `after` for the next page; it is null on the last page.
    """
    name = call.path("name")
    if _wants_csv(call):
        return await _members_csv(call, name)
    after = call.query("after") or None
    limit = call.query_int("limit", service.MEMBERS_PAGE, maximum=service.MAX_MEMBERS_PAGE)

    def work(session: Session) -> MemberPageOut:
        page = service.members_page(session, name, cursor=after, limit=limit)
        return MemberPageOut(
            [
                MemberOut(str(m.guid), m.email, m.first_name, m.last_name, m.since)
                for m in page.members
            ],
            page.total,
            page.next_cursor,
        )

    return await call.hub.read(work)


async def _members_csv(call: ApiCall, name: str) -> Response:
    """Every member as CSV, streamed a chunk of members at a time, each chunk read in a unit
    of work of its own (keyset paging: no member is skipped or repeated). The export is
    recorded before the first byte leaves."""
    group = await call.hub.write(
        lambda session: service.record_export(session, name, actor=call.actor)
    )

    async def rows() -> AsyncIterator[str]:
        yield _csv_line(CSV_COLUMNS)
        cursor: str | None = None
        while True:
            page = await call.hub.read(partial(_members_chunk, name=group.name, cursor=cursor))
            yield "".join(
                _csv_line(
                    (str(m.guid), m.email or "", m.first_name or "", m.last_name or "", m.since)
                )
                for m in page.members
            )
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    filename = f"group-{group.guid}.csv"
    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _members_chunk(session: Session, *, name: str, cursor: str | None) -> service.MembersPage:
    return service.members_page(session, name, cursor=cursor, limit=CSV_CHUNK)


def _csv_line(values: tuple[Any, ...]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(
        [v.isoformat() if isinstance(v, datetime) else v for v in values]
    )
    return buffer.getvalue()


@router.post("/api/groups/{name}/members", body=ContactsIn, response=MembersChangedOut)
async def add_members(call: ApiCall, body: ContactsIn) -> MembersChangedOut:
    """Add contacts (GUIDs or email addresses) to a static group; a result per item.

    Each item's `result` is `added`, `already_member` or `unknown_contact`; an unknown one does
    not stop the others. A dynamic group refuses (400 `group_is_dynamic`).
    """
    name = call.path("name")

    def work(session: Session) -> MembersChangedOut:
        report = service.add_members(session, name, body.contacts, actor=call.actor)
        return _members_changed(report, service.member_count(session, report.group_id))

    return await call.hub.write(work)


@router.delete("/api/groups/{name}/members", body=ContactsIn, response=MembersChangedOut)
async def remove_members(call: ApiCall, body: ContactsIn) -> MembersChangedOut:
    """Remove contacts (GUIDs or email addresses) from a static group; a result per item.

    Each item's `result` is `removed`, `not_member` or `unknown_contact`. A dynamic group
    refuses (400 `group_is_dynamic`).
    """
    name = call.path("name")

    def work(session: Session) -> MembersChangedOut:
        report = service.remove_members(session, name, body.contacts, actor=call.actor)
        return _members_changed(report, service.member_count(session, report.group_id))

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
                MembershipOut(m.name, str(m.guid), m.kind, m.since)
                for m in service.contact_groups(session, contact.id)
            ],
            [
                MembershipEventOut(e.group, e.entered, e.reason, e.at)
                for e in service.membership_history(session, contact.id)
            ],
        )

    return await call.hub.read(work)
