"""The dashboard scoped to a group: only its members' activities and new contacts, exactly; the
same figures as the whole audience's when the group holds everyone; on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from sqlalchemy import select

from contacthub.analytics import dashboard as service
from contacthub.analytics import rollups
from contacthub.errors import InvalidInput
from contacthub.groups import service as groups
from contacthub.storage.database import Database
from contacthub.storage.models import Contact
from tests.analytics.support import Act, add, at, channel, contact_id

START, END = date(2024, 5, 1), date(2024, 5, 3)


def board(db: Database, group: str | None = None) -> service.Dashboard:
    with db.read() as session:
        return service.dashboard(session, START, END, group=group)


def group_of(db: Database, name: str, *contact_ids: int) -> None:
    with db.write() as session:
        guids = [
            str(session.scalar(select(Contact.guid).where(Contact.id == i))) for i in contact_ids
        ]
        groups.create_group(session, name, kind="static")
        groups.add_members(session, name, guids)


def world(db: Database) -> tuple[int, int, int]:
    """Anna (created in the range) and Bob (before it), each with activities in and out of it."""
    web = channel(db, "Website")
    anna = contact_id(db, created_at=at("2024-05-02"))
    bob = contact_id(db, created_at=at("2024-04-01"))
    add(
        db,
        anna,
        Act(at("2024-04-30", "23:59"), "pagevisit", web, None, "https://example.com/old"),
        Act(at("2024-05-01"), "pagevisit", web, None, "https://example.com/"),
        Act(at("2024-05-01"), "pagevisit", web, None, "https://example.com/bob", contact_id=bob),
        Act(at("2024-05-02"), "click", web, "buy"),
        Act(at("2024-05-02"), "click", web, "sell", contact_id=bob),
        Act(at("2024-05-02"), "emailopen", None, "News"),
        Act(at("2024-05-03", "23:59"), "pagevisit", web, None, "https://example.com/"),
        Act(at("2024-05-03"), "pagevisit", web, None, "https://example.com/bob", contact_id=bob),
        Act(at("2024-05-04", "00:00"), "pagevisit", web, None, "https://example.com/"),
    )
    return web, anna, bob


def test_only_the_members_count(database: Database) -> None:
    web, anna, _ = world(database)
    group_of(database, "Anna only", anna)
    scoped = board(database, "Anna only")
    assert scoped.group == "Anna only"
    assert [(s.key, s.values) for s in scoped.by_type] == [
        ("pagevisit", (1, 0, 1)),
        ("click", (0, 1, 0)),
        ("emailopen", (0, 1, 0)),
    ]
    assert [(s.key, s.values) for s in scoped.by_channel] == [
        (str(web), (1, 1, 1)),
        ("0", (0, 1, 0)),
    ]
    assert scoped.totals.activities == 4
    assert scoped.totals.new_contacts == 1
    assert scoped.new_contacts == (0, 1, 0)
    assert scoped.totals.contacts == 1
    assert (scoped.totals.email_opens, scoped.totals.email_clicks) == (1, 0)
    assert [(e.key, e.count) for e in scoped.top_pages] == [("https://example.com/", 2)]
    assert [(e.key, e.count) for e in scoped.top_clicks] == [("buy", 1)]
    everyone = board(database)
    assert everyone.group is None
    assert everyone.totals.activities == 7
    assert everyone.totals.contacts == 2
    with database.write() as session:
        groups.create_group(session, "Nobody yet", kind="static")
    empty = board(database, "Nobody yet")
    assert (empty.totals.activities, empty.totals.contacts, empty.by_type) == (0, 0, ())


@pytest.mark.parametrize("rolled_up", [False, True])
def test_a_group_of_everyone_shows_the_whole_audience(database: Database, rolled_up: bool) -> None:
    _, anna, bob = world(database)
    group_of(database, "Everyone", anna, bob)
    if rolled_up:
        rollups.refresh(database)  # the unscoped dashboard then reads the rollups
    scoped, everyone = board(database, "Everyone"), board(database)
    assert scoped.by_type == everyone.by_type
    assert scoped.by_channel == everyone.by_channel
    assert scoped.totals == everyone.totals
    assert scoped.new_contacts == everyone.new_contacts
    assert scoped.top_pages == everyone.top_pages
    assert scoped.top_clicks == everyone.top_clicks


def test_an_unknown_group_is_a_400_naming_it(database: Database) -> None:
    with database.read() as session, pytest.raises(InvalidInput) as refused:
        service.dashboard(session, START, END, group=str(uuid.uuid4()))
    assert (refused.value.field, refused.value.code) == ("group", "unknown_group")
