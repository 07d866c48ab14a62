"""Admin pages of deliverability: the suppression list and the refused feedback.

- `/admin/suppressions`: the suppressed addresses, newest first (keyset paged), searchable by a
  part of the address and filtered by reason, with the counts by reason; each with its reason,
  source, evidence, the delivery (and issue) that caused it, when and by whom. The form that
  suppresses an address by hand (reason `manual`, with an evidence note) and the button that
  lifts a suppression (it asks first) are on the same page, and so is the CSV export of what the
  search and filter select (a POST: it is audited as `suppression.list_exported`).
- `/admin/deliverability`: the suppressions by reason, the bounce reports and webhook calls that
  were refused, counted by source and reason (last 24 hours, 7 days, ever), and the latest ones.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from sqlalchemy.orm import Session
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from contacthub.activities.log import parse_cursor
from contacthub.admin.email import detached
from contacthub.admin.web import Admin, form_errors, page
from contacthub.csv_export import MEDIA_TYPE, attachment
from contacthub.errors import HubError
from contacthub.identifiers import parse_cursor as parse_id_cursor
from contacthub.suppressions import output, rejections
from contacthub.suppressions import service as suppressions

LIST_PATH = "/admin/suppressions"
LIFT_PATH = f"{LIST_PATH}/lift"
EXPORT_PATH = f"{LIST_PATH}/export"
DELIVERABILITY_PATH = "/admin/deliverability"
REASON_LABELS = {
    suppressions.HARD_BOUNCE: "Hard bounce",
    suppressions.COMPLAINT: "Complaint",
    suppressions.SOFT_BOUNCES: "Repeated soft bounces",
    suppressions.MANUAL: "Added by hand",
}


def _filters(admin: Admin) -> dict[str, str]:
    return {"q": admin.param("q"), "reason": admin.param("reason")}


async def _list_page(
    admin: Admin,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    filters = _filters(admin)
    before = parse_id_cursor(admin.param("before"), "before", code="invalid_parameter")

    def work(session: Session) -> dict[str, Any]:
        try:
            found = suppressions.list_suppressions(
                session, search=filters["q"], reason=filters["reason"], before=before
            )
            total = suppressions.count_suppressions(
                session, search=filters["q"], reason=filters["reason"]
            )
            filter_error = None
        except HubError as error:
            found, total, filter_error = suppressions.SuppressionPage([], None), 0, error.message
        return detached(
            session,
            {
                "rows": found.rows,
                "next_before": found.next_before,
                "total": total,
                "counts": suppressions.counts_by_reason(session),
                "filter_error": filter_error,
            },
        )

    context = await admin.hub.read(work)
    next_before = context.pop("next_before")
    older_url = (
        f"{LIST_PATH}?{urlencode({**filters, 'before': next_before})}"
        if next_before is not None
        else None
    )
    newest_url = f"{LIST_PATH}?{urlencode(filters)}" if before is not None else None
    return admin.render(
        "suppressions/list.html",
        status if context["filter_error"] is None else 400,
        filters=filters,
        filtered=bool(filters["q"] or filters["reason"]),
        reasons=REASON_LABELS,
        older_url=older_url,
        newest_url=newest_url,
        errors=errors or {},
        values=values or {},
        lift_path=LIFT_PATH,
        export_path=EXPORT_PATH,
        **context,
    )


async def suppression_list(admin: Admin) -> Response:
    """The suppression list, with its search, filter, add form and lift buttons."""
    return await _list_page(admin)


async def suppression_add(admin: Admin) -> Response:
    """Suppress the address typed (reason `manual`) with its evidence note."""
    email, evidence = admin.field("email"), admin.field("evidence")

    def work(session: Session) -> str:
        row = suppressions.add_manual(
            session, email, evidence=evidence, source="admin", actor=admin.actor
        )
        return row.email

    try:
        address = await admin.hub.write(work)
    except HubError as error:
        return await _list_page(
            admin,
            status=error.status_code,
            errors=form_errors(error),
            values={"email": email, "evidence": evidence},
        )
    flash = f"{address} is suppressed: nothing is sent to it any more."
    return admin.redirect(f"{LIST_PATH}?{urlencode({'q': address})}", flash=flash)


async def suppression_lift(admin: Admin) -> Response:
    """Lift the suppression of the address posted: it may be sent to again."""
    email = admin.field("email")
    await admin.hub.write(lambda s: suppressions.lift(s, email, actor=admin.actor))
    back = admin.field("back")
    target = back if back.startswith(f"{LIST_PATH}?") or back == LIST_PATH else LIST_PATH
    return admin.redirect(target, flash=f"Suppression of {email.lower()} lifted.")


async def suppression_export(admin: Admin) -> Response:
    """Download the suppressions the search and filter select, as CSV (audited)."""
    search, reason = admin.field("q"), admin.field("reason")
    await admin.hub.write(
        lambda s: output.start_export(s, search=search, reason=reason, actor=admin.actor)
    )
    return StreamingResponse(
        output.stream(admin.hub.read, search=search, reason=reason),
        media_type=MEDIA_TYPE,
        headers=attachment("suppressions.csv"),
    )


async def deliverability(admin: Admin) -> Response:
    """Suppressions by reason; refused bounce reports and webhook calls, counted and listed."""
    before = parse_cursor(admin.param("before"), "before")

    def work(session: Session) -> dict[str, Any]:
        latest = rejections.latest_rejections(session, before=before)
        return detached(
            session,
            {
                "counts": suppressions.counts_by_reason(session),
                "rejection_counts": rejections.rejection_counts(session),
                "rejections": latest.rejections,
                "next_before": latest.next_before,
            },
        )

    context = await admin.hub.read(work)
    next_before = context.pop("next_before")
    return admin.render(
        "suppressions/deliverability.html",
        reasons=REASON_LABELS,
        newest_url=DELIVERABILITY_PATH + "#rejections" if before is not None else None,
        older_url=(
            f"{DELIVERABILITY_PATH}?{urlencode({'before': next_before})}#rejections"
            if next_before is not None
            else None
        ),
        list_path=LIST_PATH,
        **context,
    )


routes = [
    Route(LIST_PATH, page(suppression_list), methods=["GET"]),
    Route(LIST_PATH, page(suppression_add), methods=["POST"]),
    Route(LIFT_PATH, page(suppression_lift), methods=["POST"]),
    Route(EXPORT_PATH, page(suppression_export), methods=["POST"]),
    Route(DELIVERABILITY_PATH, page(deliverability), methods=["GET"]),
]
