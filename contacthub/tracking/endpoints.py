"""The headless tracking API, mounted at /Kentico.Tracking (SPEC §2, seed 000).

Handlers stay thin: read and check the request, call a service, answer. POST /activities is the
hot path: it does every check that needs no database on the event loop, then hands the request
to the group-commit writer and answers 207 only once its activities are committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from sqlalchemy.orm import Session
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from contacthub import idempotency
from contacthub.activities.ingest import IngestJob
from contacthub.channels import cors
from contacthub.channels.service import authenticate, hash_key
from contacthub.consents import service as consents
from contacthub.contacts import service as contacts
from contacthub.errors import HubError, InvalidInput
from contacthub.http import (
    HotEndpoint,
    bearer_key,
    client_gone_handler,
    encode_json,
    header,
    hub_error_handler,
    json_response,
    read_body,
    require_json,
)
from contacthub.hub import Hub, hub_of
from contacthub.settings import Settings
from contacthub.storage.types import utcnow
from contacthub.tracking import openapi
from contacthub.tracking.schemas import read_activities_request, read_agree

ACCESS = "tracking"
AGREE_BODY_LIMIT = 4096
# How old the allowed CORS origins may grow before a worker reads them again from the store.
CORS_CACHE_SECONDS = 5.0

logger = logging.getLogger(__name__)


async def get_consent_texts(request: Request) -> Response:
    """GET /consents/{consent}?languageName=: the consent's short and full text (HTML)."""
    key = bearer_key(request)
    code_name = request.path_params["consent"]
    # Query parameter names match case-insensitively, as in the vendor's ASP.NET routing.
    language = next(
        (v for k, v in request.query_params.multi_items() if k.lower() == "languagename"), None
    )

    def work(session: Session) -> consents.ConsentTexts:
        authenticate(session, key, ACCESS)
        return consents.get_texts(session, code_name, language)

    texts = await hub_of(request).read(work)
    return json_response({"shortText": texts.short_text, "fullText": texts.full_text})


def _key_claim(request: Request, scope: str, body: object = None) -> idempotency.KeyClaim | None:
    """The request's Idempotency-Key with the hash of what it asks for; None without one."""
    key = idempotency.read_key(request.headers)
    if key is None:
        return None
    digest = idempotency.request_hash(request.method, request.url.path, body)
    return idempotency.KeyClaim(scope, key, digest)


async def _idempotent_write(
    request: Request,
    claim: idempotency.KeyClaim | None,
    work: Callable[[Session, int], tuple[int, bytes]],
) -> Response:
    """Run `work(session, channel_id) -> (status, body)` in one unit of work, under the
    request's Idempotency-Key if it sent one: a replay answers the stored answer instead."""
    hub = hub_of(request)
    key = bearer_key(request)

    def unit(session: Session) -> tuple[int, bytes]:
        principal = authenticate(session, key, ACCESS)
        now = utcnow()
        dedupe = idempotency.window(hub.settings.ingest_dedupe_days)
        if claim is not None:
            stored = idempotency.claim_key(session, principal.channel_id, claim, now, dedupe)
            if stored is not None:
                return stored.status, stored.body
        status, body = work(session, principal.channel_id)
        if claim is not None:
            idempotency.finish_key(session, principal.channel_id, claim, status, body)
        return status, body

    status, body = await hub.write(unit)
    return Response(body, status, media_type="application/json")


async def create_contact(request: Request) -> Response:
    """POST /contacts: a new anonymous contact; clients keep its GUID. The body is ignored."""
    bearer_key(request)
    claim = _key_claim(request, idempotency.CONTACTS)

    def work(session: Session, channel_id: int) -> tuple[int, bytes]:
        return 200, encode_json({"contact": str(contacts.create_contact(session).guid)})

    return await _idempotent_write(request, claim, work)


async def set_consent_agreement(request: Request) -> Response:
    """POST /contacts/{guid}/consents/{consent} with {"agree": bool}: agree or revoke."""
    bearer_key(request)
    require_json(request)
    agree = read_agree(await read_body(request, AGREE_BODY_LIMIT))
    contact_guid = request.path_params["guid"]
    code_name = request.path_params["consent"]
    claim = _key_claim(request, idempotency.CONSENT, {"agree": agree})

    def work(session: Session, channel_id: int) -> tuple[int, bytes]:
        consents.record_agreement(
            session, contact_guid, code_name, agree=agree, channel_id=channel_id
        )
        return 200, encode_json({"agreed": agree, "isAgreed": agree})

    return await _idempotent_write(request, claim, work)


async def get_consent_agreement(request: Request) -> Response:
    """GET /contacts/{guid}/consents/{consent}: whether the contact currently agrees."""
    key = bearer_key(request)
    contact_guid = request.path_params["guid"]
    code_name = request.path_params["consent"]

    def work(session: Session) -> bool:
        authenticate(session, key, ACCESS)
        return consents.is_agreed(session, contact_guid, code_name)

    agreed = await hub_of(request).read(work)
    # The seed names the field `agreed`; the vendor's current docs and clients read `isAgreed`.
    return json_response({"agreed": agreed, "isAgreed": agreed})


async def consent_agreement(request: Request) -> Response:
    """GET (check) or POST (agree, revoke) /contacts/{guid}/consents/{consent}."""
    # One route for both methods, so that a 405 on this URL lists both in its Allow header.
    if request.method == "POST":
        return await set_consent_agreement(request)
    return await get_consent_agreement(request)


