"""Contacts pages: search, the contact page, and data protection (export, erase).

Export is a POST (a download made by a form), so that it carries the CSRF token and is recorded
in the audit log like any other change. Erasing asks for the contact's GUID or email address to
be typed first, on a page of its own.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.orm import Session
from starlette.responses import Response
from starlette.routing import Route

from contacthub.admin.web import Admin, form_errors, page
from contacthub.contacts import privacy, profile
from contacthub.contacts.search import DEFAULT_SORT, ContactPage, contact_count, search_contacts
from contacthub.errors import HubError, NotFound
from contacthub.groups import service as groups

LIST_PATH = "/admin/contacts"
# The latest group entries and exits the contact page shows.
GROUP_HISTORY = 50


def _contact_path(guid: Any) -> str:
    return f"{LIST_PATH}/{guid}"


def _query(params: dict[str, Any]) -> str:
    """A query string without the empty parameters (as the templates' `query` builds them)."""
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})


def _guid(admin: Admin) -> str:
    return str(admin.request.path_params["guid"])


async def contact_list(admin: Admin) -> Response:
    """Search contacts by name, email or GUID; sorted, a page at a time."""
    q = admin.param("q")
    sort = admin.param("sort") or DEFAULT_SORT
    after = admin.param("after") or None

    def work(session: Session) -> tuple[ContactPage, int, int]:
        found = search_contacts(session, q, sort, after)
        everyone = contact_count(session)
        return found, contact_count(session, q) if q else everyone, everyone

    params = {"q": q, "sort": sort}
    try:
        found, total, everyone = await admin.hub.read(work)
    except HubError as error:
        if error.status_code == 404:
            raise
        return admin.render(
            "contacts/list.html",
            400,
            contacts=[],
            total=None,
            everyone=None,
            q=q,
            sort=DEFAULT_SORT if error.field == "sort" else sort,
            params={"q": q, "sort": DEFAULT_SORT},
            # Only the search box is on the form; a bad sort or cursor came from a link.
            errors=form_errors(error) if error.field == "q" else {"_form": error.message},
            first_url=None,
            next_url=None,
        )
    return admin.render(
        "contacts/list.html",
        contacts=found.contacts,
        total=total,
        everyone=everyone,
        q=q,
        sort=sort,
        params=params,
        errors={},
        first_url=f"{LIST_PATH}?{_query(params)}" if after else None,
        next_url=(
            f"{LIST_PATH}?{_query({**params, 'after': found.next_after})}"
            if found.next_after
            else None
        ),
    )


async def contact_detail(admin: Admin) -> Response:
    """One contact: fields, consents and their history, groups and their history, timeline,
    email engagement."""
    guid = _guid(admin)
    before = profile.check_before(admin.param("before"))

    def work(session: Session) -> tuple[profile.ContactProfile, list[Any], list[Any]]:
        found = profile.contact_profile(session, guid, before=before)
        contact_id = profile.find_contact(session, guid).id
        memberships = groups.contact_groups(session, contact_id)
        history = groups.membership_history(session, contact_id, limit=GROUP_HISTORY)
        # Rows the page shows after the unit of work ends (which expires what it loaded).
        session.expunge_all()
        return found, memberships, history

    view, memberships, history = await admin.hub.read(work)
    path = _contact_path(view.fields.guid)
    older = view.timeline.next_before
    return admin.render(
        "contacts/detail.html",
        view=view,
        memberships=memberships,
        history=history,
        group_history_limit=GROUP_HISTORY,
        contact_path=path,
        latest_url=path if before is not None else None,
        older_url=f"{path}?{_query({'before': older})}#timeline" if older else None,
    )


async def contact_export(admin: Admin) -> Response:
    """Download everything stored about the contact as JSON (recorded in the audit log)."""
    guid = _guid(admin)
    data = await admin.hub.write(lambda s: privacy.export_contact(s, guid, admin.actor))
    name = data["contact"]["guid"]
    return Response(
        json.dumps(data, indent=2, ensure_ascii=False),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="contact-{name}.json"'},
    )


async def _erase_page(
    admin: Admin, status: int = 200, typed: str = "", errors: dict[str, str] | None = None
) -> Response:
    guid = _guid(admin)
    preview = await admin.hub.read(lambda s: privacy.erasure_preview(s, guid))
    return admin.render(
        "contacts/erase.html",
        status,
        preview=preview,
        contact_path=_contact_path(preview.guid),
        typed=typed,
        errors=errors or {},
    )


async def contact_erase_form(admin: Admin) -> Response:
    """Ask for confirmation before erasing a contact."""
    return await _erase_page(admin)


async def contact_erase(admin: Admin) -> Response:
    """Erase the contact and all its data, once its GUID or email address is typed."""
    guid = _guid(admin)
    typed = admin.field("confirm")
    try:
        erasure = await admin.hub.write(
            lambda s: privacy.erase_confirmed(s, guid, typed, admin.actor)
        )
    except NotFound:
        raise
    except HubError as error:
        return await _erase_page(admin, 400, typed, form_errors(error))
    return admin.redirect(
        LIST_PATH,
        flash=f"Contact {erasure.guid} was erased with all its data "
        f"({erasure.activities} activities, {erasure.subscriptions} subscriptions).",
    )


routes = [
    Route(LIST_PATH, page(contact_list), methods=["GET"]),
    Route(LIST_PATH + "/{guid}", page(contact_detail), methods=["GET"]),
    Route(LIST_PATH + "/{guid}/export", page(contact_export), methods=["POST"]),
    Route(LIST_PATH + "/{guid}/erase", page(contact_erase_form), methods=["GET"]),
    Route(LIST_PATH + "/{guid}/erase", page(contact_erase), methods=["POST"]),
]
