"""Admin pages for contact groups (docs/groups.md, "In the admin").

- `/admin/groups`: every group with its kind and member count; `/admin/groups/new` creates one.
- `/admin/groups/{key}` (GUID or name): details, conditions, members (keyset paged), the CSV
  export (a POST: it is audited as `group.exported`), the rebuild button, and for a static group
  the forms that add and remove members (GUIDs or addresses, typed or from a CSV file).
- `/admin/groups/{key}/edit`: name, description and, for a dynamic group, its conditions.
- `/admin/groups/{key}/delete`: asks first; the service refuses while the group is in use.
- `POST /admin/groups/preview`: how many contacts a condition tree matches, as JSON, for the
  condition builder's live count (static/groups.js).

The condition builder is progressive: the page carries the conditions as JSON in a text area
(which works without script), and groups.js replaces it with a form-based tree editor that writes
the same JSON back into it. What the builder offers (consents, activity types, channels,
newsletters, issues, groups, countries, states) is in a `<script type="application/json">`
block, which the CSP lets through because a browser never runs it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import anyio.to_thread
import pycountry
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contacthub.activities.log import type_choices
from contacthub.admin.email import detached
from contacthub.admin.web import Admin, form_errors, page
from contacthub.channels import service as channels
from contacthub.consents import service as consents
from contacthub.contacts import profile
from contacthub.csv_export import MEDIA_TYPE
from contacthub.email import service as email
from contacthub.errors import HubError, InvalidInput
from contacthub.groups import conditions
from contacthub.groups import service as groups
from contacthub.groups.output import csv_header, member_line
from contacthub.identifiers import guid_or_none
from contacthub.storage.models import ContactGroup

LIST_PATH = "/admin/groups"
NEW_PATH = f"{LIST_PATH}/new"
PREVIEW_PATH = f"{LIST_PATH}/preview"
MEMBERS_PAGE = 50
# The builder offers the latest issues of each newsletter (an older one can still be named in
# the JSON by its GUID).
ISSUES_OFFERED = 30
# The items naming no contact that the page lists after adding or removing members.
PROBLEMS_SHOWN = 200
EMPTY_CONDITIONS: dict[str, list[object]] = {"all": []}
KINDS = (
    ("dynamic", "Dynamic: contacts who meet conditions, kept up to date live"),
    ("static", "Static: members added and removed by hand"),
)

# How the builder names the fields a condition may test (the language's names: groups.conditions).
FIELD_LABELS = {**profile.FIELD_LABELS, "created_at": "Created", "updated_at": "Updated"}


def group_path(group: ContactGroup | Any) -> str:
    """The page of a group, by GUID (names may hold any character)."""
    return f"{LIST_PATH}/{group.guid}"


def _key(admin: Admin) -> str:
    return str(admin.request.path_params["key"])


def find_group(session: Session, key: str) -> ContactGroup:
    """The group with this GUID or, failing that, this name (NotFound otherwise)."""
    guid = guid_or_none(key)
    if guid is not None:
        found = session.scalar(select(ContactGroup).where(ContactGroup.guid == guid))
        if found is not None:
            return found
    return groups.get_group(session, key)


# -- the list --------------------------------------------------------------------------------


async def group_list(admin: Admin) -> Response:
    """Every group with its kind, member count and last change."""
    rows = await admin.hub.read(lambda s: detached(s, groups.list_groups(s)))
    return admin.render("groups/list.html", rows=rows, group_path=group_path)


# -- new and edit: the form with the condition builder ----------------------------------------


@dataclass
class GroupForm:
    """What the group form shows: the values typed, the errors, a count asked for."""

    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    # The JSON path of the faulty node (e.g. conditions.all[1].at_least), for the builder.
    error_path: str = ""
    preview: int | None = None


def builder_options(session: Session, *, exclude_group: str | None = None) -> dict[str, Any]:
    """What the condition builder offers in its select lists: the hub's own names."""
    newsletters = email.list_newsletters(session)
    return {
        "text_fields": [(name, FIELD_LABELS[name]) for name in conditions.TEXT_FIELDS],
        "code_fields": [(name, FIELD_LABELS[name]) for name in conditions.CODE_FIELDS],
        "date_fields": [(name, FIELD_LABELS[name]) for name in conditions.DATE_FIELDS],
        "countries": sorted(
            ((c.alpha_3, c.name) for c in pycountry.countries), key=lambda pair: pair[1]
        ),
        "states": sorted(
            (s.code.removeprefix("US-"), s.name)
            for s in pycountry.subdivisions.get(country_code="US")  # type: ignore[no-untyped-call]
        ),
        "consents": [
            (s.code_name, s.display_name, s.revision) for s in consents.summaries(session)
        ],
        "activity_types": type_choices(session),
        "channels": [c.name for c in channels.list_channels(session)],
        "newsletters": [n.name for n in newsletters],
        "issues": {
            n.name: [
                (str(issue.guid), issue.subject)
                for issue in email.list_issues(session, n.name)[:ISSUES_OFFERED]
            ]
            for n in newsletters
        },
        "groups": [
            summary.group.name
            for summary in groups.list_groups(session)
            if summary.group.name != exclude_group
        ],
    }


