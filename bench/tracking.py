"""Benchmark of the tracking API's hot path: POST /Kentico.Tracking/activities.

Measures the hub on a fresh SQLite file and on a fresh PostgreSQL database against a bare
Starlette app (`baseline.py`) served the same way, and prints requests per second, p99 latency,
the hub/baseline ratio, the hub's peak memory and every non-2xx answer. After each hub run it
counts the stored activities: a 207 promises they are committed.

    .venv/bin/python bench/tracking.py [--duration 10] [--connections 64] \
        [--only sqlite|postgresql] [--sign-ins N] [--groups N] [--webhook]

With `--groups N`, each store is measured twice, on fresh databases: without groups, then with
N dynamic groups that depend on activities (defined before the hub starts); the load then
rotates over LOAD_CONTACTS contacts, so that the live membership job has several contacts to
evaluate at each run. Meanwhile a probe makes a new contact, posts one page visit that makes
it enter a group, and times how long until the hub shows it as a member; again and again.

With `--webhook`, each store is measured twice, on fresh databases: without webhooks, then with
one endpoint subscribed to every activity (`activity.stored`, written to the outbox in the
ingest transaction), posting to a receiver (`webhook_receiver.py`, pinned to wrk's CPU) that
answers 204 at once. The dispatcher runs in the hub process, as in production; after the load,
the delivered and pending deliveries tell how many calls per second it made meanwhile.

Exit status: 0 when every measurement is valid, whether or not the ratio targets are met (this
is a measurement, not a test); 1 when a server answered errors or lost acknowledged activities.
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
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import harness

BENCH_DIR = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
PATH = "/Kentico.Tracking/activities"
# Ratio of the hub's requests per second to the baseline's that each store must reach.
TARGETS = {"sqlite": 0.40, "postgresql": 0.30}
# More failed requests than this makes a run invalid: fast errors must not pass for speed.
MAX_FAILURE_RATE = 0.001
# Above this one-minute load average, other processes compete with the benchmark.
# Above this share of a core taken by other processes during a measurement, its figures are low.
BUSY_CPU = 0.10
# --groups: what the live groups may cost ingest (with 20 groups) and how fresh they must be.
GROUPS_TARGET_RATIO = 0.90
GROUPS_TARGET_DELAY_S = 5.0
LOAD_CONTACTS = 100
PROBE_GROUP = "bench-0"
PROBE_URL = "https://www.example.com/products/0?utm_source=probe"
PROBE_PAUSE_S = 1.0
PROBE_TIMEOUT_S = 30.0
# --webhook: what one endpoint subscribed to every activity may cost ingest.
WEBHOOK_TARGET_RATIO = 0.80
DRAIN_SECONDS = 5.0
UVICORN_OPTIONS = ["--workers", "1", "--loop", "uvloop", "--http", "httptools"]


def activities_body(channel: str, contact: str) -> str:
    """The request body every target receives: ten page visits and clicks of one contact."""
    activities: list[dict[str, str]] = []
    for n in range(5):
        activities.append(
            {
                "type": "pagevisit",
                "url": f"https://www.example.com/products/{n}?utm_source=newsletter",
                "value": f"Product {n} | Example Store",
            }
        )
        activities.append({"type": "click", "value": f"Add product {n} to cart"})
    return json.dumps({"channel": channel, "contact": contact, "activities": activities})


def activities_script(key: str, body: str) -> str:
    """The wrk script posting `body` with tracking key `key`."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    return harness.wrk_script("POST", headers, body)


