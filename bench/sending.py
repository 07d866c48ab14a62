"""Benchmark of sending an email issue: messages per second to a loopback SMTP server.

For each store (a fresh SQLite file; a fresh PostgreSQL database when one answers): migrates,
creates a newsletter, imports N subscribers from a generated CSV (timed too), creates an issue
(about 6 KB of HTML, 6 links, personalised), then runs `contacthub issue send GUID --json` as a
user would, pinned to one core, against an SMTP sink (aiosmtpd, in its own process pinned to the
other core, offering PIPELINING as production servers do) that counts and discards what it
receives. Prints messages per second (wall time of
the send command, process start-up included), the send process's peak RSS (ru_maxrss from
wait4), and checks that the sink received exactly one message per recipient.

With `--rate-limit` (a high limit, e.g. 1000000/s) and/or `--suppressed` (a fraction of the
subscribers whose address is on the suppression list, e.g. 0.1), each store is measured twice in
the same run, without and with those checks, and the ratio of the two rates is printed (with /
without; the goal is at least 0.90). The checked run has extra subscribers for the suppressed
addresses, so that both runs send the same N messages: the figure is messages sent per second,
and the suppressed ones must be skipped, not sent. `--rounds` repeats each pair (alternating)
and reports the median ratio, against the machine's noise.

    .venv/bin/python bench/sending.py [--recipients 10000] [--chunk-size 100] \
        [--only sqlite|postgresql] [--rate-limit 1000000/s] [--suppressed 0.1] [--rounds 3]

Exit status 1 when a run is invalid (a message missing, failed or sent twice).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import harness
import psycopg
from sqlalchemy import insert

from contacthub.email import importer, service
from contacthub.storage.database import Database
from contacthub.storage.migrate import upgrade
from contacthub.storage.models import Suppression

VENV_BIN = Path(sys.executable).parent
POSTGRES_ADMIN = os.environ.get(
    "CONTACTHUB_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SECRET = "bench-secret-" + uuid.uuid4().hex
SENDER_CPU = harness.SERVER_CPU
SINK_CPU = harness.WRK_CPU

SINK = """
import signal, sys
from aiosmtpd.controller import Controller

class Sink:
    count = 0
    recipients = set()
    duplicates = 0
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # aiosmtpd reads commands in order from a buffered stream, so it handles pipelined
        # ones (RFC 2920) correctly, but does not say so; real servers (Postfix, Exim) do.
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]
    async def handle_DATA(self, server, session, envelope):
        for rcpt in envelope.rcpt_tos:
            if rcpt in self.recipients:
                Sink.duplicates += 1
            self.recipients.add(rcpt)
        Sink.count += 1
        return "250 OK"

