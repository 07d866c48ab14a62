"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives.

It can refuse chosen recipients with a given reply (e.g. `550 5.1.1 No such user`), or answer
them a few times with given replies and then accept (`451 4.3.0 Try again later`, twice), and
run a hook on each message before answering it (to kill a sender mid-run). It offers PIPELINING
(RFC 2920), as production servers do, so that the sending tests go through the pipelined path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from typing import Any, cast

from aiosmtpd.controller import Controller

from tests.servers import free_port

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    """One message as the server got it."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes


@dataclass
class SmtpServer:
    """What the tests see of the server."""

    port: int
    refuse: dict[str, str] = field(default_factory=dict)
    # Replies given to a recipient's next RCPTs, one each, before it is accepted.
    replies: dict[str, list[str]] = field(default_factory=dict)
    on_message: Callable[[Received], None] | None = None
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def recipients(self) -> list[str]:
        """Every recipient of every message, in the order received."""
        with self.lock:
            return [rcpt for item in self.received for rcpt in item.rcpt_tos]

    def messages_to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [item.message for item in self.received if address in item.rcpt_tos]


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        # aiosmtpd reads pipelined commands in order but does not advertise it.
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        reply = self.server.refuse.get(address.lower())
        if reply is not None:
            return reply
        with self.server.lock:
            queued = self.server.replies.get(address.lower())
            if queued:
                return queued.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = bytes(envelope.content)
        message = cast(EmailMessage, BytesParser(policy=default).parsebytes(raw))
        item = Received(envelope.mail_from, list(envelope.rcpt_tos), message, raw)
        with self.server.lock:
            self.server.received.append(item)
        if self.server.on_message is not None:
            self.server.on_message(item)
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server() -> Iterator[SmtpServer]:
    """An SMTP server on a free loopback port, stopped afterwards."""
    server = SmtpServer(port=free_port())
    controller = Controller(_Handler(server), hostname=HOST, port=server.port, enable_SMTPUTF8=True)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()
