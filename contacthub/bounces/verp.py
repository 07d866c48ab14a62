"""References from an outgoing message back to its delivery, for bounces and provider events.

Each copy's envelope sender (Return-Path) is `bounces+<delivery>-<tag>@<bounce_domain>`
(VERP): a DSN comes back to that address, and the address alone says which delivery bounced,
whatever the reporting server puts (or fails to put) in the report. The same `<delivery>-<tag>`
token goes into the `X-Contacthub-Delivery` header and the providers' own metadata headers, which
their webhooks echo. The tag is an HMAC of the delivery id (`LinkSigner.sign_delivery`), so
nobody can forge a bounce that suppresses an address or counts against an issue.

Local parts are compared case-insensitively by some mail systems, so the token is lower case.
"""

from __future__ import annotations

import re

from contacthub.email.hashing import LinkSigner

LOCAL_PREFIX = "bounces"
HEADER = "X-Contacthub-Delivery"
_TOKEN = re.compile(r"(\d{1,19})-([0-9a-f]{16})")
_ADDRESS = re.compile(rf"{LOCAL_PREFIX}\+(\d{{1,19}}-[0-9a-f]{{16}})@", re.IGNORECASE)


def delivery_token(signer: LinkSigner, delivery_id: int) -> str:
    """`<delivery id>-<tag>`: names a delivery, and proves that the hub named it."""
    return f"{delivery_id}-{signer.sign_delivery(delivery_id)}"


def parse_delivery_token(signer: LinkSigner, token: str | None) -> int | None:
    """The delivery id a token names, or None when it is malformed or its tag is wrong."""
    if not isinstance(token, str):
        return None
    match = _TOKEN.fullmatch(token.strip().lower())
    if match is None:
        return None
    delivery_id = int(match.group(1))
    return delivery_id if signer.verify_delivery(delivery_id, match.group(2)) else None


def return_path(signer: LinkSigner, delivery_id: int, bounce_domain: str) -> str:
    """The envelope sender of a delivery's copy: `bounces+<token>@<bounce_domain>`."""
    return f"{LOCAL_PREFIX}+{delivery_token(signer, delivery_id)}@{bounce_domain}"


def delivery_of_address(signer: LinkSigner, address: str | None) -> int | None:
    """The delivery a VERP address (e.g. a DSN's envelope recipient) names, if it is one."""
    if not isinstance(address, str):
        return None
    match = _ADDRESS.search(address)
    return parse_delivery_token(signer, match.group(1)) if match else None
