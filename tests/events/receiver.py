"""A real webhook receiver for tests: an HTTP server on loopback, in a thread.

Each call is recorded (headers, body, what it was answered) in arrival order. What it answers
is scripted: `plan` (a queue of modes, taken one per call) and then `default`. Modes: `ok`
(200), `fail` (500), `slow` (waits `slow_seconds`, longer than the hub's timeout, then 503).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from contacthub.events import signing

STATUS = {"ok": 200, "fail": 500, "slow": 503}


@dataclass(frozen=True)
class Received:
    """One call as the receiver saw it."""

    headers: dict[str, str]
    body: bytes
    mode: str
    at: float

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def ok(self) -> bool:
        return self.mode == "ok"

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    def verifies(self, secret: str) -> bool:
        return signing.verify(
            secret,
            self.headers["webhook-id"],
            self.headers["webhook-timestamp"],
            self.body,
            self.headers["webhook-signature"],
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A hub killed (or timing out) mid-call resets its connection: expected here.
        pass


class Receiver:
    def __init__(
        self, default: str = "ok", slow_seconds: float = 1.0, ok_seconds: float = 0.0
    ) -> None:
        self.default = default
        self.slow_seconds = slow_seconds
        # How long a successful answer takes (a receiver doing some work).
        self.ok_seconds = ok_seconds
        self.plan: deque[str] = deque()
        self.calls: list[Received] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.lock:
                    mode = receiver.plan.popleft() if receiver.plan else receiver.default
                    receiver.calls.append(
                        Received(
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            mode,
                            time.monotonic(),
                        )
                    )
                if mode == "slow":
                    time.sleep(receiver.slow_seconds)
                elif mode == "ok" and receiver.ok_seconds:
                    time.sleep(receiver.ok_seconds)
                try:
                    self.send_response(STATUS[mode])
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    pass  # the hub gave up on this call (timeout)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def received(self) -> list[Received]:
        with self.lock:
            return list(self.calls)

    def ok_ids(self) -> set[str]:
        return {call.id for call in self.received() if call.ok}

    def wait_for(self, ids: set[str], timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ids <= self.ok_ids():
                return True
            time.sleep(0.02)
        return False


@contextmanager
def receiving(
    default: str = "ok", slow_seconds: float = 1.0, ok_seconds: float = 0.0
) -> Iterator[Receiver]:
    receiver = Receiver(default, slow_seconds, ok_seconds)
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        receiver.thread.join(10)


def assert_in_order_per_contact(calls: list[Received], order: dict[str, list[str]]) -> None:
    """No call of a contact's event arrived before each earlier event of that contact was
    answered 2xx (`order`: contact -> its event ids, oldest first)."""
    position = {
        event: (contact, n) for contact, events in order.items() for n, event in enumerate(events)
    }
    acknowledged: dict[str, set[int]] = {contact: set() for contact in order}
    for call in calls:
        if call.id not in position:
            continue
        contact, n = position[call.id]
        missing = set(range(n)) - acknowledged[contact]
        assert not missing, f"event {n} of contact {contact} arrived before {sorted(missing)}"
        if call.ok:
            acknowledged[contact].add(n)
