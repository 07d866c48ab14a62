"""Importing subscribers from CSV: streamed, checked row by row, committed in chunks.

The file: UTF-8 (an Excel byte-order mark is fine), a header row, then one subscriber per row.
Columns are found by name, case- and punctuation-insensitively: `email` (also `Email`,
`E-mail`, `EmailAddress`) is required; `first_name` (`FirstName`, `First name`) and `last_name`
(`LastName`, `Surname`) are optional; other columns are ignored. Commas, semicolons or tabs
separate the fields (detected from the header).

A bad row (missing or invalid address, an address already seen earlier in the file, a name over
100 characters) is reported with its line number and reason and skipped; the good rows are added.
Addresses already subscribed are counted and left alone, so an interrupted import can simply be
run again. Addresses that unsubscribed are not subscribed again by an import (a list must not
undo someone's unsubscribe); they are counted apart.

Rows are read one at a time and committed every `chunk_size` subscribers, each chunk in its own
unit of work: a crash keeps every chunk committed before it, and memory stays flat however long
the file is (only the set of addresses seen, to find duplicates, grows with it).

A file that cannot be read as a whole (not UTF-8, a field over the csv module's 128 KiB limit)
is refused before anything is committed: the rows are first read once without being checked,
which costs a fraction of the import, so that an error on the last line does not leave the
first chunks imported behind a refusal.

An import made by someone (`actor`) is recorded in the audit log as `subscriber.imported`, with
its counts, in the unit of work of its last chunk. An import that stops on an error after some
chunks added subscribers records what those chunks did, and why it stopped.
"""

from __future__ import annotations

import csv
import logging
import re
from _csv import Reader
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from contacthub.audit import service as audit
from contacthub.email import repository, service
from contacthub.email.repository import SUBSCRIBED
from contacthub.errors import HubError, InvalidInput
from contacthub.events import changes
from contacthub.groups.queue import enqueue_contacts
from contacthub.storage.database import Database
from contacthub.storage.models import Contact, Subscriber

logger = logging.getLogger(__name__)
DEFAULT_CHUNK_SIZE = 500
MAX_REPORTED_BAD_ROWS = 10_000

COLUMN_ALIASES = {
    "email": "email",
    "emailaddress": "email",
    "mail": "email",
    "firstname": "first_name",
    "givenname": "first_name",
    "lastname": "last_name",
    "surname": "last_name",
    "familyname": "last_name",
}

Progress = Callable[[int, int], None]
"""Called with (lines read, lines in the file) after each committed chunk."""
Finish = Callable[[Session, "ChunkResult"], None]
"""Run in a chunk's unit of work, with what the chunk did."""


@dataclass(frozen=True, slots=True)
class SubscriberRow:
    """A checked row: a valid, lower-cased address and clean names."""

    line: int
    email: str
    first_name: str | None
    last_name: str | None


@dataclass(frozen=True, slots=True)
class BadRow:
    """A skipped row and why."""

    line: int
    email: str
    reason: str


@dataclass(slots=True)
class ChunkResult:
    """What one chunk did."""

    added: int = 0
    already_subscribed: int = 0
    unsubscribed: int = 0


@dataclass(slots=True)
class ImportReport:
    """The outcome of an import."""

    added: int = 0
    already_subscribed: int = 0
    unsubscribed: int = 0
    bad_count: int = 0
    rows: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    def add(self, chunk: ChunkResult) -> None:
        self.added += chunk.added
        self.already_subscribed += chunk.already_subscribed
        self.unsubscribed += chunk.unsubscribed

    def reject(self, bad: BadRow) -> None:
        self.bad_count += 1
        if len(self.bad_rows) < MAX_REPORTED_BAD_ROWS:
            self.bad_rows.append(bad)


def _column_key(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.strip().lower())


