"""The groups service on both databases: creating, updating, renaming and deleting groups,
static members, rebuilds, the membership history, the audit entries and the live job's queue."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from contacthub.consents import service as consents
from contacthub.contacts import service as contacts
from contacthub.email import service as email
from contacthub.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from contacthub.groups import service as groups
from contacthub.storage.database import Database
from contacthub.storage.models import (
    AuditEvent,
    Contact,
    ContactGroup,
    GroupMembershipEvent,
    GroupPendingContact,
)
from tests import factories

ANNA = {"field": "first_name", "op": "equals", "value": "Anna"}
ANNA_OR_BOB = {"field": "first_name", "op": "in", "value": ["Anna", "Bob"]}
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture
def people(database: Database) -> dict[str, int]:
    """Three contacts: Anna, Bob and an anonymous one; their ids by first name."""
    with database.write() as session:
        anna = contacts.create_contact(session, email="anna@example.com", first_name="Anna")
        bob = contacts.create_contact(session, email="bob@example.com", first_name="Bob")
        nobody = contacts.create_contact(session)
        return {"Anna": anna.id, "Bob": bob.id, "": nobody.id}


def members(database: Database, name: str) -> set[int]:
    with database.read() as session:
        group = groups.get_group(session, name)
        return {m.contact.id for m in groups.iter_members(session, group.name)}


def audit_entries(database: Database) -> list[tuple[str, str, str, Any]]:
    with database.read() as session:
        return [
            (e.actor, e.action, e.subject, json.loads(e.details) if e.details else None)
            for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))
        ]


def history(database: Database, contact_id: int) -> list[tuple[str, bool, str]]:
    with database.read() as session:
        return [
            (h.group_name, h.entered, h.reason)
            for h in groups.membership_history(session, contact_id)
        ]


# -- creating ------------------------------------------------------------------------------------


def test_a_dynamic_group_gets_its_members_with_history_and_audit(
    database: Database, people: dict[str, int]
) -> None:
    with database.write() as session:
        group = groups.create_group(
            session, "Annas", conditions=ANNA, description="Just Anna", actor="ada@example.com"
        )
        guid = str(group.guid)
    assert members(database, "Annas") == {people["Anna"]}
    assert history(database, people["Anna"]) == [
        ("Annas", True, "conditions met (group created by ada@example.com)")
    ]
    assert audit_entries(database) == [
        (
            "ada@example.com",
            "group.created",
            "Annas",
            {"guid": guid, "kind": "dynamic", "members": 1},
        )
    ]
    with database.read() as session:
        [summary] = groups.list_groups(session)
        assert (summary.group.name, summary.group.description, summary.members) == (
            "Annas",
            "Just Anna",
            1,
        )
        stored = session.scalars(select(ContactGroup.conditions)).one()
        assert stored is not None
        assert json.loads(stored) == ANNA


def test_a_static_group_starts_empty(database: Database, people: dict[str, int]) -> None:
    with database.write() as session:
        groups.create_group(session, "VIP", kind="static", actor="cli")
    assert members(database, "VIP") == set()
    [(_, action, subject, details)] = audit_entries(database)
    assert (action, subject, details["kind"], details["members"]) == (
        "group.created",
        "VIP",
        "static",
        0,
    )


@pytest.mark.parametrize(
    ("name", "options", "code", "field"),
    [
        ("", {}, "invalid_name", "name"),
        ("   ", {}, "invalid_name", "name"),
        ("x" * 101, {}, "invalid_name", "name"),
        ("a/b", {}, "invalid_name", "name"),
        ("..", {}, "invalid_name", "name"),
        ("tab\there", {}, "invalid_name", "name"),
        ("Fine", {"kind": "smart"}, "invalid_kind", "kind"),
        ("Fine", {"kind": "dynamic"}, "invalid_conditions", "conditions"),
        ("Fine", {"kind": "static", "conditions": ANNA}, "invalid_conditions", "conditions"),
        ("Fine", {"conditions": {"all": [{"field": "shoe_size"}]}}, None, "conditions.all[0]"),
        ("Fine", {"conditions": {"consent": "Nope", "state": "agreed"}}, "unknown_consent", None),
        ("Fine", {"conditions": {"group": "Nope"}}, "unknown_group", None),
        ("Fine", {"conditions": ANNA, "description": "x" * 1001}, "invalid_description", None),
        ("Fine", {"conditions": ANNA, "description": "nul\x00"}, "nul_character", None),
    ],
)
def test_bad_input_is_refused_and_saves_nothing(
    database: Database,
    people: dict[str, int],
    name: str,
    options: dict[str, Any],
    code: str | None,
    field: str | None,
) -> None:
    with pytest.raises(InvalidInput) as raised, database.write() as session:
        groups.create_group(session, name, actor="cli", **options)
    if code is not None:
        assert raised.value.code == code
    if field is not None:
        assert (raised.value.field or "").startswith(field), raised.value.field
    assert raised.value.message
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(ContactGroup)) == 0
        assert session.scalar(select(func.count()).select_from(GroupMembershipEvent)) == 0
    assert audit_entries(database) == []


def test_a_name_is_taken_once(database: Database, people: dict[str, int]) -> None:
    with database.write() as session:
        groups.create_group(session, "VIP", kind="static")
    with pytest.raises(Conflict) as raised, database.write() as session:
        groups.create_group(session, " VIP ", conditions=ANNA)
    assert raised.value.code == "group_exists"


# -- updating ------------------------------------------------------------------------------------


def test_new_conditions_move_members_with_history_and_audit(
    database: Database, people: dict[str, int]
) -> None:
    with database.write() as session:
        groups.create_group(session, "People", conditions=ANNA)
    with database.write() as session:
        groups.update_group(session, "People", conditions=ANNA_OR_BOB, actor="cli")
    assert members(database, "People") == {people["Anna"], people["Bob"]}
    with database.write() as session:
        groups.update_group(
            session,
            "People",
            conditions={"field": "first_name", "op": "equals", "value": "Bob"},
            actor="cli",
        )
    assert members(database, "People") == {people["Bob"]}
    assert history(database, people["Anna"]) == [
        ("People", False, "conditions no longer met (conditions changed by cli)"),
        ("People", True, "conditions met (group created)"),
    ]
    assert history(database, people["Bob"]) == [
        ("People", True, "conditions met (conditions changed by cli)")
    ]
    assert [entry[1:] for entry in audit_entries(database)] == [
        ("group.updated", "People", {"changed": ["conditions"], "entered": 1, "left": 0}),
        ("group.updated", "People", {"changed": ["conditions"], "entered": 0, "left": 1}),
    ]


def test_an_update_that_changes_nothing_records_nothing(
    database: Database, people: dict[str, int]
) -> None:
    with database.write() as session:
        groups.create_group(session, "People", conditions=ANNA, description="d")
    with database.write() as session:
        groups.update_group(
            session, "People", new_name="People", conditions=ANNA, description=" d ", actor="cli"
        )
    assert audit_entries(database) == []


def test_renaming_keeps_the_groups_that_refer_to_it(
    database: Database, people: dict[str, int]
) -> None:
    with database.write() as session:
        groups.create_group(session, "Annas", conditions=ANNA)
        groups.create_group(session, "Not Annas", conditions={"not": {"group": "Annas"}})
    with database.write() as session:
        groups.update_group(
            session, "Annas", new_name="Anna", description="renamed", actor="ada@example.com"
        )
    with database.write() as session:
        assert groups.rebuild_group(session, "Not Annas") == groups.RebuildReport(0, 0)
        referring = groups.get_group(session, "Not Annas")
        assert referring.conditions is not None
        assert json.loads(referring.conditions) == {
            "not": {"group_id": groups.get_group(session, "Anna").id}
        }
        with pytest.raises(NotFound):
            groups.get_group(session, "Annas")
    assert members(database, "Not Annas") == {people["Bob"], people[""]}
    assert audit_entries(database)[-1] == (
        "ada@example.com",
        "group.updated",
        "Anna",
        {"changed": ["description", "name"], "old_name": "Annas", "entered": 0, "left": 0},
    )


def test_update_refusals(database: Database, people: dict[str, int]) -> None:
    with database.write() as session:
        groups.create_group(session, "A", conditions=ANNA)
        groups.create_group(session, "B", conditions={"group": "A"})
        groups.create_group(session, "VIP", kind="static")
    cases: list[tuple[str, dict[str, Any], type[Exception], str]] = [
        ("A", {"conditions": {"group": "B"}}, InvalidInput, "group_cycle"),
        ("A", {"conditions": {"group": "A"}}, InvalidInput, "group_cycle"),
        ("A", {"new_name": "B"}, Conflict, "group_exists"),
        ("A", {"new_name": "a/b"}, InvalidInput, "invalid_name"),
        ("VIP", {"conditions": ANNA}, InvalidInput, "group_is_static"),
        ("Nope", {"description": "x"}, NotFound, "unknown_group"),
    ]
    for name, changes, error, code in cases:
        with pytest.raises(error) as raised, database.write() as session:
            groups.update_group(session, name, actor="cli", **changes)
        assert raised.value.code == code, (name, changes)  # type: ignore[attr-defined]
    assert audit_entries(database) == []
    assert members(database, "A") == {people["Anna"]}


# -- deleting ------------------------------------------------------------------------------------


def test_a_group_in_use_is_not_deleted(database: Database, people: dict[str, int]) -> None:
    with database.write() as session:
        groups.create_group(session, "Annas", conditions=ANNA)
        groups.create_group(session, "Not Annas", conditions={"not": {"group": "Annas"}})
        email.create_newsletter(
            session, "Weekly", "The Team", "news@example.com", "https://news.example.com"
        )
        issue = email.create_issue(session, "Weekly", "Spring news", "<p>Hi</p>")
        issue.group_id = groups.get_group(session, "Annas").id
        issue_guid = str(issue.guid)
    with pytest.raises(Conflict) as raised, database.write() as session:
        groups.delete_group(session, "Annas", actor="cli")
    assert raised.value.code == "group_in_use"
    assert "'Not Annas'" in raised.value.message
    assert "'Spring news'" in raised.value.message
    assert issue_guid in raised.value.message

    with database.write() as session:
        groups.delete_group(session, "Not Annas", actor="cli")
        email.get_issue(session, issue_guid).status = "sending"
    with pytest.raises(Conflict) as raised, database.write() as session:
        groups.delete_group(session, "Annas", actor="cli")
    assert "Not Annas" not in raised.value.message
    assert "sending" in raised.value.message

    with database.write() as session:
        email.get_issue(session, issue_guid).status = "sent"
    with database.write() as session:
        groups.delete_group(session, "Annas", actor="cli")
        assert groups.list_groups(session) == []
        # A sent issue keeps its figures and forgets the group.
        assert email.get_issue(session, issue_guid).group_id is None
    assert history(database, people["Anna"]) == []
    assert [entry[1:3] for entry in audit_entries(database)] == [
        ("group.deleted", "Not Annas"),
        ("group.deleted", "Annas"),
    ]
    assert audit_entries(database)[-1][3]["members"] == 1


# -- static members ------------------------------------------------------------------------------


def test_static_members_by_guid_or_address_with_problems_per_item(
    database: Database, people: dict[str, int]
) -> None:
    with database.write() as session:
        groups.create_group(session, "VIP", kind="static")
        bob_guid = str(session.get_one(Contact, people["Bob"]).guid)
    items = [
        "ANNA@example.com",
        bob_guid,
        "nobody@example.com",
        "not an address",
        "0b0b0b0b-0000-4000-8000-000000000000",
        "anna@example.com",
    ]
    with database.write() as session:
        report = groups.add_members(session, "VIP", items, actor="cli")
    assert (report.added, report.already_members) == (2, 0)
    assert [(p.item, p.code) for p in report.problems] == [
        ("nobody@example.com", "unknown_contact"),
        ("not an address", "invalid_contact"),
        ("0b0b0b0b-0000-4000-8000-000000000000", "unknown_contact"),
    ]
    assert members(database, "VIP") == {people["Anna"], people["Bob"]}

    with database.write() as session:
        again = groups.add_members(session, "VIP", ["anna@example.com"], actor="cli")
        removed = groups.remove_members(
            session, "VIP", [bob_guid, "nobody@example.com"], actor="ada@example.com"
        )
        none_left = groups.remove_members(session, "VIP", [bob_guid], actor="cli")
    assert (again.added, again.already_members, again.problems) == (0, 1, [])
    assert (removed.removed, removed.not_members, len(removed.problems)) == (1, 0, 1)
    assert (none_left.removed, none_left.not_members) == (0, 1)
    assert members(database, "VIP") == {people["Anna"]}
    assert history(database, people["Bob"]) == [
        ("VIP", False, "removed by ada@example.com"),
        ("VIP", True, "added by cli"),
    ]
    # Only the calls that changed something are recorded.
    assert [entry[1:] for entry in audit_entries(database)] == [
        ("group.members_added", "VIP", {"added": 2, "already_members": 0, "unknown": 3}),
        ("group.members_removed", "VIP", {"removed": 1, "not_members": 0, "unknown": 1}),
    ]


def test_static_and_dynamic_operations_are_kept_apart(
    database: Database, people: dict[str, int]
) -> None:
    with database.write() as session:
        groups.create_group(session, "Annas", conditions=ANNA)
        groups.create_group(session, "VIP", kind="static")
    with pytest.raises(InvalidInput) as raised, database.write() as session:
        groups.add_members(session, "Annas", ["bob@example.com"])
    assert raised.value.code == "group_is_dynamic"
    with pytest.raises(InvalidInput) as raised, database.write() as session:
        groups.remove_members(session, "Annas", ["anna@example.com"])
    assert raised.value.code == "group_is_dynamic"
    with pytest.raises(InvalidInput) as raised, database.write() as session:
        groups.rebuild_group(session, "VIP")
    assert raised.value.code == "group_is_static"
    with pytest.raises(PayloadTooLarge), database.write() as session:
        groups.add_members(session, "VIP", ["a@example.com"] * (groups.MAX_ITEMS + 1))


# -- rebuild, pages, exports, the contact's view -------------------------------------------------


def test_rebuild_repairs_and_reports(database: Database, people: dict[str, int]) -> None:
    with database.write() as session:
        groups.create_group(session, "Annas", conditions=ANNA)
        # A change that bypasses the services (and so the live job's queue).
        session.get_one(Contact, people["Bob"]).first_name = "Anna"
        session.get_one(Contact, people["Anna"]).first_name = "Hannah"
    with database.write() as session:
        report = groups.rebuild_group(session, "Annas", actor="cli", now=NOW)
        assert groups.get_group(session, "Annas").rebuilt_at == NOW
    assert report == groups.RebuildReport(entered=1, left=1)
    assert members(database, "Annas") == {people["Bob"]}
    assert history(database, people["Anna"])[0] == (
        "Annas",
        False,
        "conditions no longer met (rebuild by cli)",
    )
    assert audit_entries(database)[-1][1:] == (
        "group.rebuilt",
        "Annas",
        {"entered": 1, "left": 1, "members": 1},
    )


def test_members_page_by_page_and_exported(database: Database, people: dict[str, int]) -> None:
    with database.write() as session:
        groups.create_group(session, "Everyone", conditions={"all": []})
    seen: list[int] = []
    cursor = None
    with database.read() as session:
        while True:
            page = groups.members_page(session, "Everyone", cursor=cursor, limit=2)
            seen += [m.contact.id for m in page.members]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        for bad in ("x", "-1", "99999999999999999999"):
            with pytest.raises(InvalidInput):
                groups.members_page(session, "Everyone", cursor=bad, limit=2)
        for limit in (0, groups.MAX_PAGE + 1):
            with pytest.raises(InvalidInput):
                groups.members_page(session, "Everyone", cursor=None, limit=limit)
    assert seen == sorted(people.values())
    with database.write() as session:
        exported = [m.contact.email for m in groups.iter_members(session, "Everyone", actor="cli")]
    assert exported == ["anna@example.com", "bob@example.com", None]
    assert audit_entries(database)[-1] == ("cli", "group.exported", "Everyone", {"members": 3})


def test_a_contacts_groups_and_history(database: Database, people: dict[str, int]) -> None:
    with database.write() as session:
        groups.create_group(session, "Zeta", conditions={"all": []}, now=NOW)
        groups.create_group(session, "Alpha", kind="static")
        groups.add_members(session, "Alpha", ["anna@example.com"], actor="cli")
    with database.read() as session:
        current = groups.contact_groups(session, people["Anna"])
        assert [m.group.name for m in current] == ["Alpha", "Zeta"]
        assert current[1].since == NOW
        assert [m.group.name for m in groups.contact_groups(session, people["Bob"])] == ["Zeta"]
        assert len(groups.membership_history(session, people["Anna"], limit=1)) == 1
    assert history(database, people["Anna"]) == [
        ("Alpha", True, "added by cli"),
        ("Zeta", True, "conditions met (group created)"),
    ]


def test_preview_counts_and_saves_nothing(database: Database, people: dict[str, int]) -> None:
    with database.read() as session:
        assert groups.preview_count(session, ANNA_OR_BOB) == 2
        assert groups.preview_count(session, {"not": ANNA_OR_BOB}) == 1
        with pytest.raises(InvalidInput):
            groups.preview_count(session, {"any": "nope"})
        assert groups.list_groups(session) == []


# -- the live job's queue ------------------------------------------------------------------------


def queued(database: Database) -> set[int]:
    with database.read() as session:
        return set(session.scalars(select(GroupPendingContact.contact_id)))


def test_changes_queue_their_contacts_only_when_a_dynamic_group_exists(
    database: Database, people: dict[str, int]
) -> None:
    factories.consent(database, "Marketing")
    with database.write() as session:
        anna = session.get_one(Contact, people["Anna"])
        consents.record_agreement(session, str(anna.guid), "Marketing", agree=True)
        groups.create_group(session, "VIP", kind="static")
        groups.add_members(session, "VIP", ["anna@example.com"])
    assert queued(database) == set()  # no dynamic group: nothing to evaluate

    with database.write() as session:
        groups.create_group(session, "Annas", conditions=ANNA)
    assert queued(database) == set()
    with database.write() as session:
        consents.record_agreement(session, str(anna.guid), "Marketing", agree=False)
    assert queued(database) == {people["Anna"]}
    with database.write() as session:
        email.create_newsletter(
            session, "Weekly", "The Team", "news@example.com", "https://news.example.com"
        )
        email.add_subscriber(session, "Weekly", "bob@example.com")
        new = contacts.create_contact(session)
    assert queued(database) == {people["Anna"], people["Bob"], new.id}
    with database.write() as session:
        session.execute(GroupPendingContact.__table__.delete())
        email.unsubscribe(session, email.get_subscriber(session, "Weekly", "bob@example.com"))
        groups.remove_members(session, "VIP", ["anna@example.com"])
    assert queued(database) == {people["Anna"], people["Bob"]}


def test_queueing_again_renews_the_queued_time(database: Database, people: dict[str, int]) -> None:
    with database.write() as session:
        groups.create_group(session, "Annas", conditions=ANNA)
        groups.enqueue_contacts(session, [people["Anna"]])
    with database.read() as session:
        first = session.scalars(select(GroupPendingContact.queued_at)).one()
    with database.write() as session:
        groups.enqueue_contacts(session, [people["Anna"], people["Anna"]])
    with database.read() as session:
        second = session.scalars(select(GroupPendingContact.queued_at)).one()
    assert second > first
    assert second - first < timedelta(minutes=1)
