"""The headless tracking API, mounted at /Kentico.Tracking (SPEC §2, seed 000).

Handlers stay thin: read and check the request, call a service, answer. POST /activities is the
hot path: it does every check that needs no database on the event loop, then hands the request
to the group-commit writer and answers 207 only once its activities are committed.
"""

from __future__ import annotations

from sqlalchemy.orm import Session
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from contacthub.activities.ingest import IngestJob
from contacthub.channels.service import authenticate, hash_key
from contacthub.consents import service as consents
from contacthub.contacts import service as contacts
from contacthub.http import (
    bearer_key,
    json_response,
    read_body,
    require_json,
)
from contacthub.hub import hub_of
from contacthub.settings import Settings
from contacthub.storage.types import utcnow
from contacthub.tracking import openapi
from contacthub.tracking.schemas import read_activities_request, read_agree

ACCESS = "tracking"
AGREE_BODY_LIMIT = 4096


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


async def create_contact(request: Request) -> Response:
    """POST /contacts: a new anonymous contact; clients keep its GUID. The body is ignored."""
    key = bearer_key(request)

    def work(session: Session) -> str:
        authenticate(session, key, ACCESS)
        return str(contacts.create_contact(session).guid)

    return json_response({"contact": await hub_of(request).write(work)})


async def set_consent_agreement(request: Request) -> Response:
    """POST /contacts/{guid}/consents/{consent} with {"agree": bool}: agree or revoke."""
    key = bearer_key(request)
    require_json(request)
    agree = read_agree(await read_body(request, AGREE_BODY_LIMIT))
    contact_guid = request.path_params["guid"]
    code_name = request.path_params["consent"]

    def work(session: Session) -> None:
        principal = authenticate(session, key, ACCESS)
        consents.record_agreement(
            session, contact_guid, code_name, agree=agree, channel_id=principal.channel_id
        )

    await hub_of(request).write(work)
    return json_response({"agreed": agree, "isAgreed": agree})


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
    job = IngestJob(
        key_hash=hash_key(key),
        channel_guid=parsed.channel,
        contact_guid=parsed.contact,
        activities=parsed.activities,
        received_at=utcnow(),
    )
    outcome = await hub.activity_writer.submit(job)
    if outcome.error is not None:
        raise outcome.error
    return json_response({"results": outcome.results}, 207)


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


async def openapi_document(request: Request) -> Response:
    """The OpenAPI 3.1 document of this API."""
    return json_response(openapi.document())


def tracking_routes(settings: Settings) -> Mount:
    """The tracking API's routes under /Kentico.Tracking, with CORS where origins are allowed.

    A Mount of plain routes rather than a Starlette app of its own: a nested app would run a
    second error-handling middleware stack on every request of the hot path.
    """
    routes = [
        Route("/activities", log_activities, methods=["POST"]),  # the hot path: first
        Route("/consents/{consent}", get_consent_texts, methods=["GET"]),
        Route("/contacts", create_contact, methods=["POST"]),
        Route("/contacts/{guid}/consents/{consent}", consent_agreement, methods=["GET", "POST"]),
        # The seed's own URI example for the check omits "contacts/": accept it too.
        Route("/{guid}/consents/{consent}", get_consent_agreement, methods=["GET"]),
        Route("/openapi.json", openapi_document, methods=["GET"]),
    ]
    middleware = []
    origins = settings.cors_allowed_origins
    if origins:
        middleware.append(
            Middleware(
                JsonCORSMiddleware,
                allow_origins=origins,
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
                max_age=600,
            )
        )
    return Mount("/Kentico.Tracking", routes=routes, middleware=middleware)
