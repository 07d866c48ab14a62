"""The SMTP listener for the bounce domain: `contacthub bounces serve` (aiosmtpd).

Point the bounce domain's MX at this server (port 25 forwarded to `bounce_smtp_port`), and DSNs
and feedback reports come straight to the hub, addressed to each copy's VERP return path. The
listener:

- accepts recipients of the bounce domain only (`550 5.7.1` for any other: it relays nothing);
- reads and records each message (bounces/dsn.py) in its own unit of work, and answers
  `250` only after that commit, so a report it acknowledged is never lost;
- answers `451 4.3.0` when it cannot record the message (the database is down, …): the
  reporting server keeps it and tries again later, as SMTP servers do;
- accepts and lists (as a rejection) what is not a bounce or cannot be read: refusing it would
  only make the reporting server bounce the bounce.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from contacthub.bounces.dsn import record_messages
from contacthub.email.hashing import LinkSigner
from contacthub.errors import InvalidInput
from contacthub.settings import Settings
from contacthub.storage.database import Database

log = logging.getLogger(__name__)

SOURCE = "smtp"
MAX_MESSAGE_BYTES = 10 * 1024 * 1024  # DSNs are small; a returned original rarely is large
RECORDED = "250 2.0.0 Recorded"
NOT_OURS = "550 5.7.1 Relaying denied: this server only takes mail for the bounce domain"
TRY_LATER = "451 4.3.0 Cannot record the report now; try again later"


class BounceHandler:
    """aiosmtpd handler: RCPT for the bounce domain only; DATA recorded before it is answered."""

    def __init__(self, database: Database, settings: Settings, signer: LinkSigner) -> None:
        if not settings.bounce_domain:
            raise InvalidInput(
                "Set CONTACTHUB_BOUNCE_DOMAIN: the listener only takes mail for the bounce domain.",
                code="bounce_domain_not_configured",
            )
        self.database = database
        self.settings = settings
        self.signer = signer
        self.domain = settings.bounce_domain.strip().lower().rstrip(".")

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        domain = address.rpartition("@")[2].strip().lower().rstrip(".")
        if domain != self.domain:
            return NOT_OURS
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        raw = raw if isinstance(raw, bytes) else str(raw or "").encode("utf-8", "surrogateescape")
        recipients = list(envelope.rcpt_tos)
        try:
            await asyncio.to_thread(self._record, raw, recipients)
        except Exception:
            # Whatever went wrong, the report is not stored: the sending server must keep it.
            log.exception("Recording a report received by SMTP failed; answered 451")
            return TRY_LATER
        return RECORDED

    def _record(self, raw: bytes, recipients: Sequence[str]) -> None:
        with self.database.write() as session:
            record_messages(
                session,
                [raw],
                source=SOURCE,
                signer=self.signer,
                settings=self.settings,
                envelope_recipients=recipients,
            )


def listener(
    database: Database,
    settings: Settings,
    signer: LinkSigner,
    *,
    host: str | None = None,
    port: int | None = None,
) -> Controller:
    """The listener, not started yet (`start()`, `stop()`); binds the settings' host and port."""
    handler = BounceHandler(database, settings, signer)
    return Controller(
        handler,
        hostname=host or settings.bounce_smtp_host,
        port=port or settings.bounce_smtp_port,
        data_size_limit=MAX_MESSAGE_BYTES,
        ident="contacthub bounce listener",
    )
