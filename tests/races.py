"""Two write transactions doing the same work at once, made to overlap for certain.

The first runs the work and keeps its transaction open; the second starts the same work in a
thread. On PostgreSQL the first commits only once the second waits for one of its locks (seen in
`pg_stat_activity`): the second has read everything before the first's rows were committed, the
moment a check-then-insert breaks. On SQLite the second cannot begin before the first commits
(write transactions run one at a time); the test then shows that the answer is the same.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from contacthub.storage.database import Database

WAIT_SECONDS = 20.0


@dataclass(slots=True)
class Outcome:
    """What one transaction's work answered, or the exception it raised (then not committed)."""

    value: Any = None
    error: BaseException | None = None


def _run(database: Database, work: Callable[[Session], Any], outcome: Outcome) -> None:
    try:
        with database.write() as session:
            outcome.value = work(session)
    except Exception as error:  # kept for the test to look at
        outcome.error = error


def _wait_until_blocked(database: Database) -> None:
    """Until a transaction of this database waits for a lock (PostgreSQL)."""
    deadline = time.monotonic() + WAIT_SECONDS
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    with database.engine.connect() as connection:
        while time.monotonic() < deadline:
            if connection.execute(query).scalar():
                return
            connection.rollback()
            time.sleep(0.01)
    raise AssertionError("the second transaction never waited for the first")


def overlapping(database: Database, work: Callable[[Session], Any]) -> tuple[Outcome, Outcome]:
    """Run `work` in two overlapping write transactions; (the first's, the second's outcome).

    The first must succeed (its exception fails the test); the second's is returned."""
    first, second = Outcome(), Outcome()
    started = threading.Event()

    def run_second() -> None:
        started.set()
        _run(database, work, second)

    thread = threading.Thread(target=run_second)
    try:
        with database.write() as session:
            first.value = work(session)
            thread.start()
            assert started.wait(WAIT_SECONDS)
            if database.is_sqlite:
                time.sleep(0.2)  # let the second try to begin (it waits for the write lock)
            else:
                _wait_until_blocked(database)
    finally:
        if thread.ident is not None:
            thread.join(WAIT_SECONDS)
    assert not thread.is_alive(), "the second transaction did not finish"
    return first, second
