"""Mailgun's webhooks (the JSON ones): permanent and temporary failures, complaints, deliveries.

Each call's body has `signature` {timestamp, token, signature}: the signature is the hex
HMAC-SHA256 of `timestamp + token` under the HTTP webhook signing key
(`mailgun_webhook_signing_key`). As Mailgun advises, a timestamp more than `webhook_max_age`
seconds off is refused, and so is a token already used (the signature does not cover the event,
so a reused one could carry another event): the endpoint takes the token once, in the database,
shared by every worker process (tokens.py).

The delivery comes from the user variable `contacthub_delivery` (the `X-Mailgun-Variables`
header of each copy), which Mailgun echoes in `event-data.user-variables`.
"""

from __future__ import annotations

import hashlib
import hmac

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

SOURCE = "mailgun"
VARIABLE = "contacthub_delivery"
FAILURE_KINDS = {"permanent": "hard_bounce", "temporary": "soft_bounce"}


def payload(body: bytes) -> dict[str, object]:
    """The JSON object of a call, or `malformed`."""
    document = decode_json(body)
    if not isinstance(document, dict):
        raise InvalidInput("The body is not a Mailgun webhook (a JSON object).", code="malformed")
    return document


def verify(document: dict[str, object], *, signing_key: str, max_age: float) -> str:
    """The signature's token, to be taken once (`tokens.claim`); refuse a call whose signature
    is missing, wrong or stale."""
    signed = as_dict(document.get("signature"))
    timestamp, token, signature = (
        text(signed.get(name), 200) for name in ("timestamp", "token", "signature")
    )
    if signature is None or token is None:
        raise Unauthorized("The call has no signature.", code="missing_signature")
    check_timestamp(timestamp, max_age)
    expected = hmac.new(
        signing_key.encode("utf-8"), f"{timestamp}{token}".encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected.encode("ascii"), signature.lower().encode("utf-8")):
        raise Forbidden("The Mailgun signature does not verify.", code="bad_signature")
    # Only a verified token is ever stored: made-up ones cannot fill the table.
    return token


def replayed_token() -> Forbidden:
    """The refusal of a call whose token was already taken."""
    return Forbidden(
        "This signature's token was already used; Mailgun signs every call anew.",
        code="replayed_token",
    )


def events(document: dict[str, object], signer: LinkSigner) -> Intake:
    """The feedback event of one verified call (none for events the hub does not use)."""
    intake = Intake()
    data = as_dict(document.get("event-data"))
    name = text(data.get("event"), 50)
    event_id = text(data.get("id"), 200)
    email = text(data.get("recipient"), 254)
    if name is None or event_id is None or email is None:
        intake.malformed("The event-data has no event, id or recipient.")
        return intake
    if name == "failed":
        severity = text(data.get("severity"), 20) or ""
        kind = FAILURE_KINDS.get(severity)
        if kind is None:
            intake.malformed(f"A failed event of unknown severity {severity!r}.")
            return intake
    else:
        known = {"complained": "complaint", "delivered": "delivered"}.get(name)
        if known is None:
            intake.ignore(f"Mailgun {name}")
            return intake
        kind = known
    status = as_dict(data.get("delivery-status"))
    message = text(status.get("message")) or text(status.get("description"))
    intake.events.append(
        FeedbackEvent(
            kind=kind,
            source=SOURCE,
            event_id=event_id,
            delivery_id=verp.parse_delivery_token(
                signer, as_dict(data.get("user-variables")).get(VARIABLE)
            ),
            email=email,
            status_code=enhanced_status(status.get("enhanced-code"), message),
            diagnostic=message or text(data.get("reason")),
            occurred_at=unix_time(data.get("timestamp")),
            message_id=angle_bracketed(
                as_dict(as_dict(data.get("message")).get("headers")).get("message-id")
            ),
        )
    )
    return intake