sink = Sink()
# Blocked in every thread, so that sigwait below receives it instead of the default action.
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
controller = Controller(sink, hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("READY", flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
controller.stop()
print(f"RECEIVED {Sink.count} {len(Sink.recipients)} {Sink.duplicates}", flush=True)
"""

LINKS = [
    "https://shop.example.com/spring?utm_source=newsletter",
    "https://shop.example.com/products/42",
    "https://shop.example.com/products/43",
    "https://blog.example.com/posts/what-is-new",
    "https://shop.example.com/account?who={{ email }}",
    "https://www.example.com/contact",
]


def issue_html() -> str:
    """A plausible newsletter: a greeting, six links, several paragraphs (about 6 KB)."""
    paragraph = (
        '<p style="font-family:Arial,sans-serif;font-size:14px;line-height:20px">Spring is '
        "here and so are our new arrivals. Lorem ipsum dolor sit amet, consectetur adipiscing "
        "elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.</p>\n"
    )
    links = "".join(
        f'<tr><td><a href="{url}" style="color:#0055aa">Link {n}</a></td></tr>\n'
        for n, url in enumerate(LINKS)
    )
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>News</title></head><body>'
        '<table width="600" align="center">\n<tr><td><h1>Hello {{ first_name | "there" }}!</h1>'
        "</td></tr>\n" + paragraph * 12 + links + "</table></body></html>"
    )


@dataclass(frozen=True)
class Checks:
    """The deliverability checks of a run: a send-rate limit, a share of suppressed addresses."""

    rate_limit: str | None = None
    suppressed: float = 0.0

    @property
    def on(self) -> bool:
        return self.rate_limit is not None or self.suppressed > 0

    def label(self) -> str:
        parts = []
        if self.rate_limit:
            parts.append(f"limit {self.rate_limit}")
        if self.suppressed:
            parts.append(f"{self.suppressed:.0%} suppressed")
        return ", ".join(parts) or "no checks"

    def subscribers(self, recipients: int) -> tuple[int, int]:
        """(subscribers, of them suppressed) so that `recipients` messages go out."""
        if not self.suppressed:
            return recipients, 0
        total = round(recipients / (1 - self.suppressed))
        return total, total - recipients


NO_CHECKS = Checks()


@dataclass
class Result:
    store: str
    checks: Checks
    recipients: int
    suppressed: int
    import_seconds: float
    send_seconds: float
    cpu_seconds: float  # user + system time of the send process
    peak_rss_kib: int
    sent: int
    failed: int
    skipped_suppressed: int
    received: int
    unique_received: int
    duplicates: int

    @property
    def valid(self) -> bool:
        return (
            self.sent == self.recipients
            and self.failed == 0
            and self.skipped_suppressed == self.suppressed
            and self.received == self.unique_received == self.recipients
            and self.duplicates == 0
        )

    @property
    def rate(self) -> float:
        """Messages sent per second."""
        return self.sent / self.send_seconds

    @property
    def cpu_ms(self) -> float:
        """CPU time of the send process per message sent, in milliseconds."""
        return self.cpu_seconds / self.sent * 1000


@contextmanager
def sqlite_store(workdir: Path) -> Iterator[str]:
    path = workdir / f"bench-{uuid.uuid4().hex[:8]}.db"
    try:
        yield f"sqlite:///{path}"
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


@contextmanager
def postgres_store() -> Iterator[str]:
    name = f"contacthub_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    try:
        yield POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def postgres_available() -> bool:
    try:
        with psycopg.connect(POSTGRES_ADMIN, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def prepare(url: str, subscribers: int, suppressed: int) -> tuple[str, float]:
    """Newsletter, subscribers (imported from CSV, timed), `suppressed` of them spread evenly
    on the suppression list, and an issue; the issue's GUID."""
    upgrade(url)
    database = Database(url)
    try:
        with database.write() as session:
            service.create_newsletter(
                session, "Bench", "Bench Team", "bench@example.com", "https://news.example.com"
            )
        csv = io.StringIO()
        csv.write("email,first_name,last_name\n")
        for n in range(subscribers):
            csv.write(f"reader{n}@example.com,Reader{n},Bench\n")
        csv.seek(0)
        started = time.perf_counter()
        report = importer.import_csv(database, "Bench", csv, chunk_size=1000)
        import_seconds = time.perf_counter() - started
        assert report.added == subscribers, report
        if suppressed:
            step = subscribers / suppressed
            rows = [
                {
                    "email": f"reader{int(k * step)}@example.com",
                    "reason": "hard_bounce",
                    "evidence": "5.1.1 bench",
                    "source": "cli",
                }
                for k in range(suppressed)
            ]
            with database.write() as session:
                session.execute(insert(Suppression), rows)
        with database.write() as session:
            issue = service.create_issue(
                session, "Bench", 'News for {{ first_name | "you" }}', issue_html()
            )
            return str(issue.guid), import_seconds
    finally:
        database.dispose()


def start_sink(port: int) -> subprocess.Popen[str]:
    sink = subprocess.Popen(
        ["taskset", "-c", str(SINK_CPU), sys.executable, "-c", SINK, str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sink.stdout is not None
    line = sink.stdout.readline()
    if line.strip() != "READY":
        raise RuntimeError(f"the SMTP sink did not start: {line!r}")
    return sink


def stop_sink(sink: subprocess.Popen[str]) -> tuple[int, int, int]:
    sink.terminate()
    output, _ = sink.communicate(timeout=30)
    for line in output.splitlines():
        if line.startswith("RECEIVED "):
            received, unique, duplicates = (int(x) for x in line.split()[1:])
            return received, unique, duplicates
    raise RuntimeError(f"the SMTP sink said nothing: {output!r}")


def run(
    store: str, url: str, recipients: int, chunk_size: int, workdir: Path, checks: Checks
) -> Result:
    subscribers, suppressed = checks.subscribers(recipients)
    print(f"[{store}] preparing {subscribers} subscribers ({checks.label()}) …", flush=True)
    guid, import_seconds = prepare(url, subscribers, suppressed)
    port = harness.free_port()
    sink = start_sink(port)
    env = {
        **os.environ,
        "CONTACTHUB_CONFIG": str(workdir / "absent.toml"),
        "CONTACTHUB_DATABASE_URL": url,
        "CONTACTHUB_SECRET_KEY": SECRET,
        "CONTACTHUB_SMTP_HOST": "127.0.0.1",
        "CONTACTHUB_SMTP_PORT": str(port),
    }
    env.pop("CONTACTHUB_SEND_RATE_LIMIT", None)
    if checks.rate_limit:
        env["CONTACTHUB_SEND_RATE_LIMIT"] = checks.rate_limit
    print(f"[{store}] sending …", flush=True)
    try:
        started = time.perf_counter()
        sender = subprocess.Popen(
            [
                "taskset",
                "-c",
                str(SENDER_CPU),
                str(VENV_BIN / "contacthub"),
                "issue",
                "send",
                guid,
                "--chunk-size",
                str(chunk_size),
                "--json",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert sender.stdout is not None
        output = sender.stdout.read()
        # wait4: the exit status and the resource usage of exactly this process.
        _, status, usage = os.wait4(sender.pid, 0)
        send_seconds = time.perf_counter() - started
        sender.returncode = os.waitstatus_to_exitcode(status)
    finally:
        received, unique, duplicates = stop_sink(sink)
    if sender.returncode != 0:
        raise RuntimeError(f"`contacthub issue send` exited {sender.returncode}: {output!r}")
    report = json.loads(output)
    return Result(
        store=store,
        checks=checks,
        recipients=recipients,
        suppressed=suppressed,
        import_seconds=import_seconds / subscribers * recipients,  # per `recipients` rows
        send_seconds=send_seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_kib=usage.ru_maxrss,  # KiB on Linux
        sent=report["sent"],
        failed=report["failed"] + report["deferred"],
        skipped_suppressed=report["skipped_suppressed"],
        received=received,
        unique_received=unique,
        duplicates=duplicates,
    )


def measure(store: str, recipients: int, chunk_size: int, workdir: Path, checks: Checks) -> Result:
    """One send run on a fresh store."""
    fresh = sqlite_store(workdir) if store == "sqlite" else postgres_store()
    with fresh as url:
        return run(store, url, recipients, chunk_size, workdir, checks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--chunk-size", type=int, default=100)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument(
        "--rate-limit", help="send-rate limit of the checked run, e.g. 1000000/s (set high)"
    )
    parser.add_argument(
        "--suppressed",
        type=float,
        default=0.0,
        help="share of suppressed addresses in the checked run, e.g. 0.1",
    )
    parser.add_argument("--rounds", type=int, default=1, help="pairs of runs per store")
    options = parser.parse_args()
    if not 0 <= options.suppressed < 1:
        parser.error("--suppressed is a fraction: 0 <= it < 1")
    checks = Checks(options.rate_limit, options.suppressed)
    harness.warn_if_busy()
    stores = [s for s in ("sqlite", "postgresql") if options.only in (None, s)]
    if "postgresql" in stores and not postgres_available():
        print(f"PostgreSQL not reachable at {POSTGRES_ADMIN}: skipped")
        stores.remove("postgresql")
    variants = [NO_CHECKS, checks] if checks.on else [NO_CHECKS]
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="contacthub-bench-") as tmp:
        workdir = Path(tmp)
        for store in stores:
            for round_ in range(options.rounds):
                # Alternate which variant goes first, so that a drift in the machine's load
                # does not favour one of them.
                order = variants if round_ % 2 == 0 else variants[::-1]
                for variant in order:
                    results.append(
                        measure(store, options.recipients, options.chunk_size, workdir, variant)
                    )
    print()
    print(
        f"{'store':<11} {'checks':<28} {'recipients':>10} {'import rows/s':>13} {'send s':>8} "
        f"{'messages/s':>10} {'CPU ms/msg':>10} {'peak RSS MiB':>12} {'sent':>6} {'skipped':>7} "
        f"{'received':>8}  valid"
    )
    for r in results:
        print(
            f"{r.store:<11} {r.checks.label():<28} {r.recipients:>10} "
            f"{r.recipients / r.import_seconds:>13.0f} {r.send_seconds:>8.1f} {r.rate:>10.0f} "
            f"{r.cpu_ms:>10.2f} "
            f"{r.peak_rss_kib / 1024:>12.1f} {r.sent:>6} {r.skipped_suppressed:>7} "
            f"{r.received:>8}  {'yes' if r.valid else 'NO'}"
        )
    if checks.on:
        print()
        for store in stores:
            ratios, cpu_ratios = [], []
            for round_ in range(options.rounds):
                pair = [r for r in results if r.store == store][2 * round_ : 2 * round_ + 2]
                without = next(r for r in pair if not r.checks.on)
                with_checks = next(r for r in pair if r.checks.on)
                ratios.append(with_checks.rate / without.rate)
                cpu_ratios.append(without.cpu_ms / with_checks.cpu_ms)
            listed = " ".join(f"{ratio:.3f}" for ratio in ratios)
            print(
                f"{store}: messages/s with {checks.label()} / without = "
                f"{statistics.median(ratios):.3f} (median of {len(ratios)}: {listed}; goal >= 0.90)"
            )
            # CPU time per message of the send process: what the checks cost it, much less
            # disturbed by other load on the machine than wall time (the database server's
            # own work on PostgreSQL is not in it).
            listed = " ".join(f"{ratio:.3f}" for ratio in cpu_ratios)
            print(
                f"{store}: CPU ms per message without / with = "
                f"{statistics.median(cpu_ratios):.3f} (median of {len(cpu_ratios)}: {listed})"
            )
    return 0 if all(r.valid for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
