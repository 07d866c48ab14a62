"""Test data the condition tests name: a consent with two revisions, a custom activity type, a
channel, a newsletter with an issue, and groups."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from sqlalchemy.orm import Session

from contacthub.contacts import service as contacts
from contacthub.email import service as email
from contacthub.groups import service as groups
from contacthub.storage.database import Database
from contacthub.storage.models import ContactGroup
from tests import factories

CONSENT = "NewsletterConsent"
CUSTOM_TYPE = "Webinar"
CHANNEL = "Website"
NEWSLETTER = "Weekly"


@dataclass(frozen=True)
class References:
    """What exists for the conditions to name."""

    issue_guid: str
    group_ids: dict[str, int]


def add_group(session: Session, name: str, conditions: str | None = None) -> int:
    """A group row as the group service stores it (dynamic when it has conditions)."""
    group = ContactGroup(
        name=name, kind="dynamic" if conditions else "static", conditions=conditions
    )
    session.add(group)
    session.flush()
    return group.id


def references(db: Database, groups: tuple[str, ...] = ("Customers",)) -> References:
    factories.consent(db, CONSENT)
    factories.consent_text(db, CONSENT, "en", "<p>Short 2</p>", "<p>Full 2</p>")
    factories.activity_type(db, CUSTOM_TYPE, "Webinar attended")
    factories.tracking_channel(db, CHANNEL)
    with db.write() as session:
        email.create_newsletter(
            session, NEWSLETTER, "The Team", "news@example.com", "https://www.example.com"
        )
        issue = email.create_issue(session, NEWSLETTER, "Spring", "<p>Hi</p>")
        group_ids = {name: add_group(session, name) for name in groups}
        return References(str(issue.guid), group_ids)


# A contact whose name a spreadsheet would run as a formula, in a static group: every members'
# export (admin, API, CLI) must write it as text (contacthub/csv_export.py).
FORMULA_GROUP = "Formulas"
FORMULA_NAME = '=HYPERLINK("https://evil.example.com/","Click")'


def formula_member(db: Database) -> None:
    with db.write() as session:
        contacts.create_contact(
            session, email="eve@example.com", first_name=FORMULA_NAME, last_name="-2+3"
        )
        groups.create_group(session, FORMULA_GROUP, kind="static")
        groups.add_members(session, FORMULA_GROUP, ["eve@example.com"])


def assert_formula_safe(exported: str) -> None:
    """The export has the formula member's row, its name cells made text by a leading `'`."""
    [row] = list(csv.DictReader(io.StringIO(exported)))
    assert (row["email"], row["first_name"], row["last_name"]) == (
        "eve@example.com",
        "'" + FORMULA_NAME,
        "'-2+3",
    )