def rotating_script(key: str, bodies: list[str]) -> str:
    """The wrk script posting `bodies` in turn (one contact each) with tracking key `key`."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    rotation = "\n".join(
        [
            "local bodies = {" + ", ".join(harness.lua_string(b) for b in bodies) + "}",
            "local turn = 0",
            "request = function()",
            "  turn = turn % #bodies + 1",
            "  return wrk.format(nil, nil, nil, bodies[turn])",
            "end",
        ]
    )
    return harness.wrk_script("POST", headers) + "\n" + rotation + "\n"


def define_groups(database_url: str, count: int) -> None:
    """`count` dynamic groups on the page visits the load posts (`bench-0` … ), through the
    groups service, before the hub starts. Half need one visit, half two, within 30 days."""
    from contacthub.groups import service as groups  # only --groups needs the hub's code
    from contacthub.storage.database import Database

    database = Database(database_url)
    try:
        with database.write() as session:
            for n in range(count):
                groups.create_group(
                    session,
                    f"bench-{n}",
                    conditions={
                        "activity": "pagevisit",
                        "url_contains": f"/products/{n % 5}",
                        "at_least": 1 + (n // 5) % 2,
                        "within_days": 30,
                    },
                )
    finally:
        database.dispose()


class MembershipProbe:
    """A thread that, again and again, makes a new contact, posts one page visit that makes it
    enter `PROBE_GROUP`, and times how long until the hub's store shows it as a member."""

    def __init__(self, port: int, key: str, channel: str, database_url: str) -> None:
        from contacthub.storage.database import Database

        self.port = port
        self.key = key
        self.channel = channel
        self.database = Database(database_url)
        self.delays: list[float] = []
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MembershipProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self._thread.join()
        self.database.dispose()

    def _is_member(self, guid: str) -> bool:
        from contacthub.contacts import service as contacts
        from contacthub.groups import service as groups

        with self.database.read() as session:
            contact = contacts.get_contact(session, guid)
            return any(
                m.group.name == PROBE_GROUP for m in groups.contact_groups(session, contact.id)
            )

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        while not self.stop.wait(PROBE_PAUSE_S):
            status, body = harness.request(self.port, "POST", "/Kentico.Tracking/contacts", headers)
            if status != 200:
                continue
            guid = json.loads(body)["contact"]
            visit = {"type": "pagevisit", "url": PROBE_URL}
            payload = json.dumps({"channel": self.channel, "contact": guid, "activities": [visit]})
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                connection.request("POST", PATH, body=payload, headers=headers)
                answer = connection.getresponse()
                answer.read()
            finally:
                connection.close()
            if answer.status != 207:
                continue
            posted = time.monotonic()
            while not self._is_member(guid):
                if time.monotonic() - posted > PROBE_TIMEOUT_S:
                    break
                time.sleep(0.02)
            self.delays.append(time.monotonic() - posted)

    def summary(self) -> str:
        """The delays, e.g. `membership after 0.61 s median, 1.02 s max (12 probes)`."""
        if not self.delays:
            return "no membership probe completed"
        ordered = sorted(self.delays)
        median = statistics.median(ordered)
        verdict = "PASS" if ordered[-1] <= GROUPS_TARGET_DELAY_S else "FAIL"
        return (
            f"membership after {median:.2f} s median, {ordered[-1]:.2f} s max "
            f"({len(ordered)} probes; target <= {GROUPS_TARGET_DELAY_S:g} s {verdict})"
        )


@dataclass
class Row:
    """One line of the result table."""

    target: str
    result: harness.WrkResult
    store: str | None = None  # None for the baseline
    rss_kib: int | None = None
    stored_check: str = ""
    stored_ok: bool = True
    groups: int = 0
    probe: str = ""
    webhook: bool = False

    @property
    def valid(self) -> bool:
        return self.result.failure_rate <= MAX_FAILURE_RATE and self.stored_ok


def load(
    server: harness.Server,
    script: str,
    args: argparse.Namespace,
    store: str | None = None,
    also_serving: tuple[int, ...] = (),
) -> tuple[harness.WrkResult, int]:
    """Warm up, then measure; returns the measurement and the 2xx count of both runs."""
    serving = [server.process.pid, *also_serving]
    if store == "postgresql" and (postmaster := harness.postmaster_pid()):
        serving.append(postmaster)  # the database's work is the hub's, not interference

    def measure(seconds: float) -> harness.WrkResult:
        return harness.run_wrk(
            server.url + PATH,
            script,
            duration=seconds,
            connections=args.connections,
            serving=serving,
        )

    # The warm-up fills caches, connection pools and SQLite's page cache before we measure.
    warm = measure(args.warmup)
    result = measure(args.duration)
    return result, warm.ok + result.ok


def bench_baseline(stack: ExitStack, workdir: Path, args: argparse.Namespace) -> Row:
    """Serve `baseline.py` like the hub and measure it with a body of the same size."""
    port = harness.free_port()
    command = [
        str(VENV_BIN / "uvicorn"),
        "baseline:app",
        *("--app-dir", str(BENCH_DIR), "--host", "127.0.0.1", "--port", str(port)),
        *UVICORN_OPTIONS,
        *("--log-level", "warning"),
    ]
    server = harness.start_server(
        "baseline", command, env=os.environ, port=port, log=workdir / "baseline.log"
    )
    stack.callback(harness.stop, server)
    harness.wait_ready(server)
    # Random GUIDs have the same length as the hub's: the same bytes go over the wire.
    body = activities_body(str(uuid.uuid4()), str(uuid.uuid4()))
    result, _ = load(server, activities_script(secrets.token_urlsafe(32), body), args)
    harness.stop(server)
    return Row("baseline (Starlette)", result)


