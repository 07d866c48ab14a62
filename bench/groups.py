"""Benchmark of contact groups on demo data: the count preview and the full rebuild.

Builds a demo hub (`contacthub demo`'s builder: by default 100,000 contacts and 1,000,000
activities) on SQLite and on PostgreSQL, then, in this process:
- the baseline, `SELECT count(*) FROM contacts`, and each of the four conditions alone;
- the **preview** of a four-condition group (validate the JSON and count, as
  `groups.service.preview_count` does), median of `--runs` runs after one warm-up run;
- the **full rebuild** of that group through `groups.service.rebuild_group`: from no members
  (every contact enters) and again with the members in place (nothing changes).

    .venv/bin/python bench/groups.py [--contacts 100000] [--activities 1000000] [--runs 9] \
        [--only sqlite|postgresql] [--cache DIR]

The SQLite store is built once and kept in `--cache` (default `~/.cache/contacthub-bench`) under a
name that carries its size; later runs reuse it. The PostgreSQL store is a new database
`contacthub_bench_<random>`, dropped at the end. Windows ("within the last 30 days") end at the
demo's last activity, so that a reused store answers as on the day it was built.

Targets (issue 9): preview ≤ 500 ms median, full rebuild ≤ 10 s. Reported, not enforced: the
exit status is 0 whether or not they are met.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from tracking import postgresql_store

from contacthub.demo import service as demo
from contacthub.demo import words
from contacthub.groups import service
from contacthub.storage.database import Database
from contacthub.storage.migrate import upgrade
from contacthub.storage.models import Activity, Contact, ContactGroup, GroupMember
from contacthub.storage.types import utc_from_driver

PREVIEW_TARGET_MS = 500.0
REBUILD_TARGET_S = 10.0
POSTGRESQL_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
GROUP_NAME = "Bench: engaged sale visitors"

CONSENT = {"consent": "NewsletterConsent", "state": "agreed"}
VISITS = {"activity": "pagevisit", "url_contains": "/c/sale", "at_least": 2, "within_days": 30}
COUNTRIES = {"field": "country", "op": "in", "value": ["USA", "CAN", "GBR", "DEU"]}
OPENED = {"email": "opened", "newsletter": words.NEWSLETTER, "within_days": 30}
GROUP = {"all": [CONSENT, VISITS, COUNTRIES, OPENED]}
# A large group, for the cost of writing members: most of the contacts enter it.
LARGE = {"any": [{"not": COUNTRIES}, {"activity": "pagevisit", "within_days": 30}]}
PARTS: list[tuple[str, Any]] = [
    ("consent agreed", CONSENT),
    ("2+ visits of /c/sale in 30 days", VISITS),
    ("country in 4", COUNTRIES),
    ("opened an issue in 30 days", OPENED),
    ("any visit of /c/sale, ever", {"activity": "pagevisit", "url_contains": "/c/sale"}),
    ("not (country in 4)", {"not": COUNTRIES}),
]


@dataclass
class Timing:
    """Milliseconds of each run; and the answer of the last one."""

    runs: list[float]
    answer: int

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def p95(self) -> float:
        ordered = sorted(self.runs)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def timed(work: Callable[[], int], runs: int) -> Timing:
    """`work` once to warm up, then `runs` times; milliseconds of each."""
    work()
    times = []
    answer = 0
    for _ in range(runs):
        start = time.perf_counter()
        answer = work()
        times.append((time.perf_counter() - start) * 1000)
    return Timing(times, answer)


def build(url: str, args: argparse.Namespace) -> None:
    print(
        f"  building the demo: {args.contacts:,} contacts, {args.activities:,} activities ...",
        flush=True,
    )
    start = time.perf_counter()
    upgrade(url)
    database = Database(url, sqlite_synchronous="NORMAL")
    try:
        demo.build(
            database,
            demo.DemoOptions(
                contacts=args.contacts,
                activities=args.activities,
                seed=args.seed,
                admin_password=secrets.token_urlsafe(16),
            ),
        )
    finally:
        database.dispose()
    print(f"  built in {time.perf_counter() - start:.1f} s", flush=True)


def end_of_demo(database: Database) -> datetime:
    """The time of the last activity: the demo's `until`."""
    with database.read() as session:
        last = session.scalar(select(Activity.created_at).order_by(Activity.id.desc()).limit(1))
    moment = utc_from_driver(last)
    assert moment is not None, "the demo logged no activity"
    return moment


def preview(database: Database, raw: object, now: datetime) -> int:
    """What the admin's live preview does (`groups.service.preview_count`): validate the JSON,
    then count."""
    with database.read() as session:
        return service.preview_count(session, raw, now=now)


