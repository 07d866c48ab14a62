"""Benchmark of PostgreSQL partitioning (migration 0009): conversion time, ingest, log pages.

Builds one PostgreSQL database at migration 0008 (plain tables) holding `--rows` activities
spread over the last `--months` months, in time order as the hub writes them, plus a tenth as
many email opens and clicks; clones it (CREATE DATABASE … TEMPLATE), and converts the clone with
migration 0009, timed. Then, in the same run, on both databases turn about (`--rounds` rounds,
the order swapped every round so that the machine's noise falls on both alike):

- ingest: `--batches` transactions of `--batch` activities each, written by the hub's own
  write path (`activities.repository.insert_activities`: COPY), times of now;
- log pages: the admin activity log's queries (`activities.log.activity_log`, what
  /admin/activities runs): the newest page, a page deep in history (a `before_id` cursor), a
  type filter, a contact filter, a one-day date range six months back, and the id binary search
  behind a date bound (`first_id_at_or_after`); each `--requests` times, the median kept.

It prints rows/s and milliseconds per database and the ratio partitioned / unpartitioned (for
ingest above 1 is faster; for pages below 1 is faster). The databases are dropped at the end.

    nice -n 10 .venv/bin/python bench/partitions.py [--rows 3000000] [--months 12] \
        [--rounds 3] [--batches 200] [--batch 200] [--requests 20]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from contacthub.activities import repository
from contacthub.activities.log import LogFilters, activity_log, first_id_at_or_after
from contacthub.storage import partitions
from contacthub.storage.database import Database
from contacthub.storage.migrate import upgrade

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CONTACTS = 100_000
TYPES = ("pagevisit", "click", "purchase", "formsubmission", "landing")


def create_database(
    stack: ExitStack, admin_url: str, template: str | None = None, *, keep: bool = False
) -> str:
    """A new database (a copy of `template` if given), dropped when `stack` closes unless
    `keep`."""
    name = f"contacthub_bench_{secrets.token_hex(4)}"
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(statement)

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    if not keep:
        stack.callback(drop)
    return urlsplit(admin_url)._replace(path=f"/{name}").geturl()


def load_history(database_url: str, rows: int, months: int) -> None:
    """`rows` activities over the last `months` months (ids in time order), a tenth as many
    email opens and clicks, on the plain tables of migration 0008."""
    hits = rows // 10
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute(
            "INSERT INTO contacts (guid, created_at, updated_at) "
            "SELECT gen_random_uuid(), now(), now() FROM generate_series(1, %s)",
            (CONTACTS,),
        )
        for code in TYPES:
            db.execute(
                "INSERT INTO activity_types (code_name, display_name, enabled, created_at) "
                "VALUES (%s, %s, true, now())",
                (code, code.title()),
            )
        db.execute(
            "INSERT INTO activities (contact_id, channel_id, type, title, value, url, created_at) "
            "SELECT 1 + (g::bigint * 7919) %% %(contacts)s, 1 + g %% 3, "
            "(%(types)s::text[])[1 + g %% 5], "
            "'Page visit ' || g, NULL, 'https://example.com/page/' || (g %% 1000), "
            "now() - make_interval(secs => %(span)s::float8 * (%(rows)s - g) / %(rows)s) "
            "FROM generate_series(1, %(rows)s) g ORDER BY g",
            {
                "contacts": CONTACTS,
                "rows": rows,
                "span": months * 30 * 86_400,
                "types": list(TYPES),
            },
        )
        db.execute(
            "INSERT INTO newsletters (guid, name, sender_name, sender_email, base_url, created_at) "
            "VALUES (gen_random_uuid(), 'News', 'Hub', 'hub@example.com', 'https://e.com', now())"
        )
        db.execute(
            "INSERT INTO email_issues (guid, newsletter_id, subject, html_body, status, "
            "created_at) SELECT gen_random_uuid(), id, 'Hi', '<p>hi</p>', 'sent', now() "
            "FROM newsletters"
        )
        db.execute(
            "INSERT INTO issue_links (guid, issue_id, position, target_url, hidden) "
            "SELECT gen_random_uuid(), id, 1, 'https://example.com/a', false FROM email_issues"
        )
        db.execute(
            "INSERT INTO subscribers (newsletter_id, contact_id, email, status, created_at) "
            "SELECT (SELECT id FROM newsletters), g, 'c' || g || '@example.com', 'active', now() "
            "FROM generate_series(1, 10000) g"
        )
        for table, extra, value in (
            ("email_opens", "", ""),
            ("email_clicks", "link_id, ", "(SELECT id FROM issue_links), "),
        ):
            db.execute(
                f"INSERT INTO {table} ({extra}issue_id, subscriber_id, is_machine, created_at) "  # noqa: S608 - constants
                f"SELECT {value}(SELECT id FROM email_issues), "
                "(SELECT min(id) FROM subscribers) + g %% 10000, false, "
                "now() - make_interval(secs => %(span)s::float8 * (%(rows)s - g) / %(rows)s) "
                "FROM generate_series(1, %(rows)s) g ORDER BY g",
                {"rows": hits, "span": months * 30 * 86_400},
            )
        db.execute("VACUUM ANALYZE")


def ingest(database: Database, batches: int, batch: int, round_: int) -> float:
    """Activities per second written in `batches` transactions of `batch` rows (COPY)."""
    started = time.perf_counter()
    for number in range(batches):
        now = datetime.now(UTC)
        rows = [
            repository.ActivityRow(
                contact_id=1 + (round_ * 7 + number * batch + i) % CONTACTS,
                channel_id=1,
                type="pagevisit",
                title="Page visit 'Home'",
                value="Home",
                url="https://example.com/",
                referrer=None,
                created_at=now,
            )
            for i in range(batch)
        ]
        with database.write() as session:
            repository.insert_activities(session, rows)
    return batches * batch / (time.perf_counter() - started)


@contextmanager
def timed(samples: list[float]) -> Iterator[None]:
    started = time.perf_counter()
    yield
    samples.append((time.perf_counter() - started) * 1000)


def page_queries(database: Database) -> dict[str, Callable[[], Any]]:
    """The log pages measured, as calls on `database` (each in a read transaction)."""
    with database.read() as session:
        low, high = session.execute(sql_text("SELECT min(id), max(id) FROM activities")).one()
        contact = session.execute(
            sql_text("SELECT guid FROM contacts WHERE id = 4242")
        ).scalar_one()
    middle = (low + high) // 2
    day = (datetime.now(UTC) - timedelta(days=182)).date()
    moment = datetime.now(UTC) - timedelta(days=100)

    def read(call: Callable[[Any], Any]) -> Callable[[], Any]:
        def run() -> Any:
            with database.read() as session:
                return call(session)

        return run

    return {
        "newest page": read(lambda s: activity_log(s, LogFilters())),
        "page deep in history": read(lambda s: activity_log(s, LogFilters(), before_id=middle)),
        "type filter": read(lambda s: activity_log(s, LogFilters(type="purchase"))),
        "contact filter": read(
            lambda s: activity_log(s, LogFilters(contact=uuid.UUID(str(contact))))
        ),
        "one day, 6 months back": read(lambda s: activity_log(s, LogFilters(start=day, end=day))),
        "id search for a date": read(lambda s: first_id_at_or_after(s, moment)),
    }


def sql_text(statement: str) -> Any:
    from sqlalchemy import text

    return text(statement)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=3_000_000, help="activities of history")
    parser.add_argument("--months", type=int, default=12, help="months the history spans")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, order swapped each")
    parser.add_argument("--batches", type=int, default=200, help="ingest transactions per round")
    parser.add_argument("--batch", type=int, default=200, help="activities per transaction")
    parser.add_argument("--requests", type=int, default=20, help="timed calls per page per round")
    parser.add_argument("--keep", action="store_true", help="keep the databases (print URLs)")
    parser.add_argument("--admin-url", default=ADMIN_URL, help="PostgreSQL to create databases in")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with ExitStack() as stack:
        plain_url = create_database(stack, args.admin_url, keep=args.keep)
        upgrade(plain_url, "0008")
        started = time.perf_counter()
        load_history(plain_url, args.rows, args.months)
        print(
            f"history: {args.rows:,} activities, {args.rows // 10:,} opens and clicks each, "
            f"{args.months} months, loaded in {time.perf_counter() - started:.1f} s"
        )
        template = urlsplit(plain_url).path.lstrip("/")
        partitioned_url = create_database(stack, args.admin_url, template=template, keep=args.keep)
        started = time.perf_counter()
        upgrade(partitioned_url)
        conversion = time.perf_counter() - started
        print(f"conversion (migration 0009, all three tables): {conversion:.1f} s")
        with psycopg.connect(partitioned_url, autocommit=True) as db:
            db.execute("VACUUM ANALYZE")
        databases = {
            "unpartitioned": stack.enter_context(closing_database(plain_url)),
            "partitioned": stack.enter_context(closing_database(partitioned_url)),
        }
        with databases["partitioned"].read() as session:
            assert partitions.is_partitioned(session, "activities")
            count = len(partitions.partitions(session, "activities"))
        print(f"partitions of activities: {count}")
        if args.keep:
            print(f"kept: {plain_url} {partitioned_url}")

        rates: dict[str, list[float]] = {name: [] for name in databases}
        pages = {name: page_queries(db) for name, db in databases.items()}
        latencies: dict[str, dict[str, list[float]]] = {
            name: {page: [] for page in pages[name]} for name in databases
        }
        for round_ in range(args.rounds):
            order = list(databases) if round_ % 2 == 0 else list(reversed(databases))
            for name in order:
                rates[name].append(ingest(databases[name], args.batches, args.batch, round_))
                for page, call in pages[name].items():
                    call()  # warm
                    for _ in range(args.requests):
                        with timed(latencies[name][page]):
                            call()
        plain, parted = rates["unpartitioned"], rates["partitioned"]
        print()
        print(f"{'ingest (COPY)':28} {'unpartitioned':>14} {'partitioned':>14} {'ratio':>7}")
        print(
            f"{'activities/s, median':28} {statistics.median(plain):>14,.0f} "
            f"{statistics.median(parted):>14,.0f} "
            f"{statistics.median(parted) / statistics.median(plain):>7.2f}"
        )
        print(
            "  per round: "
            + ", ".join(f"{a:,.0f}/{b:,.0f}" for a, b in zip(plain, parted, strict=True))
        )
        print()
        print(f"{'log page, median ms':28} {'unpartitioned':>14} {'partitioned':>14} {'ratio':>7}")
        for page in pages["unpartitioned"]:
            a = statistics.median(latencies["unpartitioned"][page])
            b = statistics.median(latencies["partitioned"][page])
            print(f"{page:28} {a:>14.2f} {b:>14.2f} {b / a:>7.2f}")
    return 0


@contextmanager
def closing_database(url: str) -> Iterator[Database]:
    database = Database(url)
    try:
        yield database
    finally:
        database.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
