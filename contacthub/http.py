"""HTTP helpers shared by every API: JSON answers, bounded bodies, bearer keys, error pages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from contacthub.errors import (
    HubError,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
)
from contacthub.identifiers import MAX_BIG_ID, refuse_nul, whole_number

_encoder = msgspec.json.Encoder()


def encode_json(content: Any) -> bytes:
    """The JSON bytes of `content`, as `json_response` sends them."""
    return _encoder.encode(content)


def json_response(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON answer, encoded with msgspec."""
    return Response(_encoder.encode(content), status_code, headers, "application/json")


def bearer_key(request: Request) -> str:
    """The key of an `Authorization: Bearer <key>` header."""
    header = request.headers.get("authorization")
    if header is None:
        raise Unauthorized("Send an API key: Authorization: Bearer <key>.", code="missing_api_key")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized(
            "The Authorization header must be: Bearer <key>.", code="invalid_authorization"
        )
    return key


def require_json(request: Request) -> None:
    """Refuse bodies that are not declared as JSON."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            "The Content-Type header must be application/json.", code="unsupported_media_type"
        )


def refuse_nul_in_url(request: Request) -> None:
    """Refuse (400) a NUL character in the path parameters or the query string (names and
    values): the one check of an entry point, before any handler reads them."""
    for name, value in request.path_params.items():
        refuse_nul(str(value), name)
    for name, value in request.query_params.multi_items():
        refuse_nul(name, "A query parameter name")
        refuse_nul(value, name)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) anything over `limit` bytes before reading it all."""
    declared = request.headers.get("content-length")
    declared_size = None if declared is None else whole_number(declared, maximum=MAX_BIG_ID)
    if declared_size is not None and declared_size > limit:
        raise PayloadTooLarge(f"The body is over {limit} bytes.", code="body_too_large")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body is over {limit} bytes.", code="body_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


async def hub_error_handler(request: Request, exc: Exception) -> Response:
    """Render a domain error as its JSON body and status."""
    assert isinstance(exc, HubError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    return json_response(exc.as_dict(), exc.status_code, headers)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """Render routing errors (404, 405) as JSON too."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    headers = dict(exc.headers) if exc.headers else None
    return json_response({"error": exc.detail, "code": code}, exc.status_code, headers)


async def server_error_handler(request: Request, exc: Exception) -> Response:
    """A JSON 500 that says nothing about the internals (the log has the traceback)."""
    return json_response({"error": "Internal server error.", "code": "internal_error"}, 500)


async def client_gone_handler(request: Request, exc: Exception) -> Response:
    """The client went away, or was cut off (`request_timeout`), before its body was read.

    Nothing is wrong on the hub's side and nobody reads this answer: no 500, no traceback.
    """
    assert isinstance(exc, ClientDisconnect)
    return Response(status_code=400)


def header(scope: Scope, name: bytes) -> str | None:
    """A request header (`name` in lower case) straight from the ASGI scope."""
    for key, value in scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


class HotEndpoint:
    """A hot path as a bare ASGI app: no Request wrapping by the route, no per-request
    wrappers. Listed in the route table like any endpoint, and served by `HotPaths` ahead of it.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class HotPaths:
    """ASGI middleware answering the hot endpoints before Starlette's routing.

    They are the hub's busiest URLs: POST /activities, the open pixel and the click redirect.
    Declared as Starlette user middleware, this runs inside the server-error middleware (a crash
    is still a JSON 500) but skips the exception middleware, the route table and the mounts'
    middleware. A request with an `Origin` header, any other method or path goes on to the
    routes, which list the same endpoints: there the tracking API's CORS applies.
    """

    def __init__(self, app: ASGIApp, endpoints: Mapping[tuple[str, str], ASGIApp]) -> None:
        self.app = app
        self.endpoints = endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self.endpoints.get((scope["method"], scope["path"]))
            if endpoint is not None and header(scope, b"origin") is None:
                await endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)


def hot_paths(routes: Sequence[BaseRoute]) -> Middleware:
    """The `HotPaths` middleware for the `HotEndpoint`s among `routes` (and in their mounts),
    by method and full path."""
    return Middleware(HotPaths, endpoints=dict(_hot_endpoints(routes, "")))


def _hot_endpoints(
    routes: Sequence[BaseRoute], prefix: str
) -> list[tuple[tuple[str, str], ASGIApp]]:
    found: list[tuple[tuple[str, str], ASGIApp]] = []
    for route in routes:
        if isinstance(route, Mount):
            found += _hot_endpoints(route.routes, prefix + route.path)
        elif isinstance(route, Route) and isinstance(route.endpoint, HotEndpoint):
            for method in route.methods or ():
                found.append(((method, prefix + route.path), route.endpoint))
    return found
