"""The contact search through its indexes (migration 0011), on SQLite and PostgreSQL: the same
results as the plain LIKE, the SQLite trigram table kept in step by its triggers, the sorted
pages across blanks, and the plans reading the indexes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from alembic import command
from sqlalchemy import event, make_url, text
from sqlalchemy.orm import Session

from contacthub.contacts import search
from contacthub.contacts.privacy import erase_contact
from contacthub.contacts.search import contact_count, search_contacts
from contacthub.contacts.service import get_contact
from contacthub.storage.database import Database
from contacthub.storage.migrate import alembic_config, upgrade
from contacthub.storage.models import CONTACT_NAME_TRIGRAMS
from tests import factories
from tests.conftest import POSTGRES_ADMIN_URL, _admin_execute, _postgres_url

# (first name, last name, email): blanks, case, non-ASCII letters, spaces, LIKE's wildcards and
# its escape character, and FTS5's quote.
PEOPLE: list[tuple[str | None, str | None, str | None]] = [
    ("Ada", "Lovelace", "Ada.Lovelace@Example.com"),
    ("Karel", "Čapek", "karel@example.cz"),
    ("ČESTMÍR", "Novák", None),
    ("Mary Ann", "Smith", "mary@example.com"),
    ("Bob", None, "bob_smith@example.com"),
    (None, "Smithson", None),
    ("50%", "Off", "fifty%off@example.com"),
    ("a_b", "c\\d", "a\\b@example.com"),
    ('O"Neil', "Ryan", None),
    ("Zoë", "D'Arcy", "zoe@example.com"),
    (None, None, "anon@example.com"),
    (None, None, None),
    ("Ann", "Marie-Smith", "ann@example.org"),
    ("xyz", "ABC", "xyzabc@example.com"),
]

QUERIES = [
    # one and two characters (no trigram: the table is read)
    *("a", "A", "č", "Č", "%", "_", "\\", '"', "ab", "a_", "0%", "n"),
    # three and more, with wildcards, escapes, quotes, spaces, case and other letters
    *("c\\d", "a_b", "50%", "b_s", "bob_", "bob%", "fifty%", "smi", "SMITH", "smith"),
    *("ann smith", "mary ann", "ary ann sm", "ada lovelace", "lovelace ada", "ann marie"),
    *("ie-sm", "xyz abc", "yz ab", "čap", "čapek", "Čapek", "ČAPEK", "čestmír", "ČESTMÍR"),
    *('o"ne', "d'ar", "zoë", "ZOË", "ada.lo", "@example", "anon@", "smithsonian", "n n"),
]

ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _reference(q: str, is_sqlite: bool) -> set[int]:
    """Indexes in PEOPLE that the search must find, by the documented rule, as the search said
    it before the indexes: the start of the email, or a part of the first name, of the last
    name, or (with a space in `q`) of "first last"; case ignored (ASCII only on SQLite)."""

    def fold(value: str) -> str:
        return value.translate(ASCII_LOWER) if is_sqlite else value.lower()

    wanted = fold(q)
    found = set()
    for index, (first, last, email) in enumerate(PEOPLE):
        by_email = email is not None and fold(email).startswith(wanted)
        by_name = "@" not in q and (
            (first is not None and wanted in fold(first))
            or (last is not None and wanted in fold(last))
            or (" " in q and last is not None and wanted in fold(f"{first or ''} {last}"))
        )
        if by_email or by_name:
            found.add(index)
    return found


def _store_people(database: Database) -> list[str]:
    return [
        factories.contact_with(database, first_name=first, last_name=last, email=email)
        for first, last, email in PEOPLE
    ]


@pytest.mark.parametrize("trigrams", [True, False], ids=["index", "scan"])
def test_the_search_finds_what_the_like_alone_finds(
    database: Database, trigrams: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not trigrams:
        if not database.is_sqlite:
            pytest.skip("the SQLite fallback without the trigram table")
        monkeypatch.setattr(search, "_has_trigrams", lambda _session: False)
    guids = _store_people(database)
    with database.read() as session:
        for q in QUERIES:
            expected = {guids[index] for index in _reference(q, database.is_sqlite)}
            page = search_contacts(session, q, limit=200)
            assert {str(contact.guid) for contact in page.contacts} == expected, q
            assert contact_count(session, q) == len(expected), q


def test_the_case_of_other_letters_is_folded_on_postgresql_only(database: Database) -> None:
    # What docs/admin.md says, through the trigram indexes (which fold every letter): SQLite's
    # LIKE still decides there.
    capek = factories.contact_with(database, first_name="Karel", last_name="Čapek")
    with database.read() as session:
        found = [str(c.guid) for c in search_contacts(session, "čapek").contacts]
    assert found == ([] if database.is_sqlite else [capek])


# -- the SQLite trigram table and its triggers ---------------------------------------------------

TABLE = CONTACT_NAME_TRIGRAMS


def _trigram_ids(database: Database, phrase: str) -> set[int]:
    with database.read() as session:
        rows = session.execute(
            text(f"SELECT rowid FROM {TABLE} WHERE {TABLE} MATCH :p"),  # noqa: S608 - constant
            {"p": f'"{phrase}"'},
        )
        return {row[0] for row in rows}


def _indexed_ids(database: Database) -> set[int]:
    with database.read() as session:
        rows = session.execute(text(f"SELECT id FROM {TABLE}_docsize"))  # noqa: S608 - constant
        return {row[0] for row in rows}


def _contact_id(database: Database, guid: str) -> int:
    with database.read() as session:
        return get_contact(session, guid).id


def _set_names(database: Database, guid: str, first: str | None, last: str | None) -> None:
    with database.write() as session:
        contact = get_contact(session, guid)
        contact.first_name, contact.last_name = first, last


def _integrity_check(database: Database) -> None:
    with database.write() as session:
        session.execute(
            text(f"INSERT INTO {TABLE}({TABLE}) VALUES ('integrity-check')")  # noqa: S608 - constant
        )


def test_the_triggers_keep_the_trigram_table_in_step(database: Database) -> None:
    if not database.is_sqlite:
        pytest.skip("SQLite's trigram table (PostgreSQL's GIN index keeps itself)")
    ada = factories.contact_with(database, first_name="Ada", last_name="Lovelace")
    anonymous = factories.contact_with(database, email="anon@example.com")
    ada_id, anonymous_id = _contact_id(database, ada), _contact_id(database, anonymous)
    # Inserted with a name: indexed; without one: not.
    assert _trigram_ids(database, "lovelace") == {ada_id}
    assert _trigram_ids(database, "ada lov") == {ada_id}
    assert _indexed_ids(database) == {ada_id}

    # A new name replaces the old one (the old trigrams are gone, not only outnumbered).
    _set_names(database, ada, "Ada", "Byron")
    assert _trigram_ids(database, "lovelace") == set()
    assert _trigram_ids(database, "byron") == {ada_id}
    # The anonymous contact gets a name (data input): indexed from then on.
    _set_names(database, anonymous, "Grace", None)
    assert _trigram_ids(database, "grace") == {anonymous_id}
    assert _indexed_ids(database) == {ada_id, anonymous_id}
    # Both names cleared: out of the table.
    _set_names(database, ada, None, None)
    assert _trigram_ids(database, "ada") == set()
    assert _indexed_ids(database) == {anonymous_id}

    # Erasure deletes the row: the delete trigger takes it out.
    with database.write() as session:
        erase_contact(session, anonymous, "ada@example.com")
    assert _trigram_ids(database, "grace") == set()
    assert _indexed_ids(database) == set()
    _integrity_check(database)
    with database.read() as session:
        assert contact_count(session, "grace") == 0
        assert contact_count(session, "byron") == 0


# -- sorting across blanks -----------------------------------------------------------------------

LAST_NAMES = ["smith", None, "Adams", "SMITH", None, "brown", "adams", None, "Zed", "Smith"]


def _sorted_people(database: Database) -> list[dict[str, Any]]:
    """30 contacts, a third without a last name, ties in every case, some without email."""
    people = []
    for order in range(30):
        last_name = LAST_NAMES[order % len(LAST_NAMES)]
        email = None if order % 4 == 1 else f"{'BCAb'[order % 4]}{order % 3}@example.com"
        guid = factories.contact_with(database, last_name=last_name, email=email)
        people.append({"guid": guid, "order": order, "last_name": last_name, "email": email})
    return people


def _expected_order(people: list[dict[str, Any]], sort: str) -> list[str]:
    column, descending = sort.lstrip("-"), sort.startswith("-")
    known = sorted(
        (p for p in people if p[column] is not None),
        key=lambda p: (p[column].lower(), p["order"]),
        reverse=descending,
    )
    blanks = sorted(
        (p for p in people if p[column] is None), key=lambda p: p["order"], reverse=descending
    )
    return [p["guid"] for p in known + blanks]


def _every_page(database: Database, sort: str, limit: int, q: str = "") -> list[str]:
    guids: list[str] = []
    after = None
    with database.read() as session:
        while True:
            page = search_contacts(session, q, sort, after, limit)
            guids += [str(c.guid) for c in page.contacts]
            if page.next_after is None:
                return guids
            after = page.next_after


@pytest.mark.parametrize("sort", ["last_name", "-last_name", "email", "-email"])
def test_sorted_pages_cross_the_blanks_in_both_directions(database: Database, sort: str) -> None:
    people = _sorted_people(database)
    expected = _expected_order(people, sort)
    # Page sizes that end pages inside ties, on the last named contact and inside the blanks.
    for limit in (1, 2, 3, 4, 7, 10, 19, 20, 21, 30, 31):
        assert _every_page(database, sort, limit) == expected, limit
    # With a search, the same order among the contacts it finds.
    smiths = {p["guid"] for p in people if (p["last_name"] or "").lower() == "smith"}
    matching = [guid for guid in expected if guid in smiths]
    assert _every_page(database, sort, 2, q="smith") == matching


def test_a_cursor_among_the_blanks_reads_only_blanks(database: Database) -> None:
    people = _sorted_people(database)
    expected = _expected_order(people, "-last_name")
    first_blank = next(i for i, guid in enumerate(expected) if guid in _blank_guids(people))
    with database.read() as session:
        page = search_contacts(session, sort="-last_name", limit=first_blank + 1)
        assert page.next_after is not None
        rest = search_contacts(session, sort="-last_name", after=page.next_after, limit=200)
    assert [str(c.guid) for c in rest.contacts] == expected[first_blank + 1 :]


def _blank_guids(people: list[dict[str, Any]]) -> set[str]:
    return {p["guid"] for p in people if p["last_name"] is None}


# -- the plans -----------------------------------------------------------------------------------


@contextmanager
def _statements(session: Session) -> Iterator[list[tuple[str, Any]]]:
    """The SQL (and parameters) that the session sends meanwhile."""
    captured: list[tuple[str, Any]] = []

    def record(*args: Any) -> None:
        captured.append((args[2], args[3]))

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield captured
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _plan(session: Session, statement: str, parameters: Any) -> str:
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        return "\n".join(str(row[-1]) for row in rows)
    # The tables are tiny here: forbid reading them whole so that the plan shows whether the
    # query *can* use the index (its expression matches the index's).
    connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    rows = connection.exec_driver_sql("EXPLAIN " + statement, parameters)
    return "\n".join(str(row[0]) for row in rows)


def _plans_of(database: Database, run: Any) -> list[str]:
    """The plans of the contact queries that `run(session)` sends."""
    with database.read() as session:
        with _statements(session) as statements:
            run(session)
        return [
            _plan(session, sql, parameters)
            for sql, parameters in statements
            if "FROM contacts" in sql and "sqlite_master" not in sql
        ]


def test_the_searches_and_sorts_read_the_indexes(database: Database) -> None:
    _store_people(database)
    _sorted_people(database)
    email = "ix_contacts_email_nocase" if database.is_sqlite else "ix_contacts_email_pattern"
    names = CONTACT_NAME_TRIGRAMS if database.is_sqlite else "ix_contacts_name_trigram"

    by_address = _plans_of(database, lambda s: contact_count(s, "ada.lovelace@example.com"))
    assert email in by_address[0]
    by_name = _plans_of(database, lambda s: contact_count(s, "smith"))
    assert email in by_name[0]
    assert names in by_name[0]
    for sort, index in (
        ("last_name", "ix_contacts_last_name_sort"),
        ("-last_name", "ix_contacts_last_name_sort"),
        ("email", "ix_contacts_email_sort"),
        ("-email", "ix_contacts_email_sort"),
    ):
        with database.read() as session:
            cursor = search_contacts(session, sort=sort, limit=3).next_after
        first = _plans_of(database, lambda s, sort=sort: search_contacts(s, sort=sort, limit=3))
        deep = _plans_of(
            database,
            lambda s, sort=sort, cursor=cursor: search_contacts(
                s, sort=sort, after=cursor, limit=3
            ),
        )
        assert index in first[0], (sort, first[0])
        assert index in deep[0], (sort, deep[0])
        assert "SCAN contacts\n" not in first[0] + "\n", first[0]


def test_the_search_objects_exist(database: Database) -> None:
    with database.read() as session:
        if database.is_sqlite:
            names = set(session.scalars(text("SELECT name FROM sqlite_master")))
            expected = {
                "ix_contacts_email_nocase",
                "ix_contacts_last_name_sort",
                "ix_contacts_email_sort",
                CONTACT_NAME_TRIGRAMS,
                *(f"{CONTACT_NAME_TRIGRAMS}_{name}" for name in ("insert", "update", "delete")),
            }
        else:
            names = set(
                session.scalars(
                    text("SELECT indexname FROM pg_indexes WHERE tablename = 'contacts'")
                )
            )
            expected = {
                "ix_contacts_email_pattern",
                "ix_contacts_name_trigram",
                "ix_contacts_last_name_sort",
                "ix_contacts_email_sort",
            }
    assert expected <= names


# -- PostgreSQL without pg_trgm ------------------------------------------------------------------


def test_without_pg_trgm_the_hub_migrates_and_scans_names(postgres_template: str) -> None:
    # A role that may create tables but not extensions (no CREATE on the database): migration
    # 0011 goes on without the trigram index (docs/decisions.md), the schema still matches the
    # models, and the name search reads the table.
    suffix = uuid.uuid4().hex[:12]
    role, name = f"contacthub_noext_{suffix}", f"contacthub_noext_{suffix}"
    _admin_execute(f'CREATE ROLE "{role}" LOGIN')
    _admin_execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(_postgres_url(name), autocommit=True) as connection:
            connection.execute(f'GRANT ALL ON SCHEMA public TO "{role}"')  # type: ignore[arg-type]
        # Signed in as the admin (whatever the server's authentication), working as the role.
        url = (
            make_url(POSTGRES_ADMIN_URL)
            .set(database=name)
            .update_query_dict({"options": f"-c role={role}"})
            .render_as_string(hide_password=False)
        )
        upgrade(url)
        command.check(alembic_config(url))
        database = Database(url)
        try:
            with database.read() as session:
                indexes = set(
                    session.scalars(
                        text("SELECT indexname FROM pg_indexes WHERE tablename = 'contacts'")
                    )
                )
            assert "ix_contacts_name_trigram" not in indexes
            assert "ix_contacts_email_pattern" in indexes
            smithson = factories.contact_with(database, first_name="Ada", last_name="Smithson")
            with database.read() as session:
                assert [str(c.guid) for c in search_contacts(session, "smith").contacts] == [
                    smithson
                ]
                assert contact_count(session, "ada smi") == 1
        finally:
            database.dispose()
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _admin_execute(f'DROP ROLE IF EXISTS "{role}"')


def test_the_migration_gathers_statistics_for_its_expression_indexes(
    postgres_template: str,
) -> None:
    # Without ANALYZE the planner has no statistics of lower(email) and guessed the address
    # search matches many rows: it walked the primary key for the page (270 ms at a million
    # contacts) instead of reading the pattern index (5 ms).
    name = f"contacthub_stats_{uuid.uuid4().hex[:12]}"
    _admin_execute(f'CREATE DATABASE "{name}"')
    try:
        url = _postgres_url(name)
        upgrade(url, "0010")
        database = Database(url)
        try:
            for n in range(20):
                factories.contact_with(database, email=f"person{n}@example.com")
            upgrade(url)
            with database.read() as session:
                analyzed = set(
                    session.scalars(
                        text("SELECT DISTINCT tablename FROM pg_stats WHERE tablename LIKE :n"),
                        {"n": "ix_contacts_%"},
                    )
                )
        finally:
            database.dispose()
        assert {"ix_contacts_email_pattern", "ix_contacts_email_sort"} <= analyzed
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
