"""Admin pages for newsletters and their subscribers (issues are in `admin/issues.py`).

- `/admin/newsletters`: every newsletter with its counts; `/admin/newsletters/new` creates one.
- `/admin/newsletters/{key}` (GUID or name): details, recent issues, the subscription settings
  (double opt-in, consent, tracking consent) and the public form's address, the subscribers
  (keyset paged, filtered by status and address), a form to add one (on a double opt-in
  newsletter: send the confirmation email, or vouch that the person confirmed), a button to
  unsubscribe one, and a CSV upload that imports subscribers and lists the rows it skipped
  and why.
"""

from __future__ import annotations

import io
from typing import Any, TypeVar
from urllib.parse import urlencode

import anyio.to_thread
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile
from starlette.responses import Response
from starlette.routing import Route

from contacthub.admin.web import Admin, form_errors, page
from contacthub.consents import service as consents
from contacthub.email import importer, overview, service
from contacthub.email.importer import ImportReport
from contacthub.email.repository import SUBSCRIBER_STATES, UNSUBSCRIBED
from contacthub.errors import HubError, InvalidInput
from contacthub.identifiers import parse_cursor
from contacthub.storage.database import Database
from contacthub.subscriptions import optin

NEWSLETTER_FIELDS = ("name", "sender_name", "sender_email", "base_url")
SUBSCRIBER_FIELDS = ("email", "first_name", "last_name")
BAD_ROWS_SHOWN = 200
T = TypeVar("T")


def detached(session: Session, value: T) -> T:
    """`value`, its rows detached from the session as loaded.

    A read unit of work ends with a rollback, which expires the rows it loaded; the page is
    rendered after it, so the rows a page shows leave the session first.
    """
    session.expunge_all()
    return value


def cursor(admin: Admin, name: str) -> int | None:
    """A keyset cursor from a query parameter (a newsletter, subscriber or issue id); None when
    missing, 400 when malformed or beyond any id."""
    return parse_cursor(admin.param(name), name, code="invalid_parameter")


def newsletter_path(guid: object) -> str:
    return f"/admin/newsletters/{guid}"


# -- newsletters ---------------------------------------------------------------------------------


async def newsletters(admin: Admin) -> Response:
    """Every newsletter with its subscribers and issues."""
    rows = await admin.hub.read(lambda s: detached(s, overview.newsletter_summaries(s)))
    return admin.render("email/newsletters.html", rows=rows)


async def new_newsletter(admin: Admin) -> Response:
    """The form that creates a newsletter."""
    return admin.render("email/newsletter_new.html", values={}, errors={})


async def create_newsletter(admin: Admin) -> Response:
    """Create a newsletter; on a mistake, the form again with the message by the field."""
    values = {name: admin.field(name) for name in NEWSLETTER_FIELDS}

    def work(session: Session) -> tuple[str, str]:
        newsletter = service.create_newsletter(
            session,
            values["name"],
            values["sender_name"],
            values["sender_email"],
            values["base_url"],
            actor=admin.actor,
        )
        return str(newsletter.guid), newsletter.name

    try:
        guid, name = await admin.hub.write(work)
    except HubError as error:
        return admin.render(
            "email/newsletter_new.html",
            status=error.status_code,
            values=values,
            errors=form_errors(error),
        )
    return admin.redirect(newsletter_path(guid), flash=f"Newsletter {name} created.")


async def newsletter(admin: Admin) -> Response:
    """A newsletter: details, recent issues and subscribers."""
    return await _newsletter_page(admin)


async def _newsletter_page(
    admin: Admin,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    report: ImportReport | None = None,
    import_errors: dict[str, str] | None = None,
) -> Response:
    key = str(admin.request.path_params["key"])
    wanted = admin.param("status")
    search = admin.param("q")[:254]
    before, after = cursor(admin, "before"), cursor(admin, "after")

    def work(session: Session) -> dict[str, Any]:
        found = overview.find_newsletter(session, key)
        return detached(
            session,
            {
                "summary": overview.newsletter_summary(session, found),
                "options": service.newsletter_settings(session, found),
                "consents": [
                    (c.code_name, f"{c.display_name} ({c.code_name})")
                    for c in consents.list_consents(session)
                ],
                "subscribers": overview.subscriber_page(
                    session,
                    found,
                    status=wanted if wanted in SUBSCRIBER_STATES else None,
                    search=search,
                    before=before,
                    after=after,
                ),
                "issues": overview.issue_page(session, newsletter=found, limit=5).items,
            },
        )

    context = await admin.hub.read(work)
    base = newsletter_path(context["summary"].newsletter.guid)
    params = {"status": wanted, "q": search}

    def link(**changes: int | None) -> str:
        merged = {k: v for k, v in {**params, **changes}.items() if v not in (None, "")}
        return f"{base}?{urlencode(merged)}#subscribers" if merged else f"{base}#subscribers"

    page_of = context["subscribers"]
    newsletter = context["summary"].newsletter
    return admin.render(
        "email/newsletter.html",
        status=status,
        base=base,
        form_url=f"{newsletter.base_url}/subscribe/{newsletter.guid}",
        states=SUBSCRIBER_STATES,
        filters=params,
        newer_url=link(after=page_of.newer) if page_of.newer is not None else None,
        older_url=link(before=page_of.older) if page_of.older is not None else None,
        errors=errors or {},
        values=values or {},
        report=report,
        bad_rows_shown=BAD_ROWS_SHOWN,
        import_errors=import_errors or {},
        **context,
    )


# -- subscribers ---------------------------------------------------------------------------------


