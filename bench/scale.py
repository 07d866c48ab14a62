"""Benchmark of the hub at scale: 10,000,000 activities and 1,000,000 contacts.

For each store (SQLite, then PostgreSQL) it builds a big demo hub with `contacthub demo`
(bulk writes: multi-row INSERTs on SQLite, COPY on PostgreSQL), run under `nice -n 10`, then:

(a) **Ingest on the big store against an empty one**, in the same run: the load of
    `bench/tracking.py` (wrk posting ten activities per request, 64 connections) on
    `contacthub serve --workers 1` pinned to core 0, first on a fresh empty store, then on the big
    one; printed as big/empty ratios of requests per second and of CPU per request.
(b) **Admin page latencies** on the big store, as `bench/admin.py` measures them (signed in
    through the form; each page `--requests` times on one keep-alive connection after
    `--page-warmup` requests): dashboard, contacts list and search, contact pages, activity log
    pages (first, filtered, deep), email pages (newsletters, a newsletter, issues, a sent issue,
    its stats and engagement).
(c) On the big PostgreSQL store only: **ingest with 1, 2 and 4 hub workers**
    (`contacthub serve --workers N`, not pinned: the workers may use every core), as ratios to
    one worker. wrk stays pinned to core 1.

    .venv/bin/python bench/scale.py [--contacts 1000000] [--activities 10000000] \
        [--only sqlite|postgresql] [--workers 1,2,4] [--duration 10] [--warmup 2] \
        [--requests 10] [--page-warmup 2] [--no-pages] [--no-ingest] [--set NAME=VALUE] [--keep] \
        [--workdir /var/tmp] [--reuse-sqlite PATH] [--reuse-postgresql URL]

The big stores are removed at the end (the SQLite file in `--workdir`, the PostgreSQL database
`contacthub_bench_<random>`) unless `--keep`, which keeps them (PostgreSQL:
`contacthub_scale_<random>`) and prints where they are; `--reuse-sqlite` and
`--reuse-postgresql` skip the build and use such a kept store as it is (never removed). The
empty stores of (a) are always removed. Each measured server gets its own channel and tracking
key (`contacthub channel create`, `contacthub apikey create`), so a reused store can be measured
again.

Exit status: 0 when every measurement is valid (a measurement, not a test); 1 when a server
answered errors, lost acknowledged activities or a page answered an error.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import admin
import harness
from tracking import (
    MAX_FAILURE_RATE,
    VENV_BIN,
    activities_body,
    activities_script,
    cli,
    create_contact,
    hub_env,
    postgresql_store,
    sqlite_store,
)

STORES = ("sqlite", "postgresql")
NICE = ["nice", "-n", "10"]
# Every core: with several workers the hub is not pinned (wrk stays on core 1).
ALL_CPUS = f"0-{(os.cpu_count() or 1) - 1}"


@dataclass
class Ingest:
    """One ingest measurement: a hub on a store, loaded by wrk."""

    label: str
    result: harness.WrkResult
    rss_kib: int
    stored_check: str
    stored_ok: bool

    @property
    def valid(self) -> bool:
        return self.result.failure_rate <= MAX_FAILURE_RATE and self.stored_ok


# -- stores -------------------------------------------------------------------------------------


def sql_one(database_url: str, query: str, *params: Any) -> Any:
    """The first column of the first row of `query` on the store."""
    if database_url.startswith("sqlite"):
        path = urlsplit(database_url).path.removeprefix("/")
        with closing(sqlite3.connect(path)) as db:
            row = db.execute(query.replace("%s", "?"), params).fetchone()
    else:
        import psycopg

        with psycopg.connect(database_url) as db:
            row = db.execute(query, params).fetchone()
    return row[0] if row else None


def big_store(
    stack: ExitStack, args: argparse.Namespace, store: str, workdir: Path, password: str
) -> tuple[str, float | None]:
    """The big store's URL, built with `contacthub demo` unless reused; the build's wall seconds."""
    reused = args.reuse_sqlite if store == "sqlite" else args.reuse_postgresql
    if reused:
        if store == "sqlite":
            return f"sqlite:///{Path(reused).resolve()}", None
        return str(reused), None
    if store == "sqlite":
        path = Path(args.workdir).resolve() / f"contacthub-scale-{secrets.token_hex(4)}.db"
        database_url = f"sqlite:///{path}"
        if args.keep:
            stack.callback(print, f"kept: {path} (--reuse-sqlite {path})")
        else:

            def remove() -> None:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)

            stack.callback(remove)
    elif args.keep:
        database_url = create_database(args.postgresql_url)
        stack.callback(print, f"kept: {database_url} (--reuse-postgresql {database_url})")
    else:
        database_url, _count = postgresql_store(stack, args.postgresql_url)
    env = hub_env(database_url, workdir)
    print(
        f"{store}: building the demo, {args.contacts:,} contacts and {args.activities:,} "
        "activities (nice -n 10) ...",
        flush=True,
    )
    started = time.monotonic()
    finished = subprocess.run(
        [
            *NICE,
            str(VENV_BIN / "contacthub"),
            "demo",
            *("--contacts", str(args.contacts), "--activities", str(args.activities)),
            *("--seed", str(args.seed), "--admin-password", password, "--json"),
        ],
        env=env,
        capture_output=True,  # stderr: progress bars, and what went wrong
        text=True,
        check=False,
    )
    if finished.returncode != 0:
        raise RuntimeError(f"contacthub demo failed on {store}:\n{finished.stderr[-2000:]}")
    if store == "postgresql":
        # What autovacuum does soon after a bulk load: statistics and the visibility map
        # (without it, counts cannot use index-only scans). About 20 s at this size.
        import psycopg

        with psycopg.connect(database_url, autocommit=True) as connection:
            connection.execute("VACUUM (ANALYZE)")
    return database_url, time.monotonic() - started


def create_database(admin_url: str) -> str:
    """A new PostgreSQL database that outlives the run (--keep)."""
    import psycopg
    from psycopg import sql

    name = f"contacthub_scale_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urlsplit(admin_url)._replace(path=f"/{name}").geturl()


def count_activities(database_url: str) -> Callable[[], int]:
    def count() -> int:
        return int(sql_one(database_url, "SELECT count(*) FROM activities") or 0)

    return count


# -- serving ------------------------------------------------------------------------------------


def serve(
    stack: ExitStack,
    env: dict[str, str],
    workdir: Path,
    name: str,
    *,
    workers: int = 1,
    cpu: int | str = harness.SERVER_CPU,
) -> harness.Server:
    port = harness.free_port()
    command = [
        str(VENV_BIN / "contacthub"),
        "serve",
        *("--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)),
        *("--log-level", "warning"),
    ]
    log = workdir / f"{name.replace(' ', '-').replace(',', '')}.log"
    server = harness.start_server(name, command, env=env, port=port, cpu=cpu, log=log)
    stack.callback(harness.stop, server)
    # The hub migrates (nothing to do) and every worker starts before it answers.
    harness.wait_ready(server, timeout=180)
    return server


def tracking_key(env: dict[str, str]) -> tuple[str, str]:
    """A new channel and a tracking key on it: (channel GUID, key)."""
    name = f"Scale {secrets.token_hex(3)}"
    channel = json.loads(cli(env, "channel", "create", name, "--json"))["guid"]
    key = json.loads(
        cli(env, "apikey", "create", "--channel", name, "--access", "tracking", "--json")
    )["key"]
    return channel, key


def ingest(
    stack: ExitStack,
    args: argparse.Namespace,
    workdir: Path,
    store: str,
    database_url: str,
    label: str,
    *,
    workers: int = 1,
    cpu: int | str = harness.SERVER_CPU,
) -> Ingest:
    """Serve the store, load it as bench/tracking.py does, check what it stored."""
    env = hub_env(database_url, workdir) | harness.settings_env(args)
    cli(env, "migrate")
    channel, key = tracking_key(env)
    server = serve(stack, env, workdir, label, workers=workers, cpu=cpu)
    script = activities_script(key, activities_body(channel, create_contact(server, key)))
    count = count_activities(database_url)
    before = count()
    serving = [server.process.pid]
    if store == "postgresql" and (postmaster := harness.postmaster_pid()):
        serving.append(postmaster)

    def run(seconds: float) -> harness.WrkResult:
        return harness.run_wrk(
            server.url + "/Kentico.Tracking/activities",
            script,
            duration=seconds,
            connections=args.connections,
            serving=serving,
        )

    warm = run(args.warmup)
    result = run(args.duration)
    rss = harness.peak_rss(server.process.pid)
    stored = count() - before  # while the hub runs: a 207 promises a commit
    harness.stop(server)
    acknowledged = warm.ok + result.ok
    ok = stored >= 10 * acknowledged
    check = f"{stored} stored >= 10 x {acknowledged} acknowledged: {'ok' if ok else 'LOST'}"
    print(
        f"  {label}: {result.requests_per_s:,.0f} req/s, p99 {result.p99_ms:.1f} ms, "
        f"{result.cpu_per_request_us:,.0f} us CPU/req, others {result.others_cpu:.0%}",
        flush=True,
    )
    return Ingest(label, result, rss, check, ok)


def empty_store(stack: ExitStack, args: argparse.Namespace, store: str, workdir: Path) -> str:
    if store == "sqlite":
        database_url, _ = sqlite_store(workdir, "empty.db")
    else:
        database_url, _ = postgresql_store(stack, args.postgresql_url)
    return database_url


# -- admin pages --------------------------------------------------------------------------------


def scale_pages(database_url: str, contact: str) -> list[admin.Page]:
    """The pages measured on the big store, baselines first."""
    newsletter = sql_one(database_url, "SELECT guid FROM newsletters ORDER BY id LIMIT 1")
    issue = sql_one(
        database_url,
        "SELECT guid FROM email_issues WHERE status = 'sent' ORDER BY sent_at DESC LIMIT 1",
    )
    typical = sql_one(
        database_url,
        "SELECT guid FROM contacts WHERE id >= (SELECT max(id) / 2 FROM contacts)"
        " ORDER BY id LIMIT 1",
    )
    email = sql_one(
        database_url,
        "SELECT email FROM contacts WHERE email IS NOT NULL "
        "AND id >= (SELECT max(id) / 2 FROM contacts) ORDER BY id LIMIT 1",
    )
    middle = int(sql_one(database_url, "SELECT max(id) FROM activities") or 0) // 2
    found = admin.pages(contact, "smith")
    pages = found[:6]  # baselines, dashboards, contacts list and search
    pages += [
        admin.Page(
            f"contacts search by email {email!r}", f"/admin/contacts?{urlencode({'q': email})}"
        ),
        admin.Page("contacts list, by last name", "/admin/contacts?sort=last_name"),
        found[6],  # the busiest contact
        admin.Page("contact page (typical)", f"/admin/contacts/{guid_text(typical)}"),
        *found[7:],  # activity log pages
        admin.Page("activity log, half way back", f"/admin/activities?before={middle}"),
        admin.Page("newsletters", "/admin/newsletters"),
        admin.Page("newsletter", f"/admin/newsletters/{guid_text(newsletter)}"),
        admin.Page("issues", "/admin/issues"),
        admin.Page("issue (last sent)", f"/admin/issues/{guid_text(issue)}"),
        admin.Page("issue stats", f"/admin/issues/{guid_text(issue)}/stats"),
        admin.Page("issue engagement", f"/admin/issues/{guid_text(issue)}/engagement"),
        admin.Page("groups", "/admin/groups"),
    ]
    return pages


def guid_text(value: Any) -> str:
    """A GUID as the admin writes it in URLs (SQLite stores it as 32 hex digits)."""
    import uuid

    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))


def admin_pages(
    stack: ExitStack,
    args: argparse.Namespace,
    workdir: Path,
    store: str,
    database_url: str,
    email: str,
    password: str,
) -> list[admin.Measurement]:
    env = hub_env(database_url, workdir) | harness.settings_env(args)
    contact, contact_activities = admin.busiest_contact(database_url)
    pages = scale_pages(database_url, contact)
    server = serve(stack, env, workdir, f"hub ({store}, admin)")
    helpers = []
    if store == "postgresql" and (postmaster := harness.postmaster_pid()):
        helpers.append(postmaster)
    browser = admin.Browser(port=server.port)
    stack.callback(browser.close)
    browser.sign_in(email, password)
    print(f"  busiest contact: {contact} ({contact_activities:,} activities)", flush=True)
    page_args = argparse.Namespace(requests=args.requests, warmup=args.page_warmup)
    rows = []
    for page in pages:
        rows.append(admin.measure(browser, page, page_args, server.process.pid, helpers))
        print(f"  {page.name}: {rows[-1].median_ms:.1f} ms ({rows[-1].status})", flush=True)
    browser.close()
    harness.stop(server)
    return rows


# -- report -------------------------------------------------------------------------------------


def print_ingest(store: str, empty: Ingest, big: Ingest) -> None:
    e, b = empty.result, big.result
    rps = b.requests_per_s / e.requests_per_s if e.requests_per_s else 0.0
    cpu = e.cpu_per_request_us / b.cpu_per_request_us if b.cpu_per_request_us else 0.0
    lines = [("target", "req/s", "p50 ms", "p99 ms", "CPU us/req", "DB us/req", "RSS", "others")]
    for row in (empty, big):
        r = row.result
        lines.append(
            (
                row.label,
                f"{r.requests_per_s:,.0f}",
                f"{r.p50_ms:.1f}",
                f"{r.p99_ms:.1f}",
                f"{r.cpu_per_request_us:,.0f}",
                f"{r.helpers_cpu_per_request_us:,.0f}" if store == "postgresql" else "",
                f"{row.rss_kib / 1024:.0f} MiB",
                f"{r.others_cpu:.0%}",
            )
        )
    harness.print_table(lines)
    print(f"{store}: big/empty {rps:.2f} by req/s, {cpu:.2f} by CPU us/req (empty/big)")
    for row in (empty, big):
        print(f"  {row.label}: {row.stored_check}")


def print_workers(rows: Sequence[Ingest], counts: Sequence[int]) -> None:
    one = rows[0].result
    lines = [("workers", "req/s", "x 1 worker", "p99 ms", "hub CPU", "DB us/req", "RSS", "others")]
    for workers, row in zip(counts, rows, strict=True):
        r = row.result
        lines.append(
            (
                str(workers),
                f"{r.requests_per_s:,.0f}",
                f"{r.requests_per_s / one.requests_per_s:.2f}" if one.requests_per_s else "",
                f"{r.p99_ms:.1f}",
                f"{r.server_load:.0%}",
                f"{r.helpers_cpu_per_request_us:,.0f}",
                f"{row.rss_kib / 1024:.0f} MiB",
                f"{r.others_cpu:.0%}",
            )
        )
    harness.print_table(lines)
    print("hub CPU: the hub's processes' CPU over the run, in % of one core.")
    for row in rows:
        print(f"  {row.label}: {row.stored_check}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1_000_000, help="contacts of the demo")
    parser.add_argument("--activities", type=int, default=10_000_000, help="activities of the demo")
    parser.add_argument("--seed", type=int, default=1, help="seed of the demo")
    parser.add_argument("--only", choices=STORES, help="measure one store")
    parser.add_argument("--duration", type=float, default=10, help="seconds of ingest measured")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of ingest warm-up")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--requests", type=int, default=10, help="timed requests per page")
    parser.add_argument("--page-warmup", type=int, default=2, help="untimed requests per page")
    parser.add_argument(
        "--workers", default="1,2,4", help="worker counts measured on PostgreSQL ('' for none)"
    )
    parser.add_argument("--workdir", default="/var/tmp", help="where the big SQLite file goes")
    parser.add_argument("--keep", action="store_true", help="keep the big stores")
    parser.add_argument("--no-pages", action="store_true", help="skip the admin pages (b)")
    parser.add_argument("--no-ingest", action="store_true", help="skip the ingest loads (a, c)")
    harness.add_settings(parser)
    parser.add_argument("--reuse-sqlite", metavar="PATH", help="a kept big SQLite store")
    parser.add_argument("--reuse-postgresql", metavar="URL", help="a kept big PostgreSQL store")
    harness.add_postgresql_url(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; see the module docstring."""
    args = parse_args(argv)
    harness.unwind_on_sigterm()
    harness.warn_if_busy()
    harness.ensure_wrk()
    print(f"uptime: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1 and 5 min load)")
    stores = [args.only] if args.only else list(STORES)
    worker_counts = [int(n) for n in args.workers.split(",") if n.strip()]
    valid = True
    with ExitStack() as stack:
        workdir = Path(
            stack.enter_context(
                tempfile.TemporaryDirectory(prefix="contacthub-scale-", dir=args.workdir)
            )
        )
        for store in stores:
            password = secrets.token_urlsafe(16)
            database_url, built = big_store(stack, args, store, workdir, password)
            email = admin.DEMO_EMAIL
            if built is None:
                email = admin.bench_user(hub_env(database_url, workdir), password)
            else:
                print(f"  built in {built:.0f} s", flush=True)
            contacts, activities = admin.store_size(database_url)
            print(f"{store}: {contacts:,} contacts, {activities:,} activities", flush=True)

            if not args.no_pages:
                print(f"{store}: admin pages ...", flush=True)
                rows = admin_pages(stack, args, workdir, store, database_url, email, password)
                print()
                admin.print_table(rows, store)
                valid &= all(row.status in (200, 404) for row in rows)

            if args.no_ingest:
                continue
            print(f"\n{store}: ingest, empty store then big store ...", flush=True)
            empty = ingest(
                stack, args, workdir, store, empty_store(stack, args, store, workdir), "empty"
            )
            big = ingest(stack, args, workdir, store, database_url, f"{activities:,} activities")
            print()
            print_ingest(store, empty, big)
            valid &= empty.valid and big.valid

            if store == "postgresql" and worker_counts:
                print(f"\n{store}: ingest with {args.workers} workers (not pinned) ...", flush=True)
                scaled = [
                    ingest(
                        stack,
                        args,
                        workdir,
                        store,
                        database_url,
                        f"{n} worker{'s' if n > 1 else ''}",
                        workers=n,
                        cpu=ALL_CPUS,
                    )
                    for n in worker_counts
                ]
                print()
                print_workers(scaled, worker_counts)
                valid &= all(row.valid for row in scaled)
            print(flush=True)
    return 0 if valid else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted")
