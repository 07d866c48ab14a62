"""Postmark's bounce, spam complaint and delivery webhooks.

Postmark does not sign its webhooks; its documented protection is HTTP basic auth in the
webhook URL (`https://user:password@hub.example.com/webhooks/email/postmark`). The hub checks
both parts against `postmark_webhook_username` and `postmark_webhook_password`, in constant time.

Each call is one record. The delivery comes from the message's metadata `contacthub-delivery`
(the `X-PM-Metadata-contacthub-delivery` header of each copy), which Postmark echoes in
`Metadata`.

Bounce types (Postmark's list): `HardBounce` and `BadEmailAddress` are hard bounces;
`SoftBounce`, `Transient` and `DnsError` soft ones; a `SpamComplaint` bounce is a complaint. The
others (auto-responders, address changes, ISP blocks, DMARC and policy failures, manual
deactivations, unsubscribe requests, ...) say nothing certain about the address and are counted as
not used: a sender-side block counted as soft bounces would suppress good addresses.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from contacthub.bounces import verp
from contacthub.bounces.processor import FeedbackEvent
from contacthub.bounces.webhooks.common import (
    Intake,
    as_dict,
    decode_json,
    enhanced_status,
    event_key,
    iso_time,
    text,
)
from contacthub.email.hashing import LinkSigner
from contacthub.errors import InvalidInput, Unauthorized

SOURCE = "postmark"
METADATA = "contacthub-delivery"
BOUNCE_KINDS = {
    "HardBounce": "hard_bounce",
    "BadEmailAddress": "hard_bounce",
    "SoftBounce": "soft_bounce",
    "Transient": "soft_bounce",
    "DnsError": "soft_bounce",
    "SpamComplaint": "complaint",
}


def check_credentials(authorization: str | None, username: str, password: str) -> None:
    """Refuse a call without the configured basic auth (both parts compared in constant time)."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise Unauthorized(
            "The call has no basic auth; put the user and password in the webhook URL.",
            code="missing_credentials",
        )
    try:
        given_user, colon, given_password = (
            base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
        )
    except (binascii.Error, UnicodeDecodeError):
        given_user, colon, given_password = "", "", ""
    # Both comparisons run whatever the first says: the time does not tell which part is wrong.
    user_ok = hmac.compare_digest(given_user.encode(), username.encode())
    password_ok = hmac.compare_digest(given_password.encode(), password.encode())
    if not (colon and user_ok and password_ok):
        raise Unauthorized("The basic auth is wrong.", code="bad_credentials")


def events(body: bytes, signer: LinkSigner) -> Intake:
    """The feedback event of one authenticated call (none for records the hub does not use)."""
    record = decode_json(body)
    if not isinstance(record, dict):
        raise InvalidInput("The body is not a Postmark webhook record.", code="malformed")
    intake = Intake()
    record_type = text(record.get("RecordType"), 50)
    message_id = text(record.get("MessageID"), 100)
    delivery_id = verp.parse_delivery_token(signer, as_dict(record.get("Metadata")).get(METADATA))
    if record_type == "Bounce":
        bounce_type = text(record.get("Type"), 50) or ""
        kind = BOUNCE_KINDS.get(bounce_type)
        event_id = text(record.get("ID"), 200)
        if kind is None:
            intake.ignore(f"Postmark bounce of type {bounce_type or 'unknown'}")
            return intake
        if event_id is None:
            intake.malformed("A Postmark bounce without an ID.")
            return intake
        at = record.get("BouncedAt")
        email = record.get("Email")
    elif record_type in ("SpamComplaint", "Delivery"):
        if message_id is None:
            intake.malformed(f"A Postmark {record_type} without a MessageID.")
            return intake
        kind = "complaint" if record_type == "SpamComplaint" else "delivered"
        event_id = event_key(message_id, record_type)
        at = record.get("BouncedAt" if record_type == "SpamComplaint" else "DeliveredAt")
        email = record.get("Email" if record_type == "SpamComplaint" else "Recipient")
    else:
        intake.ignore(f"Postmark {record_type or 'record without a RecordType'}")
        return intake
    address = text(email, 254)
    if address is None:
        intake.malformed(f"A Postmark {record_type} without a recipient address.")
        return intake
    details = text(record.get("Details"))
    intake.events.append(
        FeedbackEvent(
            kind=kind,
            source=SOURCE,
            event_id=event_id,
            delivery_id=delivery_id,
            email=address,
            status_code=enhanced_status(details, record.get("Description")),
            diagnostic=details or text(record.get("Description")),
            occurred_at=iso_time(at),
        )
    )
    return intake
