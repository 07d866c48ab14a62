"""`/api/activity-types`: the built-in activity types, and custom ones."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from sqlalchemy.orm import Session

from contacthub.activities import service as activity_types
from contacthub.api.routing import CODE_NAME, ApiCall, ApiRouter
from contacthub.storage.models import ActivityType

router = ApiRouter("Activity types")


class ActivityTypeOut(msgspec.Struct):
    code_name: str
    display_name: str
    enabled: bool
    built_in: bool
    created_at: datetime | None


class ActivityTypeIn(msgspec.Struct, forbid_unknown_fields=True):
    code_name: Annotated[str, CODE_NAME]
    display_name: str
    enabled: bool = True


def type_out(activity_type: ActivityType) -> ActivityTypeOut:
    return ActivityTypeOut(
        activity_type.code_name,
        activity_type.display_name,
        activity_type.enabled,
        False,
        activity_type.created_at,
    )


@router.get("/api/activity-types", response=list[ActivityTypeOut])
async def list_activity_types(call: ApiCall) -> list[ActivityTypeOut]:
    """List the built-in types (always enabled), then the custom types."""

    def work(session: Session) -> list[ActivityTypeOut]:
        return [
            ActivityTypeOut(t.code_name, t.display_name, t.enabled, t.built_in, t.created_at)
            for t in activity_types.summaries(session)
        ]

    return await call.hub.read(work)


@router.post("/api/activity-types", body=ActivityTypeIn, response=ActivityTypeOut, status=201)
async def create_activity_type(call: ApiCall, body: ActivityTypeIn) -> ActivityTypeOut:
    """Create a custom activity type (enabled unless `enabled` is false)."""

    def work(session: Session) -> ActivityTypeOut:
        created = activity_types.create_type(
            session,
            body.code_name,
            display_name=body.display_name,
            enabled=body.enabled,
            actor=call.actor,
        )
        return type_out(created)

    return await call.hub.write(work)


async def _set_enabled(call: ApiCall, enabled: bool) -> ActivityTypeOut:
    def work(session: Session) -> ActivityTypeOut:
        changed = activity_types.set_enabled(session, call.path("code"), enabled, actor=call.actor)
        return type_out(changed)

    return await call.hub.write(work)


@router.post("/api/activity-types/{code}/enable", response=ActivityTypeOut)
async def enable_activity_type(call: ApiCall) -> ActivityTypeOut:
    """Accept activities of a custom type again."""
    return await _set_enabled(call, True)


@router.post("/api/activity-types/{code}/disable", response=ActivityTypeOut)
async def disable_activity_type(call: ApiCall) -> ActivityTypeOut:
    """Refuse activities of a custom type until it is enabled again."""
    return await _set_enabled(call, False)