def _conditions_text(conditions: object) -> str:
    return json.dumps(conditions, indent=2, ensure_ascii=False)


def _read_conditions(text: str) -> object:
    """The conditions as posted: JSON text (the builder writes it, or the admin typed it)."""
    if not text.strip():
        return dict(EMPTY_CONDITIONS)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(
            f"The conditions are not valid JSON: {error.msg} (line {error.lineno}, "
            f"column {error.colno}).",
            code="invalid_conditions",
            field="conditions",
        ) from None


def _form_of(admin: Admin, *, kind: str | None = None) -> GroupForm:
    values = {
        "name": admin.field("name"),
        "description": admin.field("description"),
        "kind": kind or admin.field("kind") or "dynamic",
        "conditions": admin.field("conditions"),
    }
    return GroupForm(values)


def _refused(form: GroupForm, error: HubError) -> GroupForm:
    path = error.field or ""
    if path.startswith("conditions"):
        form.errors = {"conditions": error.message}
        form.error_path = path
    else:
        form.errors = form_errors(error)
    return form


async def _form_page(
    admin: Admin,
    template: str,
    form: GroupForm,
    *,
    status: int = 200,
    group: ContactGroup | None = None,
) -> Response:
    exclude = group.name if group is not None else None
    options = await admin.hub.read(lambda s: builder_options(s, exclude_group=exclude))
    return admin.render(
        template,
        status,
        form=form,
        values=form.values,
        errors=form.errors,
        group=group,
        kinds=KINDS,
        builder={"options": options, "error_path": form.error_path, "preview": PREVIEW_PATH},
        group_path=group_path,
    )


async def group_new_form(admin: Admin) -> Response:
    """The form for a new group."""
    form = GroupForm(
        {
            "name": "",
            "description": "",
            "kind": "dynamic",
            "conditions": _conditions_text(EMPTY_CONDITIONS),
        }
    )
    return await _form_page(admin, "groups/new.html", form)


async def _count(admin: Admin, form: GroupForm) -> GroupForm:
    """The form with the number of contacts its conditions match (the button that counts them,
    for browsers without script), or with the error that stops counting."""
    try:
        tree = _read_conditions(form.values["conditions"])
        form.preview = await admin.hub.read(lambda s: groups.preview_count(s, tree))
    except HubError as error:
        return _refused(form, error)
    return form