async def _newsletter_name(admin: Admin) -> tuple[str, str]:
    """(name, GUID) of the newsletter the path names."""
    key = str(admin.request.path_params["key"])

    def work(session: Session) -> tuple[str, str]:
        found = overview.find_newsletter(session, key)
        return found.name, str(found.guid)

    return await admin.hub.read(work)


async def save_settings(admin: Admin) -> Response:
    """Change the subscription settings: double opt-in, consent, tracking consent."""
    name, guid = await _newsletter_name(admin)
    values = {
        field: admin.field(field) for field in ("double_opt_in", "consent", "tracking_consent")
    }

    def work(session: Session) -> None:
        service.update_newsletter(
            session,
            name,
            double_opt_in=values["double_opt_in"] == "yes",
            consent=values["consent"],
            tracking_consent=values["tracking_consent"],
            actor=admin.actor,
        )

    try:
        await admin.hub.write(work)
    except HubError as error:
        errors = {f"settings_{k}": v for k, v in form_errors(error).items()}
        return await _newsletter_page(admin, status=error.status_code, errors=errors)
    return admin.redirect(newsletter_path(guid), flash="Subscription settings saved.")


async def add_subscriber(admin: Admin) -> Response:
    """Subscribe an address (again, if it had unsubscribed); on a double opt-in newsletter,
    send the confirmation email unless the operator says the person confirmed."""
    name, guid = await _newsletter_name(admin)
    values = {field: admin.field(field) for field in (*SUBSCRIBER_FIELDS, "confirmation")}
    hub = admin.hub

    def work(session: Session) -> tuple[str, optin.Confirmation | None, str]:
        subscriber, confirmation = optin.add_subscriber(
            session,
            name,
            values["email"],
            values["first_name"],
            values["last_name"],
            confirmed=values["confirmation"] == "confirmed",
            signer=hub.link_signer,
            actor=admin.actor,
        )
        return subscriber.email, confirmation, subscriber.status

    try:
        email, confirmation, status = await hub.write(work)
        if confirmation is not None:
            sent = await anyio.to_thread.run_sync(
                optin.send_now, hub.database, hub.settings, confirmation
            )
            if not sent:
                raise optin.not_sent()
    except HubError as error:
        return await _newsletter_page(
            admin, status=error.status_code, errors=form_errors(error), values=values
        )
    if status == "unconfirmed":
        message = (
            f"{email} is unconfirmed: the confirmation email went out."
            if confirmation is not None
            else f"{email} is unconfirmed: a confirmation email went out within the last"
            f" {int(optin.RESEND_AFTER.total_seconds() // 60)} minutes (or the address is"
            " suppressed)."
        )
        return admin.redirect(newsletter_path(guid), flash=message)
    return admin.redirect(newsletter_path(guid), flash=f"{email} is subscribed.")


async def unsubscribe(admin: Admin) -> Response:
    """Unsubscribe an address, as if the person had used the link in an email."""
    name, guid = await _newsletter_name(admin)
    email = admin.field("email")

    def work(session: Session) -> str:
        subscriber = service.get_subscriber(session, name, email)
        if subscriber.status == UNSUBSCRIBED:
            return f"{subscriber.email} had already unsubscribed."
        service.unsubscribe(session, subscriber, actor=admin.actor)
        return f"{subscriber.email} is unsubscribed."

    message = await admin.hub.write(work)
    return admin.redirect(newsletter_path(guid), flash=message)


def import_upload(database: Database, name: str, upload: UploadFile, actor: str) -> ImportReport:
    """Import the uploaded CSV (in a worker thread: it commits chunk by chunk)."""
    stream = io.TextIOWrapper(upload.file, encoding="utf-8-sig", newline="")
    try:
        return importer.import_csv(database, name, stream, actor=actor)
    except UnicodeDecodeError as error:
        raise InvalidInput(
            f"The file is not UTF-8 text (byte {error.start}): save the CSV as UTF-8.",
            code="invalid_csv",
            field="file",
        ) from None
    finally:
        stream.detach()  # the upload's own file is closed by its owner


async def import_subscribers(admin: Admin) -> Response:
    """Import subscribers from an uploaded CSV; the page lists the rows skipped and why."""
    name, _ = await _newsletter_name(admin)
    upload = admin.form.get("file") if admin.form is not None else None
    if not isinstance(upload, UploadFile) or not upload.filename:
        return await _newsletter_page(
            admin, status=400, import_errors={"file": "Choose a CSV file to import."}
        )
    try:
        report = await anyio.to_thread.run_sync(
            import_upload, admin.hub.database, name, upload, admin.actor
        )
    except HubError as error:
        # The importer's own errors (no header, no email column) are about the file.
        return await _newsletter_page(
            admin, status=error.status_code, import_errors={error.field or "file": error.message}
        )
    finally:
        await upload.close()
    return await _newsletter_page(admin, report=report)


routes = [
    Route("/admin/newsletters", page(newsletters), methods=["GET"]),
    Route("/admin/newsletters/new", page(new_newsletter), methods=["GET"]),
    Route("/admin/newsletters/new", page(create_newsletter), methods=["POST"]),
    Route("/admin/newsletters/{key}", page(newsletter), methods=["GET"]),
    Route("/admin/newsletters/{key}/settings", page(save_settings), methods=["POST"]),
    Route("/admin/newsletters/{key}/subscribers", page(add_subscriber), methods=["POST"]),
    Route("/admin/newsletters/{key}/unsubscribe", page(unsubscribe), methods=["POST"]),
    Route("/admin/newsletters/{key}/import", page(import_subscribers, files=1), methods=["POST"]),
]