class CsvSubscribers:
    """The rows of a subscriber CSV, checked one by one as they are read."""

    def __init__(self, stream: TextIO) -> None:
        first = stream.readline()
        if not first.strip():
            raise InvalidInput("The CSV file is empty: it needs a header row.", code="invalid_csv")
        delimiter = max(",;\t", key=first.count)
        try:
            header = next(csv.reader([first], delimiter=delimiter))
        except csv.Error as error:
            raise InvalidInput(
                f"The CSV header cannot be read ({error}).", code="invalid_csv"
            ) from None
        self.columns: dict[str, int] = {}
        self.ignored: list[str] = []
        for index, name in enumerate(header):
            key = COLUMN_ALIASES.get(_column_key(name.lstrip("\ufeff")))
            if key is not None and key not in self.columns:
                self.columns[key] = index
            else:
                self.ignored.append(name)
        if "email" not in self.columns:
            raise InvalidInput(
                f"The CSV header has no email column (found: {', '.join(header)}).",
                code="invalid_csv",
            )
        if stream.seekable():
            start = stream.tell()
            for _ in self._records(
                csv.reader(stream, delimiter=delimiter), "; nothing was imported"
            ):
                pass  # only to refuse an unreadable file before anything is committed
            stream.seek(start)
        self._reader = csv.reader(stream, delimiter=delimiter)
        self._seen: dict[str, int] = {}

    @staticmethod
    def _records(reader: Reader, outcome: str = "") -> Iterator[list[str]]:
        """The records of `reader`; a 400 naming the line where the csv module gives up."""
        try:
            yield from reader
        except csv.Error as error:
            line = reader.line_num + 1
            raise InvalidInput(
                f"The CSV file cannot be read at line {line} ({error}){outcome}.",
                code="invalid_csv",
            ) from None

    @property
    def line(self) -> int:
        """The physical line read last (1 is the header)."""
        return self._reader.line_num + 1

    def __iter__(self) -> Iterator[SubscriberRow | BadRow]:
        end = 1
        for record in self._records(self._reader):
            start, end = end + 1, self.line
            if not any(value.strip() for value in record):
                continue  # blank lines are not rows
            yield self._check(start, record)

    def _cell(self, record: Sequence[str], column: str) -> str | None:
        index = self.columns.get(column)
        return record[index] if index is not None and index < len(record) else None

    def _check(self, line: int, record: Sequence[str]) -> SubscriberRow | BadRow:
        raw_email = (self._cell(record, "email") or "").strip()
        try:
            email = service.normalise_email(raw_email)
            first = service.clean_person_name(self._cell(record, "first_name"), "first name")
            last = service.clean_person_name(self._cell(record, "last_name"), "last name")
        except HubError as error:
            return BadRow(line, raw_email, error.message)
        earlier = self._seen.setdefault(email, line)
        if earlier != line:
            return BadRow(line, raw_email, f"duplicate of line {earlier}")
        return SubscriberRow(line, email, first, last)


def import_subscribers(
    session: Session, newsletter_name: str, rows: Iterable[SubscriberRow]
) -> ChunkResult:
    """Subscribe checked rows in this unit of work; addresses known to the newsletter are
    counted and left alone. Few queries per call, whatever the number of rows."""
    newsletter = service.get_newsletter(session, newsletter_name)
    rows = list(rows)
    result = ChunkResult()
    known = repository.subscriber_statuses(session, newsletter.id, {r.email for r in rows})
    fresh = [r for r in rows if r.email not in known]
    for status in known.values():
        if status == SUBSCRIBED:
            result.already_subscribed += 1
        else:
            result.unsubscribed += 1
    contacts = repository.oldest_contacts_with_emails(session, {r.email for r in fresh})
    new_contacts: list[Contact] = []
    filled: list[tuple[Contact, dict[str, Any]]] = []
    for row in fresh:
        contact = contacts.get(row.email)
        if contact is None:
            contact = Contact(email=row.email, first_name=row.first_name, last_name=row.last_name)
            contacts[row.email] = contact
            new_contacts.append(contact)
        else:
            filled.append((contact, changes.fields_of(contact, ("first_name", "last_name"))))
            contact.first_name = contact.first_name or row.first_name
            contact.last_name = contact.last_name or row.last_name
    session.add_all(new_contacts)
    session.flush()  # one multi-row INSERT; the new contacts get their ids
    changes.contacts_changed(session, new_contacts, filled, source="import")
    session.add_all(
        Subscriber(
            newsletter_id=newsletter.id,
            contact_id=contacts[row.email].id,
            email=row.email,
            first_name=row.first_name or contacts[row.email].first_name,
            last_name=row.last_name or contacts[row.email].last_name,
            status=SUBSCRIBED,
        )
        for row in fresh
    )
    session.flush()
    enqueue_contacts(session, [contacts[row.email].id for row in fresh])  # for groups
    result.added = len(fresh)
    return result


