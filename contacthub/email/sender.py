"""Sending email behind a small interface (after PyPI Warehouse's `warehouse/email/interfaces`).

`Mailer` is what the sending service depends on; `SmtpMailer` talks to a real SMTP server over
one connection kept open across sends (pipelining MAIL FROM, RCPT TO and DATA when the server
offers PIPELINING, RFC 2920), and `MemoryMailer` keeps messages in a list (dry runs).

A message is an `email.message.EmailMessage` or an `OutgoingMessage`: the bytes of a message and
its envelope, as `MessageBuilder` makes them for the many copies of one issue without an
`EmailMessage` each (building one is most of the cost of sending).

Failures are a `SendError` with `permanent` telling whether trying this message again can help:
5xx answers (unknown mailbox, rejected content) are permanent; 4xx answers, timeouts and
dropped connections are not. `MailerUnavailable`, a `SendError`, means the server cannot be
reached or refuses our credentials: nothing is wrong with the message, so a sending run should
stop and resume later instead of marking every remaining recipient failed.
"""

from __future__ import annotations

import binascii
import contextlib
import copy
import random
import re
import smtplib
import ssl
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email import quoprimime
from email.errors import MessageError
from email.generator import BytesGenerator
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import EmailPolicy
from email.utils import format_datetime, getaddresses, make_msgid
from io import BytesIO
from types import TracebackType
from typing import Literal, Protocol, cast

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


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message ready for SMTP: its bytes (CRLF line ends) and its envelope.

    `from_addr`: the From address (the envelope sender unless the mailer is given another);
    `to_addrs`: the envelope recipients; `smtputf8`: an address is not ASCII, so the server must
    offer SMTPUTF8 (the headers then carry UTF-8 too).
    """

    data: bytes
    from_addr: str
    to_addrs: tuple[str, ...]
    smtputf8: bool = False

    def as_bytes(self) -> bytes:
        """The message as sent (before SMTP's dot-stuffing)."""
        return self.data

    def parsed(self) -> EmailMessage:
        """The message parsed back by the email package (dry runs, tests)."""
        return cast(EmailMessage, BytesParser(policy=MAIL_POLICY).parsebytes(self.data))


def outgoing(message: EmailMessage | OutgoingMessage) -> OutgoingMessage:
    """An `EmailMessage` as smtplib's `send_message` would send it: the envelope from its
    Sender or From, To, Cc and Bcc headers, Bcc left out, UTF-8 headers for non-ASCII addresses."""
    if isinstance(message, OutgoingMessage):
        return message
    sender = message["Sender"] if "Sender" in message else message["From"]
    from_addr = getaddresses([str(sender)])[0][1]
    fields = [str(message[name]) for name in ("To", "Bcc", "Cc") if message[name] is not None]
    to_addrs = tuple(address for _, address in getaddresses(fields))
    international = not "".join((from_addr, *to_addrs)).isascii()
    without_bcc = copy.copy(message)  # `del` gives the copy its own header list
    del without_bcc["Bcc"]
    # What smtplib does for SMTPUTF8 (typeshed types `clone` without the policy's fields).
    policy = message.policy.clone(utf8=True) if international else message.policy  # type: ignore[call-arg]
    with BytesIO() as buffer:
        BytesGenerator(buffer, policy=policy).flatten(without_bcc, linesep="\r\n")
        data = buffer.getvalue()
    return OutgoingMessage(data, from_addr, to_addrs, smtputf8=international)


class Mailer(Protocol):
    """Something that sends email messages."""

    def send(
        self, message: EmailMessage | OutgoingMessage, *, envelope_from: str | None = None
    ) -> None:
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

    def send(
        self, message: EmailMessage | OutgoingMessage, *, envelope_from: str | None = None
    ) -> None:
        """Keep the message (an `OutgoingMessage` parsed back) and its envelope sender."""
        if isinstance(message, OutgoingMessage):
            message = message.parsed()
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


# --- Building many copies of one issue -------------------------------------------------------

# A header value written as is, when its line fits in 78 characters: printable ASCII words
# separated by single spaces, nothing that looks like an RFC 2047 encoded word. Anything else
# goes through the email package's folding, as `build_message` does.
_PLAIN_VALUE = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")
# A display name written as is in To: atoms only (no dots, quotes or other specials).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_QP_CACHE_LINES = 2_000
_MAX_LINE = 78  # MAIL_POLICY.max_line_length: where set_content starts encoding


def _header_line(name: str, value: str | Address) -> bytes:
    """One header as `build_message` writes it (see `_MailPolicy`), cheaply when it is plain."""
    if isinstance(value, str):
        if name.lower() in _UNFOLDED_HEADERS and value.isascii() and _PLAIN_VALUE.fullmatch(value):
            return f"{name}: {value}\r\n".encode("ascii")
        if (
            len(name) + 2 + len(value) <= _MAX_LINE
            and _PLAIN_VALUE.fullmatch(value)
            and "=?" not in value
        ):
            return f"{name}: {value}\r\n".encode("ascii")
    # Parsed and folded by the email package: validation (no line breaks) and RFC 2047 included.
    header = MAIL_POLICY.header_store_parse(name, value)[1]
    return MAIL_POLICY.fold_binary(name, header)


def _to_line(to: Address) -> bytes:
    name, address = to.display_name, to.addr_spec
    line = f"To: {name} <{address}>" if name else f"To: {address}"
    if (
        len(line) <= _MAX_LINE
        and (not name or (_PLAIN_NAME.fullmatch(name) and "=?" not in name))
        and _PLAIN_VALUE.fullmatch(address)
        and not address.startswith('"')
    ):
        return (line + "\r\n").encode("ascii")
    return _header_line("To", to)


def _boundary() -> str:
    # The email package's form of boundary (generator.Generator._make_boundary).
    # Not a secret: only unlikely to occur in the body (which is checked).
    token = random.randrange(sys.maxsize)  # noqa: S311
    return "=" * 15 + f"{token:0{len(repr(sys.maxsize - 1))}d}" + "=="


class MessageBuilder:
    """Builds the copies of one issue from the same sender as bytes, each what `build_message`
    would make for it (the same headers, MIME structure and transfer encodings), at a fraction
    of the cost: no `EmailMessage` per copy, and what every copy shares made once.

    The From header and the multipart boundary are made once (a copy whose body happens to
    contain the boundary gets a fresh one). A copy with a non-ASCII address is made by
    `build_message` (it needs SMTPUTF8 and UTF-8 headers; rare).
    """

    def __init__(self, sender_name: str, sender_email: str) -> None:
        self.sender_name = sender_name
        self.sender_email = sender_email
        self._from: Address | None = None
        self._from_line = b""
        self._from_error: ValueError | None = None
        try:
            self._from = Address(display_name=sender_name.strip(), addr_spec=sender_email.strip())
            self._from_line = _header_line("From", self._from)
        except (ValueError, IndexError, MessageError) as error:
            self._from_error = ValueError(f"unusable address: {error}")
        self._boundary = _boundary()
        # Quoted-printable encodes each line on its own, and most lines are the same in every
        # copy: each line's encoding is kept (until there are many: the personal lines).
        self._qp_lines: dict[bytes, str] = {}

    def _qp(self, line: bytes) -> str:
        encoded = self._qp_lines.get(line)
        if encoded is None:
            if len(self._qp_lines) >= _QP_CACHE_LINES:
                self._qp_lines.clear()
            encoded = quoprimime.body_encode(line.decode("latin-1") + "\n", _MAX_LINE)
            self._qp_lines[line] = encoded
        return encoded

    def _body(self, text: str) -> tuple[str, bytes]:
        """(Content-Transfer-Encoding, body with CRLF line ends) as `build_message` has them.

        `_transfer_encoding` first; else the email package's own choice (`contentmanager`):
        7bit or 8bit when every line fits in 78 octets, else quoted-printable or base64,
        whichever is shorter on the first ten lines. The same encoders, line by line.
        """
        lines = text.encode("utf-8").splitlines()
        cte = _transfer_encoding(text)
        if cte is None:
            if max((len(line) for line in lines), default=0) <= _MAX_LINE:
                cte = "7bit" if text.isascii() else "8bit"
            else:
                sniff = lines[:10]
                sniff_qp = sum(len(self._qp(line)) for line in sniff)
                sniff_size = sum(len(line) + 2 for line in sniff)
                sniff_base64 = 4 * -(-sniff_size // 3) + 1  # len(binascii.b2a_base64(sniff))
                cte = "base64" if sniff_qp > sniff_base64 else "quoted-printable"
        if cte in ("7bit", "8bit"):
            return cte, b"\r\n".join(lines) + b"\r\n"
        if cte == "quoted-printable":
            encoded = "".join([self._qp(line) for line in lines])
            return cte, encoded.replace("\n", "\r\n").encode("ascii")
        data = b"\r\n".join(lines) + b"\r\n"
        step = _MAX_LINE // 4 * 3
        chunks = (binascii.b2a_base64(data[i : i + step]) for i in range(0, len(data), step))
        return cte, b"".join(chunks).replace(b"\n", b"\r\n")

    def build(
        self,
        rendered: RenderedEmail,
        recipient: Recipient,
        *,
        message_id: str,
        date: datetime | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> OutgoingMessage:
        """This recipient's copy; ValueError when an address cannot be used."""
        if self._from is None:
            raise self._from_error or ValueError("unusable address")
        try:
            to = Address(display_name=_display_name(recipient), addr_spec=recipient.email.strip())
        except (ValueError, IndexError, MessageError) as error:
            raise ValueError(f"unusable address: {error}") from error
        if not (self._from.addr_spec + to.addr_spec).isascii():
            message = build_message(
                rendered,
                self.sender_name,
                self.sender_email,
                recipient,
                message_id=message_id,
                date=date,
                extra_headers=extra_headers,
            )
            return outgoing(message)
        lines = [
            self._from_line,
            _to_line(to),
            _header_line("Subject", rendered.subject),
            _header_line("Date", format_datetime(date or datetime.now(UTC))),
            _header_line("Message-ID", message_id),
        ]
        for name, value in rendered.headers.items():
            lines.append(_header_line(name, value))
        for name, value in (extra_headers or {}).items():
            lines.append(_header_line(name, value))
        text_cte, text = self._body(rendered.text)
        html_cte, html = self._body(rendered.html)
        boundary = self._boundary
        while f"--{boundary}".encode("ascii") in text or f"--{boundary}".encode("ascii") in html:
            boundary = _boundary()
        delimiter = f"\r\n--{boundary}\r\n".encode("ascii")
        lines += [
            b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n",
            f' boundary="{boundary}"\r\n'.encode("ascii"),
            delimiter,
            b'Content-Type: text/plain; charset="utf-8"\r\n',
            f"Content-Transfer-Encoding: {text_cte}\r\n\r\n".encode("ascii"),
            text,
            delimiter,
            b'Content-Type: text/html; charset="utf-8"\r\n',
            f"Content-Transfer-Encoding: {html_cte}\r\n\r\n".encode("ascii"),
            html,
            f"\r\n--{boundary}--\r\n".encode("ascii"),
        ]
        return OutgoingMessage(b"".join(lines), self._from.addr_spec, (to.addr_spec,))


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
        self.pipelining = False  # whether the last connection opened offers PIPELINING

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
        self.pipelining = connection.has_extn("pipelining")
        return connection

    def send(
        self, message: EmailMessage | OutgoingMessage, *, envelope_from: str | None = None
    ) -> None:
        """Send one message; `SendError` (or `MailerUnavailable`) when it was not accepted.

        `envelope_from` goes in MAIL FROM (the VERP return path); None: the From address.
        """
        try:
            ready = outgoing(message)
        except (ValueError, IndexError, MessageError) as error:
            raise SendError(f"cannot send this message: {error}", permanent=True) from error
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = self._connect()
            try:
                mail_from = ready.from_addr if envelope_from is None else envelope_from
                refused = _transaction(self._connection, ready, mail_from)
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


def _transaction(
    connection: smtplib.SMTP, message: OutgoingMessage, mail_from: str
) -> dict[str, tuple[int, bytes]]:
    """One mail transaction; the refused recipients when others were accepted.

    Raises what smtplib's `sendmail` raises, so that failures are classified the same way
    with or without pipelining (`SMTPSenderRefused`, `SMTPRecipientsRefused`, `SMTPDataError`).
    """
    options: list[str] = []
    if message.smtputf8:
        if not connection.has_extn("smtputf8"):
            raise smtplib.SMTPNotSupportedError(
                "One or more source or delivery addresses require internationalized email "
                "support, but the server does not advertise the required SMTPUTF8 capability"
            )
        options = ["SMTPUTF8", "BODY=8BITMIME"]
    if not connection.has_extn("pipelining"):
        return connection.sendmail(mail_from, list(message.to_addrs), message.data, options)
    return _pipelined(connection, message, mail_from, options)


def _pipelined(
    connection: smtplib.SMTP, message: OutgoingMessage, mail_from: str, options: list[str]
) -> dict[str, tuple[int, bytes]]:
    """MAIL FROM, RCPT TO and DATA in one write, their replies read together (RFC 2920); then
    the content and its reply: two round trips instead of three plus one per recipient.

    As in smtplib's `sendmail`: a 421 closes the connection; any other refusal resets the
    transaction (RSET) before raising; recipients refused among accepted ones are returned.
    """
    if connection.does_esmtp and connection.has_extn("size"):
        options = [*options, f"SIZE={len(message.data)}"]
    suffix = "".join(f" {option}" for option in options)
    # The addresses are bare addr-specs already (`Address.addr_spec`, `getaddresses`, VERP):
    # smtplib's `quoteaddr` would only parse them again.
    commands = [f"MAIL FROM:<{mail_from}>{suffix}"]
    commands += [f"RCPT TO:<{address}>" for address in message.to_addrs]
    commands.append("DATA")
    encoding = "utf-8" if message.smtputf8 else "ascii"
    connection.send("".join(f"{command}\r\n" for command in commands).encode(encoding))
    # Every command gets its reply, whatever the ones before it said; but a 421 means the
    # server is closing the connection: no more replies will come.
    mail_code, mail_text = connection.getreply()
    if mail_code == 421:
        connection.close()
        raise smtplib.SMTPSenderRefused(mail_code, mail_text, mail_from)
    refused: dict[str, tuple[int, bytes]] = {}
    for address in message.to_addrs:
        code, text = connection.getreply()
        if code not in (250, 251):
            refused[address] = (code, text)
        if code == 421:
            connection.close()
            raise smtplib.SMTPRecipientsRefused(refused)
    data_code, data_text = connection.getreply()
    failure: smtplib.SMTPException | None = None
    if mail_code != 250:
        failure = smtplib.SMTPSenderRefused(mail_code, mail_text, mail_from)
    elif len(refused) == len(message.to_addrs):
        failure = smtplib.SMTPRecipientsRefused(refused)
    elif data_code != 354:
        failure = smtplib.SMTPDataError(data_code, data_text)
    if failure is not None:
        if data_code == 354:
            # The server waits for content we will not send: end it empty, then reset.
            connection.send(b".\r\n")
            connection.getreply()
        _abandon(connection, data_code)
        raise failure
    data = message.data.replace(b"\r\n.", b"\r\n..")  # dot-stuffing (RFC 5321 4.5.2)
    if data.startswith(b"."):
        data = b"." + data
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    connection.send(data + b".\r\n")
    code, text = connection.getreply()
    if code != 250:
        _abandon(connection, code)
        raise smtplib.SMTPDataError(code, text)
    return refused


def _abandon(connection: smtplib.SMTP, code: int) -> None:
    """After a refusal: close on 421 (the server is closing), else reset the transaction."""
    if code == 421:
        connection.close()
        return
    with contextlib.suppress(smtplib.SMTPServerDisconnected):
        connection.rset()


def _refused(recipients: dict[str, tuple[int, bytes]]) -> SendError:
    parts = [f"{address}: {code} {_decode(text)}" for address, (code, text) in recipients.items()]
    permanent = all(_permanent(code) for code, _ in recipients.values())
    return SendError("recipient refused: " + "; ".join(parts), permanent=permanent)
