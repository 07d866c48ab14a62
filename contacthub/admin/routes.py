"""Every admin page route, and the static files (CSS, JS, logo) they use."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from contacthub.admin import auth


def admin_routes() -> list[BaseRoute]:
    """The admin's routes: one module per area."""
    return [
        *auth.routes,
        Mount(
            "/admin/static",
            StaticFiles(packages=[("contacthub.admin", "static")]),
            name="admin-static",
        ),
    ]