def import_csv(
    database: Database,
    newsletter_name: str,
    stream: TextIO,
    *,
    total_lines: int = 0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Progress | None = None,
    actor: str | None = None,
) -> ImportReport:
    """Import a subscriber CSV, committing every `chunk_size` good rows."""
    with database.read() as session:
        # Fail before reading a row; the audit log names the newsletter as it is stored.
        name = service.get_newsletter(session, newsletter_name).name
    rows = CsvSubscribers(stream)
    report = ImportReport(ignored_columns=rows.ignored)
    chunk: list[SubscriberRow] = []

    def commit(finish: Finish | None = None) -> None:
        report.add(_commit_chunk(database, newsletter_name, chunk, finish))
        chunk.clear()
        if progress is not None:
            progress(rows.line, max(total_lines, rows.line))

    def recorded_as(who: str) -> Finish:
        """Records the import, in the unit of work of its `last` chunk."""

        def record(session: Session, last: ChunkResult) -> None:
            details = _import_details(name, report, last)
            audit.record(session, who, "subscriber.imported", name, details)

        return record

    try:
        for row in rows:
            report.rows += 1
            if isinstance(row, BadRow):
                report.reject(row)
                continue
            chunk.append(row)
            if len(chunk) >= chunk_size:
                commit()
        commit(None if actor is None else recorded_as(actor))
    except BaseException as error:
        if actor is not None and report.added:
            _record_stopped_import(database, actor, name, report, error)
        raise
    return report


def _import_details(name: str, report: ImportReport, last: ChunkResult) -> dict[str, Any]:
    """The audit details of an import: `report` so far, plus its `last` chunk."""
    return {
        "newsletter": name,
        "rows": report.rows,
        "added": report.added + last.added,
        "already_subscribed": report.already_subscribed + last.already_subscribed,
        "unsubscribed_not_added": report.unsubscribed + last.unsubscribed,
        "bad_rows": report.bad_count,
    }


def _record_stopped_import(
    database: Database, actor: str, name: str, report: ImportReport, error: BaseException
) -> None:
    """Record the chunks an import committed before `error` stopped it (they are kept)."""
    details = _import_details(name, report, ChunkResult())
    reason = error.message if isinstance(error, HubError) else str(error)
    details["stopped"] = (reason or type(error).__name__)[:200]
    try:
        with database.write() as session:
            audit.record(session, actor, "subscriber.imported", name, details)
    except Exception:
        # The error that stopped the import is the one to report (it may be this one's cause).
        logger.exception("Could not record the stopped import of %s", name)


def _commit_chunk(
    database: Database,
    newsletter_name: str,
    chunk: list[SubscriberRow],
    finish: Finish | None = None,
) -> ChunkResult:
    if not chunk and finish is None:
        return ChunkResult()

    def work(session: Session) -> ChunkResult:
        result = import_subscribers(session, newsletter_name, chunk) if chunk else ChunkResult()
        if finish is not None:
            finish(session, result)
        return result

    try:
        with database.write() as session:
            return work(session)
    except IntegrityError:
        # Someone subscribed one of these addresses between our check and our insert (possible
        # on PostgreSQL): do the chunk again, it now sees that subscriber.
        with database.write() as session:
            return work(session)


def count_lines(path: Path) -> int:
    """Physical lines in a file, for the progress bar's total (fast: reads bytes in blocks)."""
    lines = 0
    last = b"\n"
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def import_file(
    database: Database,
    newsletter_name: str,
    path: Path,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Progress | None = None,
    actor: str | None = None,
) -> ImportReport:
    """Import a subscriber CSV file (see the module's docstring for its format)."""
    total = count_lines(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            return import_csv(
                database,
                newsletter_name,
                stream,
                total_lines=total,
                chunk_size=chunk_size,
                progress=progress,
                actor=actor,
            )
    except UnicodeDecodeError as error:
        raise InvalidInput(
            f"{path} is not UTF-8 text (byte {error.start}); save the CSV as UTF-8.",
            code="invalid_csv",
        ) from None
