"""Every management API route, and the OpenAPI document that describes them."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from contacthub.api import (
    activities,
    activity_types,
    audit,
    channels,
    consents,
    contacts,
    cors,
    dashboard,
    email,
    engagement,
    groups,
    openapi,
    retention,
    suppressions,
    users,
    webhooks,
)
from contacthub.api.routing import ApiRouter
from contacthub.http import json_response

# One router per area; the OpenAPI document lists them in this order.
ROUTERS: list[ApiRouter] = [
    users.router,
    dashboard.router,
    channels.router,
    cors.router,
    consents.router,
    activity_types.router,
    activities.router,
    contacts.router,
    groups.router,
    audit.router,
    email.router,
    engagement.router,
    suppressions.router,
    webhooks.router,
    retention.router,
]


async def openapi_document(request: Request) -> Response:
    """The OpenAPI 3.1 document of the management API (no token needed to read it)."""
    return json_response(openapi.document(o for r in ROUTERS for o in r.operations))


def api_routes() -> list[BaseRoute]:
    """The routes of every area, then the document."""
    routes: list[BaseRoute] = [route for router in ROUTERS for route in router.routes()]
    routes.append(Route("/api/openapi.json", openapi_document, methods=["GET"]))
    return routes
