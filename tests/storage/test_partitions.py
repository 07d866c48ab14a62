"""The event tables' monthly partitions on PostgreSQL (migration 0009, storage/partitions.py).

Everything here runs on real PostgreSQL; SQLite has no partitioning, and there the functions
must answer as for a plain table (the last tests).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from contacthub.app import create_app
from contacthub.settings import Settings
from contacthub.storage import partitions
from contacthub.storage.database import Database
from contacthub.storage.migrate import alembic_config, upgrade
from contacthub.storage.models import Base
from tests import factories
from tests.tracking.support import post_activities, results_of

TABLES = partitions.PARTITIONED_TABLES
NOW = partitions.month_start(datetime.now(UTC))


def month(offset: int, day: int = 1, hour: int = 0) -> datetime:
    """A moment in the month `offset` months from the current one."""
    return partitions.add_months(NOW, offset).replace(day=day, hour=hour)


@pytest.fixture
def postgres(database_url: str) -> str:
    if database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL only: SQLite has no partitioning (migration 0009 is a no-op)")
    return database_url


@pytest.fixture
def pg(postgres: str) -> Iterator[Database]:
    db = Database(postgres)
    yield db
    db.dispose()


def email_parents(session: Session) -> tuple[int, int, int]:
    """An issue, a subscriber and a link for email hits to point at: (issue, subscriber, link)."""
    newsletter = session.execute(
        text(
            "INSERT INTO newsletters (guid, name, sender_name, sender_email, base_url, "
            "created_at) VALUES (gen_random_uuid(), 'N', 'S', 's@example.com', "
            "'https://example.com', now()) RETURNING id"
        )
    ).scalar_one()
    issue = session.execute(
        text(
            "INSERT INTO email_issues (guid, newsletter_id, subject, html_body, status, "
            "created_at) VALUES (gen_random_uuid(), :n, 'Hi', '<p>hi</p>', 'sent', now()) "
            "RETURNING id"
        ),
        {"n": newsletter},
    ).scalar_one()
    contact = session.execute(
        text(
            "INSERT INTO contacts (guid, created_at, updated_at) "
            "VALUES (gen_random_uuid(), now(), now()) RETURNING id"
        )
    ).scalar_one()
    subscriber = session.execute(
        text(
            "INSERT INTO subscribers (newsletter_id, contact_id, email, status, created_at) "
            "VALUES (:n, :c, 'a@example.com', 'active', now()) RETURNING id"
        ),
        {"n": newsletter, "c": contact},
    ).scalar_one()
    link = session.execute(
        text(
            "INSERT INTO issue_links (guid, issue_id, position, target_url, hidden) "
            "VALUES (gen_random_uuid(), :i, 1, 'https://example.com/a', false) RETURNING id"
        ),
        {"i": issue},
    ).scalar_one()
    return issue, subscriber, link


def insert_events(session: Session, moments: list[datetime]) -> None:
    """One activity, one open and one click at each moment (ids by the sequences)."""
    issue, subscriber, link = email_parents(session)
    for moment in moments:
        params = {"at": moment, "i": issue, "s": subscriber, "l": link}
        session.execute(
            text(
                "INSERT INTO activities (contact_id, type, title, created_at) "
                "VALUES (1, 'pagevisit', 'Home', :at)"
            ),
            params,
        )
        session.execute(
            text(
                "INSERT INTO email_opens (issue_id, subscriber_id, is_machine, created_at) "
                "VALUES (:i, :s, false, :at)"
            ),
            params,
        )
        session.execute(
            text(
                "INSERT INTO email_clicks (link_id, issue_id, subscriber_id, is_machine, "
                "created_at) VALUES (:l, :i, :s, false, :at)"
            ),
            params,
        )


def snapshot(db: Database) -> dict[str, tuple[int, int, int]]:
    """Per table: rows, sum of ids, the largest id."""
    with db.read() as session:
        return {
            table: tuple(  # type: ignore[misc]
                session.execute(
                    text(
                        f"SELECT count(*), coalesce(sum(id), 0), coalesce(max(id), 0) FROM {table}"  # noqa: S608 - catalog names
                    )
                ).one()
            )
            for table in TABLES
        }


def where_rows_are(db: Database, table: str) -> dict[str, int]:
    with db.read() as session:
        rows = session.execute(
            text(f"SELECT tableoid::regclass::text, count(*) FROM {table} GROUP BY 1")  # noqa: S608 - catalog names
        )
        return {str(name): int(count) for name, count in rows}


def next_ids(db: Database) -> dict[str, int]:
    """The id each table's next insert gets (consumes it)."""
    with db.write() as session:
        return {
            table: int(
                session.execute(
                    text("SELECT nextval(pg_get_serial_sequence(:t, 'id'))"), {"t": table}
                ).scalar_one()
            )
            for table in TABLES
        }


