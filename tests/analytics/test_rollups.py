"""The dashboard's rollups: counted once, fresh before they are counted, exact after an erasure."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import delete

from contacthub.analytics import rollups
from contacthub.storage import leases
from contacthub.storage.database import Database
from contacthub.storage.models import Activity
from tests.analytics.support import (
    Act,
    add,
    at,
    channel,
    contact_id,
    counts,
    rolled,
    rolled_tops,
    tops,
)

WEEK = ("2024-05-01", "2024-05-07")


def sample(db: Database) -> tuple[int, int, int]:
    """Seven activities over two days and two channels (and email); answers the ids used."""
    web, app = channel(db, "Website"), channel(db, "Mobile app")
    anna = contact_id(db)
    add(
        db,
        anna,
        Act(at("2024-05-01", "08:00"), "pagevisit", web, "Home", "https://example.com/"),
        Act(at("2024-05-01", "09:00"), "pagevisit", web, "Pricing", "https://example.com/pricing"),
        Act(at("2024-05-01", "23:59"), "click", web, "buy-button"),
        Act(at("2024-05-02", "00:00"), "pagevisit", app, None, "https://example.com/pricing"),
        Act(at("2024-05-02", "10:00"), "click", app, None, "https://example.com/app-link"),
        Act(at("2024-05-02", "11:00"), "emailopen", None, "Spring news"),
        Act(at("2024-05-02", "12:00"), "pagevisit", web, "Home", "https://example.com/"),
    )
    return web, app, anna


def expected_counts(web: int, app: int) -> dict[tuple[str, int, str], int]:
    return {
        ("2024-05-01", web, "click"): 1,
        ("2024-05-01", web, "pagevisit"): 2,
        ("2024-05-02", 0, "emailopen"): 1,
        ("2024-05-02", app, "click"): 1,
        ("2024-05-02", app, "pagevisit"): 1,
        ("2024-05-02", web, "pagevisit"): 1,
    }


def test_refresh_counts_activities_into_the_rollups(database: Database) -> None:
    web, app, _ = sample(database)

    assert rollups.refresh(database) == 7

    assert rolled(database) == expected_counts(web, app)
    assert rolled_tops(database) == {
        ("2024-05-01", "page", "https://example.com/"): 1,
        ("2024-05-01", "page", "https://example.com/pricing"): 1,
        ("2024-05-01", "click", "buy-button"): 1,
        ("2024-05-02", "page", "https://example.com/pricing"): 1,
        ("2024-05-02", "page", "https://example.com/"): 1,
        # A click without a value is keyed by its URL.
        ("2024-05-02", "click", "https://example.com/app-link"): 1,
    }
    with database.read() as session:
        assert rollups.counted_up_to(session) == 7
        assert rollups.rollup_lag(session)[0] == 0


def test_activities_not_rolled_up_yet_are_counted_live(database: Database) -> None:
    web, app, _ = sample(database)

    assert rolled(database) == {}
    assert counts(database, *WEEK) == expected_counts(web, app)
    assert sorted(tops(database, rollups.PAGE, *WEEK)) == [
        ("https://example.com/", 2),
        ("https://example.com/pricing", 2),
    ]
    with database.read() as session:
        assert rollups.rollup_lag(session)[0] == 7


def test_counts_are_the_same_before_and_after_refresh_and_never_doubled(
    database: Database,
) -> None:
    web, _app, anna = sample(database)
    before = counts(database, *WEEK)
    pages_before = tops(database, rollups.PAGE, *WEEK)
    clicks_before = tops(database, rollups.CLICK_KIND, *WEEK)

    rollups.refresh(database)
    assert counts(database, *WEEK) == before
    assert tops(database, rollups.PAGE, *WEEK) == pages_before
    assert tops(database, rollups.CLICK_KIND, *WEEK) == clicks_before

    # Nothing new: a second run counts nothing and changes nothing.
    assert rollups.refresh(database) == 0
    assert counts(database, *WEEK) == before

    # Some rolled up, some live: each counted once.
    add(
        database,
        anna,
        Act(at("2024-05-02", "13:00"), "pagevisit", web, "Home", "https://example.com/"),
    )
    after = dict(before)
    after[("2024-05-02", web, "pagevisit")] += 1
    assert counts(database, *WEEK) == after
    assert tops(database, rollups.PAGE, *WEEK)[0] == ("https://example.com/", 3)
    assert rollups.refresh(database) == 1
    assert counts(database, *WEEK) == after
    assert rolled(database) == after


def test_counts_keep_to_the_days_asked_for(database: Database) -> None:
    web, app, _ = sample(database)
    only_second = {k: v for k, v in expected_counts(web, app).items() if k[0] == "2024-05-02"}

    # Live, then rolled up: the same days in, the same days out.
    assert counts(database, "2024-05-02", "2024-05-02") == only_second
    rollups.refresh(database)
    assert counts(database, "2024-05-02", "2024-05-02") == only_second
    assert counts(database, "2024-05-03", "2024-05-31") == {}
    assert tops(database, rollups.CLICK_KIND, "2024-05-01", "2024-05-01") == [("buy-button", 1)]


def test_days_are_utc_days(database: Database) -> None:
    web = channel(database, "Website")
    anna = contact_id(database)
    # 00:30 in Paris on 2 May (summer time) is 22:30 UTC on 1 May.
    paris = datetime.fromisoformat("2024-05-02T00:30:00+02:00")
    add(database, anna, Act(paris, "pagevisit", web, None, "https://example.com/"))

    assert counts(database, *WEEK) == {("2024-05-01", web, "pagevisit"): 1}
    rollups.refresh(database)
    assert rolled(database) == {("2024-05-01", web, "pagevisit"): 1}


def test_forget_contact_subtracts_its_counted_activities(database: Database) -> None:
    web, _app, anna = sample(database)
    bob = contact_id(database)
    add(
        database,
        bob,
        Act(at("2024-05-01", "10:00"), "pagevisit", web, "Pricing", "https://example.com/pricing"),
    )
    rollups.refresh(database)
    # One more of Anna's, not rolled up yet when she is erased.
    add(database, anna, Act(at("2024-05-03"), "click", web, "late-click"))

    with database.write() as session:
        rollups.forget_contact(session, anna)
        session.execute(delete(Activity).where(Activity.contact_id == anna))

    only_bob = {("2024-05-01", web, "pagevisit"): 1}
    assert counts(database, *WEEK) == only_bob
    # Rows counted down to zero are gone, not left at 0.
    assert rolled(database) == only_bob
    assert rolled_tops(database) == {("2024-05-01", "page", "https://example.com/pricing"): 1}
    assert tops(database, rollups.CLICK_KIND, *WEEK) == []
    # The next run finds nothing of Anna's to count.
    rollups.refresh(database)
    assert counts(database, *WEEK) == only_bob


def test_top_keys_ranks_and_limits(database: Database) -> None:
    web = channel(database, "Website")
    anna = contact_id(database)
    long_url = "https://example.com/" + "a" * 600
    acts = [
        Act(at("2024-05-01"), "pagevisit", web, None, f"https://example.com/{n}")
        for n in range(12)
        for _ in range(n + 1)
    ]
    acts += [Act(at("2024-05-02"), "pagevisit", web, None, long_url)] * 2
    acts += [Act(at("2024-05-02"), "click", web, "<b>Buy</b>")] * 3
    add(database, anna, *acts)

    def check() -> None:
        pages = tops(database, rollups.PAGE, *WEEK)
        assert len(pages) == 10
        assert pages[0] == ("https://example.com/11", 12)
        assert pages[-1] == ("https://example.com/2", 3)
        assert tops(database, rollups.PAGE, *WEEK, limit=3) == [
            ("https://example.com/11", 12),
            ("https://example.com/10", 11),
            ("https://example.com/9", 10),
        ]
        # Long keys are cut to the rollup's bound, live and rolled up alike.
        assert tops(database, rollups.PAGE, "2024-05-02", "2024-05-02") == [
            (long_url[: rollups.MAX_KEY_LENGTH], 2)
        ]
        assert tops(database, rollups.CLICK_KIND, *WEEK) == [("<b>Buy</b>", 3)]

    check()
    rollups.refresh(database)
    check()


def test_refresh_works_through_a_backlog_in_chunks(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    web, app, anna = sample(database)
    add(
        database,
        anna,
        *[Act(at("2024-05-03", f"10:{n:02d}"), "click", web, f"button-{n % 2}") for n in range(10)],
    )
    monkeypatch.setattr(rollups, "CHUNK", 3)

    assert rollups.refresh(database) == 17

    expected = expected_counts(web, app) | {("2024-05-03", web, "click"): 10}
    assert rolled(database) == expected
    assert counts(database, *WEEK) == expected
    assert sorted(tops(database, rollups.CLICK_KIND, "2024-05-03", "2024-05-03")) == [
        ("button-0", 5),
        ("button-1", 5),
    ]
    with database.read() as session:
        assert rollups.counted_up_to(session) == 17


def test_the_periodic_run_counts_in_one_process_at_a_time(database: Database) -> None:
    # The app's job passes `lease_seconds`: of two processes, the one holding the lease counts.
    web, app, anna = sample(database)

    assert rollups.refresh(database, lease_seconds=60, holder="worker 1") == 7
    add(database, anna, Act(at("2024-05-03", "08:00"), "click", web, "more"))
    assert rollups.refresh(database, lease_seconds=60, holder="worker 2") == 0
    assert rolled(database) == expected_counts(web, app)  # the new click waits
    assert rollups.refresh(database, lease_seconds=60, holder="worker 1") == 1

    with database.write() as session:
        leases.release(session, rollups.LEASE, holder="worker 1")  # worker 1 stops
    add(database, anna, Act(at("2024-05-03", "09:00"), "click", web, "more"))
    assert rollups.refresh(database, lease_seconds=60, holder="worker 2") == 1
    assert rollups.refresh(database, lease_seconds=60, holder="worker 1") == 0
    # Without a lease (the demo's final count, the tests), a run always counts.
    add(database, anna, Act(at("2024-05-03", "10:00"), "click", web, "more"))
    assert rollups.refresh(database) == 1
