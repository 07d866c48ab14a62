"""Sending email behind a small interface (after PyPI Warehouse's `warehouse/email/interfaces`).

`Mailer` is what the sending service depends on; `SmtpMailer` talks to a real SMTP server over
one connection kept open across sends, and `MemoryMailer` keeps messages in a list (dry runs).

Failures are a `SendError` with `permanent` telling whether trying this message again can help:
5xx answers (unknown mailbox, rejected content) are permanent; 4xx answers, timeouts and
dropped connections are not. `MailerUnavailable`, a `SendError`, means the server cannot be
reached or refuses our credentials: nothing is wrong with the message, so a sending run should
stop and resume later instead of marking every remaining recipient failed.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime, make_msgid
from types import TracebackType
from typing import Literal, Protocol

from contacthub.email.compose import Recipient, RenderedEmail

TlsMode = Literal["none", "starttls", "ssl"]


class SendError(Exception):
    """A message was not sent. `permanent`: sending it again will fail the same way."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class MailerUnavailable(SendError):
    """The server cannot be reached, or refuses to log us in; the message itself is fine."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, permanent=False)


class Mailer(Protocol):
    """Something that sends email messages."""

    def send(self, message: EmailMessage, *, envelope_from: str | None = None) -> None:
        """Send one message, or raise `SendError`.

        `envelope_from` is the envelope sender (SMTP MAIL FROM, the Return-Path the receiver
        writes, where bounces go); None: the message's From address.
        """
        ...


class MemoryMailer:
    """A mailer that keeps what it is given (dry runs, tests)."""

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []
        self.envelope_froms: list[str | None] = []

    def send(self, message: EmailMessage, *, envelope_from: str | None = None) -> None:
        """Keep the message and its envelope sender."""
        self.sent.append(message)
        self.envelope_froms.append(envelope_from)


# --- Building messages -----------------------------------------------------------------------

# The providers' metadata headers carry JSON that their parsers may not unfold: kept whole too.
_UNFOLDED_HEADERS = frozenset(
    {"list-unsubscribe", "list-unsubscribe-post", "x-smtpapi", "x-mailgun-variables"}
)


class _MailPolicy(EmailPolicy):
    """The SMTP policy, but List-Unsubscribe and the JSON metadata headers are written whole.

    The standard policy folds a header at 78 characters and, to do so, turns a long URL with no
    space in it into RFC 2047 encoded words, which no mail client reads as a URL any more. RFC
    5322 allows lines up to 998 characters; our values are ASCII and far shorter.
    """

    def fold(self, name: str, value: str) -> str:
        if name.lower() in _UNFOLDED_HEADERS and value.isascii():
            return f"{name}: {value}{self.linesep}"
        return str(super().fold(name, value))  # typeshed leaves this untyped

    def fold_binary(self, name: str, value: str) -> bytes:
        if name.lower() in _UNFOLDED_HEADERS and value.isascii():
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


MAIL_POLICY = _MailPolicy(linesep="\r\n")


def _transfer_encoding(body: str) -> str | None:
    """7bit where RFC 5322 allows it (ASCII, lines up to 998 characters); else the default.

    The default picks quoted-printable for any line over 78 characters, which email HTML nearly
    always has, and Python's quoted-printable encoder is the slowest step of building a message.
    """
    if body.isascii() and all(len(line) <= 998 for line in body.splitlines()):
        return "7bit"
    return None  # quoted-printable or base64, whichever the email package finds shorter


def _display_name(recipient: Recipient) -> str:
    names = (recipient.first_name or "", recipient.last_name or "")
    return " ".join(" ".join(name.split()) for name in names if name.strip())


def build_message(
    rendered: RenderedEmail,
    sender_name: str,
    sender_email: str,
    recipient: Recipient,
    *,
    message_id: str | None = None,
    date: datetime | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    """A multipart/alternative message (plain text, then HTML) for one recipient.

    From carries the sender's display name, To the recipient's names when known. Message-ID is
    made in the sender's domain unless given. `extra_headers` are added after the rendered
    ones (the delivery's references, `sending.delivery_headers`). ValueError when an address
    cannot be used.
    """
    message = EmailMessage(policy=MAIL_POLICY)
    try:
        message["From"] = Address(display_name=sender_name.strip(), addr_spec=sender_email.strip())
        message["To"] = Address(
            display_name=_display_name(recipient), addr_spec=recipient.email.strip()
        )
    except (ValueError, IndexError, MessageError) as error:  # what the address parser raises
        raise ValueError(f"unusable address: {error}") from error
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(date or datetime.now(UTC))
    domain = sender_email.strip().rpartition("@")[2] or None
    message["Message-ID"] = message_id or make_msgid(domain=domain)
    for name, value in rendered.headers.items():
        message[name] = value
    for name, value in (extra_headers or {}).items():
        message[name] = value
    message.set_content(rendered.text, cte=_transfer_encoding(rendered.text))
    message.add_alternative(rendered.html, subtype="html", cte=_transfer_encoding(rendered.html))
    return message


# --- SMTP ------------------------------------------------------------------------------------


def _permanent(code: int) -> bool:
    return 500 <= code < 600


def _decode(text: bytes | str) -> str:
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else text


class SmtpMailer:
    """Sends through an SMTP server on one connection, opened on first use and reused.

    When the server has dropped the connection (idle timeout, restart), the next send
    reconnects and tries once more. Use as a context manager, or call `close`.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: TlsMode = "none",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """`tls`: "none", "starttls" (upgrade a plain connection) or "ssl" (TLS from the start)."""
        if tls not in ("none", "starttls", "ssl"):
            raise ValueError(f"tls must be none, starttls or ssl, not {tls!r}")
        self.host = host
        self.port = port
        self.tls = tls
        self.username = username
        self.password = password
        self.timeout = timeout
        self.ssl_context = ssl_context
        self._connection: smtplib.SMTP | None = None
        self.connections_opened = 0  # for progress reports and tests

    def __enter__(self) -> SmtpMailer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Say QUIT and close the connection, if one is open."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.quit()
        except (smtplib.SMTPException, OSError):
            connection.close()

    def _connect(self) -> smtplib.SMTP:
        context = self.ssl_context or ssl.create_default_context()
        connection: smtplib.SMTP
        try:
            if self.tls == "ssl":
                connection = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=context
                )
            else:
                connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        except (OSError, smtplib.SMTPException) as error:
            raise MailerUnavailable(
                f"cannot connect to {self.host}:{self.port}: {error}"
            ) from error
        try:
            connection.ehlo()
            if self.tls == "starttls":
                connection.starttls(context=context)
                connection.ehlo()
            if self.username:
                connection.login(self.username, self.password or "")
        except smtplib.SMTPAuthenticationError as error:
            connection.close()
            raise MailerUnavailable(
                f"login refused: {error.smtp_code} {_decode(error.smtp_error)}"
            ) from error
        except (OSError, smtplib.SMTPException) as error:
            connection.close()
            raise MailerUnavailable(
                f"cannot set up the session with {self.host}:{self.port}: {error}"
            ) from error
        self.connections_opened += 1
        return connection

    def send(self, message: EmailMessage, *, envelope_from: str | None = None) -> None:
        """Send one message; `SendError` (or `MailerUnavailable`) when it was not accepted.

        `envelope_from` goes in MAIL FROM (the VERP return path); None: the From address.
        """
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = self._connect()
            try:
                refused = self._connection.send_message(message, from_addr=envelope_from)
            except (smtplib.SMTPServerDisconnected, ConnectionError) as error:
                # The server dropped us, most often after an idle timeout, before it accepted
                # the message: reconnect and try once more.
                self._drop()
                if attempt == 2:
                    raise SendError(f"connection lost: {error}", permanent=False) from error
                continue
            except smtplib.SMTPRecipientsRefused as error:
                raise _refused(error.recipients) from error
            except smtplib.SMTPResponseException as error:
                # SMTPSenderRefused, SMTPDataError and the rest carry the server's answer.
                if error.smtp_code == 421:
                    # "Closing the channel", also what a server says when it timed an idle
                    # connection out; the message was not taken: reconnect, try once more.
                    self._drop()
                    if attempt == 1:
                        continue
                text = f"{error.smtp_code} {_decode(error.smtp_error)}"
                raise SendError(text, permanent=_permanent(error.smtp_code)) from error
            except smtplib.SMTPNotSupportedError as error:
                # e.g. a non-ASCII address and a server without SMTPUTF8: it will not change.
                raise SendError(str(error), permanent=True) from error
            except (smtplib.SMTPException, OSError) as error:
                self._drop()
                raise SendError(f"SMTP failure: {error}", permanent=False) from error
            if refused:
                # Some recipients of a multi-recipient message were refused, the rest accepted.
                raise _refused(refused)
            return

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def _refused(recipients: dict[str, tuple[int, bytes]]) -> SendError:
    parts = [f"{address}: {code} {_decode(text)}" for address, (code, text) in recipients.items()]
    permanent = all(_permanent(code) for code, _ in recipients.values())
    return SendError("recipient refused: " + "; ".join(parts), permanent=permanent)