async def group_create(admin: Admin) -> Response:
    """Create a group; a refused form comes back with the message by its field."""
    form = _form_of(admin)
    if admin.field("action") == "count":
        form = await _count(admin, form)
        return await _form_page(admin, "groups/new.html", form, status=400 if form.errors else 200)

    def work(session: Session) -> tuple[str, str]:
        kind = form.values["kind"]
        tree = _read_conditions(form.values["conditions"]) if kind == "dynamic" else None
        created = groups.create_group(
            session,
            form.values["name"],
            kind=kind,
            conditions=tree,
            description=form.values["description"],
            actor=admin.actor,
        )
        return group_path(created), created.name

    try:
        path, name = await admin.hub.write(work)
    except HubError as error:
        return await _form_page(
            admin, "groups/new.html", _refused(form, error), status=error.status_code
        )
    return admin.redirect(path, flash=f"Group {name} created.")


def shown_conditions(session: Session, group: ContactGroup) -> object:
    """A dynamic group's conditions as people read and write them (groups by name, not id);
    None for a static group."""
    if group.conditions is None:
        return None
    try:
        parsed = conditions.load_conditions(session, group.conditions)
    except HubError:
        # Stored conditions that no longer check (a reference gone): shown as stored, so that
        # saving them names the fault.
        return json.loads(group.conditions)
    return conditions.dump_conditions(parsed, for_display=True)


@dataclass
class Found:
    """A group, detached from its (ended) unit of work, with its conditions as shown."""

    group: ContactGroup
    conditions: object


async def _group(admin: Admin) -> Found:
    """The group the path names."""

    def work(session: Session) -> Found:
        found = find_group(session, _key(admin))
        shown = shown_conditions(session, found)
        session.expunge(found)
        return Found(found, shown)

    return await admin.hub.read(work)


async def group_edit_form(admin: Admin) -> Response:
    """The form that changes a group: name, description and (dynamic) conditions."""
    found = await _group(admin)
    group = found.group
    form = GroupForm(
        {
            "name": group.name,
            "description": group.description,
            "kind": group.kind,
            "conditions": _conditions_text(found.conditions) if group.conditions else "",
        }
    )
    return await _form_page(admin, "groups/edit.html", form, group=group)


async def group_update(admin: Admin) -> Response:
    """Save a group's changes; new conditions recompute its members (with their history)."""
    found = await _group(admin)
    group = found.group
    form = _form_of(admin, kind=group.kind)
    if admin.field("action") == "count" and group.kind == "dynamic":
        form = await _count(admin, form)
        status = 400 if form.errors else 200
        return await _form_page(admin, "groups/edit.html", form, status=status, group=group)

    def work(session: Session) -> tuple[str, str]:
        new_conditions = None
        if group.kind == "dynamic":
            posted = _read_conditions(form.values["conditions"])
            # Unchanged conditions are not sent: the group is then not recomputed.
            new_conditions = posted if posted != found.conditions else None
        updated = groups.update_group(
            session,
            group.name,
            new_name=form.values["name"] if form.values["name"] != group.name else None,
            conditions=new_conditions,
            description=form.values["description"],
            actor=admin.actor,
        )
        return group_path(updated), updated.name

    try:
        path, name = await admin.hub.write(work)
    except HubError as error:
        if error.status_code == 404:
            raise
        return await _form_page(
            admin, "groups/edit.html", _refused(form, error), status=error.status_code, group=group
        )
    return admin.redirect(path, flash=f"Group {name} saved.")


async def group_preview(admin: Admin) -> JSONResponse:
    """How many contacts the posted conditions match now: {count}, or {error, path} (400)."""
    try:
        tree = _read_conditions(admin.field("conditions"))
        count = await admin.hub.read(lambda s: groups.preview_count(s, tree))
    except HubError as error:
        return JSONResponse(
            {"error": error.message, "code": error.code, "path": error.field or ""},
            status_code=error.status_code,
        )
    return JSONResponse({"count": count})


# -- one group: members, export, rebuild, add and remove --------------------------------------


@dataclass
class Described:
    """A condition node in words, with the nodes under it (an all, any or not)."""

    text: str
    items: list[Described] = field(default_factory=list)