def test_no_foreign_key_references_the_event_tables() -> None:
    # A partitioned table's unique keys contain created_at: a foreign key to `activities.id`
    # (or an email hit's id) could not exist. Keep it so (migration 0009 stops if one does).
    for table in Base.metadata.tables.values():
        for key in table.foreign_keys:
            assert key.column.table.name not in TABLES, (
                f"{table.name} references {key.target_fullname}"
            )


def test_migration_converts_a_populated_database(postgres: str, pg: Database) -> None:
    config = alembic_config(postgres)
    command.downgrade(config, "0008")
    with pg.read() as session:
        assert not any(partitions.is_partitioned(session, table) for table in TABLES)
    moments = [month(offset, day=2 + offset % 20) for offset in range(-14, 1) for _ in range(7)]
    with pg.write() as session:
        insert_events(session, moments)
    before = snapshot(pg)

    upgrade(postgres)

    assert snapshot(pg) == before
    with pg.read() as session:
        for table in TABLES:
            assert partitions.is_partitioned(session, table)
            found = partitions.partitions(session, table)
            # Oldest row's month … three months ahead, and the default.
            assert [p.lower for p in found[:-1]] == [month(offset) for offset in range(-14, 4)]
            assert found[-1].name == f"{table}_default"
            inspector = inspect(session.connection())
            assert inspector.get_pk_constraint(table)["constrained_columns"] == [
                "id",
                "created_at",
            ]
            model = Base.metadata.tables[table]
            assert {index.name for index in model.indexes} == {
                index["name"] for index in inspector.get_indexes(table)
            }
            assert {key.name for key in model.foreign_key_constraints} == {
                key["name"] for key in inspector.get_foreign_keys(table)
            }
    for table in TABLES:
        assert where_rows_are(pg, table) == {
            f"{table}_p{month(offset):%Y_%m}": 7 for offset in range(-14, 1)
        }
    # The next ids continue after the copied rows.
    assert next_ids(pg) == {table: before[table][2] + 1 for table in TABLES}
    command.check(config)


def test_new_rows_go_to_their_months_partition(pg: Database) -> None:
    with pg.write() as session:
        insert_events(session, [month(0, day=3), month(2, day=28, hour=23), month(40)])
    for table in TABLES:
        assert where_rows_are(pg, table) == {
            f"{table}_p{month(0):%Y_%m}": 1,
            f"{table}_p{month(2):%Y_%m}": 1,
            # No partition that far ahead (yet): the default partition takes it.
            f"{table}_default": 1,
        }


def test_ingest_copy_lands_in_the_partitions(pg: Database, settings: Settings) -> None:
    # The hub's real write path (COPY on PostgreSQL) into the partitioned table, through HTTP.
    setup = factories.tracking_channel(pg)
    contact = factories.contact(pg)
    with TestClient(create_app(settings)) as client:
        answer = post_activities(
            client, setup, contact, [{"type": "pagevisit", "url": "https://example.com/"}] * 3
        )
        assert [result["status"] for result in results_of(answer)] == [202] * 3
    assert where_rows_are(pg, "activities") == {f"activities_p{NOW:%Y_%m}": 3}


