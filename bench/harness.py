"""Reusable pieces of contacthub's benchmarks: servers, wrk, memory and CPU accounting.

A benchmark starts a server pinned to one core, waits until it answers, loads it with wrk pinned
to another core, reads its peak memory and stops it. The two cores keep the load generator from
stealing CPU time from the server, so requests per second measure the server alone.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

SERVER_CPU = 0
WRK_CPU = 1
RESULT_MARKER = "BENCH_RESULT "
WRK_INSTALL = ["apt-get", "install", "-y", "wrk"]
POSTGRESQL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# Above this load average something else runs: figures drop and scatter.
QUIET_LOAD = 0.5


@dataclass
class Server:
    """A server process started by `start_server`."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's output, to show why it failed."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class WrkResult:
    """What one wrk run measured, from the JSON its Lua `done()` prints."""

    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]
    socket_errors: dict[str, int]
    # CPU that processes other than wrk and the server used meanwhile, in cores (0.5 = half of
    # one): anything well above zero means the machine was not quiet and the figures are low.
    others_cpu: float
    # CPU seconds the server, and the processes it relies on (its database server), used
    # meanwhile. Per request it hardly moves with the machine's load, unlike requests per second.
    server_cpu_s: float
    helpers_cpu_s: float
    cpu_window_s: float  # wall time over which CPU was sampled: wrk's run, start to exit
    output: str = field(repr=False)

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def cpu_per_request_us(self) -> float:
        """CPU microseconds the server spent per answered request."""
        return self.server_cpu_s / self.requests * 1e6 if self.requests else 0.0

    @property
    def server_load(self) -> float:
        """Share of its one core the server used: near 1, it is CPU-bound; well below, it waits."""
        return self.server_cpu_s / self.cpu_window_s if self.cpu_window_s else 0.0

    @property
    def helpers_cpu_per_request_us(self) -> float:
        """CPU microseconds the helpers (the database server) spent per answered request."""
        return self.helpers_cpu_s / self.requests * 1e6 if self.requests else 0.0

    @property
    def ok(self) -> int:
        """Responses with a 2xx status."""
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def failed(self) -> int:
        """Non-2xx responses plus connect, read, write and timeout errors."""
        non_2xx = sum(self.statuses.values()) - self.ok
        return non_2xx + sum(self.socket_errors.values())

    @property
    def failure_rate(self) -> float:
        attempts = sum(self.statuses.values()) + sum(self.socket_errors.values())
        return self.failed / attempts if attempts else 1.0


