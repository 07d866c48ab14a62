"""Activity types: the built-in ones, and custom ones to create, enable, disable, list."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from contacthub.activities import repository
from contacthub.activities.rules import (
    BUILT_IN_TYPES,
    CLICK,
    DATA_INPUT,
    EMAIL_CLICK,
    EMAIL_OPEN,
    PAGE_VISIT,
)
from contacthub.audit import service as audit
from contacthub.errors import Conflict, InvalidInput, NotFound
from contacthub.identifiers import CODE_NAME, check_code_name
from contacthub.storage.models import ActivityType

MAX_DISPLAY_NAME_LENGTH = 200

# The built-in types, as people read them, and what records them.
BUILT_IN_DETAILS: dict[str, tuple[str, str]] = {
    PAGE_VISIT: ("Page visit", "Tracking API"),
    CLICK: ("Click", "Tracking API"),
    DATA_INPUT: ("Data input", "Tracking API"),
    EMAIL_OPEN: ("Email open", "Email tracking"),
    EMAIL_CLICK: ("Email click", "Email tracking"),
}


@dataclass(frozen=True, slots=True)
class TypeSummary:
    """A built-in or custom activity type, as lists show it."""

    code_name: str
    display_name: str
    enabled: bool
    built_in: bool
    recorded_by: str
    created_at: datetime | None


def create_type(
    session: Session,
    code_name: str,
    *,
    display_name: str,
    enabled: bool = True,
    actor: str | None = None,
) -> ActivityType:
    """Create a custom activity type; `actor` (if given) is audited, as for every change here."""
    try:
        check_code_name(code_name, "activity type")
    except InvalidInput as error:
        # The shared check knows no form; here the code name is always the `code_name` field.
        error.field = "code_name"
        raise
    if code_name.lower() in BUILT_IN_TYPES:
        raise Conflict(
            f"{code_name!r} is a built-in activity type.", code="built_in_type", field="code_name"
        )
    display_name = display_name.strip()
    if not display_name or len(display_name) > MAX_DISPLAY_NAME_LENGTH:
        raise InvalidInput(
            f"A display name has 1 to {MAX_DISPLAY_NAME_LENGTH} characters.",
            code="invalid_name",
            field="display_name",
        )
    if any(t.code_name.lower() == code_name.lower() for t in repository.all_types(session)):
        raise Conflict(
            f"An activity type {code_name!r} already exists.", code="type_exists", field="code_name"
        )
    activity_type = ActivityType(code_name=code_name, display_name=display_name, enabled=enabled)
    session.add(activity_type)
    session.flush()
    if actor is not None:
        audit.record(
            session,
            actor,
            "activity_type.created",
            activity_type.code_name,
            {"display_name": activity_type.display_name, "enabled": activity_type.enabled},
        )
    return activity_type


def get_type(session: Session, code_name: str) -> ActivityType:
    """The custom type with this code name, or NotFound."""
    # A name no type can have (e.g. with NUL, which PostgreSQL refuses) is simply unknown.
    known = CODE_NAME.fullmatch(code_name)
    activity_type = repository.type_by_code(session, code_name) if known else None
    if activity_type is None:
        raise NotFound(f"No activity type {code_name!r}.", code="unknown_activity_type")
    return activity_type


def set_enabled(
    session: Session, code_name: str, enabled: bool, *, actor: str | None = None
) -> ActivityType:
    """Enable or disable a custom type; activities of a disabled type are refused."""
    if code_name.lower() in BUILT_IN_TYPES:
        raise Conflict(
            f"{code_name!r} is a built-in activity type: it is always enabled.",
            code="built_in_type",
        )
    activity_type = get_type(session, code_name)
    activity_type.enabled = enabled
    session.flush()
    if actor is not None:
        action = "activity_type.enabled" if enabled else "activity_type.disabled"
        audit.record(session, actor, action, activity_type.code_name)
    return activity_type


def list_types(session: Session) -> Sequence[ActivityType]:
    """Every custom activity type, by code name."""
    return repository.all_types(session)


def summaries(session: Session) -> list[TypeSummary]:
    """The built-in types (always enabled), then the custom types by code name."""
    built_in = [
        TypeSummary(code, name, True, True, recorded_by, None)
        for code, (name, recorded_by) in BUILT_IN_DETAILS.items()
    ]
    custom = [
        TypeSummary(t.code_name, t.display_name, t.enabled, False, "Tracking API", t.created_at)
        for t in repository.all_types(session)
    ]
    return built_in + custom
