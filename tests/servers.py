"""Real hub servers for tests: start `contacthub serve` on a free port, stop it, kill it.

The server is the console script of the virtualenv running the tests, started exactly as a user
starts it (migrations applied on start). It binds 127.0.0.1 only. Its output goes to a log file
whose tail is shown when it fails to start.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
TEST_SECRET = "test-secret-for-servers"
PORT_ATTEMPTS = 3


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def contacthub_command() -> Path:
    """The `contacthub` console script installed beside the running interpreter."""
    return Path(sys.executable).parent / "contacthub"


@dataclass
class HubServer:
    """A running `contacthub serve` process."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    log_offset: int = 0

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 40) -> str:
        """The last lines this server printed (the log file may hold earlier runs)."""
        with self.log_path.open("rb") as log:
            log.seek(self.log_offset)
            text = log.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the server and everything it started: no shutdown, no cleanup."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(STOP_TIMEOUT)

    def stop(self) -> int:
        """SIGTERM (a graceful shutdown, as a service manager does); kill if it hangs."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                return self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.wait(STOP_TIMEOUT)


def start_hub(
    database_url: str,
    log_path: Path,
    *,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
) -> HubServer:
    """Start `contacthub serve` on a free port and return once /health answers 200.

    With `port`, on that port instead (e.g. a hub restarted where its clients expect it); a
    port someone else holds is then an error, not a reason to pick another.
    """
    environment = {
        **os.environ,
        "CONTACTHUB_DATABASE_URL": database_url,
        "CONTACTHUB_SECRET_KEY": TEST_SECRET,
        # Never pick up a contacthub.toml lying in a working directory.
        "CONTACTHUB_CONFIG": str(log_path.with_suffix(".absent.toml")),
        **(env or {}),
    }
    attempts = PORT_ATTEMPTS if port is None else 1
    for attempt in range(attempts):
        server = _spawn(environment, port or free_port(), workers, log_path)
        try:
            _wait_until_healthy(server)
        except _PortTaken:
            # Another process took the port between free_port() and the bind: try another.
            if attempt + 1 < attempts:
                continue
            raise
        except BaseException:
            server.kill()
            raise
        return server
    raise AssertionError("unreachable")


class _PortTaken(RuntimeError):
    pass


def _spawn(environment: dict[str, str], port: int, workers: int, log_path: Path) -> HubServer:
    command = [
        str(contacthub_command()),
        "serve",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    ]
    with log_path.open("ab") as log:
        offset = log.tell()
        process = subprocess.Popen(
            command,
            env=environment,
            cwd=log_path.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group, so that kill() reaches the worker processes too.
            start_new_session=True,
        )
    return HubServer(process, port, log_path, offset)


def _wait_until_healthy(server: HubServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    with httpx2.Client(base_url=server.base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                if "address already in use" in server.log_tail().lower():
                    raise _PortTaken(server.log_tail())
                raise RuntimeError(
                    f"The hub exited with {server.process.returncode} on start:\n"
                    + server.log_tail()
                )
            try:
                if client.get("/health").status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            time.sleep(0.1)
    raise RuntimeError(f"The hub did not answer /health in {START_TIMEOUT} s:\n{server.log_tail()}")


@contextmanager
def running_hub(
    database_url: str,
    log_path: Path,
    *,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
) -> Iterator[HubServer]:
    """A hub running for the duration of a `with` block; stopped (or killed) at its end."""
    server = start_hub(database_url, log_path, workers=workers, env=env)
    try:
        yield server
    finally:
        server.stop()