def hub_env(database_url: str, workdir: Path) -> dict[str, str]:
    """The environment of every hub command: our store, and no stray configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTACTHUB_")}
    env["CONTACTHUB_DATABASE_URL"] = database_url
    # A contacthub.toml in the working directory must not change what we measure.
    env["CONTACTHUB_CONFIG"] = str(workdir / "absent.toml")
    # The hub refuses its default secret outside SQLite.
    env["CONTACTHUB_SECRET_KEY"] = secrets.token_urlsafe(32)
    return env


def cli(env: Mapping[str, str], *arguments: str) -> str:
    """Run `contacthub ARGUMENTS` and return what it prints."""
    command = [str(VENV_BIN / "contacthub"), *arguments]
    finished = subprocess.run(command, env=dict(env), capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        raise RuntimeError(f"`contacthub {' '.join(arguments)}` failed:\n{finished.stderr}")
    return finished.stdout


def create_contact(server: harness.Server, key: str) -> str:
    """Create a contact through the tracking API, as a client does; returns its GUID."""
    headers = {"Authorization": f"Bearer {key}"}
    status, body = harness.request(server.port, "POST", "/Kentico.Tracking/contacts", headers)
    if not 200 <= status < 300:
        raise RuntimeError(f"POST /Kentico.Tracking/contacts answered {status}: {body!r}")
    contact: str = json.loads(body)["contact"]
    return contact


def add_webhook(database_url: str, url: str) -> None:
    """One enabled endpoint wanting every activity, written before the hub starts (as the
    endpoints' service would write it)."""
    from contacthub.events import signing  # only --webhook needs the hub's code
    from contacthub.storage.database import Database
    from contacthub.storage.models import WebhookEndpoint

    database = Database(database_url)
    try:
        with database.write() as session:
            session.add(
                WebhookEndpoint(
                    name="bench",
                    url=url,
                    secret=signing.new_secret(),
                    events='["activity.stored"]',
                )
            )
    finally:
        database.dispose()


def start_receiver(stack: ExitStack, workdir: Path) -> harness.Server:
    """The webhook receiver, served by uvicorn on wrk's CPU (not the hub's)."""
    port = harness.free_port()
    command = [
        str(VENV_BIN / "uvicorn"),
        "webhook_receiver:app",
        *("--app-dir", str(BENCH_DIR), "--host", "127.0.0.1", "--port", str(port)),
        *UVICORN_OPTIONS,
        *("--log-level", "warning", "--no-access-log"),
    ]
    receiver = harness.start_server(
        "webhook receiver",
        command,
        env=os.environ,
        port=port,
        cpu=harness.WRK_CPU,
        log=workdir / "receiver.log",
    )
    stack.callback(harness.stop, receiver)
    harness.wait_ready(receiver)
    return receiver


def delivered_count(database_url: str) -> int:
    """How many webhook deliveries are delivered."""
    from sqlalchemy import func, select

    from contacthub.storage.database import Database
    from contacthub.storage.models import WebhookDelivery

    database = Database(database_url)
    try:
        with database.read() as session:
            return int(
                session.scalar(select(func.count()).where(WebhookDelivery.state == "delivered"))
                or 0
            )
    finally:
        database.dispose()


def count_deliveries(database_url: str) -> str:
    """What the dispatcher did: calls delivered, per second between the first and the last,
    and what was still waiting (events not fanned out, deliveries pending)."""
    from sqlalchemy import func, select

    from contacthub.storage.database import Database
    from contacthub.storage.models import OutboxEvent, WebhookDelivery

    database = Database(database_url)
    try:
        with database.read() as session:
            delivered, first, last = session.execute(
                select(
                    func.count(),
                    func.min(WebhookDelivery.delivered_at),
                    func.max(WebhookDelivery.delivered_at),
                ).where(WebhookDelivery.state == "delivered")
            ).one()
            pending = session.scalar(
                select(func.count()).where(WebhookDelivery.state != "delivered")
            )
            waiting = session.scalar(
                select(func.count()).where(OutboxEvent.dispatched_at.is_(None))
            )
            events = session.scalar(select(func.count()).select_from(OutboxEvent))
    finally:
        database.dispose()
    span = (last - first).total_seconds() if delivered > 1 else 0.0
    rate = f"{delivered / span:,.0f}/s" if span else "n/a"
    return (
        f"webhooks: {events} events in the outbox, {delivered} delivered ({rate} over "
        f"{span:.1f} s), {pending} deliveries pending, {waiting} events not yet fanned out"
    )


class SignInLoad:
    """Threads that post wrong admin sign-ins without pause while ingest is measured.

    With `--sign-ins N`, ingest is measured beside N browsers guessing passwords (no account
    needed): each attempt costs the hub an argon2 check, which must not hold up ingest.
    """

    def __init__(self, port: int, threads: int) -> None:
        self.port = port
        self.stop = threading.Event()
        self.statuses: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> SignInLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        while not self.stop.is_set():
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                connection.request("GET", "/admin/sign-in")
                page = connection.getresponse()
                html = page.read().decode()
                cookie = (page.getheader("set-cookie") or "").split(";", 1)[0]
                token = re.search(r'name="csrf_token" value="([^"]+)"', html)
                form = urlencode(
                    {
                        "email": "nobody@example.com",
                        "password": secrets.token_urlsafe(12),
                        "csrf_token": token.group(1) if token else "",
                    }
                )
                headers = {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Cookie": cookie,
                }
                connection.request("POST", "/admin/sign-in", body=form, headers=headers)
                answer = connection.getresponse()
                answer.read()
                status = answer.status
            except OSError:
                status = 0
            finally:
                connection.close()
            with self._lock:
                self.statuses[status] += 1

    def summary(self) -> str:
        """What the sign-ins got, e.g. `sign-ins: 412 x 401`."""
        answers = ", ".join(f"{n} x {s or 'error'}" for s, n in sorted(self.statuses.items()))
        return f"{len(self._threads)} sign-in threads beside it: {answers or 'none'}"


def bench_hub(
    stack: ExitStack,
    workdir: Path,
    args: argparse.Namespace,
    store: str,
    database_url: str,
    count_activities: Callable[[], int],
    groups: int = 0,
    webhook: bool = False,
) -> Row:
    """Set up a hub on `database_url`, serve it, measure it and check what it stored."""
    env = hub_env(database_url, workdir)
    if args.sign_ins:
        # Every attempt checked (the per-address limit would refuse all but a few unchecked).
        env["CONTACTHUB_SIGN_IN_MAX_FAILURES_PER_CLIENT"] = str(10**9)
    if os.environ.get("XP_INTERVAL"):
        env["CONTACTHUB_WEBHOOK_DISPATCH_INTERVAL"] = os.environ["XP_INTERVAL"]
    cli(env, "migrate")
    channel = json.loads(cli(env, "channel", "create", "Bench", "--json"))["guid"]
    key = json.loads(
        cli(env, "apikey", "create", "--channel", "Bench", "--access", "tracking", "--json")
    )["key"]
    if groups:
        define_groups(database_url, groups)
    receiver = None
    if webhook:
        receiver = start_receiver(stack, workdir)
        add_webhook(database_url, receiver.url + "/hook")

    port = harness.free_port()
    command = [
        str(VENV_BIN / "contacthub"),
        "serve",
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
        *("--log-level", "warning"),
    ]
    server = harness.start_server(
        f"hub ({store})", command, env=env, port=port, log=workdir / f"hub-{store}.log"
    )
    stack.callback(harness.stop, server)
    harness.wait_ready(server)
    if args.groups:
        contacts = [create_contact(server, key) for _ in range(LOAD_CONTACTS)]
        script = rotating_script(key, [activities_body(channel, c) for c in contacts])
    else:
        script = activities_script(key, activities_body(channel, create_contact(server, key)))
    with ExitStack() as beside:
        sign_ins = beside.enter_context(SignInLoad(port, args.sign_ins))
        probe = None
        if groups:
            probe = beside.enter_context(MembershipProbe(port, key, channel, database_url))
        also = (receiver.process.pid,) if receiver is not None else ()
        result, acknowledged = load(server, script, args, store, also)
    rss = harness.peak_rss(server.process.pid)
    # Counted while the hub still runs: what a 207 acknowledged must already be committed,
    # not merely flushed by the graceful shutdown.
    stored = count_activities()
    webhooks = ""
    if webhook:
        webhooks = count_deliveries(database_url)
        # Then ingest stops: after its last pause, the dispatcher drains at full speed.
        time.sleep(DRAIN_SECONDS)
        before = delivered_count(database_url)
        time.sleep(DRAIN_SECONDS)
        drained = delivered_count(database_url) - before
        webhooks += f"; then, ingest idle, {drained / DRAIN_SECONDS:,.0f} deliveries/s"
    harness.stop(server)
    if receiver is not None:
        harness.stop(receiver)

    # The probes' own contacts and visits are not in the load's count.
    expected = 10 * acknowledged
    ok = stored >= expected
    check = f"{stored} stored >= 10 x {acknowledged} acknowledged: {'ok' if ok else 'LOST'}"
    if args.sign_ins:
        check += f"; {sign_ins.summary()}"
    target = f"hub ({store}, {groups} groups)" if groups else f"hub ({store})"
    if webhook:
        target = f"hub ({store}, webhook)"
    summary = probe.summary() if probe is not None else webhooks
    return Row(target, result, store, rss, check, ok, groups, summary, webhook)


def sqlite_store(workdir: Path, name: str = "bench.db") -> tuple[str, Callable[[], int]]:
    """A fresh SQLite file in `workdir` (removed with it) and a counter of its activities."""
    path = workdir / name

    def count() -> int:
        with closing(sqlite3.connect(path)) as db:
            stored: int = db.execute("SELECT count(*) FROM activities").fetchone()[0]
            return stored

    return f"sqlite:///{path}", count


def postgresql_store(stack: ExitStack, admin_url: str) -> tuple[str, Callable[[], int]]:
    """A fresh PostgreSQL database, dropped when `stack` closes, and a counter of its activities."""
    import psycopg  # only this store needs it
    from psycopg import sql

    name = f"contacthub_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            # FORCE: a hub killed on Ctrl-C may leave connections behind.
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    stack.callback(drop)
    database_url = urlsplit(admin_url)._replace(path=f"/{name}").geturl()

    def count() -> int:
        with psycopg.connect(database_url) as db:
            row = db.execute("SELECT count(*) FROM activities").fetchone()
        return int(row[0]) if row else 0

    return database_url, count


def print_table(rows: list[Row]) -> None:
    """The result table; the ratio and its verdict compare each hub with the baseline."""
    baseline = rows[0].result.requests_per_s
    header = (
        *("target", "req/s", "p50 ms", "p99 ms", "hub/base", "target"),
        *("CPU us/req", "server CPU", "DB us/req", "peak RSS", "non-2xx", "others CPU"),
    )
    lines = [header]
    for row in rows:
        r = row.result
        ratio, verdict, rss = "", "", ""
        if row.store:
            value = r.requests_per_s / baseline if baseline else 0.0
            goal = TARGETS[row.store]
            ratio = f"{value:.2f}"
            verdict = f">= {goal:.2f} {'PASS' if value >= goal else 'FAIL'}"
            if max(r.others_cpu, rows[0].result.others_cpu) > BUSY_CPU:
                verdict += " (busy)"  # the ratio of two disturbed runs says little
        if row.rss_kib is not None:
            rss = f"{row.rss_kib / 1024:.0f} MiB"
        failures = f"{r.failed} ({r.failure_rate:.2%})"
        lines.append(
            (
                row.target,
                f"{r.requests_per_s:,.0f}",
                f"{r.p50_ms:.1f}",
                f"{r.p99_ms:.1f}",
                ratio,
                verdict,
                f"{r.cpu_per_request_us:,.0f}",
                f"{r.server_load:.0%}",
                f"{r.helpers_cpu_per_request_us:,.0f}" if row.store == "postgresql" else "",
                rss,
                failures,
                f"{r.others_cpu:.0%}",
            )
        )
    harness.print_table(lines)
    print(
        "\npeak RSS: VmHWM summed over the server process and its children "
        "(with --workers 1 it is the one uvicorn process)."
    )
    print(
        "CPU us/req: the server's CPU time per request; the server has one core, so baseline/hub "
        "of it estimates the quiet-machine ratio. DB us/req: the PostgreSQL server's."
    )
    print(
        "server CPU: share of its core the server used; well below 100% on a quiet machine, "
        "it waits (on commits, on the database) rather than computes."
    )
    print("non-2xx: non-2xx answers plus connect/read/write/timeout errors, of all attempts.")
    print(
        "others CPU: CPU other processes took during the measurement, in % of one core; "
        "well above 0, the figures are lower than on a quiet machine."
    )


def print_groups(rows: list[Row]) -> None:
    """With --groups: each store's ingest with groups against without, and the probes."""
    for row in rows:
        if not row.groups:
            continue
        [plain] = [r for r in rows if r.store == row.store and not r.groups]
        ratio = row.result.requests_per_s / plain.result.requests_per_s
        cpu = plain.result.cpu_per_request_us / row.result.cpu_per_request_us
        verdict = "PASS" if ratio >= GROUPS_TARGET_RATIO else "FAIL"
        print(
            f"{row.target}: ingest {ratio:.2f} x without groups (target >= "
            f"{GROUPS_TARGET_RATIO:.2f} {verdict}; by CPU us/req {cpu:.2f}); {row.probe}"
        )
    print()


def print_webhooks(rows: list[Row]) -> None:
    """With --webhook: each store's ingest with one webhook against without, and the calls."""
    for row in rows:
        if not row.webhook:
            continue
        [plain] = [r for r in rows if r.store == row.store and not r.webhook and not r.groups]
        ratio = row.result.requests_per_s / plain.result.requests_per_s
        cpu = plain.result.cpu_per_request_us / row.result.cpu_per_request_us
        verdict = "PASS" if ratio >= WEBHOOK_TARGET_RATIO else "FAIL"
        print(
            f"{row.target}: ingest {ratio:.2f} x without (target >= "
            f"{WEBHOOK_TARGET_RATIO:.2f} {verdict}; by CPU us/req {cpu:.2f}); {row.probe}"
        )
    print()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds measured per target")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up per target")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--only", choices=sorted(TARGETS), help="measure the hub on one store")
    parser.add_argument(
        "--sign-ins",
        type=int,
        default=0,
        metavar="N",
        help="N threads posting wrong admin sign-ins while the hub is measured",
    )
    parser.add_argument(
        "--groups",
        type=int,
        default=0,
        metavar="N",
        help="also measure each store with N dynamic groups defined, and membership delays",
    )
    parser.add_argument(
        "--webhook",
        action="store_true",
        help="also measure each store with one webhook subscribed to every activity",
    )
    harness.add_postgresql_url(parser)
    args = parser.parse_args(argv)
    if args.webhook and args.groups:
        parser.error("--webhook and --groups are measured separately")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; see the module docstring."""
    args = parse_args(argv)
    harness.unwind_on_sigterm()
    if (os.cpu_count() or 1) < 2:
        print("warning: fewer than 2 CPUs: server and wrk share a core.", file=sys.stderr)
    harness.warn_if_busy()
    harness.ensure_wrk()
    stores = [args.only] if args.only else list(TARGETS)
    rows: list[Row] = []
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="contacthub-bench-")))
        if harness.filesystem_type(workdir) == "tmpfs" and "sqlite" in stores:
            # fsync is free in memory: SQLite would look faster than on any real disk.
            print(f"warning: {workdir} is on tmpfs; set TMPDIR to a disk.", file=sys.stderr)
        print(f"baseline: {args.duration:g} s after {args.warmup:g} s warm-up ...", flush=True)
        rows.append(bench_baseline(stack, workdir, args))
        for store in stores:
            print(
                f"hub on {store}: {args.duration:g} s after {args.warmup:g} s warm-up ...",
                flush=True,
            )
            variants = [(0, False)]
            if args.groups:
                variants.append((args.groups, False))
            if args.webhook:
                variants.append((0, True))
            for groups, webhook in variants:
                if store == "sqlite":
                    name = f"bench-{groups}{'-webhook' if webhook else ''}.db"
                    database_url, count = sqlite_store(workdir, name)
                else:
                    database_url, count = postgresql_store(stack, args.postgresql_url)
                rows.append(
                    bench_hub(stack, workdir, args, store, database_url, count, groups, webhook)
                )
    print()
    print_table(rows)
    print()
    print_groups(rows)
    if args.webhook:
        print_webhooks(rows)
    for row in rows:
        if row.stored_check:
            print(f"{row.target}: {row.stored_check}")
        if row.result.failure_rate > MAX_FAILURE_RATE:
            print(
                f"ERROR {row.target}: {row.result.failed} failed requests "
                f"{dict(sorted(row.result.statuses.items()))} {row.result.socket_errors}: "
                "the figures of this row are not valid.",
                file=sys.stderr,
            )
        if row.result.others_cpu > BUSY_CPU:
            print(
                f"warning {row.target}: other processes took {row.result.others_cpu:.0%} of a "
                "core meanwhile: its figures are lower than on a quiet machine.",
                file=sys.stderr,
            )
    return 0 if all(row.valid for row in rows) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # The ExitStack has already stopped the servers and removed the temporary store.
        sys.exit("interrupted")
