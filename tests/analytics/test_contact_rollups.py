"""The dashboard's new contacts from the contact rollup: always what the query over `contacts`
gives (contacts created per UTC day that still exist, and how many there are), before and after
the job counts them, and after erasure or retention deletes some."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, update

from contacthub.analytics import dashboard, rollups
from contacthub.contacts import privacy
from contacthub.contacts import service as contacts
from contacthub.retention import job, policies
from contacthub.settings import Settings
from contacthub.storage import leases
from contacthub.storage.database import Database
from contacthub.storage.models import Contact, ContactRollup, RollupState
from contacthub.storage.types import utcnow
from tests.analytics.support import at

WEEK = (date(2024, 5, 1), date(2024, 5, 7))


def new_contact(db: Database, created_at: datetime, **fields: object) -> int:
    with db.write() as session:
        return contacts.create_contact(session, created_at=created_at, **fields).id


def erase(db: Database, contact_id: int) -> None:
    with db.write() as session:
        guid = session.scalars(select(Contact.guid).where(Contact.id == contact_id)).one()
        privacy.erase_contact(session, guid, "tests")


def from_contacts(db: Database, start: date, end: date) -> tuple[dict[str, int], int]:
    """What the dashboard counted before the rollup, straight from `contacts`: contacts per UTC
    day of `created_at` in the range, and all contacts."""
    with db.read() as session:
        moments = session.scalars(select(Contact.created_at)).all()
    days = (moment.astimezone(UTC).date() for moment in moments)
    return dict(Counter(d.isoformat() for d in days if start <= d <= end)), len(moments)


def shown(db: Database, start: date, end: date) -> tuple[dict[str, int], int]:
    """The unscoped dashboard's new contacts per day (days with none left out), and its
    contacts tile."""
    with db.read() as session:
        board = dashboard.dashboard(session, start, end)
    per_day = {d.isoformat(): n for d, n in zip(board.days, board.new_contacts, strict=True) if n}
    assert board.totals.new_contacts == sum(per_day.values())
    return per_day, board.totals.contacts


def assert_exact(db: Database) -> tuple[dict[str, int], int]:
    """The dashboard equals the query over contacts, for the week and for a single day."""
    for start, end in (WEEK, (date(2024, 5, 2), date(2024, 5, 2))):
        assert shown(db, start, end) == from_contacts(db, start, end)
    return shown(db, *WEEK)


def rolled(db: Database) -> dict[str, int]:
    with db.read() as session:
        return {r.day.isoformat(): r.count for r in session.scalars(select(ContactRollup))}


def cursor(db: Database) -> int:
    with db.read() as session:
        return session.scalars(select(RollupState.last_contact_id)).one()


def sample(db: Database) -> list[int]:
    """Six contacts: four in the week (one of them at 00:30 in Paris, still 1 May in UTC), one
    the evening before it and one the morning after it."""
    return [
        new_contact(db, at("2024-04-30", "23:59")),
        new_contact(db, at("2024-05-01", "00:00")),
        new_contact(db, datetime.fromisoformat("2024-05-02T00:30:00+02:00")),
        new_contact(db, at("2024-05-02", "09:00"), email="ada@example.com"),
        new_contact(db, at("2024-05-07", "23:59")),
        new_contact(db, at("2024-05-08", "00:00")),
    ]


def test_new_contacts_are_the_same_before_and_after_refresh(database: Database) -> None:
    sample(database)
    expected = ({"2024-05-01": 2, "2024-05-02": 1, "2024-05-07": 1}, 6)

    # Before any refresh: every contact counted live.
    assert rolled(database) == {}
    assert assert_exact(database) == expected

    assert rollups.refresh(database) == 0  # no activities; the contacts are counted
    assert rolled(database) == {
        "2024-04-30": 1,
        "2024-05-01": 2,
        "2024-05-02": 1,
        "2024-05-07": 1,
        "2024-05-08": 1,
    }
    assert assert_exact(database) == expected

    # Contacts after the refresh are counted live, once each, then rolled up.
    new_contact(database, at("2024-05-02", "10:00"))
    new_contact(database, at("2024-05-05", "10:00"))
    expected = ({"2024-05-01": 2, "2024-05-02": 2, "2024-05-05": 1, "2024-05-07": 1}, 8)
    assert assert_exact(database) == expected
    rollups.refresh(database)
    assert rolled(database)["2024-05-02"] == 2
    assert assert_exact(database) == expected

    # What the dashboard shows is the rollup's (not a count of contacts that agrees with it).
    with database.write() as session:
        session.execute(
            update(ContactRollup).where(ContactRollup.day == date(2024, 5, 7)).values(count=40)
        )
    assert shown(database, *WEEK) == ({**expected[0], "2024-05-07": 40}, 8 + 39)


def test_erasure_takes_counted_and_uncounted_contacts_out(database: Database) -> None:
    ids = sample(database)
    rollups.refresh(database)
    late = new_contact(database, at("2024-05-03", "08:00"))  # not counted yet

    erase(database, ids[3])  # counted: 2 May
    erase(database, ids[4])  # counted: 7 May, the day's only contact
    erase(database, late)

    assert assert_exact(database) == ({"2024-05-01": 2}, 4)
    # The days counted down to zero are gone, not left at 0.
    assert rolled(database) == {"2024-04-30": 1, "2024-05-01": 2, "2024-05-08": 1}
    # The next run finds nothing of them to count.
    rollups.refresh(database)
    assert assert_exact(database) == ({"2024-05-01": 2}, 4)


def test_retention_takes_the_anonymous_contacts_it_deletes_out(
    database: Database, settings: Settings
) -> None:
    ids = sample(database)  # all anonymous but ids[3], who has an email
    rollups.refresh(database)
    new_contact(database, at("2024-05-02", "12:00"))  # anonymous, not counted yet
    with database.write() as session:
        policies.set_policy(session, policies.ANONYMOUS_CONTACTS, 30, actor="tests")

    # Their updated_at is now: a run two months ahead finds them old.
    run = job.run(database, settings, "tests", now=utcnow() + timedelta(days=60))

    assert job.deleted_counts(run) == {"anonymous_contacts": 6}
    with database.read() as session:
        assert session.scalars(select(Contact.id)).all() == [ids[3]]
    assert assert_exact(database) == ({"2024-05-02": 1}, 1)
    assert rolled(database) == {"2024-05-02": 1}
    rollups.refresh(database)
    assert assert_exact(database) == ({"2024-05-02": 1}, 1)


def test_refresh_counts_contacts_in_chunks_from_its_cursor(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(10):
        new_contact(database, at(f"2024-05-0{1 + n % 3}", f"10:{n:02d}"))
    monkeypatch.setattr(rollups, "CHUNK", 3)
    upserts: list[int] = []
    add_contacts = rollups._add_contacts

    def spy(session: object, per_day: Counter[date], *, sign: int) -> None:
        upserts.append(sign * sum(per_day.values()))
        add_contacts(session, per_day, sign=sign)  # type: ignore[arg-type]

    monkeypatch.setattr(rollups, "_add_contacts", spy)

    rollups.refresh(database)

    # Ten contacts, three ids per transaction.
    assert upserts == [3, 3, 3, 1]
    assert rolled(database) == {"2024-05-01": 4, "2024-05-02": 3, "2024-05-03": 3}
    with database.read() as session:
        assert cursor(database) == max(session.scalars(select(Contact.id)))
    assert_exact(database)

    # From the cursor: only the new ones are counted.
    upserts.clear()
    new_contact(database, at("2024-05-01", "18:00"))
    new_contact(database, at("2024-05-04", "18:00"))
    rollups.refresh(database)
    assert upserts == [2]
    assert rolled(database) == {"2024-05-01": 5, "2024-05-02": 3, "2024-05-03": 3, "2024-05-04": 1}
    assert_exact(database)


def test_contacts_are_counted_in_one_process_at_a_time(database: Database) -> None:
    new_contact(database, at("2024-05-01"))
    rollups.refresh(database, lease_seconds=60, holder="worker 1")
    assert rolled(database) == {"2024-05-01": 1}

    new_contact(database, at("2024-05-02"))
    rollups.refresh(database, lease_seconds=60, holder="worker 2")
    assert rolled(database) == {"2024-05-01": 1}  # worker 1 holds the lease: the new one waits
    assert assert_exact(database) == ({"2024-05-01": 1, "2024-05-02": 1}, 2)
    rollups.refresh(database, lease_seconds=60, holder="worker 1")
    assert rolled(database) == {"2024-05-01": 1, "2024-05-02": 1}

    with database.write() as session:
        leases.release(session, rollups.LEASE, holder="worker 1")
    new_contact(database, at("2024-05-03"))
    rollups.refresh(database, lease_seconds=60, holder="worker 2")
    assert rolled(database) == {"2024-05-01": 1, "2024-05-02": 1, "2024-05-03": 1}
    assert assert_exact(database) == ({"2024-05-01": 1, "2024-05-02": 1, "2024-05-03": 1}, 3)


def test_a_chunk_grouped_before_an_erasure_is_grouped_again(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = sample(database)
    grouped = rollups.contacts_per_day
    calls: list[int] = []

    def erase_meanwhile(session: object, *where: object) -> Counter[date]:
        per_day = grouped(session, *where)  # type: ignore[arg-type]
        calls.append(sum(per_day.values()))
        if len(calls) == 1:
            # Another transaction erases a contact of this chunk before the upsert.
            erase(database, ids[3])
        return per_day

    monkeypatch.setattr(rollups, "contacts_per_day", erase_meanwhile)

    rollups.refresh(database)

    assert calls == [6, 5]
    assert assert_exact(database) == ({"2024-05-01": 2, "2024-05-07": 1}, 5)
    assert rolled(database) == {"2024-04-30": 1, "2024-05-01": 2, "2024-05-07": 1, "2024-05-08": 1}


# PostgreSQL only: SQLite has one writer, so every committed id is final.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_refresh_does_not_pass_a_contact_still_being_inserted(database: Database) -> None:
    new_contact(database, at("2024-05-01"))
    with database.write() as slow:
        # A transaction that inserted a contact and has not committed yet ...
        pending = contacts.create_contact(slow, created_at=at("2024-05-02")).id
        # ... while a later one commits a higher id.
        later = new_contact(database, at("2024-05-03"))
        assert later > pending
        rollups.refresh(database)
        # The job could not see that no lower id was pending: it left the contacts for later.
        assert cursor(database) < pending
    assert assert_exact(database) == ({"2024-05-01": 1, "2024-05-02": 1, "2024-05-03": 1}, 3)
    rollups.refresh(database)
    assert cursor(database) == later
    assert rolled(database) == {"2024-05-01": 1, "2024-05-02": 1, "2024-05-03": 1}
    assert assert_exact(database) == ({"2024-05-01": 1, "2024-05-02": 1, "2024-05-03": 1}, 3)
