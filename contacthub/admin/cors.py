"""Admin page of the CORS origins: the browser origins allowed to call the tracking API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session
from starlette.responses import Response
from starlette.routing import Route

from contacthub.admin.web import Admin, form_errors, page
from contacthub.channels import cors
from contacthub.errors import HubError
from contacthub.identifiers import whole_number
from contacthub.tracking.endpoints import CORS_CACHE_SECONDS


@dataclass(frozen=True, slots=True)
class OriginRow:
    """A stored origin as the page shows it."""

    id: int
    origin: str
    created_at: datetime


def _rows(session: Session) -> list[OriginRow]:
    return [OriginRow(o.id, o.origin, o.created_at) for o in cors.list_origins(session)]


def _render(admin: Admin, rows: list[OriginRow], status: int = 200, **form: object) -> Response:
    return admin.render(
        "cors/list.html",
        status,
        origins=rows,
        configured=admin.hub.settings.cors_allowed_origins,
        cache_seconds=CORS_CACHE_SECONDS,
        value=form.get("value", ""),
        errors=form.get("errors", {}),
    )


async def origin_list(admin: Admin) -> Response:
    """The allowed origins, and the form that adds one."""
    return _render(admin, await admin.hub.read(_rows))


async def add_origin(admin: Admin) -> Response:
    """Allow one more origin."""
    text = admin.field("origin")
    try:
        origin = await admin.hub.write(lambda s: cors.add_origin(s, text, actor=admin.actor).origin)
    except HubError as error:
        rows = await admin.hub.read(_rows)
        return _render(admin, rows, 400, value=text, errors=form_errors(error))
    return admin.redirect("/admin/cors", f"{origin} is allowed.")


async def remove_origin(admin: Admin) -> Response:
    """Stop allowing an origin."""
    # The route's int convertor lets any number of digits through: 0 (no row) beyond any id.
    origin_id = whole_number(str(admin.request.path_params["origin_id"])) or 0
    origin = await admin.hub.write(
        lambda s: cors.remove_origin(s, origin_id, actor=admin.actor).origin
    )
    return admin.redirect("/admin/cors", f"{origin} is no longer allowed.")


routes = [
    Route("/admin/cors", page(origin_list), methods=["GET"]),
    Route("/admin/cors", page(add_origin), methods=["POST"]),
    Route("/admin/cors/{origin_id:int}/remove", page(remove_origin), methods=["POST"]),
]
