"""The activity log page: every activity on every channel, filtered, newest first."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from starlette.responses import Response
from starlette.routing import Route

from contacthub.activities import log
from contacthub.activities.log import LogFilters
from contacthub.admin.web import Admin, form_errors, page
from contacthub.errors import InvalidInput

FILTER_FIELDS = ("channel", "type", "contact", "url", "start", "end")
BADGE_KINDS = {
    "pagevisit": "accent",
    "click": "ok",
    "datainput": "warn",
}


async def activity_list(admin: Admin) -> Response:
    """The log, filtered by the query string; malformed filters are shown next to their field."""
    params = {name: admin.param(name) for name in FILTER_FIELDS}

    def work(session: Session) -> dict[str, Any]:
        context: dict[str, Any] = {
            "channels": log.channel_choices(session),
            "types": log.type_choices(session),
        }
        # Each field alone first, so that every malformed one says so at once.
        errors = {}
        for name in FILTER_FIELDS:
            try:
                LogFilters.from_query({name: params[name]})
            except InvalidInput as error:
                errors[name] = error.message
        if errors:
            return {**context, "errors": errors, "result": None, "links": {}}
        try:
            filters = LogFilters.from_query(params)
            before = log.parse_cursor(admin.param("before"), "before")
            after = log.parse_cursor(admin.param("after"), "after")
            result = log.activity_log(session, filters, before, after_id=after)
        except InvalidInput as error:
            errors = form_errors(error)
            if error.field not in FILTER_FIELDS:
                errors = {"_form": error.message}
            return {**context, "errors": errors, "result": None, "links": {}}
        return {**context, "errors": {}, "result": result, "links": filters.as_query()}

    context = await admin.hub.read(work)
    return admin.render(
        "activities/list.html",
        400 if context["errors"] else 200,
        params=params,
        badge_kinds=BADGE_KINDS,
        scan_limit=log.SCAN_LIMIT,
        **context,
    )


routes = [Route("/admin/activities", page(activity_list), methods=["GET"])]
