"""Importing subscribers from CSV files, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from contacthub.contacts import service as contacts
from contacthub.email import importer, service
from contacthub.email.importer import BadRow
from contacthub.errors import InvalidInput, NotFound
from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent, Contact, Subscriber

NEWS = "Weekly"


@pytest.fixture
def newsletter(database: Database) -> str:
    with database.write() as session:
        service.create_newsletter(session, NEWS, "Team", "team@example.com", "https://e.com")
    return NEWS


def subscribers(database: Database) -> dict[str, tuple[str | None, str | None, str]]:
    with database.read() as session:
        return {
            s.email: (s.first_name, s.last_name, s.status)
            for s in service.list_subscribers(session, NEWS)
        }


def write(tmp_path: Path, text: str, name: str = "people.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_good_rows_are_added_and_bad_rows_reported_with_line_and_reason(
    database: Database, newsletter: str, tmp_path: Path
) -> None:
    long_name = "L" * 101
    csv = (
        "Email,FirstName,LastName,Company\n"
        "jane@example.com,Jane,Doe,ACME\n"  # line 2
        "not-an-address,Bad,Row,\n"  # 3
        "\n"  # 4: blank, not a row
        '"John@Example.com","John ""Johnny""",Smith,\n'  # 5
        f"long@example.com,{long_name},X,\n"  # 6
        "JANE@example.com,Again,,\n"  # 7: duplicate of line 2
        ',"Multi\nline",,\n'  # 8-9: no address
        "last@example.com,,,\n"  # 10
    )
    report = importer.import_file(database, NEWS, write(tmp_path, csv))

    assert (report.rows, report.added, report.bad_count) == (7, 3, 4)
    assert report.ignored_columns == ["Company"]
    assert [(b.line, b.email) for b in report.bad_rows] == [
        (3, "not-an-address"),
        (6, "long@example.com"),
        (7, "JANE@example.com"),
        (8, ""),
    ]
    reasons = [b.reason for b in report.bad_rows]
    assert "not a valid" in reasons[0]
    assert "at most 100 characters" in reasons[1]
    assert reasons[2] == "duplicate of line 2"
    assert "missing" in reasons[3]
    assert subscribers(database) == {
        "jane@example.com": ("Jane", "Doe", "subscribed"),
        "john@example.com": ('John "Johnny"', "Smith", "subscribed"),
        "last@example.com": (None, None, "subscribed"),
    }


@pytest.mark.parametrize(
    "header",
    ["email;first_name;last_name", "EMAIL;First Name;Last_Name", "\ufeffE-mail;firstname;surname"],
)
def test_header_names_and_separator_are_recognised(
    database: Database, newsletter: str, tmp_path: Path, header: str
) -> None:
    path = write(tmp_path, f"{header}\njane@example.com;Jane;Doe\n")
    report = importer.import_file(database, NEWS, path)
    assert report.added == 1
    assert subscribers(database) == {"jane@example.com": ("Jane", "Doe", "subscribed")}


def test_a_file_without_an_email_column_is_refused(
    database: Database, newsletter: str, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput) as error:
        importer.import_file(database, NEWS, write(tmp_path, "name,phone\nJane,123\n"))
    assert "no email column" in error.value.message
    with pytest.raises(InvalidInput):
        importer.import_file(database, NEWS, write(tmp_path, "", "empty.csv"))


def test_a_file_that_is_not_utf8_is_refused(
    database: Database, newsletter: str, tmp_path: Path
) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("email,first_name\nj@example.com,Jürgen\n".encode("latin-1"))
    with pytest.raises(InvalidInput) as error:
        importer.import_file(database, NEWS, path)
    assert "UTF-8" in error.value.message


OVERSIZED_FIELD = "x" * (128 * 1024 + 1)
HALF_FIELD = "x" * (64 * 1024 + 1)


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        (f"{OVERSIZED_FIELD}@example.com,Late\n", "cannot be read at line 602"),
        (f'late@example.com,"{HALF_FIELD}\n{HALF_FIELD}"\n', "at line 603"),
        ("late@example.com,J\udcfcrgen\n", "UTF-8"),
    ],
    ids=["oversized-email", "oversized-multiline-name", "not-utf8"],
)
def test_an_unreadable_file_is_refused_before_anything_is_imported(
    database: Database, newsletter: str, tmp_path: Path, tail: str, message: str
) -> None:
    rows = "".join(f"reader{n}@example.com,Reader\n" for n in range(600))
    path = tmp_path / "people.csv"
    path.write_bytes(f"email,first_name\n{rows}{tail}".encode("utf-8", "surrogateescape"))
    with pytest.raises(InvalidInput) as error:
        importer.import_file(database, NEWS, path, chunk_size=500)
    assert message in error.value.message
    assert error.value.code == "invalid_csv"
    assert subscribers(database) == {}


def test_an_oversized_header_is_refused(
    database: Database, newsletter: str, tmp_path: Path
) -> None:
    path = write(tmp_path, f"email,{OVERSIZED_FIELD}\na@example.com,x\n")
    with pytest.raises(InvalidInput) as error:
        importer.import_file(database, NEWS, path)
    assert "header cannot be read" in error.value.message


