"""The providers' side of the webhook tests: keys, signatures made by each provider's documented
scheme (written here from the providers' documentation, not taken from the hub's code), and a
loopback HTTPS server that plays Amazon SNS's certificate host.

SNS cannot be reached from here, so its part is played by a real HTTPS server on 127.0.0.1
whose TLS certificate (for `localhost`) comes from a certificate authority made in the test; the
hub's SNS client is given a TLS context that trusts that authority, and everything else (URL
rule, fetch, PEM parsing, caching, RSA verification, the subscription GET) runs as in
production.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from contacthub.storage.database import Database
from contacthub.storage.models import DeliveryEvent, FeedbackRejection, Suppression

TOPIC = "arn:aws:sns:eu-west-1:123456789012:contacthub-feedback"


# -- certificates ---------------------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    public_key: Any,
    issuer: str,
    issuer_key: Any,
    *,
    ca: bool = False,
    hosts: bool = False,
) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if hosts:
        names = [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if ca:
        usage = x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        )
        builder = builder.add_extension(usage, critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


@dataclass
class SnsSide:
    """Amazon SNS's part: the signing key and certificate, and the TLS of its host."""

    signing_key: rsa.RSAPrivateKey
    signing_certificate: bytes  # PEM, as SNS serves it at SigningCertURL
    client_tls: ssl.SSLContext  # trusts the test authority (what the hub is given)
    server_tls: ssl.SSLContext

    @classmethod
    def make(cls) -> SnsSide:
        authority_key = ec.generate_private_key(ec.SECP256R1())
        authority = _certificate(
            "Test CA", authority_key.public_key(), "Test CA", authority_key, ca=True
        )
        host_key = ec.generate_private_key(ec.SECP256R1())
        host = _certificate(
            "localhost", host_key.public_key(), "Test CA", authority_key, hosts=True
        )
        signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        signing = _certificate(
            "sns.amazonaws.com", signing_key.public_key(), "Test CA", authority_key
        )
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        with tempfile.TemporaryDirectory() as folder:
            chain = Path(folder) / "host.pem"
            key_file = Path(folder) / "host.key"
            chain.write_bytes(_pem(host))
            key_file.write_bytes(
                host_key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            server_tls.load_cert_chain(chain, key_file)
        client_tls = ssl.create_default_context(cadata=_pem(authority).decode("ascii"))
        return cls(signing_key, _pem(signing), client_tls, server_tls)


@dataclass
class SnsHost:
    """A loopback HTTPS server serving the signing certificate and the SubscribeURL."""

    base_url: str
    requests: list[str] = field(default_factory=list)


def serve_sns(side: SnsSide) -> Iterator[SnsHost]:
    """Run the loopback SNS host until the generator is closed."""
    host = SnsHost("")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            host.requests.append(self.path)
            if self.path == "/SimpleNotificationService-test.pem":
                self._answer(200, side.signing_certificate, "application/x-x509-ca-cert")
            elif self.path.startswith("/?Action=ConfirmSubscription"):
                self._answer(200, b"<ConfirmSubscriptionResponse/>", "text/xml")
            else:
                self._answer(404, b"not found", "text/plain")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = side.server_tls.wrap_socket(server.socket, server_side=True)
    host.base_url = f"https://localhost:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield host
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- Amazon SNS: canonical string and signature (AWS's "Verifying the signatures" page) ----------

NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)


def sns_signed(message: dict[str, str], side: SnsSide, *, version: str = "1") -> dict[str, str]:
    """`message` with SignatureVersion and Signature, as SNS signs it."""
    names = NOTIFICATION_FIELDS if message["Type"] == "Notification" else CONFIRMATION_FIELDS
    canonical = "".join(f"{n}\n{message[n]}\n" for n in names if n in message).encode()
    # SignatureVersion 1 is SHA1withRSA: SNS's scheme, not a choice made here.
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303
    signature = side.signing_key.sign(canonical, padding.PKCS1v15(), digest)
    return {
        **message,
        "SignatureVersion": version,
        "Signature": base64.b64encode(signature).decode("ascii"),
    }


def sns_notification(
    ses: dict[str, Any],
    host: SnsHost,
    *,
    topic: str = TOPIC,
    message_id: str | None = None,
    subject: str | None = None,
) -> dict[str, str]:
    """An SNS Notification carrying an SES notification, not yet signed."""
    subject_field = {} if subject is None else {"Subject": subject}
    return {
        **subject_field,
        "Type": "Notification",
        "MessageId": message_id or str(uuid.uuid4()),
        "TopicArn": topic,
        "Message": json.dumps(ses),
        "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "SigningCertURL": f"{host.base_url}/SimpleNotificationService-test.pem",
        "UnsubscribeURL": f"{host.base_url}/?Action=Unsubscribe&SubscriptionArn={topic}:1",
    }


def ses_mail(token: str | None, *, header_token: str | None = None) -> dict[str, Any]:
    """The `mail` object of an SES notification: tags (and headers when asked)."""
    mail: dict[str, Any] = {
        "timestamp": "2026-12-07T01:00:00.000Z",
        "source": "news@example.com",
        "messageId": "0100018c-ses-message-id",
        "destination": ["anna@example.com"],
        "tags": {"ses:configuration-set": ["feedback"]},
        "commonHeaders": {"subject": "Issue 0"},
    }
    if token is not None:
        mail["tags"]["contacthub_delivery"] = [token]
    if header_token is not None:
        mail["headersTruncated"] = False
        mail["headers"] = [
            {"name": "From", "value": "news@example.com"},
            {"name": "X-Contacthub-Delivery", "value": header_token},
        ]
    return mail


# -- SendGrid: ECDSA P-256 over timestamp + body (Event Webhook security features) -------------


@dataclass
class SendGridSide:
    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def make(cls) -> SendGridSide:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_key(self) -> str:
        """The verification key as the SendGrid console shows it (base64 DER)."""
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode("ascii")

    def headers(self, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = self.private_key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        }


# -- Mailgun: HMAC-SHA256(signing key, timestamp + token) ---------------------------------------


def mailgun_signed(
    event_data: dict[str, Any], key: str, *, timestamp: int | None = None, token: str | None = None
) -> dict[str, Any]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    token = token or uuid.uuid4().hex + uuid.uuid4().hex[:18]
    signature = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": stamp, "token": token, "signature": signature},
        "event-data": event_data,
    }