def test_ensure_ahead_creates_what_is_missing_once(pg: Database) -> None:
    with pg.write() as session:
        created = partitions.ensure_ahead(session, 6)
    assert created == [
        f"{table}_p{month(offset):%Y_%m}" for table in TABLES for offset in (4, 5, 6)
    ]
    with pg.write() as session:
        assert partitions.ensure_ahead(session, 6) == []
        assert partitions.ensure_ahead(session, 2) == []
    with pg.read() as session:
        for table in TABLES:
            uppers = [p.upper for p in partitions.partitions(session, table) if p.upper]
            assert uppers[-1] == month(7)


def test_ensure_ahead_moves_waiting_rows_out_of_the_default(pg: Database) -> None:
    with pg.write() as session:
        insert_events(session, [month(5, day=9), month(5, day=10), month(9)])
    before = snapshot(pg)
    with pg.write() as session:
        created = partitions.ensure_ahead(session, 5)
    assert set(created) == {
        f"{table}_p{month(offset):%Y_%m}" for table in TABLES for offset in (4, 5)
    }
    assert snapshot(pg) == before
    for table in TABLES:
        assert where_rows_are(pg, table) == {
            f"{table}_p{month(5):%Y_%m}": 2,
            f"{table}_default": 1,
        }
    with pg.read() as session:
        # The attached partition carries the parent's keys and indexes.
        indexes = inspect(session.connection()).get_indexes(f"activities_p{month(5):%Y_%m}")
        assert [index["column_names"] for index in indexes] == [["contact_id", "id"]]


def test_ensure_ahead_gives_history_in_the_default_its_months(pg: Database) -> None:
    # A new install (partitions from this month on) that then loads history: a demo, an import.
    with pg.write() as session:
        insert_events(session, [month(-30, day=2), month(-30, day=3), month(-2), month(-200)])
    with pg.write() as session:
        created = partitions.ensure_ahead(session, 3)
    assert created == [
        f"{table}_p{month(offset):%Y_%m}" for table in TABLES for offset in (-30, -2)
    ]
    for table in TABLES:
        assert where_rows_are(pg, table) == {
            f"{table}_p{month(-30):%Y_%m}": 2,
            f"{table}_p{month(-2):%Y_%m}": 1,
            # Older than ten years: stays in the default partition.
            f"{table}_default": 1,
        }


def test_ensure_ahead_since_makes_every_month_of_a_history_to_come(pg: Database) -> None:
    # `contacthub demo` asks for its months before writing, so its rows never wait.
    with pg.write() as session:
        created = partitions.ensure_ahead(session, 0, since=month(-3, day=20))
    assert created == [
        f"{table}_p{month(offset):%Y_%m}" for table in TABLES for offset in (-3, -2, -1)
    ]
    with pg.write() as session:
        insert_events(session, [month(-3, day=21), month(-1)])
    for table in TABLES:
        assert where_rows_are(pg, table) == {
            f"{table}_p{month(-3):%Y_%m}": 1,
            f"{table}_p{month(-1):%Y_%m}": 1,
        }


def test_the_job_vacuums_the_default_partitions_it_moved_rows_out_of(pg: Database) -> None:
    with pg.write() as session:
        insert_events(session, [month(-2), month(-2, day=3)])
    created = partitions.ensure_ahead_job(pg, 1)
    assert created
    with pg.read() as session:
        vacuumed = session.execute(
            text(
                "SELECT relname, vacuum_count FROM pg_stat_user_tables WHERE relname = ANY(:names)"
            ),
            {"names": [f"{table}_default" for table in TABLES]},
        ).all()
    assert dict(vacuumed) == {f"{table}_default": 1 for table in TABLES}


