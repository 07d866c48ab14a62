"""The headless email API (seed 003's REST routes), for a website's own thin handlers.

Every request carries `Authorization: Bearer <key>` with an enabled key of access `email`: these
are server-to-server calls, so the caller may tell who its visitor was (`userAgent`, `ip`,
`method`), which machine classification needs. Property and parameter names match
case-insensitively; the address goes by `email`, `recipient` or `recipientEmail`.

- `POST /v1/emails/opens` `{"issueGuid", "email", "hash", "userAgent"?, "ip"?, "method"?}`:
  `{"logged": true, "isMachine": false, "machineReason": null}`, or `{"logged": false,
  "reason": "invalid_hash" | "unknown_subscriber"}`; 404 for an unknown issue.
- `POST /v1/emails/clicks` `{"linkGuid", "email", "hash", ...}`: the same, plus `"url"`, the
  target to redirect to. A bad hash still answers the link's own target (not logged); 404 for an
  unknown link.
- `GET /v1/emails/browserviews?issueGuid=&email=&hash=`: the issue's HTML (`text/html`) as the
  recipient got it; 403 on a bad hash, 404 for an unknown issue or address.
- `GET /v1/emails/unsubscribes?issueGuid=&email=&hash=`: who the unsubscribe link names,
  `{"email", "newsletter", "unsubscribed"}`, changing nothing; `POST` with the same properties
  as JSON unsubscribes and answers the same shape.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

import msgspec
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from contacthub.activities.rules import lower_keys
from contacthub.channels.service import authenticate, hash_key
from contacthub.email import tracking
from contacthub.email.machine import HitKind
from contacthub.email.pages import BROWSER_VIEW_HEADERS, MAX_QUERY_VALUE
from contacthub.errors import InvalidInput
from contacthub.http import bearer_key, json_response, read_body, require_json
from contacthub.hub import hub_of
from contacthub.identifiers import refuse_nul
from contacthub.storage.types import utcnow

ACCESS = tracking.ACCESS
BODY_LIMIT = 16_384
EMAIL_NAMES = ("email", "recipient", "recipientemail")
_decoder = msgspec.json.Decoder()


def read_fields(body: bytes) -> dict[str, str]:
    """A JSON object's string properties, names lower-cased; none may hold a NUL character."""
    try:
        data = _decoder.decode(body)
    except msgspec.DecodeError:
        raise InvalidInput("The body is not valid JSON.", code="invalid_json") from None
    except UnicodeDecodeError:
        # msgspec raises this, not a DecodeError, for invalid UTF-8 inside a string.
        raise InvalidInput("The body is not valid UTF-8.", code="invalid_json") from None
    except RecursionError:
        # msgspec gives up on deeply nested arrays or objects; no valid body nests that deep.
        raise InvalidInput("The body is nested too deeply.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidInput("The body must be a JSON object.", code="invalid_json")
    fields = lower_keys(data, "The body")
    for name, value in fields.items():
        if value is not None and not isinstance(value, str):
            raise InvalidInput(f"{name} must be a string.", code="invalid_input")
        if value is not None:
            # Else PostgreSQL refuses the text and the writer's failure reads as a 503.
            refuse_nul(value, name)
    return {name: value for name, value in fields.items() if value is not None}


def query_fields(request: Request) -> dict[str, str]:
    """The query parameters, names lower-cased (the first of a name wins)."""
    fields: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        fields.setdefault(name.lower(), value[:MAX_QUERY_VALUE])
    return fields


def email_of(fields: Mapping[str, str]) -> str | None:
    return next((fields[name] for name in EMAIL_NAMES if name in fields), None)


def visitor_of(fields: Mapping[str, str]) -> tracking.Visitor:
    """The website's visitor, as the website describes them."""
    method = fields.get("method", "GET").strip().upper() or "GET"
    try:
        ip: str | None = str(ipaddress.ip_address(fields.get("ip", "").strip()))
    except ValueError:
        ip = None  # missing, or not an address: unknown
    return tracking.Visitor(
        user_agent=fields.get("useragent"), ip=ip, method=method[:20], at=utcnow()
    )


def hit_answer(outcome: tracking.HitOutcome) -> dict[str, Any]:
    if not outcome.logged:
        return {"logged": False, "reason": outcome.reason}
    assert outcome.verdict is not None
    return {
        "logged": True,
        "isMachine": outcome.verdict.is_machine,
        "machineReason": outcome.verdict.reason,
    }


async def _hit(request: Request, kind: HitKind) -> tracking.HitOutcome:
    hub = hub_of(request)
    key = bearer_key(request)
    require_json(request)
    fields = read_fields(await read_body(request, BODY_LIMIT))
    guid = fields.get("issueguid" if kind is HitKind.OPEN else "linkguid")
    job = tracking.hit_job(
        kind,
        guid,
        email_of(fields),
        fields.get("hash"),
        visitor_of(fields),
        key_hash=hash_key(key),
    )
    # The key is checked by the batch, inside the transaction that logs the hit.
    outcome = await hub.email_writer.submit(job)
    if outcome.error is not None:
        raise outcome.error
    return outcome


async def log_open(request: Request) -> Response:
    """POST /v1/emails/opens: log an open (what Track.ashx forwards)."""
    return json_response(hit_answer(await _hit(request, HitKind.OPEN)))


async def log_click(request: Request) -> Response:
    """POST /v1/emails/clicks: log a click; answers the URL to redirect to."""
    outcome = await _hit(request, HitKind.CLICK)
    return json_response({"url": outcome.target_url, **hit_answer(outcome)})


def _signed_link(fields: Mapping[str, str]) -> tracking.SignedLink:
    return tracking.SignedLink(fields.get("issueguid"), email_of(fields), fields.get("hash"))


async def browser_view(request: Request) -> Response:
    """GET /v1/emails/browserviews: the issue's HTML as the recipient got it."""
    hub = hub_of(request)
    key = bearer_key(request)
    link = _signed_link(query_fields(request))

    def work(session: Session) -> str:
        authenticate(session, key, ACCESS)
        return tracking.browser_view(session, hub.link_signer, link)

    return HTMLResponse(await hub.read(work), 200, BROWSER_VIEW_HEADERS)


def _subscription_answer(found: tracking.Subscription) -> Response:
    return json_response(
        {"email": found.email, "newsletter": found.newsletter, "unsubscribed": found.unsubscribed}
    )


async def get_subscription(request: Request) -> Response:
    """GET /v1/emails/unsubscribes: whom an unsubscribe link names; changes nothing."""
    hub = hub_of(request)
    key = bearer_key(request)
    link = _signed_link(query_fields(request))

    def work(session: Session) -> tracking.Subscription:
        authenticate(session, key, ACCESS)
        return tracking.subscription(session, hub.link_signer, link)

    return _subscription_answer(await hub.read(work))


async def unsubscribe(request: Request) -> Response:
    """POST /v1/emails/unsubscribes: unsubscribe whom the signed link names."""
    hub = hub_of(request)
    key = bearer_key(request)
    require_json(request)
    link = _signed_link(read_fields(await read_body(request, BODY_LIMIT)))

    def work(session: Session) -> tracking.Subscription:
        authenticate(session, key, ACCESS)
        return tracking.unsubscribe(session, hub.link_signer, link)

    return _subscription_answer(await hub.write(work))


def email_api_routes() -> list[Route]:
    """The routes of the headless email API."""
    return [
        Route("/v1/emails/opens", log_open, methods=["POST"]),
        Route("/v1/emails/clicks", log_click, methods=["POST"]),
        Route("/v1/emails/browserviews", browser_view, methods=["GET"]),
        Route("/v1/emails/unsubscribes", get_subscription, methods=["GET"]),
        Route("/v1/emails/unsubscribes", unsubscribe, methods=["POST"]),
    ]