def ensure_wrk() -> str:
    """The path of wrk; installs it with apt-get when missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    command = " ".join(WRK_INSTALL)
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit(f"wrk is not installed. Install it with: sudo {command}")
    print(f"wrk is not installed; running: {command}", file=sys.stderr)
    if subprocess.run(WRK_INSTALL, check=False).returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update"], check=True)
        subprocess.run(WRK_INSTALL, check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit(f"wrk is still missing after `{command}`.")
    return found


def free_port() -> int:
    """A port nobody listens on; the kernel picks it at random among the free ones."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_server(
    name: str,
    cmd: Sequence[str],
    *,
    env: Mapping[str, str],
    port: int,
    cpu: int | str = SERVER_CPU,
    log: Path,
) -> Server:
    """Start `cmd` (which must listen on `port`) pinned to one CPU (or a `taskset` list such as
    "0-3"), output going to `log`."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["taskset", "-c", str(cpu), *cmd],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            # Its own process group, so `stop` reaches any worker it forks.
            start_new_session=True,
        )
    return Server(name=name, process=process, port=port, log=log)


def request(
    port: int,
    method: str,
    path: str,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """One HTTP request to 127.0.0.1:`port`; returns the status and the body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, headers=dict(headers or {}))
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def wait_ready(server: Server, path: str = "/health", timeout: float = 60.0) -> None:
    """Block until `server` answers GET `path` with 2xx; fail early if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with status {server.process.returncode}:\n"
                f"{server.log_tail()}"
            )
        try:
            status, _ = request(server.port, "GET", path, timeout=2)
            if 200 <= status < 300:
                return
        except OSError:  # not listening yet
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} did not answer {path} within {timeout:.0f} s")


def stop(server: Server, timeout: float = 30.0) -> None:
    """Stop `server` and its children: SIGTERM (graceful), then SIGKILL after `timeout`."""
    if server.process.poll() is not None:
        return
    try:
        os.killpg(server.process.pid, signal.SIGTERM)
        server.process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
    except ProcessLookupError:
        pass


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    tree = [pid]
    for member in tree:  # grows while we walk it
        for task in Path(f"/proc/{member}/task").glob("*"):
            try:
                tree += [int(child) for child in (task / "children").read_text().split()]
            except OSError:
                continue  # the task ended meanwhile
    return tree


def peak_rss(pid: int) -> int:
    """Peak resident memory (VmHWM) in KiB, summed over `pid` and its descendants.

    A sum, because a supervisor and its workers are all resident at once; with one process it is
    just that process's peak. Read it before stopping the server: /proc forgets exited processes.
    """
    total = 0
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return total


def filesystem_type(path: Path) -> str:
    """The type of the filesystem holding `path` (ext4, tmpfs, ...), from /proc/mounts."""
    best, kind = "", "unknown"
    target = str(path.resolve())
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount_point, fs_type, *_ = line.split()
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        # The longest mount point containing the path is the one that holds it.
        if inside and len(mount_point) >= len(best):
            best, kind = mount_point, fs_type
    return kind


def postmaster_pid() -> int | None:
    """The local PostgreSQL server's main process, whose children serve every connection."""
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            comm = (entry / "comm").read_text().strip()
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            parent_comm = Path(f"/proc/{parent}/comm").read_text().strip() if parent else ""
        except (OSError, ValueError, IndexError):
            continue
        if comm == "postgres" and parent_comm != "postgres":
            return int(entry.name)
    return None


def _busy_cpu_seconds() -> float:
    """CPU time the whole machine has spent busy since boot (all but idle and iowait)."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    # Steal is time the hypervisor gave to other machines: interference too.
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _tree_cpu_seconds(pid: int) -> float:
    """CPU time used so far by `pid` and its descendants."""
    ticks = 0
    for member in process_tree(pid):
        try:
            stat = Path(f"/proc/{member}/stat").read_text()
        except OSError:
            continue
        # Fields after the command name, which is in parentheses and may hold spaces.
        fields = stat.rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _children_cpu_seconds() -> float:
    """CPU time of our finished children (wrk, once `run_wrk` has waited for it)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class _CpuSample:
    """CPU seconds used so far by the machine, our waited children (wrk), server and helpers."""

    machine: float
    children: float
    server: float
    helpers: float

    @classmethod
    def take(cls, server_pid: int, helpers: Sequence[int]) -> _CpuSample:
        return cls(
            _busy_cpu_seconds(),
            _children_cpu_seconds(),
            _tree_cpu_seconds(server_pid),
            sum(_tree_cpu_seconds(pid) for pid in helpers),
        )

    def others_since(self, before: _CpuSample) -> float:
        """CPU seconds that neither wrk, the server nor its helpers used since `before`."""
        ours = self.children + self.server + self.helpers
        return (self.machine - before.machine) - (
            ours - before.children - before.server - before.helpers
        )


