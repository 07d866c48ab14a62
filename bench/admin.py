"""Benchmark of the admin pages on a demo hub: 100,000 contacts and 1,000,000 activities.

Builds a demo database with `contacthub demo` (SQLite by default, or a new PostgreSQL database
that is dropped at the end), serves it with `contacthub serve --workers 1` pinned to one core,
signs in through the sign-in form over HTTP as a browser does (GET the form for its CSRF cookie
and field, POST it, keep the session cookie), then requests each page `--requests` times in a
row, after `--warmup` requests, on one keep-alive connection from the other core. It prints the
median and p95 latency of each page, the ratio to a baseline measured in the same run (`GET
/health`: the hub's whole stack and one database round trip), the server's CPU time per request,
and PASS/FAIL against the 300 ms median target.

    .venv/bin/python bench/admin.py [--contacts 100000] [--activities 1000000] \
        [--requests 20] [--warmup 3] [--postgres] [--reuse PATH_OR_URL]

`--reuse` skips the build: a SQLite file (built there first if it does not exist, and kept) or a
PostgreSQL URL (used as it is, not dropped). On a reused database the script signs in as
`bench@example.com`, creating that user or setting its password.

Exit status: 0 when every page answered, whether or not it met the target (a measurement, not a
test); 1 when a page answered an error. A 404 (a page not built yet) is reported as missing.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from contextlib import ExitStack, closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import harness
from tracking import VENV_BIN, hub_env, postgresql_store

TARGET_MS = 300.0
CLIENT_CPU = 1
# Above this share of a core taken by other processes during a page's measurement, its
# latencies are longer than on a quiet machine.
BUSY_CPU = 0.10
DEMO_EMAIL = "demo@example.com"
BENCH_EMAIL = "bench@example.com"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Page:
    """One page to measure."""

    name: str
    path: str
    baseline: bool = False


@dataclass
class Measurement:
    """What `--requests` sequential requests of one page took."""

    page: Page
    status: int
    latencies_ms: list[float]
    bytes: int
    server_cpu_ms: float  # per request
    database_cpu_ms: float  # per request (PostgreSQL's backends; 0 on SQLite)
    others_cpu: float  # other processes, in cores, during the measurement

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else 0.0

    @property
    def p95_ms(self) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] if ordered else 0.0


class Browser:
    """One keep-alive HTTP connection with a cookie jar: what a signed-in browser tab sends."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, form: Mapping[str, str] | None = None
    ) -> tuple[int, bytes]:
        headers = {"Accept": "text/html"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.connection.request(method, path, body=body, headers=headers)
        answer = self.connection.getresponse()
        content = answer.read()
        for header in answer.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return answer.status, content

    def sign_in(self, email: str, password: str) -> None:
        """The sign-in form, as a person fills it in."""
        status, body = self.request("GET", "/admin/sign-in")
        match = CSRF_FIELD.search(body.decode())
        if status != 200 or match is None:
            raise RuntimeError(f"GET /admin/sign-in answered {status} without a CSRF field")
        form = {"email": email, "password": password, "csrf_token": match.group(1)}
        status, body = self.request("POST", "/admin/sign-in", form | {"next": "/admin/"})
        if status != 303 or "contacthub_session" not in self.cookies:
            raise RuntimeError(f"signing in failed ({status}): {body[:300]!r}")

    def close(self) -> None:
        self.connection.close()


def run_cli(env: Mapping[str, str], *arguments: str, stdin: str | None = None) -> str:
    """`contacthub ARGUMENTS`; its standard output (progress bars go to stderr, unread)."""
    finished = subprocess.run(
        [str(VENV_BIN / "contacthub"), *arguments],
        env=dict(env),
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if finished.returncode != 0:
        raise RuntimeError(f"`contacthub {' '.join(arguments)}` failed:\n{finished.stderr}")
    return finished.stdout


def build_demo(env: Mapping[str, str], args: argparse.Namespace, password: str) -> dict[str, float]:
    """Fill the store with `contacthub demo`; its wall and CPU seconds."""
    print(
        f"building the demo: {args.contacts:,} contacts, {args.activities:,} activities ...",
        flush=True,
    )
    started = time.monotonic()
    printed = json.loads(
        run_cli(
            env,
            "demo",
            *("--contacts", str(args.contacts), "--activities", str(args.activities)),
            *("--seed", str(args.seed), "--admin-password", password, "--json"),
        )
    )
    return {
        "wall": time.monotonic() - started,
        "steps": sum(printed["seconds"].values()),
        "cpu": sum(printed["cpu_seconds"].values()),
    }


def bench_user(env: Mapping[str, str], password: str) -> str:
    """On a reused store: a user to sign in as, made (or given this password) from the CLI."""
    try:
        run_cli(env, "user", "create", BENCH_EMAIL, "--password-stdin", stdin=password + "\n")
    except RuntimeError as error:
        if "user_exists" not in str(error):
            raise
        run_cli(env, "user", "set-password", BENCH_EMAIL, "--password-stdin", stdin=password + "\n")
    return BENCH_EMAIL


def busiest_contact(database_url: str) -> tuple[str, int]:
    """The GUID of the contact with the most activities, and how many it has."""
    query = (
        "SELECT c.guid, t.n FROM contacts c JOIN (SELECT contact_id, count(*) AS n "
        "FROM activities GROUP BY contact_id ORDER BY n DESC LIMIT 1) t ON t.contact_id = c.id"
    )
    if database_url.startswith("sqlite"):
        with closing(sqlite3.connect(urlsplit(database_url).path.removeprefix("/"))) as db:
            guid, count = db.execute(query).fetchone()
        return str(uuid.UUID(guid)), count
    import psycopg

    with psycopg.connect(database_url) as db:
        row = db.execute(query).fetchone()
    assert row is not None, "the store has no activities"
    return str(row[0]), row[1]


def store_size(database_url: str) -> tuple[int, int]:
    """Contacts and activities in the store."""
    queries = ("SELECT count(*) FROM contacts", "SELECT count(*) FROM activities")
    if database_url.startswith("sqlite"):
        with closing(sqlite3.connect(urlsplit(database_url).path.removeprefix("/"))) as db:
            contacts, activities = (db.execute(q).fetchone()[0] for q in queries)
        return contacts, activities
    import psycopg

    with psycopg.connect(database_url) as db:
        counts = [db.execute(q).fetchone() for q in queries]
    return tuple(int(row[0]) if row else 0 for row in counts)  # type: ignore[return-value]


def pages(contact: str, search: str) -> list[Page]:
    """The pages measured, baselines first."""
    today = datetime.now(UTC).date()
    ninety = urlencode({"start": (today - timedelta(days=89)).isoformat(), "end": today})
    return [
        Page("baseline: GET /health", "/health", baseline=True),
        Page("baseline: sign-in page", "/admin/sign-in", baseline=True),
        Page("dashboard (30 days)", "/admin/"),
        Page("dashboard (90 days)", f"/admin/?{ninety}"),
        Page("contacts list", "/admin/contacts"),
        Page(f"contacts search {search!r}", f"/admin/contacts?{urlencode({'q': search})}"),
        Page("contact page (busiest)", f"/admin/contacts/{contact}"),
        Page("activity log", "/admin/activities"),
        Page("activity log, type=click", "/admin/activities?type=click"),
        # A rare type (about 0.2 % of the log): the keyset scan reads far to fill a page.
        Page("activity log, type=emailclick", "/admin/activities?type=emailclick"),
    ]


def _machine_busy() -> float:
    return harness._busy_cpu_seconds()


def measure(
    browser: Browser, page: Page, args: argparse.Namespace, server_pid: int, helpers: list[int]
) -> Measurement:
    """Warm up, then time `--requests` requests of `page` one after the other."""
    status, body = 0, b""
    for _ in range(max(1, args.warmup)):
        status, body = browser.request("GET", page.path)
    if status == 404:
        return Measurement(page, status, [], len(body), 0.0, 0.0, 0.0)
    server = harness._tree_cpu_seconds(server_pid)
    database = sum(harness._tree_cpu_seconds(pid) for pid in helpers)
    machine, own = _machine_busy(), time.process_time()
    started = time.monotonic()
    latencies = []
    statuses = set()
    for _ in range(args.requests):
        begin = time.perf_counter()
        status, body = browser.request("GET", page.path)
        latencies.append((time.perf_counter() - begin) * 1000)
        statuses.add(status)
    elapsed = time.monotonic() - started
    server = harness._tree_cpu_seconds(server_pid) - server
    database = sum(harness._tree_cpu_seconds(pid) for pid in helpers) - database
    others = (_machine_busy() - machine) - server - database - (time.process_time() - own)
    worst = max(statuses, key=lambda s: (s != 200, s))
    return Measurement(
        page,
        worst,
        latencies,
        len(body),
        server / args.requests * 1000,
        database / args.requests * 1000,
        max(0.0, others) / elapsed,
    )


def print_table(rows: list[Measurement], store: str) -> None:
    """The results; the ratio compares each page's median with GET /health's."""
    baseline = rows[0].median_ms or 1.0
    header = ("page", "status", "median ms", "p95 ms", "x /health", "server CPU ms", "")
    if store == "postgresql":
        header = (*header[:-1], "DB CPU ms", "")
    lines = [(*header[:-1], f"target (median <= {TARGET_MS:.0f} ms)")]
    for row in rows:
        if row.status == 404:
            verdict = "missing (404)"
            cells = ("404", "", "", "", "")
        else:
            verdict = ""
            if not row.page.baseline:
                verdict = "PASS" if row.median_ms <= TARGET_MS and row.status == 200 else "FAIL"
            if row.others_cpu > BUSY_CPU:
                verdict += f" (busy: others {row.others_cpu:.0%})"
            cells = (
                str(row.status),
                f"{row.median_ms:.1f}",
                f"{row.p95_ms:.1f}",
                f"{row.median_ms / baseline:.1f}",
                f"{row.server_cpu_ms:.1f}",
            )
        if store == "postgresql":
            cells = (*cells, f"{row.database_cpu_ms:.1f}" if row.status != 404 else "")
        lines.append((row.page.name, *cells, verdict.strip()))
    harness.print_table(lines)
    print(
        "\nserver CPU ms: the hub process's CPU time per request (steadier than latency on a busy "
        "machine; on SQLite it is most of the latency)."
    )
    if store == "postgresql":
        print("DB CPU ms: the PostgreSQL server's CPU time per request (all its backends).")
    print(
        "busy: other processes took that share of a core meanwhile; the page's latencies are "
        "longer than on a quiet machine."
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=100_000, help="contacts of the demo")
    parser.add_argument("--activities", type=int, default=1_000_000, help="activities of the demo")
    parser.add_argument("--seed", type=int, default=1, help="seed of the demo")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests per page first")
    parser.add_argument("--search", default="smith", help="what the contacts search looks for")
    parser.add_argument("--postgres", action="store_true", help="a PostgreSQL store, not SQLite")
    harness.add_postgresql_url(parser)
    parser.add_argument(
        "--reuse",
        metavar="PATH_OR_URL",
        help="a demo store to reuse: a SQLite file (built there if missing, then kept) or a "
        "PostgreSQL URL (used as is)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; see the module docstring."""
    args = parse_args(argv)
    harness.unwind_on_sigterm()
    harness.warn_if_busy()
    password = secrets.token_urlsafe(16)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="contacthub-admin-")))
        reuse = args.reuse
        if reuse and "://" in reuse:
            database_url, build = reuse, False
        elif args.postgres:
            database_url, _count = postgresql_store(stack, args.postgresql_url)
            build = True
        else:
            path = Path(reuse).resolve() if reuse else workdir / "demo.db"
            database_url, build = f"sqlite:///{path}", not path.exists()
        store = "sqlite" if database_url.startswith("sqlite") else "postgresql"
        env = hub_env(database_url, workdir)
        built = build_demo(env, args, password) if build else None
        email = DEMO_EMAIL if built else bench_user(env, password)
        contacts, activities = store_size(database_url)
        contact, contact_activities = busiest_contact(database_url)

        port = harness.free_port()
        command = [
            str(VENV_BIN / "contacthub"),
            "serve",
            *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
            *("--log-level", "warning"),
        ]
        server = harness.start_server(
            f"hub ({store})", command, env=env, port=port, log=workdir / "hub.log"
        )
        stack.callback(harness.stop, server)
        harness.wait_ready(server)
        # The client on the other core: it never takes CPU from the server.
        os.sched_setaffinity(0, {CLIENT_CPU})
        helpers = []
        if store == "postgresql" and (postmaster := harness.postmaster_pid()):
            helpers.append(postmaster)
        browser = Browser(port)
        stack.callback(browser.close)
        browser.sign_in(email, password)

        print(f"store: {store}, {contacts:,} contacts, {activities:,} activities", flush=True)
        if built:
            print(
                f"demo build: {built['wall']:.1f} s wall ({built['cpu']:.1f} s CPU in the "
                "contacthub process)"
            )
        print(f"busiest contact: {contact} ({contact_activities:,} activities)")
        print(f"{args.requests} requests per page after {args.warmup} of warm-up\n", flush=True)
        rows = [
            measure(browser, page, args, server.process.pid, helpers)
            for page in pages(contact, args.search)
        ]
        harness.stop(server)
    print_table(rows, store)
    errors = [row for row in rows if row.status not in (200, 404)]
    for row in errors:
        print(f"ERROR {row.page.name}: {row.page.path} answered {row.status}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # The ExitStack has already stopped the server and removed the temporary store.
        sys.exit("interrupted")