async def log_activities(request: Request) -> Response:
    """POST /activities: 207 with one result per activity, each 202 once committed."""
    hub = hub_of(request)
    key = bearer_key(request)
    require_json(request)
    body = await read_body(request, hub.settings.max_body_bytes)
    parsed = read_activities_request(body, hub.settings.max_activities_per_request)
    claim = None
    if idempotency.HEADER in request.headers:
        canonical = idempotency.canonical_json_body(body)
        claim = _key_claim(request, idempotency.ACTIVITIES, canonical)
    job = IngestJob(
        key_hash=hash_key(key),
        channel_guid=parsed.channel,
        contact_guid=parsed.contact,
        activities=parsed.activities,
        received_at=utcnow(),
        idempotency=claim,
        dedupe=idempotency.window(hub.settings.ingest_dedupe_days),
    )
    outcome = await hub.activity_writer.submit(job)
    if outcome.error is not None:
        raise outcome.error
    if outcome.replay is not None:
        return Response(outcome.replay.body, outcome.replay.status, media_type="application/json")
    return json_response({"results": outcome.results}, 207)


class LogActivities(HotEndpoint):
    """POST /activities as a bare ASGI app: `HotPaths` serves it before the route table, and
    the route (behind CORS) when the request has an Origin. Errors are answered here as the
    app's handlers answer them."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await log_activities(request)
        except HubError as error:
            response = await hub_error_handler(request, error)
        except ClientDisconnect as error:
            response = await client_gone_handler(request, error)
        await response(scope, receive, send)


class JsonCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware, refusing a preflight with the API's JSON error body."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        headers = {
            name: value
            for name, value in response.headers.items()
            if name.startswith("access-control-") or name == "vary"
        }
        reason = bytes(response.body).decode()  # "Disallowed CORS origin, headers"
        return json_response({"error": f"{reason}.", "code": "cors_refused"}, 400, headers)


def _configured_origin(text: str) -> str:
    # The setting is checked by nobody else: an origin in it that does not parse is kept as
    # written (and so matches only that exact header), rather than stopping the hub.
    try:
        return cors.normalize_origin(text)
    except InvalidInput:
        return text


class OriginCache:
    """The origins allowed now: the setting's and the store's, reloaded every `ttl` seconds.

    The tracking API must not query the store on every request, and several worker processes
    (or machines) cannot be told when the admin changes an origin: each reads the table again
    once its copy is `ttl` seconds old. A change thus takes effect everywhere within `ttl`.
    """

    def __init__(self, configured: Iterable[str], ttl: float) -> None:
        self.configured = frozenset(_configured_origin(o) for o in configured)
        self.ttl = ttl
        self._origins: frozenset[str] | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def origins(self, hub: Hub) -> frozenset[str]:
        """The allowed origins, read from the store if the copy is stale."""
        if self._origins is not None and time.monotonic() < self._expires:
            return self._origins
        # One reload at a time: the requests that arrive meanwhile wait for it, not the store.
        async with self._lock:
            if self._origins is not None and time.monotonic() < self._expires:
                return self._origins
            try:
                origins = self.configured | frozenset(await hub.read(cors.allowed_origins))
            except Exception:
                # CORS is no reason to fail a request: keep what was known, try again later.
                logger.exception("Reading the CORS origins failed; keeping the last ones.")
                origins = self.configured if self._origins is None else self._origins
            self._origins = origins
            self._expires = time.monotonic() + self.ttl
            return origins


class TrackingCORS:
    """CORS of the tracking API, for the origins an `OriginCache` allows at the moment.

    Requests without an `Origin` header (servers, apps) pass straight through without reading
    the cache. While no origin at all is allowed, nothing answers preflights or adds headers, as
    if there were no CORS support.
    """

    def __init__(self, app: ASGIApp, configured: Iterable[str], ttl: float) -> None:
        self.app = app
        self.cache = OriginCache(configured, ttl)
        self._policy = self._make_policy(frozenset())

    def _make_policy(self, origins: frozenset[str]) -> JsonCORSMiddleware:
        return JsonCORSMiddleware(
            self.app,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or header(scope, b"origin") is None:
            await self.app(scope, receive, send)
            return
        origins = await self.cache.origins(scope["app"].state.hub)
        if not origins:
            await self.app(scope, receive, send)
            return
        policy = self._policy
        if policy.allow_origins != origins:
            policy = self._policy = self._make_policy(origins)
        await policy(scope, receive, send)


async def openapi_document(request: Request) -> Response:
    """The OpenAPI 3.1 document of this API."""
    return json_response(openapi.document())


def tracking_routes(settings: Settings, *, cors_cache_seconds: float | None = None) -> Mount:
    """The tracking API's routes under /Kentico.Tracking, with CORS where origins are allowed.

    A Mount of plain routes rather than a Starlette app of its own: a nested app would run a
    second error-handling middleware stack on every request of the hot path.
    """
    routes = [
        Route("/activities", LogActivities(), methods=["POST"]),  # the hot path: first
        Route("/consents/{consent}", get_consent_texts, methods=["GET"]),
        Route("/contacts", create_contact, methods=["POST"]),
        Route("/contacts/{guid}/consents/{consent}", consent_agreement, methods=["GET", "POST"]),
        # The seed's own URI example for the check omits "contacts/": accept it too.
        Route("/{guid}/consents/{consent}", get_consent_agreement, methods=["GET"]),
        Route("/openapi.json", openapi_document, methods=["GET"]),
    ]
    # Always in place, even with no origin configured: origins can be added in the admin.
    ttl = CORS_CACHE_SECONDS if cors_cache_seconds is None else cors_cache_seconds
    middleware = [Middleware(TrackingCORS, configured=settings.cors_allowed_origins, ttl=ttl)]
    return Mount("/Kentico.Tracking", routes=routes, middleware=middleware)
