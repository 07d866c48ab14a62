"""Consent pages: the list, a new consent, and one consent's texts and revisions.

Consent texts are HTML written by admins. The pages show them as escaped source and as a
preview inside a sandboxed iframe (`srcdoc` is escaped attribute text; the sandbox runs no
script and gives the preview an origin of its own): never as markup of the page itself.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from sqlalchemy.orm import Session
from starlette.responses import Response
from starlette.routing import Route

from contacthub.admin.web import Admin, form_errors, page
from contacthub.consents import service as consents
from contacthub.errors import HubError
from contacthub.identifiers import whole_number


def consent_path(code_name: str) -> str:
    """The page of a consent.

    A consent whose code name is exactly `new` would be shadowed by the new-consent form;
    code names are matched case-insensitively, so its page is reached as `NEW`.
    """
    return f"/admin/consents/{'NEW' if code_name == 'new' else code_name}"


async def consent_list(admin: Admin) -> Response:
    """Every consent, with its current revision, languages and agreed contacts."""
    rows = await admin.hub.read(consents.summaries)
    return admin.render("consents/list.html", consents=rows, consent_path=consent_path)


async def consent_new_form(admin: Admin) -> Response:
    """The form for a new consent."""
    return admin.render("consents/new.html", values={}, errors={})


async def consent_create(admin: Admin) -> Response:
    """Create a consent with its first text, in its default language."""
    values = {name: admin.field(name) for name in ("code_name", "display_name", "language")}
    values["short_text"] = _text(admin, "short_text")
    values["full_text"] = _text(admin, "full_text")

    def work(session: Session) -> str:
        consent = consents.create_consent(
            session,
            values["code_name"],
            language=values["language"],
            short_text=values["short_text"],
            full_text=values["full_text"],
            display_name=values["display_name"] or None,
            actor=admin.actor,
        )
        return consent.code_name

    try:
        code_name = await admin.hub.write(work)
    except HubError as error:
        return admin.render("consents/new.html", 400, values=values, errors=form_errors(error))
    return admin.redirect(consent_path(code_name), flash=f"Consent {code_name} created.")


def _text(admin: Admin, name: str) -> str:
    """A text area's value as typed (not stripped): consent texts are HTML the admin wrote.

    Browsers send a text area's line breaks as CRLF; they are stored as LF, the way the API
    and the command line send them, so that saving unchanged texts is seen as unchanged.
    """
    value = admin.form.get(name) if admin.form is not None else None
    return value.replace("\r\n", "\n") if isinstance(value, str) else ""


async def _detail_page(
    admin: Admin,
    code_name: str,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    """The consent page; `values` and `errors` refill a form that was refused."""
    language = admin.param("language")
    revision_param = admin.param("revision")

    def work(session: Session) -> tuple[consents.ConsentDetail, list[consents.ConsentTexts]]:
        found = consents.detail(session, code_name)
        shown = found.texts
        number = whole_number(revision_param)
        if number is not None and number != found.summary.revision:
            shown = consents.revision_texts(session, code_name, number)
        return found, shown

    found, shown = await admin.hub.read(work)
    selected = next((t for t in shown if t.language.lower() == language.lower()), None)
    selected = selected or (shown[0] if shown else None)
    current = next((t for t in found.texts if selected and t.language == selected.language), None)
    context: dict[str, Any] = {
        "consent": found.summary,
        "revisions": found.revisions,
        "shown": shown,
        "selected": selected,
        "language_options": [(name, name) for name in found.summary.languages],
        "viewing_old": bool(shown) and shown[0].revision != found.summary.revision,
        "consent_path": consent_path(found.summary.code_name),
        "errors": errors or {},
        # The edit form starts from the current texts of the language on screen; a refused
        # form comes back as it was submitted.
        "values": {
            "language": current.language if current else "",
            "short_text": current.short_text if current else "",
            "full_text": current.full_text if current else "",
            "default_language": found.summary.default_language,
            **(values or {}),
        },
    }
    return admin.render("consents/detail.html", status, **context)


async def consent_detail(admin: Admin) -> Response:
    """One consent: its texts per language, its revisions, and the forms to change them."""
    return await _detail_page(admin, str(admin.request.path_params["code"]))


async def consent_set_text(admin: Admin) -> Response:
    """Add or change one language's texts: a new revision."""
    code_name = str(admin.request.path_params["code"])
    values = {
        "language": admin.field("language"),
        "short_text": _text(admin, "short_text"),
        "full_text": _text(admin, "full_text"),
    }

    def work(session: Session) -> tuple[str, consents.TextChange]:
        change = consents.set_text(
            session,
            code_name,
            language=values["language"],
            short_text=values["short_text"],
            full_text=values["full_text"],
            actor=admin.actor,
        )
        return consents.get_consent(session, code_name).code_name, change

    try:
        found_code, change = await admin.hub.write(work)
    except HubError as error:
        if error.status_code == 404:
            raise
        return await _detail_page(
            admin, code_name, status=400, errors=form_errors(error), values=values
        )
    target = f"{consent_path(found_code)}?{urlencode({'language': values['language']})}"
    if not change.changed:
        return admin.redirect(
            target,
            flash=f"Nothing changed: the texts are those of revision {change.revision.number}.",
        )
    return admin.redirect(target, flash=f"Saved as revision {change.revision.number}.")


async def consent_set_default_language(admin: Admin) -> Response:
    """Make another language with texts the consent's default."""
    code_name = str(admin.request.path_params["code"])
    language = admin.field("default_language")

    def work(session: Session) -> str:
        consent = consents.set_default_language(session, code_name, language, actor=admin.actor)
        return consent.code_name

    try:
        found_code = await admin.hub.write(work)
    except HubError as error:
        if error.status_code == 404:
            raise
        return await _detail_page(
            admin,
            code_name,
            status=400,
            errors=form_errors(error),
            values={"default_language": language},
        )
    return admin.redirect(consent_path(found_code), flash=f"Default language is now {language}.")


routes = [
    Route("/admin/consents", page(consent_list), methods=["GET"]),
    # Before /admin/consents/{code}, which would otherwise take `new` for a code name.
    Route("/admin/consents/new", page(consent_new_form), methods=["GET"]),
    Route("/admin/consents/new", page(consent_create), methods=["POST"]),
    Route("/admin/consents/{code}", page(consent_detail), methods=["GET"]),
    Route("/admin/consents/{code}/texts", page(consent_set_text), methods=["POST"]),
    Route(
        "/admin/consents/{code}/default-language",
        page(consent_set_default_language),
        methods=["POST"],
    ),
]
