"""Contact search: what `q` matches, sorting, keyset paging, bad input; on SQLite and PostgreSQL."""

from __future__ import annotations

import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert

from contacthub.contacts.search import (
    SORTS,
    contact_count,
    decode_cursor,
    encode_cursor,
    search_contacts,
)
from contacthub.errors import InvalidInput
from contacthub.identifiers import MAX_ID
from contacthub.storage.database import Database
from contacthub.storage.models import Contact
from tests import factories


def found(database: Database, q: str = "", **options: Any) -> list[str]:
    """GUIDs of the first page of a search."""
    with database.read() as session:
        return [str(c.guid) for c in search_contacts(session, q, **options).contacts]


def count(database: Database, q: str = "") -> int:
    with database.read() as session:
        return contact_count(session, q)


def every_page(
    database: Database, q: str = "", sort: str = "-created", limit: int = 2
) -> list[str]:
    """GUIDs of every page, following the cursors."""
    guids: list[str] = []
    after = None
    with database.read() as session:
        while True:
            page = search_contacts(session, q, sort, after, limit)
            assert len(page.contacts) <= limit
            guids += [str(c.guid) for c in page.contacts]
            if page.next_after is None:
                return guids
            assert len(page.contacts) == limit
            after = page.next_after


def test_a_guid_finds_that_contact_in_any_spelling(database: Database) -> None:
    ada = factories.contact_with(database, email="ada@example.com", first_name="Ada")
    factories.contact_with(database, email="bob@example.com")
    plain = uuid.UUID(ada)
    for spelling in (ada, ada.upper(), plain.hex, f"{{{ada}}}", f"  {ada} "):
        assert found(database, spelling) == [ada], spelling
        assert count(database, spelling) == 1
    # A GUID matches exactly or not at all: it never falls back to text matching.
    assert found(database, str(uuid.uuid4())) == []
    assert count(database, str(uuid.uuid4())) == 0


def test_an_email_matches_by_its_start_ignoring_case(database: Database) -> None:
    mixed = factories.contact_with(database, email="Ada.Lovelace@Example.com")
    lower = factories.contact_with(database, email="adam@example.com")
    factories.contact_with(database, email="bob@example.com")
    assert set(found(database, "ada")) == {mixed, lower}
    assert found(database, "ADA.LOVE") == [mixed]
    assert found(database, "ada.lovelace@example.COM") == [mixed]
    assert found(database, "adam@") == [lower]
    # Only the start of an address: the domain alone matches nobody.
    assert found(database, "example.com") == []
    assert count(database, "ada") == 2


def test_a_name_matches_anywhere_in_first_or_last_name(database: Database) -> None:
    ada = factories.contact_with(database, first_name="Ada", last_name="Lovelace")
    grace = factories.contact_with(database, first_name="Grace", last_name="Hopper")
    adalbert = factories.contact_with(database, first_name="Adalbert", last_name="Stifter")
    assert set(found(database, "ada")) == {ada, adalbert}
    assert found(database, "LOVE") == [ada]
    assert found(database, "opp") == [grace]
    # "first last" is found across the two fields.
    assert found(database, "ada lovelace") == [ada]
    assert found(database, "Grace Hop") == [grace]
    assert found(database, "Lovelace Ada") == []


def test_an_at_sign_searches_addresses_only(database: Database) -> None:
    factories.contact_with(database, first_name="a@b", email="zed@example.com")
    addressed = factories.contact_with(database, email="a@b.example")
    assert found(database, "a@b") == [addressed]


def test_like_wildcards_in_the_search_are_plain_characters(database: Database) -> None:
    underscore = factories.contact_with(database, email="a_b@example.com", last_name="100%")
    factories.contact_with(database, email="axb@example.com", last_name="1000")
    factories.contact_with(database, email="a\\b@example.com", last_name="x")
    assert found(database, "a_b") == [underscore]
    assert found(database, "100%") == [underscore]
    assert found(database, "%") == [underscore]
    assert len(found(database, "a\\")) == 1


def test_no_search_lists_every_contact_newest_first(database: Database) -> None:
    guids = [factories.contact(database) for _ in range(3)]
    assert found(database) == list(reversed(guids))
    assert found(database, "   ") == list(reversed(guids))
    assert count(database) == 3


def _people(database: Database) -> list[dict[str, Any]]:
    """Contacts with mixed-case, equal and missing emails and last names, in creation order."""
    specs: list[dict[str, Any]] = [
        {"email": "carol@example.com", "last_name": "smith"},
        {"email": "Bob@Example.com", "last_name": "Adams"},
        {},
        {"email": "alice@example.com", "last_name": "Smith"},
        {"email": "bob@example.com", "last_name": None},
        {"email": None, "last_name": "zimmer"},
        {"email": "Alice2@example.com", "last_name": "adams"},
        {},
    ]
    people: list[dict[str, Any]] = []
    for spec in specs:
        guid = factories.contact_with(database, **spec)
        people.append({**spec, "guid": guid, "order": len(people)})
    return people


