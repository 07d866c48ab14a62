"""How groups are written out, the same from the admin, the management API and the CLI:
conditions as people write them (groups by name), members as CSV (through the one formula-safe
writer, contacthub/csv_export.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from contacthub.csv_export import csv_line
from contacthub.groups import conditions as language
from contacthub.groups.service import Member
from contacthub.storage.models import ContactGroup

CSV_COLUMNS = ("guid", "email", "first_name", "last_name", "since")


def member_row(member: Member) -> dict[str, str | None]:
    """A member as a record (CSV_COLUMNS) of the CLI's and the API's listings."""
    contact = member.contact
    return {
        "guid": str(contact.guid),
        "email": contact.email,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "since": member.since.isoformat(),
    }


def csv_header() -> str:
    """The header line of the members' CSV."""
    return csv_line(CSV_COLUMNS)


def member_line(member: Member) -> str:
    """A member as one line of the members' CSV, each cell formula-safe."""
    return csv_line(member_row(member).values())


def shown_conditions(session: Session, group: ContactGroup) -> dict[str, Any] | None:
    """A dynamic group's conditions as people write them (`{"group": NAME}`, not the stored
    id, so a renamed group shows its new name); None for a static group."""
    if group.conditions is None:
        return None
    condition = language.load_conditions(session, group.conditions)
    return language.dump_conditions(condition, for_display=True)
