"""The retention page (`/admin/retention`): how long each kind of data is kept, the latest
runs of the retention job, and a button that runs it now.

The form sets a period (in days) for a kind of data (for activities, per type or for every type
without its own); each policy has a button that removes it (the kind is then kept forever). A
failed latest run is shown in red here and on the dashboard until a run succeeds.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from sqlalchemy.orm import Session
from starlette.responses import Response
from starlette.routing import Route

from contacthub.admin.email import detached
from contacthub.admin.web import Admin, form_errors, page
from contacthub.errors import HubError
from contacthub.retention import job, policies

PATH = "/admin/retention"
REMOVE_PATH = f"{PATH}/remove"
RUN_PATH = f"{PATH}/run"


async def _page(
    admin: Admin,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    def work(session: Session) -> dict[str, Any]:
        runs = job.last_runs(session)
        return detached(
            session,
            {
                "policies": policies.list_policies(session),
                "runs": [(run, job.deleted_counts(run), job.seconds_taken(run)) for run in runs],
                "failing": job.is_failing(session),
            },
        )

    context = await admin.hub.read(work)
    return admin.render(
        "retention.html",
        status,
        kinds=policies.KIND_LABELS,
        errors=errors or {},
        values=values or {},
        interval=admin.hub.settings.retention_interval,
        batch_size=admin.hub.settings.retention_batch_size,
        remove_path=REMOVE_PATH,
        run_path=RUN_PATH,
        **context,
    )


async def retention_page(admin: Admin) -> Response:
    """The policies, the form that sets one, the latest runs."""
    return await _page(admin)


async def policy_set(admin: Admin) -> Response:
    """Set the period of the kind (and activity type) posted."""
    kind, activity_type = admin.field("kind"), admin.field("activity_type")
    days = admin.field("days")

    def work(session: Session) -> str:
        policy = policies.set_policy(
            session, kind, days, activity_type=activity_type, actor=admin.actor
        )
        return f"{policies.subject(policy.kind, policy.activity_type)}: kept {policy.days:,} days."

    try:
        flash = await admin.hub.write(work)
    except HubError as error:
        return await _page(
            admin,
            status=error.status_code,
            errors=form_errors(error),
            values={"kind": kind, "activity_type": activity_type, "days": days},
        )
    return admin.redirect(PATH, flash=flash)


async def policy_remove(admin: Admin) -> Response:
    """Remove a policy: the kind (type) is kept forever from now on."""
    kind, activity_type = admin.field("kind"), admin.field("activity_type")
    await admin.hub.write(
        lambda s: policies.remove_policy(s, kind, activity_type=activity_type, actor=admin.actor)
    )
    name = policies.subject(kind, activity_type)
    return admin.redirect(PATH, flash=f"{name}: kept forever from now on.")


async def run_now(admin: Admin) -> Response:
    """Run the retention job now (in this request), then show how it went."""
    hub = admin.hub
    run = await anyio.to_thread.run_sync(lambda: job.run(hub.database, hub.settings, admin.actor))
    if run.error is not None:
        return admin.redirect(PATH)  # the page shows the failed run in red
    deleted = sum(job.deleted_counts(run).values())
    return admin.redirect(PATH, flash=f"Retention run {run.id} deleted {deleted:,} rows.")


routes = [
    Route(PATH, page(retention_page), methods=["GET"]),
    Route(PATH, page(policy_set), methods=["POST"]),
    Route(REMOVE_PATH, page(policy_remove), methods=["POST"]),
    Route(RUN_PATH, page(run_now), methods=["POST"]),
]
