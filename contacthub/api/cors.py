"""`/api/cors-origins`: the browser origins allowed to call the tracking API."""

from __future__ import annotations

from datetime import datetime

import msgspec
from sqlalchemy.orm import Session

from contacthub.api.routing import ApiCall, ApiRouter
from contacthub.channels import cors
from contacthub.errors import NotFound
from contacthub.identifiers import whole_number
from contacthub.storage.models import CorsOrigin

router = ApiRouter("CORS origins")


class OriginOut(msgspec.Struct):
    id: int
    origin: str
    created_at: datetime


class OriginIn(msgspec.Struct, forbid_unknown_fields=True):
    origin: str


def origin_out(row: CorsOrigin) -> OriginOut:
    return OriginOut(row.id, row.origin, row.created_at)


@router.get("/api/cors-origins", response=list[OriginOut])
async def list_origins(call: ApiCall) -> list[OriginOut]:
    """List the origins allowed in the store (the `cors_allowed_origins` setting adds to them)."""
    return await call.hub.read(lambda s: [origin_out(o) for o in cors.list_origins(s)])


@router.post("/api/cors-origins", body=OriginIn, response=OriginOut, status=201)
async def add_origin(call: ApiCall, body: OriginIn) -> OriginOut:
    """Allow an origin, e.g. `https://www.example.com` (`*`: any origin).

    The origin is stored as browsers send it: lower case, without the default port or a
    trailing slash. Every hub process takes it into account within 5 seconds.
    """

    def work(session: Session) -> OriginOut:
        return origin_out(cors.add_origin(session, body.origin, actor=call.actor))

    return await call.hub.write(work)


@router.delete("/api/cors-origins/{origin_id}", status=204)
async def remove_origin(call: ApiCall) -> None:
    """Stop allowing a stored origin."""
    text = call.path("origin_id")
    origin_id = whole_number(text)
    if origin_id is None:
        raise NotFound(f"No CORS origin with id {text!r}.", code="unknown_origin")

    def work(session: Session) -> None:
        cors.remove_origin(session, origin_id, actor=call.actor)

    await call.hub.write(work)