FIELD_TESTS = {
    "equals": "is",
    "contains": "contains",
    "starts_with": "starts with",
    "ends_with": "ends with",
    "in": "is one of",
    "before": "is before",
    "after": "is after",
}
EMAIL_EVENTS = {
    "opened": "Opened",
    "clicked": "Clicked in",
    "subscribed": "Is subscribed to",
    "unsubscribed": "Unsubscribed from",
}


def _quoted(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(_quoted(item) for item in value)
    return f"“{value}”" if isinstance(value, str) else str(value)


def describe(node: object) -> Described:
    """A condition tree (as shown: groups by name) in words, for a group's page."""
    if not isinstance(node, dict):
        return Described(json.dumps(node, ensure_ascii=False))
    if node in ({"all": []}, {"any": []}):
        return Described("Every contact (no conditions)" if "all" in node else "No contact")
    if isinstance(node.get("all"), list):
        return Described("All of these:", [describe(item) for item in node["all"]])
    if isinstance(node.get("any"), list):
        return Described("Any of these:", [describe(item) for item in node["any"]])
    if "not" in node:
        return Described("Not this:", [describe(node["not"])])
    parts: list[str]
    if "field" in node:
        label = FIELD_LABELS.get(str(node["field"]), str(node["field"]))
        op = str(node.get("op"))
        if op == "is_empty":
            return Described(f"{label} is empty")
        if op == "within_days":
            return Described(f"{label} is within the last {node.get('value')} days")
        return Described(f"{label} {FIELD_TESTS.get(op, op)} {_quoted(node.get('value'))}")
    if "consent" in node:
        state = {"agreed": "agreed", "revoked": "revoked", "never": "never answered"}
        text = f"Consent {node['consent']}: {state.get(str(node.get('state')), node.get('state'))}"
        if node.get("revision") is not None:
            text += f" to revision {node['revision']}"
        return Described(text)
    if "activity" in node:
        parts = [f"Activity {node['activity']}"]
        if node.get("url_contains") is not None:
            parts.append(f"URL contains {_quoted(node['url_contains'])}")
        if node.get("value_equals") is not None:
            parts.append(f"value is {_quoted(node['value_equals'])}")
        if node.get("channel") is not None:
            parts.append(f"on {node['channel']}")
        at_least = node.get("at_least", 1)
        parts.append("at least once" if at_least == 1 else f"at least {at_least} times")
        if node.get("within_days") is not None:
            parts.append(f"in the last {node['within_days']} days")
        if isinstance(node.get("between"), list) and len(node["between"]) == 2:
            parts.append(f"between {node['between'][0]} and {node['between'][1]}")
        return Described(", ".join(parts))
    if "email" in node:
        event = str(node["email"])
        parts = [f"{EMAIL_EVENTS.get(event, event)} {node.get('newsletter')}"]
        if node.get("issue") is not None:
            parts.append(f"issue {node['issue']}")
        if event in ("opened", "clicked"):
            parts.append("people only" if node.get("human_only", True) else "people and machines")
        if node.get("within_days") is not None:
            parts.append(f"in the last {node['within_days']} days")
        return Described(", ".join(parts))
    if "group" in node:
        return Described(f"Member of the group {node['group']}")
    return Described(json.dumps(node, ensure_ascii=False))


@dataclass
class MembersChange:
    """What adding or removing members did, as the page reports it."""

    verb: str
    done: int
    unchanged: int
    problems: list[groups.ItemProblem]


async def _show_page(
    admin: Admin,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    change: MembersChange | None = None,
) -> Response:
    key = _key(admin)
    after = admin.param("after") or None

    def work(session: Session) -> dict[str, Any]:
        found = find_group(session, key)
        members = groups.members_page(session, found.name, cursor=after, limit=MEMBERS_PAGE)
        context = {
            "group": found,
            "members": members,
            "count": groups.member_count(session, found.id),
            "conditions": shown_conditions(session, found),
        }
        session.expunge_all()
        return context

    context = await admin.hub.read(work)
    base = group_path(context["group"])
    next_cursor = context["members"].next_cursor
    return admin.render(
        "groups/show.html",
        status,
        base=base,
        first_url=f"{base}#members" if after else None,
        next_url=f"{base}?{urlencode({'after': next_cursor})}#members" if next_cursor else None,
        conditions_text=(
            _conditions_text(context["conditions"]) if context["conditions"] is not None else ""
        ),
        described=describe(context["conditions"]) if context["conditions"] is not None else None,
        errors=errors or {},
        values=values or {},
        change=change,
        problems_shown=PROBLEMS_SHOWN,
        max_items=groups.MAX_ITEMS,
        **context,
    )


async def group_show(admin: Admin) -> Response:
    """A group: details, conditions, members, and what can be done with them."""
    return await _show_page(admin)


async def group_rebuild(admin: Admin) -> Response:
    """Compute the group's members again from scratch (recorded in their history)."""
    group = (await _group(admin)).group

    def work(session: Session) -> Any:
        return groups.rebuild_group(session, group.name, actor=admin.actor)

    report = await admin.hub.write(work)
    return admin.redirect(
        group_path(group),
        flash=f"Rebuilt: {report.entered:,} contacts entered, {report.left:,} left.",
    )


async def group_export(admin: Admin) -> Response:
    """Download the members as CSV (recorded in the audit log, like a contact's export)."""
    group = (await _group(admin)).group

    def work(session: Session) -> str:
        members = groups.iter_members(session, group.name, actor=admin.actor)
        return csv_header() + "".join(member_line(member) for member in members)

    text = await admin.hub.write(work)
    filename = quote(f"group-{group.name}.csv")
    return Response(
        text,
        media_type=MEDIA_TYPE,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{filename}"},
    )


def split_contacts(text: str) -> list[str]:
    """GUIDs or addresses typed one a line (or separated by commas, semicolons or spaces)."""
    for separator in ",;\t":
        text = text.replace(separator, " ")
    return [item for item in text.split() if item]


def contacts_in_csv(upload: UploadFile) -> list[str]:
    """The GUIDs or addresses of an uploaded CSV: its `guid`, `email` or `contact` column
    (the first column when the file has no such header), one a row."""
    raw = upload.file.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInput(
            f"The file is not UTF-8 text (byte {error.start}): save the CSV as UTF-8.",
            code="invalid_csv",
            field="file",
        ) from None
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = [row for row in csv.reader(io.StringIO(text), dialect) if any(c.strip() for c in row)]
    if not rows:
        raise InvalidInput("The file has no rows.", code="invalid_csv", field="file")
    header = [cell.strip().lower() for cell in rows[0]]
    column = next((header.index(n) for n in ("guid", "contact", "email") if n in header), None)
    if column is None:
        column, body = 0, rows
    else:
        body = rows[1:]
    return [row[column].strip() for row in body if len(row) > column and row[column].strip()]


async def _change_members(
    admin: Admin, items: list[str], *, add: bool, field: str = "contacts"
) -> Response:
    group = (await _group(admin)).group
    if not items:
        return await _show_page(
            admin,
            status=400,
            errors={"contacts": "Type at least one contact GUID or email address."},
        )

    def work(session: Session) -> MembersChange:
        if add:
            report = groups.add_members(session, group.name, items, actor=admin.actor)
            return MembersChange("added", report.added, report.already_members, report.problems)
        removed = groups.remove_members(session, group.name, items, actor=admin.actor)
        return MembersChange("removed", removed.removed, removed.not_members, removed.problems)

    try:
        change = await admin.hub.write(work)
    except HubError as error:
        if error.status_code == 404:
            raise
        return await _show_page(
            admin,
            status=error.status_code,
            errors={field: error.message},
            values={"contacts": admin.field("contacts")},
        )
    if not change.problems:
        noun = "contact" if change.done == 1 else "contacts"
        return admin.redirect(group_path(group), flash=f"{change.done:,} {noun} {change.verb}.")
    return await _show_page(admin, change=change)


async def group_add_members(admin: Admin) -> Response:
    """Add the contacts typed (GUIDs or addresses) to a static group."""
    return await _change_members(admin, split_contacts(admin.field("contacts")), add=True)


async def group_remove_members(admin: Admin) -> Response:
    """Remove the contacts typed (or the one of a member's row) from a static group."""
    return await _change_members(admin, split_contacts(admin.field("contacts")), add=False)


async def group_import_members(admin: Admin) -> Response:
    """Add the contacts of an uploaded CSV file to a static group."""
    await _group(admin)  # a 404 before reading the file
    upload = admin.form.get("file") if admin.form is not None else None
    if not isinstance(upload, UploadFile) or not upload.filename:
        return await _show_page(admin, status=400, errors={"file": "Choose a CSV file."})
    try:
        items = await anyio.to_thread.run_sync(contacts_in_csv, upload)
    except HubError as error:
        return await _show_page(admin, status=error.status_code, errors={"file": error.message})
    finally:
        await upload.close()
    if not items:
        return await _show_page(admin, status=400, errors={"file": "The file names no contact."})
    return await _change_members(admin, items, add=True, field="file")


# -- delete ------------------------------------------------------------------------------------


async def _delete_page(
    admin: Admin, *, status: int = 200, errors: dict[str, str] | None = None
) -> Response:
    def work(session: Session) -> dict[str, Any]:
        found = find_group(session, _key(admin))
        context = {"group": found, "count": groups.member_count(session, found.id)}
        session.expunge_all()
        return context

    context = await admin.hub.read(work)
    return admin.render(
        "groups/delete.html",
        status,
        base=group_path(context["group"]),
        errors=errors or {},
        **context,
    )


async def group_delete_form(admin: Admin) -> Response:
    """Ask before deleting a group."""
    return await _delete_page(admin)


async def group_delete(admin: Admin) -> Response:
    """Delete the group (its members stay contacts); refused while something uses it."""
    group = (await _group(admin)).group
    try:
        await admin.hub.write(lambda s: groups.delete_group(s, group.name, actor=admin.actor))
    except HubError as error:
        if error.status_code == 404:
            raise
        return await _delete_page(admin, status=error.status_code, errors=form_errors(error))
    return admin.redirect(LIST_PATH, flash=f"Group {group.name} deleted.")


routes = [
    Route(LIST_PATH, page(group_list), methods=["GET"]),
    # Before /admin/groups/{key}, which would otherwise take `new` for a group.
    Route(NEW_PATH, page(group_new_form), methods=["GET"]),
    Route(NEW_PATH, page(group_create), methods=["POST"]),
    Route(PREVIEW_PATH, page(group_preview), methods=["POST"]),
    Route(LIST_PATH + "/{key}", page(group_show), methods=["GET"]),
    Route(LIST_PATH + "/{key}/edit", page(group_edit_form), methods=["GET"]),
    Route(LIST_PATH + "/{key}/edit", page(group_update), methods=["POST"]),
    Route(LIST_PATH + "/{key}/rebuild", page(group_rebuild), methods=["POST"]),
    Route(LIST_PATH + "/{key}/export", page(group_export), methods=["POST"]),
    Route(LIST_PATH + "/{key}/members", page(group_add_members), methods=["POST"]),
    Route(LIST_PATH + "/{key}/members/remove", page(group_remove_members), methods=["POST"]),
    Route(LIST_PATH + "/{key}/import", page(group_import_members, files=1), methods=["POST"]),
    Route(LIST_PATH + "/{key}/delete", page(group_delete_form), methods=["GET"]),
    Route(LIST_PATH + "/{key}/delete", page(group_delete), methods=["POST"]),
]
