"""Benchmark of the email tracking hot paths: the open pixel and the click redirect.

Sets up a hub on a fresh store (SQLite, then PostgreSQL), sends a real issue to one subscriber
through an SMTP server on loopback (aiosmtpd, in this process), takes the pixel URL and a tracked
link from the message received, and loads `GET Track.ashx` and `GET Redirect.ashx` with them
under wrk with browsers' user agents, so every hit is a human one that the hub logs in full:
once with one agent (the classifier's verdict cached after the first hit) and once with an agent
never seen before on every request (the cache cold: every hit pays `machine.classify`).
The bare Starlette baseline (`baseline.py`, `GET /health` with the same query string) runs at
the same time; baseline and hubs are measured in turns, round after round, and each row shows the
round with the median hub/baseline ratio (every round's ratio is listed too).

    .venv/bin/python bench/email_tracking.py [--duration 5] [--rounds 3] [--connections 64] \
        [--only sqlite|postgresql]

At the end it counts the stored opens and clicks: every answered hit must be committed (the
pixel and the redirect are answered after the commit). Exit status: 0 when every measurement is
valid, whether or not the targets are met; 1 otherwise.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import secrets
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import harness
from aiosmtpd.controller import Controller
from tracking import BENCH_DIR, UVICORN_OPTIONS, VENV_BIN, cli, hub_env

TARGET = 0.5
MAX_FAILURE_RATE = 0.001
BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36"
)
ISSUE_HTML = """<html><body>
<h1>Hello {{ first_name | "there" }}</h1>
<p><a href="https://shop.example.com/spring?utm_source=newsletter&amp;name={{ first_name }}">
Spring sale</a></p>
</body></html>
"""
ENDPOINTS = {"pixel": 200, "redirect": 303}  # what each endpoint must answer
# Each endpoint is loaded with one browser's agent (the classifier's cache warm), and with an
# agent of its own on every request (cold).
AGENTS = ("one agent", "new agents")


@dataclass
class Row:
    """One line of the result table."""

    target: str
    endpoint: str
    agents: str
    result: harness.WrkResult
    expected_status: int
    store: str | None = None
    rss_kib: int | None = None
    check: str = ""
    check_ok: bool = True
    ratios: list[float] = field(default_factory=list)
    baseline_rps: float = 0.0

    @property
    def answered(self) -> int:
        return self.result.statuses.get(self.expected_status, 0)

    @property
    def failure_rate(self) -> float:
        attempts = sum(self.result.statuses.values()) + sum(self.result.socket_errors.values())
        return 1 - self.answered / attempts if attempts else 1.0

    @property
    def valid(self) -> bool:
        return self.failure_rate <= MAX_FAILURE_RATE and self.check_ok


# -- SMTP ---------------------------------------------------------------------------------------


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = BytesParser(policy=default).parsebytes(bytes(envelope.content))
        self.messages.append(cast(EmailMessage, parsed))
        return "250 OK"


def tracking_paths(message: EmailMessage) -> dict[str, str]:
    """The path and query of the pixel and of the first tracked link of a received message."""
    body = message.get_body(("html",))
    assert body is not None, "the message has an HTML part"
    text = body.get_content()
    urls = [html.unescape(u) for u in re.findall(r'(?:src|href)="([^"]+)"', text)]

    def first(path: str) -> str:
        found = next(u for u in urls if urlsplit(u).path.endswith(path))
        parts = urlsplit(found)
        return f"{parts.path}?{parts.query}"

    return {"pixel": first("/Track.ashx"), "redirect": first("/Redirect.ashx")}


def send_issue(env: dict[str, str], workdir: Path) -> dict[str, str]:
    """Create a newsletter, a subscriber and an issue, send it; the tracking paths received."""
    cli(env, "migrate")
    cli(
        env,
        *("newsletter", "create", "Bench", "--sender-name", "Bench"),
        *("--sender-email", "news@example.com", "--base-url", "https://www.example.com"),
    )
    cli(
        env,
        "subscriber",
        "add",
        "--newsletter",
        "Bench",
        "anna@example.com",
        "--first-name",
        "Anna",
    )
    page = workdir / "issue.html"
    page.write_text(ISSUE_HTML)
    issue = json.loads(
        cli(
            env,
            *("issue", "create", "--newsletter", "Bench", "--subject", "Spring news"),
            *("--html-file", str(page), "--json"),
        )
    )["guid"]
    inbox = _Inbox()
    port = harness.free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        cli({**env, "CONTACTHUB_SMTP_PORT": str(port)}, "issue", "send", issue, "--json")
    finally:
        controller.stop()
    if len(inbox.messages) != 1:
        raise RuntimeError(f"expected one message, received {len(inbox.messages)}")
    return tracking_paths(inbox.messages[0])


# -- stores -------------------------------------------------------------------------------------

Execute = Callable[[str], int]


def sqlite_store(workdir: Path) -> tuple[str, Execute]:
    path = workdir / "bench.db"

    def execute(sql: str) -> int:
        with closing(sqlite3.connect(path)) as db, db:
            cursor = db.execute(sql)
            if cursor.description is None:
                return cursor.rowcount
            row = cursor.fetchone()
            return int(row[0]) if row else 0

    return f"sqlite:///{path}", execute


def postgresql_store(stack: ExitStack, admin_url: str) -> tuple[str, Execute]:
    import psycopg
    from psycopg import sql

    name = f"contacthub_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    stack.callback(drop)
    database_url = urlsplit(admin_url)._replace(path=f"/{name}").geturl()

    def execute(statement: str) -> int:
        with psycopg.connect(database_url) as db:
            cursor = db.execute(statement)  # type: ignore[arg-type]
            if cursor.description is None:
                return cursor.rowcount
            row = cursor.fetchone()
        return int(row[0]) if row else 0

    return database_url, execute


# -- runs ---------------------------------------------------------------------------------------


@dataclass
class Target:
    """A running server and the path of each endpoint on it."""

    name: str
    server: harness.Server
    paths: dict[str, str]
    serving: list[int]
    store: str | None = None  # None for the baseline
    execute: Execute | None = None


def new_agents_script() -> str:
    """The wrk script GETting with a browser's user agent never sent before on every request.

    Each wrk thread has its own Lua state: its agents carry the time and the address of a table
    of its own (distinct among the threads alive together), then a request count, as a version.
    """
    version = "Chrome/124.0"
    assert version in BROWSER
    before, after = BROWSER.split(version)
    lines = [
        "local prefix = nil",
        "local sent = 0",
        "request = function()",
        "  if prefix == nil then",
        '    prefix = os.time() .. string.gsub(tostring({}), "[^%x]", "")',
        "  end",
        "  sent = sent + 1",
        f'  wrk.headers["User-Agent"] = {harness.lua_string(before + version + ".")} '
        f'.. prefix .. "." .. sent .. {harness.lua_string(after)}',
        "  return wrk.format()",
        "end",
    ]
    return harness.wrk_script("GET", {}) + "\n" + "\n".join(lines) + "\n"


def measure(
    target: Target, endpoint: str, agents: str, seconds: float, args: argparse.Namespace
) -> harness.WrkResult:
    """GET the endpoint's path with browsers' user agents (`agents`) for `seconds`."""
    if agents == "new agents":
        script = new_agents_script()
    else:
        script = harness.wrk_script("GET", {"User-Agent": BROWSER})
    return harness.run_wrk(
        target.server.url + target.paths[endpoint],
        script,
        duration=seconds,
        connections=args.connections,
        serving=target.serving,
    )


def start_baseline(stack: ExitStack, workdir: Path, paths: dict[str, str]) -> Target:
    """The bare Starlette app; each endpoint is `GET /health` with the same query string."""
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
    same_query = {endpoint: "/health?" + path.split("?", 1)[1] for endpoint, path in paths.items()}
    return Target("baseline (Starlette)", server, same_query, [server.process.pid])


def start_hub(
    stack: ExitStack,
    workdir: Path,
    store: str,
    execute: Execute,
    env: dict[str, str],
    paths: dict[str, str],
) -> Target:
    # An hour passes between sending and reading: clicks seconds after delivery are a
    # scanner's (machine) and would not be logged in full.
    execute(
        "UPDATE deliveries SET sent_at = sent_at - INTERVAL '1 hour'"
        if store == "postgresql"
        else "UPDATE deliveries SET sent_at = strftime('%Y-%m-%d %H:%M:%f', sent_at, '-1 hour')"
    )
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
    serving = [server.process.pid]
    if store == "postgresql" and (postmaster := harness.postmaster_pid()):
        serving.append(postmaster)  # the database's work is the hub's work
    return Target(f"hub ({store})", server, paths, serving, store, execute)


def run_rounds(targets: list[Target], args: argparse.Namespace) -> list[Row]:
    """Warm every target up, then measure them in turns, round after round.

    A shared machine's load comes and goes: measured minutes apart, the baseline and a hub
    would see different machines. Interleaved, each round compares them under the same load,
    and the round with the median ratio is reported.
    """
    answered = {(t.name, e): 0 for t in targets for e in ENDPOINTS}
    for target in targets:
        for endpoint in ENDPOINTS:
            for agents in AGENTS:
                warm = measure(target, endpoint, agents, args.warmup, args)
                answered[(target.name, endpoint)] += warm.statuses.get(
                    _expected(target, endpoint), 0
                )
    rounds: list[dict[tuple[str, str, str], harness.WrkResult]] = []
    for number in range(args.rounds):
        print(f"round {number + 1} of {args.rounds} ...", flush=True)
        results = {}
        for endpoint in ENDPOINTS:
            for agents in AGENTS:
                for target in targets:
                    result = measure(target, endpoint, agents, args.duration, args)
                    results[(target.name, endpoint, agents)] = result
                    answered[(target.name, endpoint)] += result.statuses.get(
                        _expected(target, endpoint), 0
                    )
        rounds.append(results)
    baseline = targets[0]
    rows = []
    for endpoint in ENDPOINTS:
        for agents in AGENTS:
            for target in targets:
                key = (target.name, endpoint, agents)
                base_key = (baseline.name, endpoint, agents)
                ratios = [_ratio(results[key], results[base_key]) for results in rounds]
                median = sorted(rounds, key=lambda r: _ratio(r[key], r[base_key]))[len(rounds) // 2]
                rows.append(
                    Row(
                        target.name,
                        endpoint,
                        agents,
                        median[key],
                        _expected(target, endpoint),
                        target.store,
                        ratios=ratios,
                        baseline_rps=median[base_key].requests_per_s,
                    )
                )
    for row in rows:
        target = next(t for t in targets if t.name == row.target)
        if target.execute is None or row.agents != AGENTS[-1]:
            continue  # one check per hub and endpoint, on the last row of the two
        row.rss_kib = harness.peak_rss(target.server.process.pid)
        table = {"pixel": "email_opens", "redirect": "email_clicks"}[row.endpoint]
        stored = target.execute(f"SELECT count(*) FROM {table} WHERE NOT is_machine")  # noqa: S608
        expected = answered[(target.name, row.endpoint)]
        row.check_ok = stored >= expected
        row.check = (
            f"{row.endpoint}: {stored} human {table} stored >= {expected} answered "
            f"(both agent variants): {'ok' if row.check_ok else 'LOST'}"
        )
    return rows


def _ratio(hub: harness.WrkResult, baseline: harness.WrkResult) -> float:
    return hub.requests_per_s / baseline.requests_per_s if baseline.requests_per_s else 0.0


def _expected(target: Target, endpoint: str) -> int:
    return ENDPOINTS[endpoint] if target.store else 200


def print_table(rows: list[Row]) -> None:
    header = (
        *("target", "endpoint", "agents", "req/s", "p50 ms", "p99 ms", "hub/base", "target"),
        *("ratio per round", "peak RSS", "failed", "others CPU"),
    )
    lines = [header]
    for row in rows:
        r = row.result
        ratio, verdict, rss, per_round = "", "", "", ""
        if row.store:
            value = r.requests_per_s / row.baseline_rps if row.baseline_rps else 0.0
            ratio = f"{value:.2f}"
            verdict = f">= {TARGET:.2f} {'PASS' if value >= TARGET else 'FAIL'}"
            per_round = " ".join(f"{x:.2f}" for x in row.ratios)
        if row.rss_kib is not None:
            rss = f"{row.rss_kib / 1024:.0f} MiB"
        lines.append(
            (
                row.target,
                row.endpoint,
                row.agents,
                f"{r.requests_per_s:,.0f}",
                f"{r.p50_ms:.1f}",
                f"{r.p99_ms:.1f}",
                ratio,
                verdict,
                per_round,
                rss,
                f"{row.failure_rate:.2%}",
                f"{r.others_cpu:.0%}",
            )
        )
    harness.print_table(lines)
    print(
        "\nbaseline: bare Starlette, GET /health with the same query string. Each row is the "
        "round with the median hub/base ratio.\nfailed: answers other than 200 (pixel) or 303 "
        "(redirect), and socket errors. others CPU: other processes' CPU meanwhile, in % of a core."
        "\nagents: one browser's agent throughout (the classifier's verdict cached), or a new "
        "agent on every request (never cached)."
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up per target")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--only", choices=("sqlite", "postgresql"), help="one store only")
    harness.add_postgresql_url(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; see the module docstring."""
    args = parse_args(argv)
    harness.unwind_on_sigterm()
    harness.ensure_wrk()
    stores = [args.only] if args.only else ["sqlite", "postgresql"]
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="contacthub-bench-")))
        prepared = []
        for store in stores:
            if store == "sqlite":
                database_url, execute = sqlite_store(workdir)
            else:
                database_url, execute = postgresql_store(stack, args.postgresql_url)
            env = hub_env(database_url, workdir)
            print(f"{store}: sending an issue through a loopback SMTP server ...", flush=True)
            prepared.append((store, database_url, execute, env, send_issue(env, workdir)))
        targets = [start_baseline(stack, workdir, prepared[0][4])]
        for store, _, execute, env, paths in prepared:
            targets.append(start_hub(stack, workdir, store, execute, env, paths))
        rows = run_rounds(targets, args)
    print()
    print_table(rows)
    print()
    for row in rows:
        if row.check:
            print(f"hub ({row.store}) {row.check}")
        if row.failure_rate > MAX_FAILURE_RATE:
            print(
                f"ERROR {row.target} {row.endpoint} ({row.agents}): statuses "
                f"{dict(sorted(row.result.statuses.items()))} {row.result.socket_errors}: "
                "the figures of this row are not valid.",
                file=sys.stderr,
            )
    return 0 if all(row.valid for row in rows) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
