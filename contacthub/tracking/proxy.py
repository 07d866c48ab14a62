"""The backend proxy the seed recommends, so that API keys stay off public pages.

A website mounts this app (or runs it with `contacthub proxy`) on its own domain; browser code
calls `/Kentico.Tracking/...` there without any key, and the proxy forwards the request to the
hub with `Authorization: Bearer <key>` added. Only the tracking API's routes are forwarded, so
the key cannot be used for anything else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from contacthub.errors import HubError
from contacthub.http import http_error_handler, hub_error_handler, read_body
from contacthub.identifiers import base_url

PREFIX = "/Kentico.Tracking"
FORWARDED_REQUEST_HEADERS = ("content-type", "accept", "user-agent", "accept-language")
FORWARDED_RESPONSE_HEADERS = ("content-type", "cache-control")
MAX_BODY_BYTES = 1_048_576
ROUTES = (
    ("/consents/{consent}", "GET"),
    ("/contacts", "POST"),
    ("/contacts/{guid}/consents/{consent}", "GET"),
    ("/contacts/{guid}/consents/{consent}", "POST"),
    ("/activities", "POST"),
    # The seed's own URI example for the check omits "contacts/"; the hub accepts it too.
    ("/{guid}/consents/{consent}", "GET"),
)


def create_proxy_app(hub_url: str, api_key: str, *, timeout: float = 10.0) -> Starlette:
    """An ASGI app forwarding the tracking API to `hub_url` with `api_key` added.

    Raises InvalidInput (`invalid_hub_url`) when `hub_url` is not an absolute http(s) URL: the
    proxy would otherwise start and answer every request with 502.
    """
    hub_url = base_url(hub_url, "hub URL", code="invalid_hub_url", field="hub")
    client: httpx2.AsyncClient | None = None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal client
        async with httpx2.AsyncClient(base_url=hub_url, timeout=timeout) as client:
            yield

    async def forward(request: Request) -> Response:
        assert client is not None, "the proxy's lifespan starts the client"
        body = await read_body(request, MAX_BODY_BYTES)
        headers = {k: v for k, v in request.headers.items() if k in FORWARDED_REQUEST_HEADERS}
        headers["authorization"] = f"Bearer {api_key}"
        try:
            upstream = await client.request(
                request.method,
                request.url.path,
                params=request.url.query,
                content=body,
                headers=headers,
            )
        except httpx2.HTTPError:
            return Response(
                b'{"error":"The hub did not answer.","code":"bad_gateway"}',
                502,
                media_type="application/json",
            )
        kept = {k: v for k, v in upstream.headers.items() if k in FORWARDED_RESPONSE_HEADERS}
        return Response(upstream.content, upstream.status_code, kept)

    routes = [Route(PREFIX + path, forward, methods=[method]) for path, method in ROUTES]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        # Routes not forwarded, and over-long bodies, get the hub's JSON error bodies too.
        exception_handlers={HubError: hub_error_handler, HTTPException: http_error_handler},
    )
