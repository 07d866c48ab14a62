"""The public subscription pages and API (no sign-in: people and websites use them).

- `GET /subscribe/{newsletter guid}`: the form (changes nothing). `POST` with a form body
  (`application/x-www-form-urlencoded`) subscribes and shows the outcome; with a JSON body
  (`application/json`: `email`, `first_name`?, `last_name`?, `language`?) it is the public JSON
  API: 202 `{"status": "pending_confirmation", ...}` (double opt-in) or 200
  `{"status": "subscribed", ...}`; errors are JSON (`invalid_email`, `invalid_name`,
  `invalid_json`, `unknown_newsletter`, `unsupported_media_type`, `body_too_large`,
  `confirmation_not_sent`).
- `GET|POST /subscribe/confirm?newsletter=&email=&revision=&language=&sent=&hash=`: the
  confirmation link (see `optin`). A GET confirms at once unless the visit looks like a link
  scanner's (`email.machine.classify`, link rules without the timing rule: people wait for
  this email and click it within seconds); then it shows a button that POSTs to the same URL.
- `GET|POST /contacthub/preferences?issueguid=&email=&hash=`: the preference page
  (`preferences`).

The form carries a signed token made by its GET (valid for a day): a POST from anywhere else
is refused, so another site cannot drive visitors' browsers into subscribing addresses. The
confirmation and preference links are credentials of their own (HMAC-signed): their POSTs need
no session and so offer nothing to ride on.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import cache
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
import jinja2
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from contacthub.email.api import read_fields
from contacthub.email.endpoints import error_page
from contacthub.email.hashing import Purpose
from contacthub.email.machine import HitKind, classify
from contacthub.email.pages import PRIVATE_PAGE, TrackingParams, parse_networks, request_client_ip
from contacthub.errors import HubError, InvalidInput, UnsupportedMediaType
from contacthub.http import json_response, read_body
from contacthub.hub import Hub, hub_of
from contacthub.subscriptions import optin, preferences
from contacthub.subscriptions.optin import ConfirmLink, Subscription, Visitor
from contacthub.subscriptions.preferences import PreferenceLink

MAX_BODY = 16_384
FORM_TOKEN_SECONDS = 86_400
FORM_FIELDS = ("email", "first_name", "last_name")


@cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [
                jinja2.PackageLoader("contacthub.subscriptions", "templates"),
                jinja2.PackageLoader("contacthub.email", "templates"),
            ]
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def page(template: str, status: int = 200, **context: Any) -> Response:
    """One of the public pages, never cached, its URL never sent on as a Referer."""
    body = _templates().get_template(template).render(**context)
    return HTMLResponse(body, status, PRIVATE_PAGE)


def visitor_of(request: Request) -> Visitor:
    """The person (or machine) behind a request, as the agreement's evidence records it."""
    trusted = parse_networks(hub_of(request).settings.trusted_proxies)
    return Visitor(
        ip=request_client_ip(request.scope, trusted),
        user_agent=request.headers.get("user-agent"),
        method=request.method,
    )


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


# -- the form and the JSON API ------------------------------------------------------------------


def form_token(hub: Hub, guid: str, now: int | None = None) -> str:
    """`<unix time>.<hash>`: proves that the form was fetched from here, recently."""
    issued = str(int(time.time()) if now is None else now)
    return f"{issued}.{hub.link_signer.sign_parts(Purpose.SUBSCRIBE_FORM, guid, issued)}"


def form_token_valid(hub: Hub, guid: str, token: str) -> bool:
    issued, _, digest = token.partition(".")
    if not issued.isdigit() or len(issued) > 12:
        return False
    if not 0 <= time.time() - int(issued) <= FORM_TOKEN_SECONDS:
        return False
    return hub.link_signer.verify_parts(Purpose.SUBSCRIBE_FORM, guid, [issued], digest)


async def _form_context(hub: Hub, request: Request, guid: str) -> dict[str, Any]:
    languages = optin.accepted_languages(request.headers.get("accept-language"))

    def work(session: Session) -> dict[str, Any]:
        newsletter = optin.public_newsletter(session, guid)
        consent_text = None
        if newsletter.consent_id is not None:
            consent_text = optin.shown_consent(session, newsletter, languages).short_text
        return {
            "newsletter": newsletter.name,
            "guid": str(newsletter.guid),
            "consent_text": consent_text,
        }

    return await hub.read(work)


