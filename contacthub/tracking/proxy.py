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
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

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
)


def create_proxy_app(hub_url: str, api_key: str, *, timeout: float = 10.0) -> Starlette:
    """An ASGI app forwarding the tracking API to `hub_url` with `api_key` added."""
    client: httpx2.AsyncClient | None = None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal client
        async with httpx2.AsyncClient(base_url=hub_url.rstrip("/"), timeout=timeout) as client:
            yield

    async def forward(request: Request) -> Response:
        assert client is not None, "the proxy's lifespan starts the client"
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return Response(
                b'{"error":"The body is too large.","code":"body_too_large"}',
                413,
                media_type="application/json",
            )
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
    return Starlette(routes=routes, lifespan=lifespan)