def lua_string(text: str) -> str:
    """`text` as a Lua long-bracket literal, which needs no escaping."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


# Each wrk thread has its own Lua state: `response()` counts statuses per thread and `done()`
# (run once, in the main state) sums them through the thread handles kept by `setup()`.
_COUNTING_LUA = f"""
local threads = {{}}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {{}}
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {{}}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + n
    end
  end
  local parts = {{}}
  for status, n in pairs(counts) do
    table.insert(parts, string.format('"%d": %d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    '{RESULT_MARKER}{{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
    .. '"statuses": {{%s}}, "socket_errors": {{"connect": %d, "read": %d, "write": %d, '
    .. '"timeout": %d}}}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    table.concat(parts, ", "), e.connect, e.read, e.write, e.timeout))
end
"""


def wrk_script(method: str, headers: Mapping[str, str], body: str | None = None) -> str:
    """A wrk Lua script sending one fixed request and reporting statuses and latency as JSON."""
    lines = [f"wrk.method = {lua_string(method)}"]
    if body is not None:
        lines.append(f"wrk.body = {lua_string(body)}")
    lines += [f"wrk.headers[ {lua_string(k)} ] = {lua_string(v)}" for k, v in headers.items()]
    return "\n".join(lines) + "\n" + _COUNTING_LUA


def run_wrk(
    url: str,
    lua_script: str,
    *,
    duration: float,
    connections: int,
    threads: int = 2,
    cpu: int = WRK_CPU,
    serving: Sequence[int],
) -> WrkResult:
    """Load `url` with wrk for `duration` seconds, pinned to `cpu`, and parse its report.

    `serving` are the processes doing the work under test, each with its descendants: first the
    server, then those it relies on (its database server). Their CPU time is measured, and that
    of every other process as interference.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-") as script:
        script.write(lua_script)
        script.flush()
        command = [
            *("taskset", "-c", str(cpu), ensure_wrk()),
            *(f"--threads={threads}", f"--connections={connections}"),
            *(f"--duration={max(1, round(duration))}s", "--latency"),
            # A slow answer is a latency to measure, not an error (wrk's default is 2 s).
            *("--timeout=10s", f"--script={script.name}", url),
        ]
        started, before = time.monotonic(), _CpuSample.take(serving[0], serving[1:])
        finished = subprocess.run(command, capture_output=True, text=True, check=False)
        elapsed, after = time.monotonic() - started, _CpuSample.take(serving[0], serving[1:])
    # wrk exits 0 even when the script fails, and then sends its default GET instead.
    if finished.returncode != 0 or finished.stderr.strip():
        raise RuntimeError(f"wrk failed ({finished.returncode}): {finished.stderr.strip()}")
    for line in finished.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            data = json.loads(line.removeprefix(RESULT_MARKER))
            break
    else:
        raise RuntimeError(f"wrk printed no result line:\n{finished.stdout}{finished.stderr}")
    return WrkResult(
        requests=data["requests"],
        duration_s=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1e3,
        p99_ms=data["p99_us"] / 1e3,
        statuses={int(status): n for status, n in data["statuses"].items()},
        socket_errors=data["socket_errors"],
        others_cpu=max(0.0, after.others_since(before)) / elapsed,
        server_cpu_s=after.server - before.server,
        helpers_cpu_s=after.helpers - before.helpers,
        cpu_window_s=elapsed,
        output=finished.stdout,
    )


def add_settings(parser: argparse.ArgumentParser) -> None:
    """The `--set NAME=VALUE` option: hub settings for the measured hubs (`settings_env`)."""
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a hub setting for the measured hubs, e.g. rollup_interval=3600; repeatable",
    )


def settings_env(args: argparse.Namespace) -> dict[str, str]:
    """The hub settings given with --set NAME=VALUE, as environment variables."""
    env = {}
    for setting in args.set:
        name, _, value = setting.partition("=")
        env[f"CONTACTHUB_{name.strip().upper()}"] = value
    return env


def add_postgresql_url(parser: argparse.ArgumentParser) -> None:
    """The `--postgresql-url` option every benchmark on PostgreSQL takes."""
    parser.add_argument(
        "--postgresql-url",
        default=POSTGRESQL_URL,
        help="server where the bench database is created (and dropped)",
    )


def _unwind(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def unwind_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so `with` blocks stop servers and drop databases."""
    signal.signal(signal.SIGTERM, _unwind)


def warn_if_busy() -> None:
    """Say so when the machine is not idle: other processes take CPU from the measurement."""
    load = os.getloadavg()[0]
    if load > QUIET_LOAD:
        print(f"warning: load average {load:.2f}: the machine is not idle.", file=sys.stderr)


def print_table(lines: Sequence[Sequence[str]]) -> None:
    """Rows of cells (the first one the header) as aligned columns."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