def _form_page(hub: Hub, context: Mapping[str, Any], status: int = 200, **more: Any) -> Response:
    values: dict[str, Any] = {
        "token": form_token(hub, context["guid"]),
        "outcome": None,
        "values": {},
        "errors": {},
        "email": "",
        "resend_minutes": int(optin.RESEND_AFTER.total_seconds() // 60),
        **context,
        **more,
    }
    return page("subscribe.html", status, **values)


async def subscribe_form(request: Request) -> Response:
    """GET /subscribe/{guid}: the form; changes nothing."""
    hub = hub_of(request)
    try:
        context = await _form_context(hub, request, request.path_params["guid"])
    except HubError as error:
        return error_page(error)
    return _form_page(hub, context)


async def _subscribe(
    hub: Hub, guid: str, fields: Mapping[str, str], languages: list[str]
) -> Subscription:
    """Subscribe in one unit of work; send the confirmation (if any) after its commit."""

    def work(session: Session) -> Subscription:
        newsletter = optin.public_newsletter(session, guid)
        return optin.subscribe(
            session,
            newsletter,
            fields.get("email", ""),
            fields.get("first_name"),
            fields.get("last_name"),
            signer=hub.link_signer,
            languages=languages,
        )

    done = await hub.write(work)
    if done.confirmation is not None:
        sent = await anyio.to_thread.run_sync(
            optin.send_now, hub.database, hub.settings, done.confirmation
        )
        if not sent:
            raise optin.not_sent()
    return done


async def subscribe(request: Request) -> Response:
    """POST /subscribe/{guid}: a form body shows a page; a JSON body answers JSON."""
    hub = hub_of(request)
    guid = request.path_params["guid"]
    kind = media_type(request)
    if kind == "application/json" or kind.endswith("+json"):
        return await _subscribe_json(hub, request, guid)
    if kind not in ("application/x-www-form-urlencoded", ""):
        raise UnsupportedMediaType(
            "Send the form (application/x-www-form-urlencoded) or JSON (application/json).",
            code="unsupported_media_type",
        )
    try:
        context = await _form_context(hub, request, guid)
        body = await read_body(request, MAX_BODY)
    except HubError as error:
        return error_page(error)
    fields = _form_fields(body)
    values = {name: fields.get(name, "") for name in FORM_FIELDS}
    if not form_token_valid(hub, context["guid"], fields.get("token", "")):
        message = "This form is out of date: please send it again."
        return _form_page(hub, context, 400, values=values, errors={"form": message})
    if fields.get("website"):  # the trap field: a bot; it is told what a person would be
        return _form_page(hub, context, outcome="pending_confirmation", email=values["email"])
    languages = optin.accepted_languages(request.headers.get("accept-language"))
    try:
        done = await _subscribe(hub, context["guid"], fields, languages)
    except HubError as error:
        field = error.field or "form"
        status = error.status_code
        return _form_page(hub, context, status, values=values, errors={field: error.message})
    return _form_page(hub, context, outcome=done.status, email=done.email)


def _form_fields(body: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        fields.setdefault(name, value.replace("\0", ""))
    return fields


async def _subscribe_json(hub: Hub, request: Request, guid: str) -> Response:
    fields = read_fields(await read_body(request, MAX_BODY))
    languages = optin.accepted_languages(
        request.headers.get("accept-language"), fields.get("language")
    )
    if "email" not in fields:
        raise InvalidInput("The email address is missing.", code="invalid_email", field="email")
    done = await _subscribe(hub, guid, fields, languages)
    answer = {"status": done.status, "newsletter": done.newsletter, "email": done.email}
    return json_response(answer, 202 if done.status == "pending_confirmation" else 200)


# -- confirmation -------------------------------------------------------------------------------


def confirm_link(request: Request) -> ConfirmLink:
    values = {name.lower(): value[:2_000] for name, value in request.query_params.items()}
    return ConfirmLink(
        values.get("newsletter"),
        values.get("email"),
        values.get("revision"),
        values.get("language"),
        values.get("sent"),
        values.get("hash"),
    )


def looks_like_a_scanner(visitor: Visitor) -> bool:
    """The link rules of `email.machine.classify`, without the timing rule (see the module)."""
    verdict = classify(
        HitKind.CLICK, method=visitor.method, user_agent=visitor.user_agent, ip=visitor.ip
    )
    return verdict.is_machine


async def confirm(request: Request) -> Response:
    """GET (one click) or POST (the button) /subscribe/confirm: confirm the subscription."""
    hub = hub_of(request)
    link = confirm_link(request)
    visitor = visitor_of(request)
    hours = hub.settings.unconfirmed_subscriber_hours
    try:
        if request.method != "POST" and looks_like_a_scanner(visitor):
            found = await hub.read(
                lambda session: optin.pending(session, hub.link_signer, link, hours)
            )
            state = "already" if found.already else "ask"
            return page("confirm.html", newsletter=found.newsletter, email=found.email, state=state)

        def work(session: Session) -> optin.Confirmed:
            return optin.confirm(session, hub.link_signer, link, visitor, hours=hours)

        done = await hub.write(work)
    except HubError as error:
        return error_page(error)
    state = "already" if done.already else "confirmed"
    return page("confirm.html", newsletter=done.newsletter, email=done.email, state=state)


# -- the preference page ------------------------------------------------------------------------


def preference_link(request: Request) -> PreferenceLink:
    params = TrackingParams(request.scope["query_string"])
    return PreferenceLink(
        params.guid(Purpose.PREFERENCES), params.email(Purpose.PREFERENCES), params.hash
    )


async def preference_page(request: Request) -> Response:
    """GET shows the address's subscriptions; POST saves them (or leaves everything)."""
    hub = hub_of(request)
    link = preference_link(request)
    try:
        if request.method == "POST":
            body = await read_body(request, MAX_BODY)
            pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
            action = next((value for name, value in pairs if name == "action"), "save")
            keep = [] if action == "leave" else [v for n, v in pairs if n == "newsletter"]
            visitor = visitor_of(request)

            def work(session: Session) -> preferences.Preferences:
                return preferences.save(session, hub.link_signer, link, keep, visitor)

            found = await hub.write(work)
        else:
            found = await hub.read(
                lambda session: preferences.preferences(session, hub.link_signer, link)
            )
    except HubError as error:
        return error_page(error)
    return page(
        "preferences.html",
        email=found.email,
        choices=found.choices,
        saved=request.method == "POST",
    )


def subscription_routes() -> list[Route]:
    """The public subscription routes (the confirmation link first: its path is no GUID)."""
    return [
        Route(optin.CONFIRM_PATH, confirm, methods=["GET", "POST"]),
        Route("/subscribe/{guid}", subscribe_form, methods=["GET"]),
        Route("/subscribe/{guid}", subscribe, methods=["POST"]),
        Route("/contacthub/preferences", preference_page, methods=["GET", "POST"]),
    ]