def test_unknown_newsletter(database: Database, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        importer.import_file(database, "Nope", write(tmp_path, "email\na@example.com\n"))


def test_existing_subscribers_are_left_alone_and_unsubscribed_ones_not_resubscribed(
    database: Database, newsletter: str, tmp_path: Path
) -> None:
    with database.write() as session:
        service.add_subscriber(session, NEWS, "kept@example.com", first_name="Kept")
        gone = service.add_subscriber(session, NEWS, "gone@example.com")
        service.unsubscribe(session, gone)
        existing = contacts.create_contact(session, email="Known@Example.com", first_name="K")
    csv = "email,first_name\nkept@example.com,Other\ngone@example.com,G\nknown@example.com,New\n"

    report = importer.import_file(database, NEWS, write(tmp_path, csv))

    assert (report.added, report.already_subscribed, report.unsubscribed) == (1, 1, 1)
    assert subscribers(database) == {
        "kept@example.com": ("Kept", None, "subscribed"),
        "gone@example.com": (None, None, "unsubscribed"),
        "known@example.com": ("New", None, "subscribed"),
    }
    with database.read() as session:
        known = session.scalar(select(Subscriber).where(Subscriber.email == "known@example.com"))
        assert known is not None
        assert known.contact_id == existing.id
        assert session.scalar(select(func.count()).select_from(Contact)) == 3


def big_csv(path: Path, rows: int, bad_every: int = 0) -> Path:
    with path.open("w", encoding="utf-8") as out:
        out.write("email,first_name,last_name\n")
        for n in range(rows):
            address = f"bad-{n}" if bad_every and n % bad_every == 0 else f"p{n}@example.com"
            out.write(f"{address},First{n},Last{n}\n")
    return path


def test_a_large_file_is_streamed_in_chunks_with_progress(
    database: Database, newsletter: str, tmp_path: Path
) -> None:
    path = big_csv(tmp_path / "big.csv", 10_000, bad_every=1000)
    seen: list[tuple[int, int]] = []

    report = importer.import_file(
        database, NEWS, path, chunk_size=1000, progress=lambda d, t: seen.append((d, t))
    )

    assert (report.rows, report.added, report.bad_count) == (10_000, 9_990, 10)
    assert [b.line for b in report.bad_rows] == [2 + n for n in range(0, 10_000, 1000)]
    assert seen[-1] == (10_001, 10_001)
    assert len(seen) >= 10
    assert all(a[0] < b[0] for a, b in itertools.pairwise(seen))
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 9_990
        assert session.scalar(select(func.count()).select_from(Contact)) == 9_990


class Interrupted(Exception):
    """The import process "dies" here."""


def die_after_two_chunks(done: int, total: int) -> None:
    """A progress callback that stops an import of 500-row chunks after its second chunk."""
    if done > 1_000:
        raise Interrupted


def test_an_interrupted_import_keeps_its_chunks_and_a_rerun_completes_it(
    database: Database, newsletter: str, tmp_path: Path
) -> None:
    path = big_csv(tmp_path / "people.csv", 2_500)

    with pytest.raises(Interrupted):
        importer.import_file(database, NEWS, path, chunk_size=500, progress=die_after_two_chunks)
    assert len(subscribers(database)) == 1_000  # two chunks committed, the third lost

    report = importer.import_file(database, NEWS, path, chunk_size=500)

    assert (report.added, report.already_subscribed, report.bad_count) == (1_500, 1_000, 0)
    assert len(subscribers(database)) == 2_500


def imports_recorded(database: Database) -> list[tuple[str, dict[str, Any]]]:
    with database.read() as session:
        events = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "subscriber.imported")
            .order_by(AuditEvent.id)
        ).all()
        return [(e.actor, json.loads(e.details or "{}")) for e in events]


class DyingStream(io.StringIO):
    """A file that cannot be read past a given line, as if the process died there."""

    def __init__(self, text: str, die_at_line: int) -> None:
        super().__init__(text)
        self.lines_left = die_at_line

    def __next__(self) -> str:
        self.lines_left -= 1
        if self.lines_left < 0:
            raise Interrupted
        return super().__next__()


def test_an_import_stopped_half_way_records_what_its_chunks_added(
    database: Database, newsletter: str, tmp_path: Path
) -> None:
    path = big_csv(tmp_path / "people.csv", 2_500)

    with pytest.raises(Interrupted):
        importer.import_file(
            database,
            NEWS,
            path,
            chunk_size=500,
            progress=die_after_two_chunks,
            actor="ada@example.com",
        )
    # The two chunks committed are changes: recorded, with why the import stopped.
    [(actor, details)] = imports_recorded(database)
    assert details.pop("rows", 0) >= 1_000  # rows read: the committed ones and then some
    assert [(actor, details)] == [
        (
            "ada@example.com",
            {
                "newsletter": NEWS,
                "added": 1_000,
                "already_subscribed": 0,
                "unsubscribed_not_added": 0,
                "bad_rows": 0,
                "stopped": "Interrupted",
            },
        )
    ]
    # Stopped before any chunk committed: nothing changed, nothing is recorded.
    text = path.read_text(encoding="utf-8")
    with pytest.raises(Interrupted):
        importer.import_csv(database, NEWS, DyingStream(text, 10), actor="ada@example.com")
    assert len(imports_recorded(database)) == 1


def test_a_complete_import_is_recorded_once_without_an_actor_not_at_all(
    database: Database, newsletter: str, tmp_path: Path
) -> None:
    path = big_csv(tmp_path / "people.csv", 1_200)
    importer.import_file(database, NEWS, path, chunk_size=500)
    assert imports_recorded(database) == []
    importer.import_file(database, NEWS, path, chunk_size=500, actor="cli")
    assert imports_recorded(database) == [
        (
            "cli",
            {
                "newsletter": NEWS,
                "rows": 1_200,
                "added": 0,
                "already_subscribed": 1_200,
                "unsubscribed_not_added": 0,
                "bad_rows": 0,
            },
        )
    ]


def test_csv_rows_are_checked_one_by_one() -> None:
    rows = list(importer.CsvSubscribers(io.StringIO("Email\n a@Example.com \nb\n")))
    assert rows == [
        importer.SubscriberRow(2, "a@example.com", None, None),
        BadRow(3, "b", rows[1].reason if isinstance(rows[1], BadRow) else ""),
    ]
