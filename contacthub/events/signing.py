"""Webhook signatures, the Standard Webhooks way (https://www.standardwebhooks.com).

Each call carries three headers: `webhook-id` (the event's GUID, the same on every try and
replay, so receivers dedupe by it), `webhook-timestamp` (Unix seconds of this try) and
`webhook-signature`: `v1,<base64 of HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`, where the key
is the base64-decoded part of the endpoint's secret `whsec_<base64>`. A header may hold several
space-separated signatures (during a secret rotation, say); one match suffices.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix, not a secret
SECRET_BYTES = 24
# Seconds a signed call's timestamp may be away from the receiver's clock (either way).
TOLERANCE_SECONDS = 300

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"


def new_secret() -> str:
    """A new endpoint secret: `whsec_` and the base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error as error:
        raise ValueError("A webhook secret is `whsec_` followed by base64.") from error


def sign(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The `webhook-signature` value of one call: `v1,<base64 HMAC-SHA256>`."""
    payload = body.encode("utf-8") if isinstance(body, str) else body
    content = f"{msg_id}.{timestamp}.".encode() + payload
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(
    secret: str, msg_id: str, body: bytes | str, timestamp: int | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers of one call, signed now (or at `timestamp`)."""
    moment = int(time.time()) if timestamp is None else timestamp
    return {
        HEADER_ID: msg_id,
        HEADER_TIMESTAMP: str(moment),
        HEADER_SIGNATURE: sign(secret, msg_id, moment, body),
    }


def verify(
    secret: str,
    msg_id: str,
    timestamp: str | int,
    body: bytes | str,
    signature: str,
    *,
    tolerance: float = TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Whether `signature` (a `webhook-signature` header) signs this call with `secret` and its
    timestamp is within `tolerance` seconds of now; compared in constant time."""
    try:
        moment = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - moment) > tolerance:
        return False
    expected = sign(secret, msg_id, moment, body).encode("ascii")
    return any(
        hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
        for candidate in signature.split()
    )
