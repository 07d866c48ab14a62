"""Sending through a real SMTP server (aiosmtpd on loopback): failures, reconnects, TLS."""

from __future__ import annotations

import email
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from contacthub.email.compose import (
    CLICK_PATH,
    IssueTemplate,
    Recipient,
    RenderedEmail,
    TrackedLink,
    extract_links,
    render_for_recipient,
)
from contacthub.email.hashing import LinkSigner, Purpose
from contacthub.email.sender import (
    MailerUnavailable,
    MemoryMailer,
    MessageBuilder,
    OutgoingMessage,
    SendError,
    SmtpMailer,
    build_message,
)

SIGNER = LinkSigner(["test-secret"])
UNSUBSCRIBE = (
    "https://news.example.com/contacthub/unsubscribe?issueguid=1eb1cb43-8820-4eda-866b-"
    "140c62ed7f69&email=ann%2Bnews@example.com&hash=" + "ab" * 32
)
RENDERED = RenderedEmail(
    subject="Grüße, Ann",
    html="<html><body><p>Hello <b>Ann</b></p></body></html>",
    text="Hello Ann\n",
    headers={
        "List-Unsubscribe": f"<{UNSUBSCRIBE}>, <mailto:leave@example.com?subject=unsubscribe>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    },
)


def message_for(address: str, rendered: RenderedEmail = RENDERED) -> EmailMessage:
    return build_message(rendered, "News Team", "news@example.com", Recipient(address))


# --- A real SMTP server -------------------------------------------------------------------------


@dataclass
class Received:
    peer: tuple[str, int]
    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    def parsed(self) -> EmailMessage:
        message = email.message_from_bytes(self.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        return message


@dataclass
class Inbox:
    """An aiosmtpd handler: refuses some addresses on purpose, keeps what it accepts.

    MAIL: 421 ("closing the channel") while `closing` is above zero, counting it down.
    RCPT: `bounce…` 550, `later…` 451. DATA: `spam…` 554, `full…` 452.
    """

    messages: list[Received] = field(default_factory=list)
    quits: int = 0
    closing: int = 0
    pipelining: bool = False  # offer PIPELINING (RFC 2920) in the EHLO reply
    mail_options: list[str] = field(default_factory=list)  # of every MAIL command

    async def handle_EHLO(
        self, server: Any, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if not self.pipelining:
            return responses
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_MAIL(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.closing > 0:
            self.closing -= 1
            return "421 4.3.2 Service shutting down, closing channel"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        self.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.startswith("bounce"):
            return "550 5.1.1 No such user"
        if address.startswith("later"):
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if any(address.startswith("spam") for address in envelope.rcpt_tos):
            return "554 5.7.1 Message rejected as spam"
        if any(address.startswith("full") for address in envelope.rcpt_tos):
            return "452 4.2.2 Mailbox full"
        assert isinstance(envelope.content, bytes)
        self.messages.append(
            Received(session.peer, envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        )
        return "250 OK queued"

    async def handle_QUIT(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.quits += 1
        return "221 Bye"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


StartServer = Callable[..., Controller]


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """Start aiosmtpd on loopback (again on the same port, to simulate a restart)."""
    running: list[Controller] = []

    def start(inbox: Inbox, port: int | None = None, **options: Any) -> Controller:
        controller = Controller(inbox, hostname="127.0.0.1", port=port or free_port(), **options)
        controller.start()
        running.append(controller)
        return controller

    yield start
    for controller in running:
        if controller._thread is not None:  # still running
            controller.stop()


@pytest.fixture(params=[False, True], ids=["lockstep", "pipelined"])
def inbox(request: pytest.FixtureRequest) -> Inbox:
    """Every SMTP test runs against a server without PIPELINING and one with it."""
    return Inbox(pipelining=request.param)


@pytest.fixture
def server(start_server: StartServer, inbox: Inbox) -> Controller:
    return start_server(inbox)


# --- build_message ------------------------------------------------------------------------------


def test_build_message_structure() -> None:
    when = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    message = build_message(
        RENDERED,
        "News Team",
        "news@example.com",
        Recipient("ann@example.com", "Ann", "Lee"),
        date=when,
    )
    parsed = email.message_from_bytes(message.as_bytes(), policy=default_policy)
    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())  # type: ignore[attr-defined]
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert parts[0].get_content().splitlines() == ["Hello Ann"]
    assert "<b>Ann</b>" in parts[1].get_content()
    assert parsed["From"] == "News Team <news@example.com>"
    assert parsed["To"] == "Ann Lee <ann@example.com>"
    assert parsed["Subject"] == "Grüße, Ann"
    assert parsed["Date"] == "Mon, 23 Nov 2026 09:30:00 +0000"
    assert parsed["Message-ID"].endswith("@example.com>")
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_list_unsubscribe_is_written_unfolded_and_unencoded() -> None:
    # The standard policy would turn this long URL into RFC 2047 words no client can follow.
    raw = message_for("ann@example.com").as_bytes()
    expected = f"List-Unsubscribe: {RENDERED.headers['List-Unsubscribe']}\r\n".encode()
    assert expected in raw
    assert b"=?utf-8?" not in raw.split(b"Subject:")[0]
    parsed = email.message_from_bytes(raw, policy=default_policy)
    assert parsed["List-Unsubscribe"] == RENDERED.headers["List-Unsubscribe"]


def test_message_ids_are_unique() -> None:
    first, second = message_for("a@example.com"), message_for("a@example.com")
    assert first["Message-ID"] != second["Message-ID"]


def test_names_with_line_breaks_cannot_add_headers() -> None:
    recipient = Recipient("ann@example.com", "Ann\r\nBcc: eve@example.com")
    raw = build_message(RENDERED, "News", "news@example.com", recipient).as_bytes()
    assert b"\r\nBcc:" not in raw


@pytest.mark.parametrize(
    "address", ["", "no-at-sign", "two words@example.com", "a@", "@example.com", "a@b@c", "x>@y"]
)
def test_unusable_recipient_address(address: str) -> None:
    with pytest.raises(ValueError, match="unusable address"):
        message_for(address)


def test_memory_mailer_keeps_messages() -> None:
    mailer = MemoryMailer()
    message = message_for("ann@example.com")
    mailer.send(message)
    assert mailer.sent == [message]


def test_memory_mailer_parses_built_messages() -> None:
    mailer = MemoryMailer()
    mailer.send(built_for("ann@example.com"), envelope_from="bounces@example.com")
    assert mailer.sent[0]["To"] == "ann@example.com"
    assert mailer.sent[0]["Subject"] == "Grüße, Ann"
    assert mailer.envelope_froms == ["bounces@example.com"]


# --- SmtpMailer against aiosmtpd ----------------------------------------------------------------


def test_sends_many_messages_over_one_connection(server: Controller, inbox: Inbox) -> None:
    with SmtpMailer("127.0.0.1", server.port) as mailer:
        for name in ("ann", "bob", "cat"):
            mailer.send(message_for(f"{name}@example.com"))
        assert mailer.connections_opened == 1
        assert mailer.pipelining is inbox.pipelining
    assert [m.rcpt_tos for m in inbox.messages] == [
        ["ann@example.com"],
        ["bob@example.com"],
        ["cat@example.com"],
    ]
    assert len({m.peer for m in inbox.messages}) == 1  # one connection, one client port
    assert inbox.messages[0].mail_from == "news@example.com"
    received = inbox.messages[0].parsed()
    assert received["Subject"] == "Grüße, Ann"
    assert received["List-Unsubscribe"] == RENDERED.headers["List-Unsubscribe"]
    assert inbox.quits == 1  # the context manager said goodbye


def test_permanent_refusal_of_a_recipient(server: Controller, inbox: Inbox) -> None:
    with SmtpMailer("127.0.0.1", server.port) as mailer:
        with pytest.raises(SendError) as caught:
            mailer.send(message_for("bounce@example.com"))
        assert caught.value.permanent
        assert "550" in caught.value.reason
        assert "bounce@example.com" in caught.value.reason
        assert not isinstance(caught.value, MailerUnavailable)
        # The connection is still good for the next recipient.
        mailer.send(message_for("ann@example.com"))
        assert mailer.connections_opened == 1
    assert [m.rcpt_tos for m in inbox.messages] == [["ann@example.com"]]


def test_temporary_refusal_of_a_recipient(server: Controller) -> None:
    with SmtpMailer("127.0.0.1", server.port) as mailer, pytest.raises(SendError) as caught:
        mailer.send(message_for("later@example.com"))
    assert not caught.value.permanent
    assert "451" in caught.value.reason


@pytest.mark.parametrize(
    ("address", "code", "permanent"), [("spam", 554, True), ("full", 452, False)]
)
def test_refusal_after_data(
    server: Controller, inbox: Inbox, address: str, code: int, permanent: bool
) -> None:
    with SmtpMailer("127.0.0.1", server.port) as mailer:
        with pytest.raises(SendError) as caught:
            mailer.send(message_for(f"{address}@example.com"))
        assert caught.value.permanent is permanent
        assert caught.value.reason.startswith(str(code))
        mailer.send(message_for("ann@example.com"))
    assert len(inbox.messages) == 1


def test_non_ascii_domain_without_smtputf8_is_permanent(
    start_server: StartServer, inbox: Inbox
) -> None:
    server = start_server(inbox, enable_SMTPUTF8=False)
    with SmtpMailer("127.0.0.1", server.port) as mailer, pytest.raises(SendError) as caught:
        mailer.send(message_for("ann@exämple.com"))
    assert caught.value.permanent


def test_reconnects_after_the_server_drops_an_idle_connection(
    start_server: StartServer, inbox: Inbox
) -> None:
    server = start_server(inbox, timeout=0.3)  # aiosmtpd closes connections idle this long
    with SmtpMailer("127.0.0.1", server.port) as mailer:
        mailer.send(message_for("ann@example.com"))
        time.sleep(0.8)
        mailer.send(message_for("bob@example.com"))
        assert mailer.connections_opened == 2
    assert [m.rcpt_tos for m in inbox.messages] == [["ann@example.com"], ["bob@example.com"]]
    assert inbox.messages[0].peer != inbox.messages[1].peer


def test_reconnects_after_a_server_restart(start_server: StartServer, inbox: Inbox) -> None:
    server = start_server(inbox)
    with SmtpMailer("127.0.0.1", server.port) as mailer:
        mailer.send(message_for("ann@example.com"))
        server.stop()  # drops the open connection
        start_server(inbox, port=server.port)
        mailer.send(message_for("bob@example.com"))
        assert mailer.connections_opened == 2
    assert [m.rcpt_tos for m in inbox.messages] == [["ann@example.com"], ["bob@example.com"]]


def test_retries_on_a_new_connection_after_421(server: Controller, inbox: Inbox) -> None:
    inbox.closing = 1
    with SmtpMailer("127.0.0.1", server.port) as mailer:
        mailer.send(message_for("ann@example.com"))
        assert mailer.connections_opened == 2
    assert [m.rcpt_tos for m in inbox.messages] == [["ann@example.com"]]


def test_421_twice_is_temporary(server: Controller, inbox: Inbox) -> None:
    inbox.closing = 2
    with SmtpMailer("127.0.0.1", server.port) as mailer:
        with pytest.raises(SendError) as caught:
            mailer.send(message_for("ann@example.com"))
        assert not caught.value.permanent
        assert caught.value.reason.startswith("421")
        mailer.send(message_for("ann@example.com"))  # the server is back
    assert len(inbox.messages) == 1


def test_server_down_is_unavailable_then_recovers(start_server: StartServer, inbox: Inbox) -> None:
    port = free_port()
    with SmtpMailer("127.0.0.1", port, timeout=2) as mailer:
        with pytest.raises(MailerUnavailable) as caught:
            mailer.send(message_for("ann@example.com"))
        assert not caught.value.permanent
        assert f"127.0.0.1:{port}" in caught.value.reason
        start_server(inbox, port=port)
        mailer.send(message_for("ann@example.com"))
    assert len(inbox.messages) == 1


def built_for(address: str, rendered: RenderedEmail = RENDERED) -> OutgoingMessage:
    builder = MessageBuilder("News Team", "news@example.com")
    return builder.build(rendered, Recipient(address), message_id="<m.1@example.com>")


def test_built_messages_arrive_whole(server: Controller, inbox: Inbox) -> None:
    """Lines starting with a dot survive SMTP's dot-stuffing; the envelope is the builder's."""
    text = ".hidden\n.\n..two\nend\n"
    rendered = RenderedEmail("Dots", "<p>.x</p>\n.\n", text, dict(RENDERED.headers))
    message = built_for("ann@example.com", rendered)
    with SmtpMailer("127.0.0.1", server.port) as mailer:
        mailer.send(message, envelope_from="bounces+1-x@example.com")
        mailer.send(built_for("bob@example.com"))
        assert mailer.connections_opened == 1
    assert [(m.mail_from, m.rcpt_tos) for m in inbox.messages] == [
        ("bounces+1-x@example.com", ["ann@example.com"]),
        ("news@example.com", ["bob@example.com"]),
    ]
    assert inbox.messages[0].content.replace(b"\r\n", b"\n") == message.as_bytes().replace(
        b"\r\n", b"\n"
    )
    received = inbox.messages[0].parsed()
    assert received.get_body(("plain",)).get_content().splitlines() == text.splitlines()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("address", "permanent", "code"),
    [
        ("bounce", True, "550"),
        ("later", False, "451"),
        ("spam", True, "554"),
        ("full", False, "452"),
    ],
)
def test_built_messages_refused_as_before(
    server: Controller, inbox: Inbox, address: str, permanent: bool, code: str
) -> None:
    """Refusals at RCPT and after DATA are classified the same, pipelined or not, and the
    connection stays good for the next message."""
    with SmtpMailer("127.0.0.1", server.port) as mailer:
        with pytest.raises(SendError) as caught:
            mailer.send(built_for(f"{address}@example.com"))
        assert caught.value.permanent is permanent
        assert code in caught.value.reason
        mailer.send(built_for("ann@example.com"))
        assert mailer.connections_opened == 1
    assert [m.rcpt_tos for m in inbox.messages] == [["ann@example.com"]]


@pytest.mark.parametrize(
    ("others", "permanent"), [(["bounce@example.com"], True), (["later@example.com"], False)]
)
def test_some_recipients_refused(
    server: Controller, inbox: Inbox, others: list[str], permanent: bool
) -> None:
    """A message to several recipients, some refused: sent to the others, and an error."""
    message = message_for("ann@example.com")
    message["Cc"] = ", ".join(others)
    with SmtpMailer("127.0.0.1", server.port) as mailer:
        with pytest.raises(SendError, match="recipient refused") as caught:
            mailer.send(message)
        assert caught.value.permanent is permanent
        assert others[0] in caught.value.reason
    assert [m.rcpt_tos for m in inbox.messages] == [["ann@example.com"]]


@pytest.mark.parametrize("smtputf8", [True, False])
def test_built_message_to_a_non_ascii_domain(
    start_server: StartServer, inbox: Inbox, smtputf8: bool
) -> None:
    server = start_server(inbox, enable_SMTPUTF8=smtputf8)
    message = built_for("ann@exämple.com")
    assert message.smtputf8
    with SmtpMailer("127.0.0.1", server.port) as mailer:
        if not smtputf8:
            with pytest.raises(SendError) as caught:
                mailer.send(message)
            assert caught.value.permanent
            return
        mailer.send(message)
    assert inbox.messages[0].rcpt_tos == ["ann@exämple.com"]
    assert "SMTPUTF8" in inbox.mail_options
    assert inbox.messages[0].parsed()["To"] == "ann@exämple.com"


def test_invalid_tls_mode_refused() -> None:
    with pytest.raises(ValueError, match="tls must be"):
        SmtpMailer("127.0.0.1", 25, tls="tls")  # type: ignore[arg-type]


# --- TLS and authentication ---------------------------------------------------------------------


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return Certificate(cert, key)


def authenticator(
    server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    good = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"sender",
        b"s3cret",
    )
    # handled=False: aiosmtpd then answers 535 itself (True would leave the client waiting).
    return AuthResult(success=good, handled=False)


def test_starttls_with_login(
    start_server: StartServer, inbox: Inbox, certificate: Certificate
) -> None:
    server = start_server(
        inbox,
        tls_context=certificate.server_context(),
        require_starttls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    mailer = SmtpMailer(
        "127.0.0.1",
        server.port,
        tls="starttls",
        username="sender",
        password="s3cret",
        ssl_context=certificate.client_context(),
    )
    with mailer:
        mailer.send(message_for("ann@example.com"))
    assert len(inbox.messages) == 1


def test_wrong_password_is_unavailable_not_a_bad_message(
    start_server: StartServer, inbox: Inbox, certificate: Certificate
) -> None:
    server = start_server(
        inbox,
        tls_context=certificate.server_context(),
        require_starttls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    mailer = SmtpMailer(
        "127.0.0.1",
        server.port,
        tls="starttls",
        username="sender",
        password="wrong",
        ssl_context=certificate.client_context(),
    )
    with mailer, pytest.raises(MailerUnavailable, match="login refused"):
        mailer.send(message_for("ann@example.com"))
    assert inbox.messages == []


def test_untrusted_certificate_is_unavailable(
    start_server: StartServer, inbox: Inbox, certificate: Certificate
) -> None:
    server = start_server(inbox, tls_context=certificate.server_context(), require_starttls=True)
    # The default context trusts the system's authorities only, not our self-signed certificate.
    mailer = SmtpMailer("127.0.0.1", server.port, tls="starttls")
    with mailer, pytest.raises(MailerUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        mailer.send(message_for("ann@example.com"))


def test_implicit_tls(start_server: StartServer, inbox: Inbox, certificate: Certificate) -> None:
    server = start_server(inbox, ssl_context=certificate.server_context())
    mailer = SmtpMailer(
        "127.0.0.1", server.port, tls="ssl", ssl_context=certificate.client_context()
    )
    with mailer:
        mailer.send(message_for("ann@example.com"))
        mailer.send(message_for("bob@example.com"))
        assert mailer.connections_opened == 1
    assert len(inbox.messages) == 2


# --- From composing to a click ------------------------------------------------------------------


def test_a_received_email_carries_working_signed_links(server: Controller, inbox: Inbox) -> None:
    html = (
        "<html><body><p>Hi {{ first_name }}</p>"
        '<a href="https://shop.example.com/">Shop</a></body></html>'
    )
    links = [TrackedLink(uuid.uuid4(), target) for target in extract_links(html)]
    issue = IssueTemplate(uuid.uuid4(), "Hello {{ first_name }}", html)
    recipient = Recipient("ann+news@example.com", "Ann")
    rendered = render_for_recipient(
        issue, links, recipient, base_url="https://news.example.com", signer=SIGNER
    )
    with SmtpMailer("127.0.0.1", server.port) as mailer:
        mailer.send(build_message(rendered, "News", "news@example.com", recipient))

    received = inbox.messages[0].parsed()
    assert received["Subject"] == "Hello Ann"
    html_part = received.get_body(preferencelist=("html",))
    assert html_part is not None
    body = html_part.get_content()
    start = body.index(f"https://news.example.com{CLICK_PATH}?")
    click = body[start : body.index('"', start)].replace("&amp;", "&")
    params = {key: values[0] for key, values in parse_qs(urlsplit(click).query).items()}
    assert params["linkguid"] == str(links[0].guid)
    assert params["email"] == "ann+news@example.com"
    assert SIGNER.verify(Purpose.CLICK, params["linkguid"], params["email"], params["hash"])
