"""How groups are written out, the same from the management API and the CLI: conditions as
people write them (groups by name), members as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from contacthub.groups import conditions as language
from contacthub.groups.service import Member
from contacthub.storage.models import ContactGroup

CSV_COLUMNS = ("guid", "email", "first_name", "last_name", "since")


def member_row(member: Member) -> tuple[str, str, str, str, str]:
    """A member as a row of the CSV export (CSV_COLUMNS)."""
    contact = member.contact
    return (
        str(contact.guid),
        contact.email or "",
        contact.first_name or "",
        contact.last_name or "",
        member.since.isoformat(),
    )


def csv_lines(rows: Iterable[tuple[str, ...]]) -> str:
    """Rows as CSV text (RFC 4180: CRLF line ends, quotes where needed)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


def shown_conditions(session: Session, group: ContactGroup) -> dict[str, Any] | None:
    """A dynamic group's conditions as people write them (`{"group": NAME}`, not the stored
    id, so a renamed group shows its new name); None for a static group."""
    if group.conditions is None:
        return None
    condition = language.load_conditions(session, group.conditions)
    return language.dump_conditions(condition, for_display=True)
