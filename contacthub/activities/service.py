"""Custom activity types: create, rename, enable, disable, list."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from contacthub.activities import repository
from contacthub.activities.rules import BUILT_IN_TYPES
from contacthub.errors import Conflict, InvalidInput, NotFound
from contacthub.identifiers import check_code_name
from contacthub.storage.models import ActivityType


def create_type(
    session: Session, code_name: str, *, display_name: str, enabled: bool = True
) -> ActivityType:
    """Create a custom activity type."""
    check_code_name(code_name, "activity type")
    if code_name.lower() in BUILT_IN_TYPES:
        raise Conflict(f"{code_name!r} is a built-in activity type.", code="built_in_type")
    if any(t.code_name.lower() == code_name.lower() for t in repository.all_types(session)):
        raise Conflict(f"An activity type {code_name!r} already exists.", code="type_exists")
    display_name = display_name.strip()
    if not display_name or len(display_name) > 200:
        raise InvalidInput("A display name has 1 to 200 characters.", code="invalid_name")
    activity_type = ActivityType(code_name=code_name, display_name=display_name, enabled=enabled)
    session.add(activity_type)
    session.flush()
    return activity_type


def get_type(session: Session, code_name: str) -> ActivityType:
    """The custom type with this code name, or NotFound."""
    activity_type = repository.type_by_code(session, code_name)
    if activity_type is None:
        raise NotFound(f"No activity type {code_name!r}.", code="unknown_activity_type")
    return activity_type


def set_enabled(session: Session, code_name: str, enabled: bool) -> ActivityType:
    """Enable or disable a custom type; activities of a disabled type are refused."""
    activity_type = get_type(session, code_name)
    activity_type.enabled = enabled
    session.flush()
    return activity_type


def list_types(session: Session) -> Sequence[ActivityType]:
    """Every custom activity type, by code name."""
    return repository.all_types(session)
