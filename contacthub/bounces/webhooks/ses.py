"""Amazon SES feedback through Amazon SNS: bounces, complaints and deliveries.

SES publishes to an SNS topic; SNS posts each message to `POST /webhooks/email/ses`. A message
is taken only when, in this order:

1. its `TopicArn` is one of `ses_topic_arns`;
2. its `SigningCertURL` is https on a host matching `sns_certificate_hosts` (Amazon's own hosts
   by default): the certificate comes over TLS from Amazon, never from the caller;
3. its `Signature` verifies with that certificate's RSA key over the canonical string AWS
   documents for its `Type` (SignatureVersion 1: SHA1withRSA; 2: SHA256withRSA).

A `SubscriptionConfirmation` is then confirmed by getting its `SubscribeURL` (the same host
rule); a `Notification` carries an SES notification (`notificationType`) or an SES event
(`eventType`, configuration sets). The delivery comes from the `contacthub_delivery` message tag
(which SES echoes in `mail.tags`), else from the `X-Contacthub-Delivery` header (in
`mail.headers` when the identity includes original headers); either way the token's HMAC is
checked.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import ssl
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from contacthub.bounces import verp
from contacthub.bounces.processor import FeedbackEvent
from contacthub.bounces.webhooks.common import (
    Intake,
    angle_bracketed,
    as_dict,
    as_list,
    decode_json,
    enhanced_status,
    event_key,
    iso_time,
    text,
)
from contacthub.email.hashing import LinkSigner
from contacthub.errors import Forbidden, InvalidInput, Unauthorized, Unavailable
from contacthub.settings import Settings

logger = logging.getLogger(__name__)

SOURCE = "ses"
TAG = "contacthub_delivery"
# The fields each message type signs, in the order of the canonical string (AWS documents it).
SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
SIGNED_FIELDS["UnsubscribeConfirmation"] = SIGNED_FIELDS["SubscriptionConfirmation"]
HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
# A signing certificate is a few KB; anything much larger is not one.
MAX_CERTIFICATE = 64 * 1024
# SES's bounceType -> kind. "Undetermined" (SES could not tell why) is soft: one is not enough
# to suppress an address, repeated ones are (soft_bounce_limit).
BOUNCE_KINDS = {
    "Permanent": "hard_bounce",
    "Transient": "soft_bounce",
    "Undetermined": "soft_bounce",
}


@dataclass(frozen=True, slots=True)
class SnsMessage:
    """The fields of an SNS message the hub reads (all strings, as SNS sends them)."""

    fields: Mapping[str, str]

    def __getitem__(self, name: str) -> str:
        return self.fields[name]

    def get(self, name: str) -> str | None:
        """A field, or None when the message lacks it."""
        return self.fields.get(name)


def sns_message(body: bytes) -> SnsMessage:
    """The SNS message in a body; `malformed` or `missing_signature` when it is not one."""
    document = decode_json(body)
    if not isinstance(document, dict):
        raise InvalidInput("The body is not an SNS message (a JSON object).", code="malformed")
    fields = {key: value for key, value in document.items() if isinstance(value, str)}
    kind = fields.get("Type")
    if kind not in SIGNED_FIELDS:
        raise InvalidInput(f"Unknown SNS message Type {kind!r}.", code="malformed")
    required = [name for name in SIGNED_FIELDS[kind] if name != "Subject"]
    missing = [name for name in required if name not in fields]
    if missing:
        raise InvalidInput(f"The SNS message lacks {', '.join(missing)}.", code="malformed")
    unsigned = [n for n in ("Signature", "SignatureVersion", "SigningCertURL") if not fields.get(n)]
    if unsigned:
        raise Unauthorized(
            f"The SNS message is not signed (no {', '.join(unsigned)}).", code="missing_signature"
        )
    return SnsMessage(fields)


def canonical_string(message: SnsMessage) -> bytes:
    """What SNS signs: `Name\\nvalue\\n` for each signed field the message has, in order."""
    lines = []
    for name in SIGNED_FIELDS[message["Type"]]:
        value = message.get(name)
        if value is not None:
            lines.append(f"{name}\n{value}\n")
    return "".join(lines).encode("utf-8")


def amazon_url(url: str | None, host_pattern: str, what: str) -> str:
    """`url` when it is https on a host matching `host_pattern` (whole host); else refused."""
    parts = urlsplit(url or "")
    host = (parts.hostname or "").lower()
    if (
        parts.scheme != "https"
        or parts.username is not None
        or parts.password is not None
        or not re.fullmatch(host_pattern, host)
    ):
        raise Forbidden(
            f"The {what} {url!r} is not https on an SNS host (sns_certificate_hosts).",
            code="untrusted_url",
        )
    return parts.geturl()


def verify_signature(message: SnsMessage, key: rsa.RSAPublicKey) -> None:
    """Refuse (`bad_signature`) a message whose signature does not verify with `key`."""
    algorithm = HASHES.get(message["SignatureVersion"])
    if algorithm is None:
        raise Forbidden(
            f"Unknown SignatureVersion {message['SignatureVersion']!r} (1 and 2 are known).",
            code="bad_signature",
        )
    try:
        signature = base64.b64decode(message["Signature"], validate=True)
        key.verify(signature, canonical_string(message), padding.PKCS1v15(), algorithm())
    except (binascii.Error, ValueError, InvalidSignature):
        raise Forbidden("The SNS signature does not verify.", code="bad_signature") from None


class SnsClient:
    """The hub's calls to SNS: signing certificates (fetched over TLS, then cached by URL) and
    subscription confirmations.

    `verify` is the TLS trust: the system's certificate authorities by default (the tests give
    their own authority's context).
    """

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | bool = True,
        timeout: float = 10.0,
        max_certificates: int = 32,
    ) -> None:
        self._verify = verify
        self._timeout = timeout
        self._max_certificates = max_certificates
        self._keys: OrderedDict[str, rsa.RSAPublicKey] = OrderedDict()

    def _client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            verify=self._verify, timeout=self._timeout, follow_redirects=False
        )

    async def public_key(self, url: str) -> rsa.RSAPublicKey:
        """The RSA key of the certificate at `url` (an already checked Amazon URL)."""
        key = self._keys.get(url)
        if key is not None:
            return key
        try:
            async with self._client() as client:
                answer = await client.get(url)
            answer.raise_for_status()
            if len(answer.content) > MAX_CERTIFICATE:
                raise ValueError("the certificate is too large")
            certificate = x509.load_pem_x509_certificate(answer.content)
        except (httpx2.HTTPError, ValueError) as error:
            raise Unavailable(
                f"The SNS signing certificate could not be fetched from {url}: {error}",
                code="certificate_unavailable",
            ) from None
        found = certificate.public_key()
        if not isinstance(found, rsa.RSAPublicKey):
            raise Forbidden("The SNS signing certificate's key is not RSA.", code="bad_signature")
        self._keys[url] = key = found
        while len(self._keys) > self._max_certificates:
            self._keys.popitem(last=False)
        return key

    async def confirm(self, url: str) -> None:
        """Confirm a subscription: get its (already checked) `SubscribeURL`."""
        try:
            async with self._client() as client:
                answer = await client.get(url)
            answer.raise_for_status()
        except httpx2.HTTPError as error:
            raise Unavailable(
                f"Confirming the SNS subscription failed: {error}", code="confirmation_failed"
            ) from None


async def receive(body: bytes, *, settings: Settings, signer: LinkSigner, sns: SnsClient) -> Intake:
    """Verify one SNS call and read it: the SES events it carries, or a confirmation done."""
    message = sns_message(body)
    if message["TopicArn"] not in settings.ses_topic_arns:
        raise Forbidden(
            f"The topic {message['TopicArn']!r} is not in ses_topic_arns.", code="unknown_topic"
        )
    certificate_url = amazon_url(
        message["SigningCertURL"], settings.sns_certificate_hosts, "SigningCertURL"
    )
    verify_signature(message, await sns.public_key(certificate_url))
    kind = message["Type"]
    if kind == "SubscriptionConfirmation":
        await sns.confirm(
            amazon_url(message["SubscribeURL"], settings.sns_certificate_hosts, "SubscribeURL")
        )
        logger.info("Confirmed the SNS subscription to %s.", message["TopicArn"])
        return Intake(note="subscription_confirmed")
    if kind == "UnsubscribeConfirmation":
        logger.info("SNS says the hub's subscription to %s ended.", message["TopicArn"])
        return Intake(note="unsubscribed")
    return notification(message["MessageId"], message["Message"], signer)


def notification(sns_id: str, content: str, signer: LinkSigner) -> Intake:
    """The feedback events of one SES notification (the SNS message's `Message`)."""
    intake = Intake()
    try:
        document = decode_json(content.encode("utf-8", "surrogatepass"))
    except InvalidInput:
        document = None
    if not isinstance(document, dict):
        intake.malformed(f"SNS message {sns_id}: the Message is not an SES notification.")
        return intake
    kind = document.get("notificationType") or document.get("eventType")
    mail = document.get("mail")
    mail = mail if isinstance(mail, dict) else {}
    delivery_id = delivery_of(mail, signer)
    message_id = angle_bracketed(as_dict(mail.get("commonHeaders")).get("messageId"))

    def event(
        kind: str, email: object, *, status: object = None, diagnostic: object = None, at: object
    ) -> None:
        address = text(email, 254)
        if address is None:
            intake.malformed(f"SNS message {sns_id}: a {kind} without a recipient address.")
            return
        intake.events.append(
            FeedbackEvent(
                kind=kind,
                source=SOURCE,
                event_id=event_key(sns_id, address.lower()),
                delivery_id=delivery_id,
                email=address,
                status_code=text(status, 20) or enhanced_status(diagnostic),
                diagnostic=text(diagnostic),
                occurred_at=iso_time(at),
                message_id=message_id,
            )
        )

    if kind == "Bounce":
        bounce = as_dict(document.get("bounce"))
        bounce_kind = BOUNCE_KINDS.get(str(bounce.get("bounceType")), "soft_bounce")
        for recipient in as_list(bounce.get("bouncedRecipients")):
            recipient = as_dict(recipient)
            event(
                bounce_kind,
                recipient.get("emailAddress"),
                status=recipient.get("status"),
                diagnostic=recipient.get("diagnosticCode") or bounce.get("bounceSubType"),
                at=bounce.get("timestamp"),
            )
    elif kind == "Complaint":
        complaint = as_dict(document.get("complaint"))
        for recipient in as_list(complaint.get("complainedRecipients")):
            event(
                "complaint",
                as_dict(recipient).get("emailAddress"),
                diagnostic=complaint.get("complaintFeedbackType") or "complaint",
                at=complaint.get("timestamp"),
            )
    elif kind == "Delivery":
        delivered = as_dict(document.get("delivery"))
        for address in as_list(delivered.get("recipients")):
            event(
                "delivered",
                address,
                diagnostic=delivered.get("smtpResponse"),
                at=delivered.get("timestamp"),
            )
    else:
        intake.ignore(f"SNS message {sns_id}: SES {kind or 'message without a type'}")
    if kind in ("Bounce", "Complaint", "Delivery") and not intake.events and not intake.unused:
        intake.malformed(f"SNS message {sns_id}: an SES {kind} without recipients.")
    return intake


def delivery_of(mail: dict[str, Any], signer: LinkSigner) -> int | None:
    """The delivery an SES `mail` object names: its tag, else its X-Contacthub-Delivery header."""
    tagged = as_dict(mail.get("tags")).get(TAG)
    for token in tagged if isinstance(tagged, list) else [tagged]:
        delivery_id = verp.parse_delivery_token(signer, token)
        if delivery_id is not None:
            return delivery_id
    for header in as_list(mail.get("headers")):
        header = as_dict(header)
        name = header.get("name")
        if isinstance(name, str) and name.lower() == verp.HEADER.lower():
            delivery_id = verp.parse_delivery_token(signer, header.get("value"))
            if delivery_id is not None:
                return delivery_id
    return None
