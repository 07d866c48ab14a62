"""Contacts pages: search, the contact page, and data protection (export, erase).

Export is a POST (a download made by a form), so that it carries the CSRF token and is recorded
in the audit log like any other change. Erasing asks for the contact's GUID or email address to
be typed first, on a page of its own.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any
from urllib.parse import urlencode

import pycountry
from sqlalchemy.orm import Session
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from contacthub.admin.web import Admin, form_errors, page
from contacthub.contacts import export, privacy, profile
from contacthub.contacts.search import (
    DEFAULT_SORT,
    FILTER_NAMES,
    ContactFilter,
    ContactPage,
    contact_count,
    filter_choices,
    parse_filter,
    search_contacts,
)
from contacthub.csv_export import MEDIA_TYPE, attachment
from contacthub.errors import HubError, NotFound
from contacthub.groups import service as groups
from contacthub.suppressions import service as suppressions
from contacthub.suppressions.service import SuppressionRow

LIST_PATH = "/admin/contacts"
# The latest group entries and exits the contact page shows.
GROUP_HISTORY = 50
# The inputs of the filter form: an error in one of them is shown next to it.
FORM_FIELDS = ("q", *FILTER_NAMES)


def _contact_path(guid: Any) -> str:
    return f"{LIST_PATH}/{guid}"


def _query(params: dict[str, Any]) -> str:
    """A query string without the empty parameters (as the templates' `query` builds them)."""
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})


def _guid(admin: Admin) -> str:
    return str(admin.request.path_params["guid"])


@cache
def countries() -> list[tuple[str, str]]:
    """Every country as (alpha-3 code, name), by name: the country filter's choices."""
    return sorted(((c.alpha_3, c.name) for c in pycountry.countries), key=lambda c: c[1].casefold())


def _typed(read: Any) -> dict[str, str]:
    """The search text and filters as typed (`read`: a query parameter or a form field)."""
    return {name: read(name) for name in FORM_FIELDS}


def _filters(typed: dict[str, str]) -> ContactFilter:
    return parse_filter(**{name: typed[name] for name in FILTER_NAMES})


async def _list_page(
    admin: Admin, typed: dict[str, str], sort: str, after: str | None, status: int = 200
) -> Response:
    """The list with the filter form; an error in the search or filters is shown on the form."""
    q = typed["q"]

    def work(session: Session) -> tuple[ContactPage, int, int]:
        filters = _filters(typed)
        found = search_contacts(session, q, sort, after, filters=filters)
        everyone = contact_count(session)
        narrowed = bool(q) or bool(filters)
        return found, contact_count(session, q, filters=filters) if narrowed else everyone, everyone

    choices = await admin.hub.read(filter_choices)
    params = {**typed, "sort": sort}
    common = {
        "typed": typed,
        "narrowed": any(typed[name] for name in FORM_FIELDS),
        "narrowed_by_filters": any(typed[name] for name in FILTER_NAMES),
        "group_options": [(name, name) for name in choices.groups],
        "consent_options": [
            (code, f"{display} ({code})" if display != code else code)
            for code, display in choices.consents
        ],
        "newsletter_options": [(name, name) for name in choices.newsletters],
        "countries": countries(),
        "country_names": dict(countries()),
    }
    try:
        found, total, everyone = await admin.hub.read(work)
    except HubError as error:
        if isinstance(error, NotFound):
            raise
        return admin.render(
            "contacts/list.html",
            400,
            contacts=[],
            total=None,
            everyone=None,
            sort=DEFAULT_SORT if error.field == "sort" else sort,
            params={**typed, "sort": DEFAULT_SORT},
            # A bad sort or cursor came from a link, not from the form.
            errors=form_errors(error) if error.field in FORM_FIELDS else {"_form": error.message},
            first_url=None,
            next_url=None,
            **common,
        )
    return admin.render(
        "contacts/list.html",
        status,
        contacts=found.contacts,
        total=total,
        everyone=everyone,
        sort=sort,
        params=params,
        errors={},
        first_url=f"{LIST_PATH}?{_query(params)}" if after else None,
        next_url=(
            f"{LIST_PATH}?{_query({**params, 'after': found.next_after})}"
            if found.next_after
            else None
        ),
        **common,
    )


async def contact_list(admin: Admin) -> Response:
    """Search and filter contacts (group, consent, newsletter, country, last activity); sorted,
    a page at a time."""
    sort = admin.param("sort") or DEFAULT_SORT
    return await _list_page(admin, _typed(admin.param), sort, admin.param("after") or None)


async def contact_list_export(admin: Admin) -> Response:
    """Download every contact the search and filters select as CSV (recorded in the audit log).

    A POST (a form with the CSRF token), since it is recorded. Streamed: each chunk of contacts
    is read when the previous one has been sent.
    """
    typed = _typed(admin.field)
    sort = admin.field("sort") or DEFAULT_SORT

    def start(session: Session) -> export.ListExport:
        return export.start_list_export(
            session, typed["q"], sort, _filters(typed), actor=admin.actor
        )

    try:
        started = await admin.hub.write(start)
    except HubError as error:
        if isinstance(error, NotFound):
            raise
        return await _list_page(admin, typed, sort, None, 400)
    return StreamingResponse(
        export.stream(admin.hub.read, started),
        media_type=MEDIA_TYPE,
        headers=attachment(started.filename),
    )


async def contact_detail(admin: Admin) -> Response:
    """One contact: fields, consents and their history, groups and their history, timeline,
    email engagement."""
    guid = _guid(admin)
    before = profile.check_before(admin.param("before"))

    def work(
        session: Session,
    ) -> tuple[profile.ContactProfile, list[Any], list[Any], SuppressionRow | None]:
        found = profile.contact_profile(session, guid, before=before)
        contact_id = profile.find_contact(session, guid).id
        memberships = groups.contact_groups(session, contact_id)
        history = groups.membership_history(session, contact_id, limit=GROUP_HISTORY)
        address = found.fields.email
        suppression = suppressions.suppression_of(session, address) if address else None
        # Rows the page shows after the unit of work ends (which expires what it loaded).
        session.expunge_all()
        return found, memberships, history, suppression

    view, memberships, history, suppression = await admin.hub.read(work)
    path = _contact_path(view.fields.guid)
    older = view.timeline.next_before
    return admin.render(
        "contacts/detail.html",
        view=view,
        memberships=memberships,
        history=history,
        suppression=suppression,
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
    Route(LIST_PATH + "/export", page(contact_list_export), methods=["POST"]),
    Route(LIST_PATH + "/{guid}", page(contact_detail), methods=["GET"]),
    Route(LIST_PATH + "/{guid}/export", page(contact_export), methods=["POST"]),
    Route(LIST_PATH + "/{guid}/erase", page(contact_erase_form), methods=["GET"]),
    Route(LIST_PATH + "/{guid}/erase", page(contact_erase), methods=["POST"]),
]
