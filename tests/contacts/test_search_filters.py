"""Contact list filters: group, consent agreed now, newsletter subscription, country, last
activity; combined with the search text, sorting and paging; bad values refused; on SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from contacthub.contacts.search import (
    ContactFilter,
    contact_count,
    parse_filter,
    search_contacts,
)
from contacthub.errors import HubError, InvalidInput
from contacthub.storage.database import Database
from tests.contacts.filters_support import Audience, audience


@pytest.fixture
def world(database: Database) -> Audience:
    return audience(database)


def listed(database: Database, world: Audience, q: str = "", **filters: Any) -> list[str]:
    """The names on the first page (oldest first), after checking the count agrees."""
    parsed = parse_filter(**filters)
    with database.read() as session:
        page = search_contacts(session, q, "created", filters=parsed, now=world.now)
        total = contact_count(session, q, filters=parsed, now=world.now)
    names = world.names([str(c.guid) for c in page.contacts])
    assert total == len(names)
    return names


def test_no_filter_lists_everyone(database: Database, world: Audience) -> None:
    assert listed(database, world) == ["ada", "bob", "cy", "dan"]


def test_each_filter(database: Database, world: Audience) -> None:
    assert listed(database, world, group="VIP") == ["ada", "cy"]
    # Bob agreed, then revoked: only the latest event counts.
    assert listed(database, world, consent="News") == ["ada", "dan"]
    assert listed(database, world, consent="news") == ["ada", "dan"]  # code names ignore case
    # Bob unsubscribed; Dan was never subscribed.
    assert listed(database, world, newsletter="Weekly") == ["ada"]
    assert listed(database, world, country="cze") == ["ada", "dan"]
    assert listed(database, world, country=" USA ") == ["bob"]
    assert listed(database, world, active_within="7") == ["ada"]
    assert listed(database, world, active_within=30) == ["ada", "dan"]
    assert listed(database, world, active_within="41") == ["ada", "bob", "dan"]
    # No activity in the window: never active at all counts too.
    assert listed(database, world, inactive_for="7") == ["bob", "cy", "dan"]
    assert listed(database, world, inactive_for="30") == ["bob", "cy"]


def test_filters_combine_with_each_other_and_the_search(
    database: Database, world: Audience
) -> None:
    assert listed(database, world, consent="News", country="CZE", active_within="5") == ["ada"]
    # Active in the last 30 days but not in the last 7: lapsing.
    assert listed(database, world, active_within="30", inactive_for="7") == ["dan"]
    assert listed(database, world, group="VIP", inactive_for="3") == ["cy"]
    assert listed(database, world, "dan", country="CZE") == ["dan"]
    assert listed(database, world, "bob", country="CZE") == []
    assert listed(database, world, "a", consent="News") == ["ada", "dan"]


def test_paging_with_filters_neither_skips_nor_repeats(database: Database, world: Audience) -> None:
    filters = parse_filter(country="CZE")
    for sort in ("-created", "created", "email", "-email", "last_name", "-last_name"):
        seen: list[str] = []
        after = None
        with database.read() as session:
            while True:
                page = search_contacts(session, "", sort, after, 1, filters=filters)
                seen += world.names([str(c.guid) for c in page.contacts])
                if page.next_after is None:
                    break
                after = page.next_after
        assert sorted(seen) == ["ada", "dan"], sort


def test_the_list_shows_country_and_last_activity(database: Database, world: Audience) -> None:
    with database.read() as session:
        page = search_contacts(session, "", "created")
    ada, bob, cy, dan = page.contacts
    assert (ada.country, bob.country, cy.country, dan.country) == ("CZE", "USA", None, "CZE")
    assert ada.last_activity_at is not None
    assert abs(ada.last_activity_at - (world.now - timedelta(days=2))) < timedelta(seconds=1)
    assert cy.last_activity_at is None
    assert dan.company_name == "=HYPERLINK(1)"


@pytest.mark.parametrize(
    ("filters", "field", "code"),
    [
        ({"country": "XYZ"}, "country", "invalid_country"),
        ({"country": "CZ"}, "country", "invalid_country"),
        ({"country": "a\x00b"}, "country", "nul_character"),
        ({"group": "a\x00b"}, "group", "nul_character"),
        ({"active_within": "0"}, "active_within", "invalid_parameter"),
        ({"active_within": "-3"}, "active_within", "invalid_parameter"),
        ({"active_within": "3650 "}, None, None),
        ({"active_within": "3651"}, "active_within", "invalid_parameter"),
        ({"inactive_for": "ten"}, "inactive_for", "invalid_parameter"),
        ({"inactive_for": "²"}, "inactive_for", "invalid_parameter"),
        ({"inactive_for": 10**40}, "inactive_for", "invalid_parameter"),
    ],
)
def test_malformed_values_are_refused_naming_the_filter(
    filters: dict[str, Any], field: str | None, code: str | None
) -> None:
    if code is None:
        parse_filter(**filters)
        return
    with pytest.raises(InvalidInput) as refused:
        parse_filter(**filters)
    assert (refused.value.field, refused.value.code) == (field, code)


@pytest.mark.parametrize(
    ("filters", "field", "code"),
    [
        (ContactFilter(group="Nobody"), "group", "unknown_group"),
        (ContactFilter(consent="Nope"), "consent", "unknown_consent"),
        (ContactFilter(consent="not a code name!"), "consent", "unknown_consent"),
        (ContactFilter(newsletter="Monthly"), "newsletter", "unknown_newsletter"),
    ],
)
def test_unknown_names_are_a_400_naming_the_filter(
    database: Database, world: Audience, filters: ContactFilter, field: str, code: str
) -> None:
    for read in (
        lambda session: search_contacts(session, filters=filters),
        lambda session: contact_count(session, filters=filters),
    ):
        with database.read() as session, pytest.raises(HubError) as refused:
            read(session)
        assert refused.value.status_code == 400
        assert (refused.value.field, refused.value.code) == (field, code)


def test_empty_values_mean_no_filter() -> None:
    assert parse_filter(group=" ", consent="", newsletter=None, country="", active_within="") == (
        ContactFilter()
    )
    assert not ContactFilter()
    assert ContactFilter(country="CZE").as_dict() == {"country": "CZE"}