def _expected(people: list[dict[str, Any]], sort: str) -> list[str]:
    column = sort.lstrip("-")
    descending = sort.startswith("-")
    if column == "created":
        ordered = sorted(people, key=lambda p: p["order"], reverse=descending)
        return [p["guid"] for p in ordered]
    known = [p for p in people if p.get(column)]
    blank = [p for p in people if not p.get(column)]
    known.sort(key=lambda p: (p[column].lower(), p["order"]), reverse=descending)
    blank.sort(key=lambda p: p["order"], reverse=descending)
    return [p["guid"] for p in known + blank]


@pytest.mark.parametrize("sort", SORTS)
def test_every_sort_pages_through_every_contact_once(database: Database, sort: str) -> None:
    people = _people(database)
    expected = _expected(people, sort)
    assert found(database, sort=sort, limit=100) == expected
    for limit in (1, 2, 3, 7, 8):
        assert every_page(database, sort=sort, limit=limit) == expected, limit


def test_paging_a_search_keeps_to_the_search(database: Database) -> None:
    people = _people(database)
    matching = [p["guid"] for p in people if (p.get("email") or "").lower().startswith("bob")]
    assert every_page(database, "BOB", "email", limit=1) == sorted(
        matching, key=lambda g: next(p["order"] for p in people if p["guid"] == g)
    )


def test_new_contacts_do_not_shift_the_pages(database: Database) -> None:
    old = [factories.contact(database) for _ in range(4)]
    with database.read() as session:
        first = search_contacts(session, limit=2)
    newer = factories.contact(database)
    with database.read() as session:
        second = search_contacts(session, after=first.next_after, limit=2)
    assert [str(c.guid) for c in first.contacts] == [old[3], old[2]]
    assert [str(c.guid) for c in second.contacts] == [old[1], old[0]]
    assert second.next_after is None
    assert found(database)[0] == newer


def expect_invalid(database: Database, code: str, field: str, **arguments: Any) -> None:
    with database.read() as session, pytest.raises(InvalidInput) as caught:
        search_contacts(session, **arguments)
    assert caught.value.code == code
    assert caught.value.field == field


def test_bad_input_is_refused_with_the_field_at_fault(database: Database) -> None:
    factories.contact(database)
    expect_invalid(database, "invalid_sort", "sort", sort="name; drop table contacts")
    expect_invalid(database, "invalid_query", "q", q="a" * 255)
    expect_invalid(database, "nul_character", "q", q="ada\x00")
    expect_invalid(database, "invalid_parameter", "limit", limit=0)
    expect_invalid(database, "invalid_parameter", "limit", limit=201)
    for cursor in (
        "not a cursor",
        "!!!",
        encode_cursor("email", "a", 1),  # a cursor of another sort
        encode_cursor("-created", None, -1),
        encode_cursor("-created", None, MAX_ID + 1),  # beyond any contact (PostgreSQL: a 500)
        encode_cursor("email", "a\x00", 1),  # PostgreSQL cannot compare with NUL (a 500)
        "W10",  # []
        "x" * 2_000,
    ):
        expect_invalid(database, "invalid_cursor", "after", after=cursor)


def test_cursors_round_trip() -> None:
    for sort, value, contact_id in (("email", "ä@example.com", 7), ("-created", None, MAX_ID)):
        assert decode_cursor(encode_cursor(sort, value, contact_id), sort) == (value, contact_id)


@pytest.mark.slow
def test_searches_stay_fast_with_100k_contacts(database: Database) -> None:
    """The contacts list's queries on 100,000 contacts (measured: 1 to 45 ms per search on the
    development machine; the bound leaves room for a loaded CI runner)."""
    now = datetime.now(UTC)
    rows = [
        {
            "guid": uuid.uuid4(),
            "email": f"person{i}@example.com" if i % 3 else None,
            "first_name": ("Ada", "Bob", "Carol")[i % 3],
            "last_name": f"Family{i % 997}",
            "created_at": now - timedelta(seconds=i),
            "updated_at": now,
        }
        for i in range(100_000)
    ]
    # render_nulls: rows with and without an email then go in the same batches.
    statement = insert(Contact).execution_options(render_nulls=True)
    with database.write() as session:
        for start in range(0, len(rows), 5_000):
            session.execute(statement, rows[start : start + 5_000])
    searches: list[dict[str, Any]] = [
        {},
        {"sort": "email"},
        {"sort": "-last_name"},
        {"q": "person4711"},
        {"q": "family99"},
        {"q": "zzz"},
        {"q": "Ada Family1"},
        {"q": str(rows[50_000]["guid"])},
    ]
    for search in searches:
        timings = []
        for _ in range(5):
            with database.read() as session:
                started = time.perf_counter()
                search_contacts(session, **search)
                timings.append(time.perf_counter() - started)
        assert statistics.median(timings) < 0.25, (search, timings)