def measure(name: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    database = Database(url)
    try:
        now = end_of_demo(database)
        print(f"  windows end at {now:%Y-%m-%d %H:%M} UTC (the demo's last activity)")

        def contacts() -> int:
            with database.read() as session:
                return int(session.scalar(select(func.count()).select_from(Contact)) or 0)

        baseline = timed(contacts, args.runs)
        parts = [
            (label, timed(lambda raw=raw: preview(database, raw, now), args.runs))  # type: ignore[misc]
            for label, raw in PARTS
        ]
        group = timed(lambda: preview(database, GROUP, now), args.runs)
        rebuilds = [
            ("the 4-condition group", measure_rebuild(database, GROUP, now, args)),
            ("a large group", measure_rebuild(database, LARGE, now, args)),
        ]
    finally:
        database.dispose()
    return {
        "name": name,
        "baseline": baseline,
        "parts": parts,
        "group": group,
        "rebuilds": rebuilds,
    }


def measure_rebuild(
    database: Database, conditions: object, now: datetime, args: argparse.Namespace
) -> dict[str, Any]:
    """The group created (members computed), then rebuilt from no members, then rebuilt with
    its members in place; seconds of each."""
    results: dict[str, Any] = {}
    with database.write() as session:
        existing = session.scalar(select(ContactGroup).where(ContactGroup.name == GROUP_NAME))
        if existing is not None:
            service.delete_group(session, GROUP_NAME)
    start = time.perf_counter()
    with database.write() as session:
        service.create_group(session, GROUP_NAME, conditions=conditions, now=now)
    results["create"] = time.perf_counter() - start
    empty, full = [], []
    for _ in range(args.rebuilds):
        with database.write() as session:
            group_id = session.scalar(
                select(ContactGroup.id).where(ContactGroup.name == GROUP_NAME)
            )
            session.execute(delete(GroupMember).where(GroupMember.group_id == group_id))
        start = time.perf_counter()
        with database.write() as session:
            report = service.rebuild_group(session, GROUP_NAME, now=now)
        empty.append(time.perf_counter() - start)
        results["entered"] = report.entered
        start = time.perf_counter()
        with database.write() as session:
            report = service.rebuild_group(session, GROUP_NAME, now=now)
        full.append(time.perf_counter() - start)
        assert report.entered == report.left == 0, report
    with database.write() as session:
        service.delete_group(session, GROUP_NAME)
    results["from_empty"] = statistics.median(empty)
    results["unchanged"] = statistics.median(full)
    return results


def report(result: dict[str, Any]) -> None:
    baseline: Timing = result["baseline"]
    print(f"\n{result['name']}: median (p95) of {len(baseline.runs)} runs")
    print(f"  {'measurement':<40} {'answer':>8} {'ms':>16} {'× baseline':>11}")
    rows = [("baseline: SELECT count(*) FROM contacts", baseline)]
    rows += [(f"condition: {label}", timing) for label, timing in result["parts"]]
    rows.append(("PREVIEW: the 4-condition group", result["group"]))
    for label, timing in rows:
        ratio = timing.median / baseline.median if baseline.median else float("nan")
        print(
            f"  {label:<40} {timing.answer:>8,} {timing.median:>8.1f} ({timing.p95:>5.1f})"
            f" {ratio:>10.1f}×"
        )
    group: Timing = result["group"]
    verdict = "PASS" if group.median <= PREVIEW_TARGET_MS else "FAIL"
    print(f"  preview target ≤ {PREVIEW_TARGET_MS:.0f} ms median: {verdict}")
    for label, rebuild in result["rebuilds"]:
        worst = max(rebuild["create"], rebuild["from_empty"], rebuild["unchanged"])
        verdict = "PASS" if worst <= REBUILD_TARGET_S else "FAIL"
        print(
            f"  {label}: create (members computed) {rebuild['create']:.2f} s; full rebuild "
            f"from no members ({rebuild['entered']:,} enter) {rebuild['from_empty']:.2f} s; "
            f"with the members in place {rebuild['unchanged']:.2f} s; target ≤ "
            f"{REBUILD_TARGET_S:.0f} s: {verdict}"
        )


def main() -> int:
    # A kill (not only Ctrl-C) unwinds too, so that the PostgreSQL database is dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--activities", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=9, help="measured runs of each count")
    parser.add_argument("--rebuilds", type=int, default=3, help="measured runs of each rebuild")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "contacthub-bench",
        help="where the SQLite demo store is kept between runs",
    )
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} (2 cores)")
    results = []
    if args.only in (None, "sqlite"):
        args.cache.mkdir(parents=True, exist_ok=True)
        path = args.cache / f"groups-demo-{args.contacts}-{args.activities}-{args.seed}.db"
        url = f"sqlite:///{path}"
        print(f"SQLite: {path}")
        if not path.exists():
            partial = path.with_suffix(".partial")
            for leftover in args.cache.glob(partial.name + "*"):
                leftover.unlink()
            build(f"sqlite:///{partial}", args)
            partial.rename(path)
        results.append(measure("SQLite", url, args))
    if args.only in (None, "postgresql"):
        with ExitStack() as stack:
            url, _ = postgresql_store(stack, POSTGRESQL_ADMIN_URL)
            print(f"PostgreSQL: {url.rsplit('/', 1)[-1]} (dropped at the end)")
            build(url, args)
            results.append(measure("PostgreSQL", url, args))
    for result in results:
        report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
