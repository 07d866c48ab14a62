"""`/api/retention`: how long each kind of data is kept, the retention job's latest runs, and
running it now.

Thin handlers over `retention.policies` and `retention.job`, the same functions as the admin
page and the CLI. A policy of activities names its type in the path
(`/api/retention/policies/activities/{activity_type}`); `/api/retention/policies/activities`
is the default of every type without its own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import anyio.to_thread
import msgspec
from sqlalchemy.orm import Session

from contacthub.api.routing import ApiCall, ApiRouter, documented
from contacthub.retention import job, policies
from contacthub.storage.models import RetentionPolicy, RetentionRun

router = ApiRouter("Retention")


class PolicyIn(msgspec.Struct, forbid_unknown_fields=True):
    # Days the data is kept (older data is deleted by the retention job).
    days: Annotated[int, documented(minimum=policies.MIN_DAYS, maximum=policies.MAX_DAYS)]


class PolicyOut(msgspec.Struct):
    kind: str
    # For activities: the type ('' for every type without a policy of its own).
    activity_type: str
    days: int
    updated_at: datetime
    updated_by: str


class RunOut(msgspec.Struct):
    id: int
    started_at: datetime
    finished_at: datetime | None
    seconds: float | None
    # Rows deleted per kind of data.
    deleted: dict[str, int]
    # Why the run stopped, when it failed.
    error: str | None
    actor: str


class RetentionOut(msgspec.Struct):
    policies: list[PolicyOut]
    runs: list[RunOut]
    # Whether the latest finished run failed.
    failing: bool


def policy_out(policy: RetentionPolicy) -> PolicyOut:
    return PolicyOut(
        policy.kind, policy.activity_type, policy.days, policy.updated_at, policy.updated_by
    )


def run_out(run: RetentionRun) -> RunOut:
    return RunOut(
        run.id,
        run.started_at,
        run.finished_at,
        job.seconds_taken(run),
        job.deleted_counts(run),
        run.error,
        run.actor,
    )


@router.get("/api/retention", response=RetentionOut)
async def retention(call: ApiCall) -> RetentionOut:
    """Every retention policy, the latest runs of the job (newest first), and whether the
    latest run failed (`failing`: shown until a run succeeds)."""

    def work(session: Session) -> RetentionOut:
        return RetentionOut(
            [policy_out(p) for p in policies.list_policies(session)],
            [run_out(r) for r in job.last_runs(session)],
            job.is_failing(session),
        )

    return await call.hub.read(work)


async def _set(call: ApiCall, body: PolicyIn, activity_type: str) -> PolicyOut:
    kind = call.path("kind") if "kind" in call.request.path_params else policies.ACTIVITIES
    return await call.hub.write(
        lambda s: policy_out(
            policies.set_policy(s, kind, body.days, activity_type=activity_type, actor=call.actor)
        )
    )


async def _remove(call: ApiCall, activity_type: str) -> None:
    kind = call.path("kind") if "kind" in call.request.path_params else policies.ACTIVITIES
    await call.hub.write(
        lambda s: policies.remove_policy(s, kind, activity_type=activity_type, actor=call.actor)
    )


@router.put("/api/retention/policies/{kind}", body=PolicyIn, response=PolicyOut)
async def set_policy(call: ApiCall, body: PolicyIn) -> PolicyOut:
    """Keep a kind of data for `days` days (for `activities`: every type without a policy of
    its own); replaces its period. Recorded as `retention.policy_set`."""
    return await _set(call, body, policies.ALL_TYPES)


@router.delete("/api/retention/policies/{kind}", status=204)
async def remove_policy(call: ApiCall) -> None:
    """Remove a kind's policy → 204: it is kept forever from now on (404
    `policy_not_found` when it has none). Recorded as `retention.policy_removed`."""
    await _remove(call, policies.ALL_TYPES)


@router.put("/api/retention/policies/activities/{activity_type}", body=PolicyIn, response=PolicyOut)
async def set_activity_policy(call: ApiCall, body: PolicyIn) -> PolicyOut:
    """Keep the activities of one type for `days` days; replaces its period. Recorded as
    `retention.policy_set`."""
    return await _set(call, body, call.path("activity_type"))


@router.delete("/api/retention/policies/activities/{activity_type}", status=204)
async def remove_activity_policy(call: ApiCall) -> None:
    """Remove the policy of one activity type → 204: the default policy of activities applies
    to it again, if there is one (404 `policy_not_found` when it has none)."""
    await _remove(call, call.path("activity_type"))


@router.post("/api/retention/run", response=RunOut)
async def run_now(call: ApiCall) -> RunOut:
    """Run the retention job now and answer the run when it has finished.

    A run that failed is answered too (200), with its `error`; 409 `retention_running` when
    another hub process is running the job.
    """
    hub = call.hub
    run = await anyio.to_thread.run_sync(lambda: job.run(hub.database, hub.settings, call.actor))
    return run_out(run)