def test_two_processes_ensuring_at_once_take_turns(pg: Database) -> None:
    # Every hub worker runs the job at start: the second waits for the first's advisory lock,
    # then finds the partitions there (no "relation already exists").
    answers: list[list[str]] = []
    with pg.write() as session:
        first = partitions.ensure_ahead(session, 5)
        other = threading.Thread(target=lambda: answers.append(partitions.ensure_ahead_job(pg, 5)))
        other.start()
        other.join(0.5)
        assert other.is_alive(), "the second run did not wait for the first"
    other.join(10)
    assert first
    assert answers == [[]]


def test_conversion_makes_no_partitions_for_ancient_rows(postgres: str, pg: Database) -> None:
    command.downgrade(alembic_config(postgres), "0008")
    with pg.write() as session:
        insert_events(session, [datetime(1971, 3, 4, tzinfo=UTC), month(0)])
    upgrade(postgres)
    with pg.read() as session:
        found = partitions.partitions(session, "activities")
    # Ten years back at most; the 1971 row waits in the default partition.
    assert found[0].lower == month(-120)
    assert len(found) == 120 + 1 + 3 + 1
    assert where_rows_are(pg, "activities") == {
        "activities_default": 1,
        f"activities_p{NOW:%Y_%m}": 1,
    }


def test_drop_before_drops_only_whole_old_months(pg: Database) -> None:
    config_url = pg.url.render_as_string(hide_password=False)
    command.downgrade(alembic_config(config_url), "0008")
    with pg.write() as session:
        insert_events(session, [month(-3, day=5), month(-2, day=5), month(-1, day=5), month(0)])
    upgrade(config_url)
    cutoff = month(-1, day=15)
    with pg.write() as session:
        assert partitions.drop_before(session, "activities", cutoff) == 2
        assert partitions.drop_before(session, "activities", cutoff) == 0
        names = [p.name for p in partitions.partitions(session, "activities")]
    assert f"activities_p{month(-1):%Y_%m}" in names
    assert f"activities_p{month(-2):%Y_%m}" not in names
    assert "activities_default" in names
    assert where_rows_are(pg, "activities") == {
        f"activities_p{month(-1):%Y_%m}": 1,
        f"activities_p{month(0):%Y_%m}": 1,
    }
    # The other tables keep theirs.
    assert sum(where_rows_are(pg, "email_opens").values()) == 4


def test_downgrade_converts_back_and_keeps_rows_and_ids(postgres: str, pg: Database) -> None:
    with pg.write() as session:
        insert_events(session, [month(-1), month(0, day=4), month(30)])
    before = snapshot(pg)
    command.downgrade(alembic_config(postgres), "0008")
    assert snapshot(pg) == before
    with pg.read() as session:
        assert not any(partitions.is_partitioned(session, table) for table in TABLES)
        assert partitions.partition_names(session.connection()) == frozenset()
        inspector = inspect(session.connection())
        for table in TABLES:
            assert inspector.get_pk_constraint(table)["constrained_columns"] == ["id"]
            assert {index.name for index in Base.metadata.tables[table].indexes} == {
                index["name"] for index in inspector.get_indexes(table)
            }
    assert next_ids(pg) == {table: before[table][2] + 1 for table in TABLES}
    upgrade(postgres)
    assert snapshot(pg) == {table: (n, s, m) for table, (n, s, m) in before.items()}


def test_the_hub_creates_partitions_ahead_on_start(settings: Settings, pg: Database) -> None:
    settings = settings.model_copy(update={"partition_months_ahead": 8})
    wanted = f"email_clicks_p{month(8):%Y_%m}"
    with TestClient(create_app(settings)):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with pg.read() as session:
                if wanted in partitions.partition_names(session.connection()):
                    break
            time.sleep(0.05)
        else:
            pytest.fail(f"{wanted} was not created")


def test_sqlite_answers_as_unpartitioned(database_url: str, database: Database) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the SQLite side of the functions")
    with database.write() as session:
        assert partitions.ensure_ahead(session, 3) == []
        assert not partitions.is_partitioned(session, "activities")
        assert partitions.drop_before(session, "activities", NOW + timedelta(days=9999)) == 0
    assert partitions.ensure_ahead_job(database, 3) == []
