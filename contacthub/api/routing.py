"""How management API endpoints are declared, authenticated, decoded and documented.

Each area (`api/channels.py`, `api/contacts.py`, …) makes an `ApiRouter` and declares its
operations with it:

    router = ApiRouter("Channels")

    @router.post("/api/channels", body=ChannelIn, response=ChannelOut, status=201)
    async def create_channel(call: ApiCall, body: ChannelIn) -> ChannelOut:
        \"\"\"Create a channel.\"\"\"  # the first line is the summary in the OpenAPI document
        ...

The router authenticates every call with an admin token (`Authorization: Bearer cht_…`),
decodes the JSON body into the declared msgspec Struct (a clear 400 naming the property at
fault otherwise), encodes whatever the handler returns as JSON, and keeps what the OpenAPI
document (`api/openapi.py`) needs.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from contacthub.errors import InvalidInput
from contacthub.http import bearer_key, json_response, read_body, refuse_nul_in_url, require_json
from contacthub.hub import Hub, hub_of
from contacthub.identifiers import refuse_nul_within
from contacthub.users import service as users

BODY_LIMIT = 1_024 * 1_024


def documented(**keywords: Any) -> msgspec.Meta:
    """JSON Schema keywords for the OpenAPI document only: the service checks the rule itself
    (and answers its own 400 with its own code), so decoding must not check it first."""
    return msgspec.Meta(extra_json_schema=keywords)


# A code name (identifiers.check_code_name): 1 to 100 of these characters, not "." or "..".
CODE_NAME = documented(pattern=r"^(?!\.\.?$)[A-Za-z0-9_.\-]{1,100}$")
# A consent language (consents.service): trimmed, then 1 to 20 of these characters.
LANGUAGE = documented(pattern=r"^\s*[A-Za-z0-9_\-]{1,20}\s*$")

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
S = TypeVar("S", bound=msgspec.Struct)


@dataclass(frozen=True, slots=True)
class Caller:
    """The user an admin token acts as."""

    user_id: int
    email: str


@dataclass(slots=True)
class ApiCall:
    """One management API request: what a handler needs."""

    request: Request
    hub: Hub
    caller: Caller

    @property
    def actor(self) -> str:
        """Who the audit log names for what this call does."""
        return self.caller.email

    def path(self, name: str) -> str:
        """A path parameter."""
        return str(self.request.path_params[name])

    def query(self, name: str, default: str = "") -> str:
        """A query parameter, stripped."""
        return self.request.query_params.get(name, default).strip()

    def query_int(self, name: str, default: int, *, minimum: int = 1, maximum: int = 1_000) -> int:
        """An integer query parameter within bounds; 400 if it is not one."""
        text = self.query(name)
        if not text:
            return default
        if not re.fullmatch(r"-?\d{1,18}", text) or not minimum <= int(text) <= maximum:
            raise InvalidInput(
                f"{name} must be a whole number from {minimum} to {maximum}.",
                code="invalid_parameter",
                field=name,
            )
        return int(text)

    def query_date(self, name: str) -> date | None:
        """A `YYYY-MM-DD` query parameter; 400 if it is malformed."""
        text = self.query(name)
        if not text:
            return None
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise InvalidInput(
                f"{name} must be a date: YYYY-MM-DD.", code="invalid_parameter", field=name
            ) from None


@dataclass(frozen=True, slots=True)
class QueryParam:
    """A documented query parameter."""

    name: str
    description: str
    type: Literal["string", "integer", "boolean"] = "string"
    format: str | None = None
    # The bounds and values the handler accepts, stated in the document.
    minimum: int | None = None
    maximum: int | None = None
    enum: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Operation:
    """One endpoint, as the OpenAPI document describes it."""

    method: Method
    path: str
    tag: str
    handler: Callable[..., Awaitable[Any]]
    body: type[msgspec.Struct] | None
    response: Any
    status: int
    query: tuple[QueryParam, ...]
    raw_body: str | None = None
    # Another media type the handler may answer with (e.g. text/csv), as a string.
    raw_response: str | None = None

    @property
    def summary(self) -> str:
        return (self.handler.__doc__ or "").strip().split("\n")[0]

    @property
    def description(self) -> str:
        return "\n".join(line.strip() for line in (self.handler.__doc__ or "").strip().split("\n"))


@dataclass
class ApiRouter:
    """The operations of one area of the API."""

    tag: str
    operations: list[Operation] = field(default_factory=list)

    def get(
        self,
        path: str,
        *,
        response: Any = None,
        query: tuple[QueryParam, ...] = (),
        raw_response: str | None = None,
    ) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
        """`raw_response`: another media type the handler may answer with (e.g. text/csv)."""
        return self._add("GET", path, None, response, 200, query, raw_response=raw_response)

    def post(
        self,
        path: str,
        *,
        body: type[msgspec.Struct] | None = None,
        response: Any = None,
        status: int = 200,
        raw_body: str | None = None,
    ) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
        """`raw_body`: the media type of a body the handler reads itself (e.g. text/csv)."""
        return self._add("POST", path, body, response, status, (), raw_body)

    def patch(
        self, path: str, *, body: type[msgspec.Struct], response: Any = None
    ) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
        return self._add("PATCH", path, body, response, 200, ())

    def put(
        self, path: str, *, body: type[msgspec.Struct], response: Any = None
    ) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
        return self._add("PUT", path, body, response, 200, ())

    def delete(
        self,
        path: str,
        *,
        body: type[msgspec.Struct] | None = None,
        response: Any = None,
        status: int = 200,
    ) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
        return self._add("DELETE", path, body, response, status, ())

    def _add(
        self,
        method: Method,
        path: str,
        body: type[msgspec.Struct] | None,
        response: Any,
        status: int,
        query: tuple[QueryParam, ...],
        raw_body: str | None = None,
        raw_response: str | None = None,
    ) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
        def register(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            self.operations.append(
                Operation(
                    method,
                    path,
                    self.tag,
                    handler,
                    body,
                    response,
                    status,
                    query,
                    raw_body,
                    raw_response,
                )
            )
            return handler

        return register

    def routes(self) -> list[Route]:
        """Starlette routes; operations on one path share a route (so 405 lists them all)."""
        by_path: dict[str, list[Operation]] = {}
        for operation in self.operations:
            by_path.setdefault(operation.path, []).append(operation)
        return [
            Route(path, _endpoint(operations), methods=[o.method for o in operations])
            for path, operations in by_path.items()
        ]


def _endpoint(operations: list[Operation]) -> Callable[[Request], Awaitable[Response]]:
    by_method: dict[str, Operation] = {operation.method: operation for operation in operations}

    async def endpoint(request: Request) -> Response:
        operation = by_method[request.method if request.method != "HEAD" else "GET"]
        hub = hub_of(request)
        call = ApiCall(request, hub, await authenticate(hub, request))
        refuse_nul_in_url(request)
        if operation.body is not None:
            result = await operation.handler(call, await decode_body(request, operation.body))
        else:
            result = await operation.handler(call)
        if isinstance(result, Response):
            return result
        if result is None and operation.status == 204:
            return Response(status_code=204)
        return json_response(result, operation.status)

    return endpoint


async def authenticate(hub: Hub, request: Request) -> Caller:
    """The caller of a management API request, from its admin token."""
    token = bearer_key(request)

    def lookup(session: Any) -> Caller:
        user = users.authenticate_token(session, token)
        return Caller(user.id, user.email)

    return await hub.read(lookup)


_AT_PATH = re.compile(r" - at `\$\.?([^`]*)`$")


async def decode_body(request: Request, struct: type[S]) -> S:
    """The JSON body as `struct`; a 400 naming the property at fault otherwise."""
    require_json(request)
    body = await read_body(request, BODY_LIMIT)
    if b"\\u0000" in body:
        # JSON carries a NUL only escaped (a raw one is malformed): the rare body that has one
        # is looked through; a malformed one is left to the decoding below to refuse.
        try:
            untyped = msgspec.json.decode(body)
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
            pass
        else:
            refuse_nul_within(untyped)
    try:
        return msgspec.json.decode(body, type=struct, strict=True)
    except msgspec.ValidationError as error:
        message = str(error)
        match = _AT_PATH.search(message)
        raise InvalidInput(
            message, code="invalid_body", field=match.group(1) if match else None
        ) from None
    except msgspec.DecodeError:
        raise InvalidInput("The body is not valid JSON.", code="invalid_json") from None
    except UnicodeDecodeError:
        # msgspec raises this, not a DecodeError, for invalid UTF-8 inside a string.
        raise InvalidInput("The body is not valid UTF-8.", code="invalid_json") from None


def iso(moment: datetime | None) -> str | None:
    """A timestamp as the API writes it (ISO 8601, UTC)."""
    return None if moment is None else moment.isoformat()
