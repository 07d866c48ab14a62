"""SendGrid's Event Webhook with signature verification: bounces, drops, spam reports, deliveries.

SendGrid signs `timestamp + raw body` with ECDSA (P-256, SHA-256) and sends the base64 DER
signature in `X-Twilio-Email-Event-Webhook-Signature`, the timestamp in
`X-Twilio-Email-Event-Webhook-Timestamp`; `sendgrid_webhook_public_key` is the verification key
the SendGrid console shows. The timestamp may be at most `webhook_max_age` seconds off.

The body is an array of events. Each copy carries the unique argument `contacthub_delivery`
(in its `X-SMTPAPI` header), which SendGrid echoes as a property of every event.

`dropped` (SendGrid did not even try, because of its own lists or the message): "Bounced
Address" and "Invalid" are hard bounces and "Spam Reporting Address" a complaint, so that the
hub's suppression list agrees with SendGrid's; other drops ("Unsubscribed Address", content
reasons) say nothing about the address being reachable and are counted as not used.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from contacthub.bounces import verp
from contacthub.bounces.processor import FeedbackEvent
from contacthub.bounces.webhooks.common import (
    Intake,
    angle_bracketed,
    as_dict,
    check_timestamp,
    decode_json,
    enhanced_status,
    text,
    unix_time,
)
from contacthub.email.hashing import LinkSigner
from contacthub.errors import Forbidden, InvalidInput, Unauthorized

SOURCE = "sendgrid"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
ARGUMENT = "contacthub_delivery"
# A `dropped` event's reason -> the kind it counts as; other drops are not used.
DROP_KINDS = {
    "bounced address": "hard_bounce",
    "invalid": "hard_bounce",
    "spam reporting address": "complaint",
}


def public_key(setting: str) -> ec.EllipticCurvePublicKey:
    """The verification key of `sendgrid_webhook_public_key`: base64 DER, as the SendGrid
    console shows it, or PEM. A key that is not P-256 ECDSA is refused (ValueError)."""
    try:
        if setting.lstrip().startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(setting.encode("ascii"))
        else:
            key = serialization.load_der_public_key(base64.b64decode(setting, validate=True))
    except (ValueError, binascii.Error, UnsupportedAlgorithm) as error:
        raise ValueError(f"sendgrid_webhook_public_key is not a public key: {error}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("sendgrid_webhook_public_key is not an ECDSA P-256 key.")
    return key


def verify(
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    *,
    key: ec.EllipticCurvePublicKey,
    max_age: float,
) -> None:
    """Refuse a call whose signature is missing, wrong, or whose timestamp is stale."""
    if not signature:
        raise Unauthorized(f"The call has no {SIGNATURE_HEADER} header.", code="missing_signature")
    check_timestamp(timestamp, max_age)
    assert timestamp is not None
    try:
        key.verify(
            base64.b64decode(signature, validate=True),
            timestamp.encode("ascii") + body,
            ec.ECDSA(hashes.SHA256()),
        )
    except (binascii.Error, ValueError, InvalidSignature):
        raise Forbidden("The SendGrid signature does not verify.", code="bad_signature") from None


def events(body: bytes, signer: LinkSigner) -> Intake:
    """The feedback events of one verified call."""
    batch = decode_json(body)
    if not isinstance(batch, list):
        raise InvalidInput("The body is not an array of SendGrid events.", code="malformed")
    intake = Intake()
    for position, item in enumerate(batch):
        fields = as_dict(item)
        name = text(fields.get("event"), 50)
        event_id = text(fields.get("sg_event_id"), 200)
        email = text(fields.get("email"), 254)
        if name is None or event_id is None or email is None:
            intake.malformed(f"Event {position}: no event, sg_event_id or email.")
            continue
        kind = _kind(name, fields)
        if kind is None:
            reason = text(fields.get("reason"), 200)
            intake.ignore(f"SendGrid {name}" + (f" ({reason})" if reason else ""))
            continue
        reason = text(fields.get("reason"))
        intake.events.append(
            FeedbackEvent(
                kind=kind,
                source=SOURCE,
                event_id=event_id,
                delivery_id=verp.parse_delivery_token(signer, fields.get(ARGUMENT)),
                email=email,
                status_code=enhanced_status(fields.get("status"), reason),
                diagnostic=reason or text(fields.get("response")) or text(fields.get("type")),
                occurred_at=unix_time(fields.get("timestamp")),
                message_id=angle_bracketed(fields.get("smtp-id")),
            )
        )
    return intake


def _kind(name: str, fields: dict[str, object]) -> str | None:
    if name == "bounce":
        return "soft_bounce" if fields.get("type") == "blocked" else "hard_bounce"
    if name == "dropped":
        return DROP_KINDS.get(str(fields.get("reason", "")).strip().lower())
    return {"spamreport": "complaint", "delivered": "delivered"}.get(name)
