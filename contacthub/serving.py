"""How `contacthub serve` runs uvicorn: which proxies it believes, and the limits on requests.

uvicorn's httptools protocol (the fast one, used for the hot path) bounds neither the size of a
request's headers nor the time a client may take to send a request: a 64 MB header was read in
full, and a chunked body that never ends held its connection and its handler forever. h11's
`h11_max_incomplete_event_size` is h11's alone. So `serve` runs `BoundedHttpToolsProtocol`, the
same protocol with two limits enforced where the bytes arrive, before any handler runs:

- `max_header_bytes`: a request line and headers over it are answered 431 and the connection is
  closed, before httptools has buffered more than one read beyond the limit;
- `request_timeout`: a request whose head and body are not all received that many seconds after
  its first byte is answered 408 (or, if its answer has begun, its connection closed). Time the
  hub itself spends not reading (a slow handler, a pipelined request waiting its turn) is not
  counted against the client.

What they cost a request that fits: a few attribute updates, and one timer per connection, not
per request (it is re-armed only when it fires during a later request of the same connection).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from functools import partial
from typing import Any

import httptools
import msgspec
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from contacthub.settings import Settings

logger = logging.getLogger("contacthub.serving")
# Seconds a worker of `serve --workers N` has to answer the supervisor's health ping, and to
# finish starting. uvicorn's 5 s default killed workers that were merely slow: N workers importing
# the hub at once on a busy machine, or a worker whose answer to the ping waited behind a long
# request on a 10-million-activity store; the supervisor then restarted them in a loop.
WORKER_HEALTHCHECK_TIMEOUT = 60
_encode = msgspec.json.Encoder().encode


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header size limit and a request timeout."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        max_header_bytes: int,
        request_timeout: float,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.max_header_bytes = max_header_bytes
        self.request_timeout = request_timeout
        # True until the current request's head is parsed (also between requests).
        self.reading_head = True
        # Bytes received since the current request's head began (while `reading_head`).
        self.head_bytes = 0
        self.head_too_large = False
        # Loop time of the current request's first byte; None while no request is arriving.
        self.request_started: float | None = None
        self.deadline: asyncio.TimerHandle | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self.reading_head:
            HttpToolsProtocol.data_received(self, data)  # a body: the usual path
            return
        self.head_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # as uvicorn does
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if self.head_too_large:
                self._head_too_large()
            else:
                msg = "Invalid HTTP request received."
                self.logger.warning(msg)
                self.send_400_response(msg)
            return
        if self.reading_head and self.head_bytes > self.max_header_bytes:
            self._head_too_large()

    # The parser callbacks below run for every request: they call the base class directly,
    # which costs less than super() (the hot path's budget is counted in microseconds).

    def on_message_begin(self) -> None:
        HttpToolsProtocol.on_message_begin(self)
        self.request_started = started = self.loop.time()
        if self.deadline is None:
            self.deadline = self.loop.call_at(started + self.request_timeout, self._check_deadline)

    def on_headers_complete(self) -> None:
        # The bytes counted may include the start of the body, read with the head's end:
        # measure the head itself before refusing it.
        if self.head_bytes > self.max_header_bytes and self._head_size() > self.max_header_bytes:
            self.head_too_large = True
            raise HeadTooLarge  # stops the parser; data_received answers 431
        self.reading_head = False
        HttpToolsProtocol.on_headers_complete(self)

    def on_message_complete(self) -> None:
        HttpToolsProtocol.on_message_complete(self)
        self.request_started = None
        self.reading_head = True
        self.head_bytes = 0

    def _head_size(self) -> int:
        # The request line and every header line, as sent ("name: value\r\n").
        return len(self.url) + 16 + sum(len(n) + len(v) + 4 for n, v in self.headers)

    def _check_deadline(self) -> None:
        self.deadline = None
        started = self.request_started
        if started is None or self.transport.is_closing():
            return  # no request is arriving: the keep-alive timeout applies
        now = self.loop.time()
        if self.flow.read_paused:
            # The hub is not reading (flow control, a pipelined request waiting): not the
            # client's fault, so its clock restarts.
            self.request_started = started = now
        due = started + self.request_timeout
        if now < due:
            self.deadline = self.loop.call_at(due, self._check_deadline)
            return
        self._refuse(
            408,
            {
                "error": f"The request was not received within {self.request_timeout:g} s.",
                "code": "request_timeout",
            },
        )

    def _head_too_large(self) -> None:
        self._refuse(
            431,
            {
                "error": f"The request line and headers are over {self.max_header_bytes} bytes.",
                "code": "headers_too_large",
            },
        )

    def _refuse(self, status: int, body: dict[str, str]) -> None:
        """Answer `status` if nothing else is being answered on this connection, and close it."""
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if self.reading_head:
            # No handler has this request; `cycle` (if any) is the previous request's.
            answer = cycle is None or cycle.response_complete
        else:
            answer = not cycle.response_started
            if not cycle.response_complete:
                # The handler reads a disconnect and its answer goes nowhere.
                cycle.disconnected = True
                cycle.message_event.set()
        if answer:
            content = _encode(body)
            head = [STATUS_LINE[status]]
            for name, value in self.server_state.default_headers:
                head += [name, b": ", value, b"\r\n"]
            head += [
                b"content-type: application/json\r\n",
                b"content-length: %d\r\n" % len(content),
                b"connection: close\r\n\r\n",
            ]
            self.transport.write(b"".join(head) + content)
        logger.info("Closed a connection from %s: %s", self.client, body["error"])
        self.transport.close()


class HeadTooLarge(Exception):
    """Raised inside the parser to stop it at a head over the limit."""


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The options of `uvicorn.run` that come from the settings."""
    trusted = [str(ipaddress.ip_network(value, strict=False)) for value in settings.trusted_proxies]
    return {
        "http": partial(
            BoundedHttpToolsProtocol,
            max_header_bytes=settings.max_header_bytes,
            request_timeout=settings.request_timeout,
        ),
        # Off without trusted proxies: then no header may change the scheme or the client's
        # address, and the hot path skips the middleware altogether.
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted,
        "timeout_worker_healthcheck": WORKER_HEALTHCHECK_TIMEOUT,
    }
