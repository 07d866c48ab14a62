"""Activity type pages: the built-in types, and custom types to create, enable and disable."""

from __future__ import annotations

from sqlalchemy.orm import Session
from starlette.responses import Response
from starlette.routing import Route

from contacthub.activities import service as activity_types
from contacthub.admin.web import Admin, form_errors, page
from contacthub.errors import HubError


async def _list_page(
    admin: Admin,
    *,
    status: int = 200,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    types = await admin.hub.read(activity_types.summaries)
    return admin.render(
        "activity_types/list.html",
        status,
        built_in=[t for t in types if t.built_in],
        custom=[t for t in types if not t.built_in],
        values=values or {},
        errors=errors or {},
    )


async def activity_type_list(admin: Admin) -> Response:
    """The built-in types and the custom types, with the form for a new one."""
    return await _list_page(admin)


async def activity_type_create(admin: Admin) -> Response:
    """Create a custom activity type (enabled)."""
    values = {"code_name": admin.field("code_name"), "display_name": admin.field("display_name")}

    def work(session: Session) -> str:
        created = activity_types.create_type(
            session, values["code_name"], display_name=values["display_name"], actor=admin.actor
        )
        return created.code_name

    try:
        code_name = await admin.hub.write(work)
    except HubError as error:
        return await _list_page(admin, status=400, values=values, errors=form_errors(error))
    return admin.redirect(
        "/admin/activity-types", flash=f"Activity type {code_name} created: apps can send it now."
    )


async def _set_enabled(admin: Admin, enabled: bool) -> Response:
    code_name = str(admin.request.path_params["code"])

    def work(session: Session) -> str:
        changed = activity_types.set_enabled(session, code_name, enabled, actor=admin.actor)
        return changed.code_name

    changed_code = await admin.hub.write(work)
    message = (
        f"{changed_code} is enabled: its activities are accepted."
        if enabled
        else f"{changed_code} is disabled: its activities are refused until it is enabled."
    )
    return admin.redirect("/admin/activity-types", flash=message)


async def activity_type_enable(admin: Admin) -> Response:
    """Accept activities of a custom type again."""
    return await _set_enabled(admin, True)


async def activity_type_disable(admin: Admin) -> Response:
    """Refuse activities of a custom type until it is enabled again."""
    return await _set_enabled(admin, False)


routes = [
    Route("/admin/activity-types", page(activity_type_list), methods=["GET"]),
    Route("/admin/activity-types", page(activity_type_create), methods=["POST"]),
    Route("/admin/activity-types/{code}/enable", page(activity_type_enable), methods=["POST"]),
    Route("/admin/activity-types/{code}/disable", page(activity_type_disable), methods=["POST"]),
]