# -- Postmark: basic auth ----------------------------------------------------------------------


def basic_auth(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {encoded}"}


# -- what the store holds -----------------------------------------------------------------------


@dataclass
class Stored:
    """The feedback tables, summed up."""

    events: list[tuple[int, str, str, str | None]]  # delivery_id, kind, email, status_code
    rejections: dict[str, int]  # reason -> count
    suppressions: dict[str, str]  # email -> reason


def stored(db: Database, source: str) -> Stored:
    with db.read() as session:
        events = session.execute(
            select(
                DeliveryEvent.delivery_id,
                DeliveryEvent.kind,
                DeliveryEvent.email,
                DeliveryEvent.status_code,
            )
            .where(DeliveryEvent.source == source)
            .order_by(DeliveryEvent.id)
        ).all()
        rejections = session.execute(
            select(FeedbackRejection.reason, func.count())
            .where(FeedbackRejection.source == source)
            .group_by(FeedbackRejection.reason)
        ).all()
        suppressions = session.execute(select(Suppression.email, Suppression.reason)).all()
    return Stored(
        [tuple(row) for row in events],  # type: ignore[misc]
        dict(rejections),  # type: ignore[arg-type]
        dict(suppressions),  # type: ignore[arg-type]
    )


def rejection_details(db: Database, source: str) -> list[str]:
    with db.read() as session:
        return list(
            session.scalars(
                select(FeedbackRejection.detail)
                .where(FeedbackRejection.source == source)
                .order_by(FeedbackRejection.id)
            )
        )
