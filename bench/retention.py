"""Benchmark of the retention job: deleting old activities in batches, under a steady writer.

Builds a store with `--activities` old activities (spread over the year before the retention
period) and `--recent` recent ones, counts them into the rollups, sets a 30-day policy for
activities, and runs the retention job (`retention.job.run`) once while a writer thread stores
one activity per transaction as fast as it can (an ingest stand-in). Reports the run's time
and rows/s, its batches (count, median and longest transaction), and the writer's longest wait
and p99 during the run: the job must not hold the write lock for long. Checks that the
dashboard's totals (the rollups plus the live count) are the same before and after.

    .venv/bin/python bench/retention.py [--activities 200000] [--recent 20000] \
        [--batch 5000] [--only sqlite|postgresql]

SQLite runs in a temporary directory; PostgreSQL in a new database dropped at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select
from tracking import postgresql_store

from contacthub.analytics import rollups
from contacthub.retention import job, policies
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.migrate import upgrade
from contacthub.storage.models import Activity
from contacthub.storage.types import utcnow

POSTGRESQL_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CHUNK = 50_000
DAYS = 30


def fill(database: Database, old: int, recent: int) -> None:
    """`old` activities over the year before the period, then `recent` ones within it."""
    now = utcnow()
    start = now - timedelta(days=DAYS + 365)
    step = timedelta(days=365) / max(old, 1)
    rows = [
        (start + step * n, "pagevisit" if n % 3 else "click", f"https://shop.example.com/{n % 50}")
        for n in range(old)
    ]
    rows += [(now - timedelta(days=1), "pagevisit", "https://shop.example.com/new")] * recent
    for first in range(0, len(rows), CHUNK):
        with database.write() as session:
            session.execute(
                insert(Activity),
                [
                    {
                        "contact_id": 1 + n % 1_000,
                        "channel_id": 1,
                        "type": kind,
                        "title": "Bench",
                        "url": url,
                        "created_at": moment,
                    }
                    for n, (moment, kind, url) in enumerate(rows[first : first + CHUNK], first)
                ],
            )


def totals(database: Database) -> int:
    with database.read() as session:
        rows = rollups.activity_counts(session, date(2000, 1, 1), date(2100, 1, 1))
        return sum(row.count for row in rows)


def measure(store: str, database_url: str, args: argparse.Namespace) -> None:
    upgrade(database_url)
    database = Database(database_url)
    settings = Settings(
        database_url=database_url,  # type: ignore[arg-type]
        retention_batch_size=args.batch,
    )
    try:
        fill(database, args.activities, args.recent)
        rollups.refresh(database)
        before = totals(database)
        with database.write() as session:
            policies.set_policy(session, policies.ACTIVITIES, DAYS, actor="bench")

        waits: list[float] = []
        stop = threading.Event()

        def writer() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                with database.write() as session:
                    session.add(Activity(contact_id=1, type="pagevisit", title="Writer"))
                waits.append(time.perf_counter() - started)

        batches: list[float] = []
        thread = threading.Thread(target=writer)
        thread.start()
        started = time.perf_counter()
        run = job.run(
            database, settings, "bench", observe=lambda kind, rows, seconds: batches.append(seconds)
        )
        seconds = time.perf_counter() - started
        stop.set()
        thread.join()
        deleted = job.deleted_counts(run).get(policies.ACTIVITIES, 0)
        with database.read() as session:
            left = session.scalar(select(func.count()).select_from(Activity)) or 0
        after = totals(database) - len(waits)  # the writer's rows are live-counted on top
        waits.sort()
        print(
            f"{store}: deleted {deleted:,} of {args.activities:,} old activities "
            f"({left:,} rows left) in {seconds:.2f} s = {deleted / seconds:,.0f} rows/s; "
            f"{len(batches)} batches of {args.batch:,}: median "
            f"{statistics.median(batches) * 1000:.0f} ms, longest {max(batches) * 1000:.0f} ms "
            f"(batch {batches.index(max(batches)) + 1}); "
            f"writer: {len(waits):,} transactions, p99 {waits[int(len(waits) * 0.99)] * 1000:.1f} "
            f"ms, longest {waits[-1] * 1000:.0f} ms; error: {run.error}; "
            f"dashboard total {before:,} before, {after:,} after"
        )
        if run.error is not None or before != after or deleted != args.activities:
            sys.exit(f"{store}: the run did not do what it should")
    finally:
        database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--activities", type=int, default=200_000)
    parser.add_argument("--recent", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args()
    with ExitStack() as stack:
        if args.only != "postgresql":
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            measure("SQLite", f"sqlite:///{folder / 'retention.db'}", args)
        if args.only != "sqlite":
            url, _ = postgresql_store(stack, POSTGRESQL_ADMIN_URL)
            measure("PostgreSQL", url, args)


if __name__ == "__main__":
    main()
