"""The activity log service: filters, keyset paging, date bounds by id, the scan limit."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, event

from contacthub.activities import log
from contacthub.activities.log import LogFilters, LogPage, activity_log, first_id_at_or_after
from contacthub.contacts import service as contacts
from contacthub.errors import InvalidInput
from contacthub.storage.database import Database
from contacthub.storage.models import Activity
from tests import factories
from tests.activities.support import T0, insert, minutes, new_channel, new_contact, row


def page(database: Database, filters: LogFilters | None = None, **kwargs: Any) -> LogPage:
    with database.read() as session:
        return activity_log(session, filters or LogFilters(), **kwargs)


def ids_of(result: LogPage) -> list[int]:
    return [entry.id for entry in result.entries]


@contextmanager
def counted_statements(database: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(database.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(database.engine, "before_cursor_execute", count)


# --- date bounds by id ---------------------------------------------------------------------


def test_first_id_at_or_after_finds_the_bound_with_few_probes(database: Database) -> None:
    contact_id, _ = new_contact(database)
    ids = insert(database, [row(contact_id, minutes(i)) for i in range(1000)])
    with database.read() as session:
        for n in (0, 1, 2, 499, 500, 998, 999):
            assert first_id_at_or_after(session, minutes(n)) == ids[n]
        # Between two activities: the later one.
        assert first_id_at_or_after(session, minutes(10) + timedelta(seconds=30)) == ids[11]
        assert first_id_at_or_after(session, T0 - timedelta(days=1)) == ids[0]
        assert first_id_at_or_after(session, minutes(1000)) == ids[-1] + 1
    with counted_statements(database) as statements, database.read() as session:
        first_id_at_or_after(session, minutes(700))
    # Min, max and a binary search over the ids: a scan would be one statement, and ~1000
    # probes would be a linear search.
    probes = [s for s in statements if "WHERE activities.id >=" in s]
    assert 1 <= len(probes) <= math.ceil(math.log2(1000)) + 1


def test_first_id_at_or_after_skips_gaps_in_the_ids(database: Database) -> None:
    contact_id, _ = new_contact(database)
    ids = insert(database, [row(contact_id, minutes(i)) for i in range(300)])
    erased = ids[100:250]
    with database.write() as session:
        session.execute(delete(Activity).where(Activity.id.in_(erased)))
    with database.read() as session:
        # Every moment in the gap leads to the first id after it.
        for n in (100, 180, 249, 250):
            assert first_id_at_or_after(session, minutes(n)) == ids[250]
        assert first_id_at_or_after(session, minutes(99)) == ids[99]


def test_first_id_at_or_after_on_an_empty_log(database: Database) -> None:
    with database.read() as session:
        assert first_id_at_or_after(session, T0) == 1


def test_date_range_includes_both_days_exactly(database: Database) -> None:
    contact_id, _ = new_contact(database)
    day = timedelta(days=1)
    times = [
        T0 - timedelta(microseconds=1),  # the day before the range
        T0,  # 1 March, midnight: first moment
        T0 + timedelta(hours=12),
        T0 + 2 * day - timedelta(microseconds=1),  # 2 March, last moment
        T0 + 2 * day,  # 3 March: out
    ]
    ids = insert(database, [row(contact_id, at) for at in times])
    result = page(database, LogFilters(start=date(2025, 3, 1), end=date(2025, 3, 2)))
    assert ids_of(result) == [ids[3], ids[2], ids[1]]
    assert ids_of(page(database, LogFilters(start=date(2025, 3, 3)))) == [ids[4]]
    assert ids_of(page(database, LogFilters(end=date(2025, 2, 28)))) == [ids[0]]
    assert page(database, LogFilters(start=date(2025, 4, 1))).entries == []


def test_date_range_is_exact_when_ids_and_times_are_a_little_out_of_order(
    database: Database,
) -> None:
    # Times are taken on arrival, ids on commit: batches can commit in another order. Here one
    # row of 2 March commits before one of 1 March. A search over ids alone must get one of
    # the two bounds wrong; the slack and the exact test of created_at get both right.
    contact_id, _ = new_contact(database)
    midnight = T0 + timedelta(days=1)
    times = [midnight - timedelta(minutes=100 - i) for i in range(100)]
    times += [midnight + timedelta(minutes=1), midnight - timedelta(seconds=30)]
    times += [midnight + timedelta(minutes=2 + i) for i in range(100)]
    ids = insert(database, [row(contact_id, at) for at in times])
    first_day = [i for i, at in zip(ids, times, strict=True) if at < midnight]
    second_day = [i for i, at in zip(ids, times, strict=True) if at >= midnight]

    day_one = LogFilters(end=date(2025, 3, 1))
    day_two = LogFilters(start=date(2025, 3, 2))
    assert ids_of(page(database, day_one, limit=500)) == sorted(first_day, reverse=True)
    assert ids_of(page(database, day_two, limit=500)) == sorted(second_day, reverse=True)
    with database.read() as session:
        # The binary search lands on one side of the disorder or the other.
        assert first_id_at_or_after(session, midnight) in (ids[100], ids[102])


# --- filters --------------------------------------------------------------------------------


@pytest.fixture
def mixed(database: Database) -> dict[str, Any]:
    """Activities of two contacts on two channels and in email, of several types."""
    web_id, web_guid = new_channel(database, "Web site")
    app_id, _ = new_channel(database, "Mobile app")
    factories.activity_type(database, "Download", "Downloaded a file")
    alice_id, alice = new_contact(database)
    bob_id, bob = new_contact(database)
    rows = [
        row(alice_id, minutes(0), channel_id=web_id, url="https://example.com/Pricing"),
        row(alice_id, minutes(1), channel_id=web_id, type="click", value="Buy", url=None),
        row(bob_id, minutes(2), channel_id=app_id, url="https://example.com/100%_off"),
        row(bob_id, minutes(3), channel_id=None, type="emailopen", value="News", url=None),
        row(alice_id, minutes(4), channel_id=None, type="emailclick", url="https://x.org/pricing"),
        row(bob_id, minutes(5), channel_id=app_id, type="Download", value="a.pdf", url=None),
        row(alice_id, minutes(60 * 24 * 3), channel_id=web_id, url="https://example.com/about"),
    ]
    ids = insert(database, rows)
    return {
        "ids": ids,
        "web": (web_id, web_guid),
        "app": app_id,
        "alice": alice,
        "bob": bob,
    }


def test_filter_by_channel_id_name_tracking_identifier_or_email(
    database: Database, mixed: dict[str, Any]
) -> None:
    ids = mixed["ids"]
    web_id, web_guid = mixed["web"]
    web = [ids[6], ids[1], ids[0]]
    for spelling in (str(web_id), "Web site", web_guid, web_guid.upper()):
        assert ids_of(page(database, LogFilters(channel=spelling))) == web
    assert ids_of(page(database, LogFilters(channel="email"))) == [ids[4], ids[3]]
    assert ids_of(page(database, LogFilters(channel="EMAIL"))) == [ids[4], ids[3]]
    entry = page(database, LogFilters(channel="email")).entries[0]
    assert entry.channel is None
    assert entry.channel_id is None
    assert page(database, LogFilters(channel="Web site")).entries[0].channel == "Web site"


def test_filter_by_type_built_in_and_custom(database: Database, mixed: dict[str, Any]) -> None:
    ids = mixed["ids"]
    assert ids_of(page(database, LogFilters(type="pagevisit"))) == [ids[6], ids[2], ids[0]]
    assert ids_of(page(database, LogFilters(type="PageVisit"))) == [ids[6], ids[2], ids[0]]
    assert ids_of(page(database, LogFilters(type="emailclick"))) == [ids[4]]
    # A custom type is stored under its code name; any case finds it.
    assert ids_of(page(database, LogFilters(type="download"))) == [ids[5]]


def test_filter_by_contact(database: Database, mixed: dict[str, Any]) -> None:
    ids = mixed["ids"]
    alice = uuid.UUID(mixed["alice"])
    result = page(database, LogFilters(contact=alice))
    assert ids_of(result) == [ids[6], ids[4], ids[1], ids[0]]
    assert {entry.contact for entry in result.entries} == {alice}
    both = LogFilters(contact=alice, channel="email")
    assert ids_of(page(database, both)) == [ids[4]]


def test_filter_by_url_contains_ignoring_case_and_wildcards(
    database: Database, mixed: dict[str, Any]
) -> None:
    ids = mixed["ids"]
    assert ids_of(page(database, LogFilters(url="/pricing"))) == [ids[4], ids[0]]
    assert ids_of(page(database, LogFilters(url="PRICING"))) == [ids[4], ids[0]]
    # % and _ are characters here, not LIKE wildcards.
    assert ids_of(page(database, LogFilters(url="100%_off"))) == [ids[2]]
    assert ids_of(page(database, LogFilters(url="%"))) == [ids[2]]
    assert ids_of(page(database, LogFilters(url="_"))) == [ids[2]]


def test_filters_combine(database: Database, mixed: dict[str, Any]) -> None:
    ids = mixed["ids"]
    filters = LogFilters(channel="Web site", type="pagevisit", end=date(2025, 3, 1))
    assert ids_of(page(database, filters)) == [ids[0]]


def test_entries_carry_what_the_log_shows(database: Database, mixed: dict[str, Any]) -> None:
    entry = page(database, LogFilters(type="download")).entries[0]
    assert entry.type == "Download"
    assert entry.channel == "Mobile app"
    assert entry.contact == uuid.UUID(mixed["bob"])
    assert entry.value == "a.pdf"
    assert entry.created_at == minutes(5)


def test_entries_name_their_contacts_with_one_query_for_the_page(database: Database) -> None:
    with database.write() as session:
        named = contacts.create_contact(session, first_name="Ada", last_name="Lovelace")
        first_only = contacts.create_contact(session, first_name="Grace", email="g@example.com")
        addressed = contacts.create_contact(session, email="only@example.com")
        anonymous = contacts.create_contact(session)
        people = [named.id, first_only.id, addressed.id, anonymous.id]
    many = [new_contact(database)[0] for _ in range(20)]
    insert(database, [row(contact_id, minutes(i)) for i, contact_id in enumerate(people + many)])
    with counted_statements(database) as statements:
        entries = page(database, limit=len(people) + len(many)).entries
    names = [entry.contact_name for entry in reversed(entries)][: len(people)]
    # The name where known, else the address; nothing for an anonymous contact.
    assert names == ["Ada Lovelace", "Grace", "only@example.com", None]
    # Channels, then every contact of the page at once: not one query per row.
    assert sum("FROM contacts" in statement for statement in statements) == 1


@pytest.mark.parametrize(
    ("given", "field", "code"),
    [
        ({"contact": "not-a-guid"}, "contact", "invalid_contact"),
        ({"start": "2025-13-01"}, "start", "invalid_date"),
        ({"end": "yesterday"}, "end", "invalid_date"),
        ({"start": "2025-3-1"}, "start", "invalid_date"),
        ({"start": "2025-03-02", "end": "2025-03-01"}, "end", "invalid_date_range"),
        ({"url": "x" * 2001}, "url", "invalid_url_filter"),
        ({"url": "a\x00b"}, "url", "invalid_url_filter"),
    ],
)
def test_malformed_filters_name_their_field(given: dict[str, str], field: str, code: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        LogFilters.parse(**given)
    assert (raised.value.field, raised.value.code) == (field, code)


def test_parse_reads_every_filter() -> None:
    guid = uuid.uuid4()
    filters = LogFilters.parse(
        channel="Web",
        activity_type="click",
        contact=str(guid).upper(),
        url="/pricing",
        start="2025-03-01",
        end="2025-03-01",
    )
    assert filters == LogFilters(
        "Web", "click", guid, "/pricing", date(2025, 3, 1), date(2025, 3, 1)
    )
    assert LogFilters.from_query(filters.as_query()) == filters
    assert LogFilters.parse() == LogFilters()


@pytest.mark.parametrize(
    ("filters", "field", "code"),
    [
        (LogFilters(channel="Nope"), "channel", "unknown_channel"),
        (LogFilters(channel="999"), "channel", "unknown_channel"),
        (LogFilters(type="purchase"), "type", "unknown_activity_type"),
        (LogFilters(contact=uuid.uuid4()), "contact", "unknown_contact"),
    ],
)
def test_unknown_filter_values_name_their_field(
    database: Database, mixed: dict[str, Any], filters: LogFilters, field: str, code: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        page(database, filters)
    assert (raised.value.field, raised.value.code) == (field, code)


def test_both_cursors_at_once_is_an_error(database: Database) -> None:
    with pytest.raises(InvalidInput) as raised:
        page(database, before_id=10, after_id=5)
    assert raised.value.code == "invalid_parameter"


def test_parse_cursor() -> None:
    assert log.parse_cursor("", "before") is None
    assert log.parse_cursor("42", "before") == 42
    for bad in ("-1", "1.5", "abc", "9" * 19):
        with pytest.raises(InvalidInput) as raised:
            log.parse_cursor(bad, "after")
        assert raised.value.field == "after"


def test_an_empty_log(database: Database) -> None:
    result = page(database, LogFilters(type="click"))
    assert result == LogPage([], None, None)


# --- keyset paging --------------------------------------------------------------------------


def walk_down(database: Database, filters: LogFilters, limit: int) -> list[LogPage]:
    pages = [page(database, filters, limit=limit)]
    while pages[-1].older_before is not None:
        pages.append(page(database, filters, before_id=pages[-1].older_before, limit=limit))
        assert len(pages) < 100
    return pages


@pytest.mark.parametrize("every", [1, 3])
def test_paging_down_and_up_has_no_gaps_or_duplicates(database: Database, every: int) -> None:
    contact_id, _ = new_contact(database)
    rows = [
        row(contact_id, minutes(i), type="click" if i % every == 0 else "pagevisit")
        for i in range(230)
    ]
    ids = insert(database, rows)
    matching = [i for n, i in enumerate(ids) if n % every == 0]
    filters = LogFilters(type="click")
    pages = walk_down(database, filters, limit=20)

    seen = [i for p in pages for i in ids_of(p)]
    assert seen == sorted(matching, reverse=True)
    assert all(len(p.entries) == 20 for p in pages[:-1])
    assert pages[0].newer_after is None
    assert all(p.searched_to is None for p in pages)

    # Back up from the last page: each "newer" page is the one seen before it.
    for lower, upper in zip(reversed(pages[1:]), reversed(pages[:-1]), strict=True):
        assert lower.newer_after is not None
        back = page(database, filters, after_id=lower.newer_after, limit=20)
        assert ids_of(back) == ids_of(upper)
        assert back.older_before == upper.older_before


def test_newer_from_a_short_remainder_shows_the_full_newest_page(database: Database) -> None:
    contact_id, _ = new_contact(database)
    ids = insert(database, [row(contact_id, minutes(i)) for i in range(30)])
    # Five above the cursor: the newest page, full, rather than a page of five.
    result = page(database, after_id=ids[24], limit=10)
    assert ids_of(result) == list(reversed(ids[20:]))
    assert result.newer_after is None
    assert result.older_before == ids[20]


def test_new_activities_do_not_shift_the_pages(database: Database) -> None:
    contact_id, _ = new_contact(database)
    ids = insert(database, [row(contact_id, minutes(i)) for i in range(25)])
    first = page(database, limit=10)
    insert(database, [row(contact_id, minutes(100 + i)) for i in range(7)])
    second = page(database, before_id=first.older_before, limit=10)
    assert ids_of(second) == list(reversed(ids[5:15]))


def test_paging_a_contact_and_a_date_range(database: Database) -> None:
    contact_id, guid = new_contact(database)
    other_id, _ = new_contact(database)
    rows = [row(contact_id if i % 2 else other_id, T0 + timedelta(hours=i)) for i in range(200)]
    ids = insert(database, rows)
    filters = LogFilters(contact=uuid.UUID(guid), start=date(2025, 3, 2), end=date(2025, 3, 4))
    expected = [
        i
        for n, i in enumerate(ids)
        if n % 2 and date(2025, 3, 2) <= (T0 + timedelta(hours=n)).date() <= date(2025, 3, 4)
    ]
    seen = [i for p in walk_down(database, filters, limit=7) for i in ids_of(p)]
    assert seen == sorted(expected, reverse=True)


# --- the scan limit -------------------------------------------------------------------------


def test_a_rare_match_is_searched_for_in_windows(database: Database) -> None:
    contact_id, _ = new_contact(database)
    rows = [row(contact_id, minutes(i)) for i in range(1000)]
    rows[5] = row(contact_id, minutes(5), type="click", value="Rare")
    ids = insert(database, rows)
    filters = LogFilters(type="click")

    first = page(database, filters, scan_limit=100)
    assert first.entries == []
    # The window ended before a page filled: it says how far back it got, and where to go on.
    assert first.older_before == ids[-1] + 1 - 100
    assert first.searched_to == minutes(900)

    requests, current = 1, first
    while not current.entries:
        assert current.older_before is not None
        current = page(database, filters, before_id=current.older_before, scan_limit=100)
        requests += 1
    assert ids_of(current) == [ids[5]]
    assert requests == 10
    assert current.older_before is None  # the search reached the first activity
    assert current.searched_to is None


def test_the_newer_direction_is_windowed_too(database: Database) -> None:
    contact_id, _ = new_contact(database)
    rows = [row(contact_id, minutes(i)) for i in range(400)]
    rows[350] = row(contact_id, minutes(350), type="click", value="Late")
    ids = insert(database, rows)
    filters = LogFilters(type="click")
    result = page(database, filters, after_id=ids[10], scan_limit=100)
    assert result.entries == []
    assert result.newer_after == ids[10] + 100
    # 350 is within the window above 250, but the window ends below the top: there may be more.
    window = page(database, filters, after_id=ids[250], scan_limit=100)
    assert ids_of(window) == [ids[350]]
    assert window.newer_after == ids[350]
    # Above 300, the window reaches the top: that is the newest page.
    newest = page(database, filters, after_id=ids[300], scan_limit=100)
    assert ids_of(newest) == [ids[350]]
    assert newest.newer_after is None


def test_a_contact_filter_is_not_windowed(database: Database) -> None:
    contact_id, guid = new_contact(database)
    other_id, _ = new_contact(database)
    rows = [row(other_id, minutes(i)) for i in range(1000)]
    rows[3] = row(contact_id, minutes(3))
    ids = insert(database, rows)
    result = page(database, LogFilters(contact=uuid.UUID(guid)), scan_limit=100)
    assert ids_of(result) == [ids[3]]
    assert result.older_before is None
    assert result.searched_to is None
