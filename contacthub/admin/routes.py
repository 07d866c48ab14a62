"""Every admin page route, and the static files (CSS, JS, logo) they use."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from contacthub.admin import (
    activities,
    activity_types,
    audit,
    auth,
    channels,
    consents,
    contacts,
    cors,
    dashboard,
    email,
    groups,
    issues,
    retention,
    suppressions,
    users,
    webhooks,
)


def admin_routes() -> list[BaseRoute]:
    """The admin's routes: one module per area."""
    return [
        *auth.routes,
        *activities.routes,
        *audit.routes,
        *dashboard.routes,
        *channels.routes,
        *cors.routes,
        *consents.routes,
        *activity_types.routes,
        *users.routes,
        *contacts.routes,
        *groups.routes,
        *email.routes,
        *issues.routes,
        *suppressions.routes,
        *webhooks.routes,
        *retention.routes,
        Mount(
            "/admin/static",
            StaticFiles(packages=[("contacthub.admin", "static")]),
            name="admin-static",
        ),
    ]
