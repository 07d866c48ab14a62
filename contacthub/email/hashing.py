"""Signing of email tracking links (the `hash` parameter of SPEC §3).

A hash proves that a request comes from the recipient's own copy of an email: it is an
HMAC-SHA256, keyed with a server secret, over

    "contacthub-email-v1" NUL purpose NUL guid NUL normalised address

written as 64 lowercase hex digits, so it looks like the vendor's own hashes. The parts:

- purpose: what the link does (`Purpose`). Each handler checks its own purpose, so the open
  pixel's URL, which image proxies fetch and log, cannot unsubscribe anyone or show the email.
- guid: the issue GUID (open pixel, view in browser, unsubscribe) or the link GUID (click), in
  canonical lowercase form, so `{1EB1...}` and `1eb1...` name the same thing.
- address: stripped and lower-cased (subscribers are stored lower-cased; mail systems and
  people change the case of addresses in links).

Rotation: `LinkSigner` signs with the first secret and accepts any of them, so emails sent
before a rotation keep working while the old secret stays listed.

Legacy mode: the vendor's handlers accept `lowercase hex SHA-256(UTF-8(address + salt))`, salt =
the old installation's `CMSHashStringSalt` (`CMS.Newsletters.Internal.EmailHashService`). Such a
hash covers only the address, not the issue, link or purpose, and the vendor hashes the address
exactly as it appears in the link; so does `legacy_email_hash` here: no stripping, no lower-casing.
Legacy hashes are accepted for opens, clicks and browser views (the links old emails carry), never
for unsubscribing (old emails carry the vendor's own unsubscribe links, not ours).

Verification never raises: a missing, malformed or wrong hash is simply not valid.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Sequence
from enum import StrEnum
from typing import TypeGuard

_DOMAIN = b"contacthub-email-v1"
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_HASH_LENGTH = 64  # hex digits of a SHA-256 digest
_DELIVERY_DOMAIN = b"contacthub-delivery-v1"
_DELIVERY_TAG_LENGTH = 16  # hex digits: 64 bits, short enough for an address's local part


class Purpose(StrEnum):
    """What a signed link does; part of the signed message."""

    OPEN = "open"
    CLICK = "click"
    BROWSER_VIEW = "browserview"
    UNSUBSCRIBE = "unsubscribe"
    # Double opt-in and the preference page (contacthub/subscriptions).
    CONFIRM = "confirm"
    PREFERENCES = "preferences"
    SUBSCRIBE_FORM = "subscribeform"


# The purposes whose links old vendor emails carry, with a hash of the address alone.
LEGACY_PURPOSES = frozenset({Purpose.OPEN, Purpose.CLICK, Purpose.BROWSER_VIEW})


def normalize_email(email: str) -> str:
    """The form of an address that hashes are bound to: stripped and lower-cased."""
    return email.strip().lower()


def canonical_guid(guid: uuid.UUID | str) -> str:
    """A GUID in canonical lowercase hyphenated form; ValueError when it is not a GUID."""
    return str(guid if isinstance(guid, uuid.UUID) else uuid.UUID(guid))


def legacy_email_hash(email: str, salt: str) -> str:
    """The vendor's email hash: lowercase hex SHA-256 of the address as given plus the salt."""
    return hashlib.sha256((email + salt).encode("utf-8", "surrogatepass")).hexdigest()


def _looks_like_hash(value: object) -> TypeGuard[str]:
    # compare_digest on str accepts ASCII only, so anything else must be refused before it.
    return (
        isinstance(value, str)
        and len(value) == _HASH_LENGTH
        and all(character in _HEX_DIGITS for character in value)
    )


class LinkSigner:
    """Signs tracking links with the current secret; verifies against current and older ones."""

    def __init__(self, secrets: Sequence[str], *, legacy_salts: Sequence[str] = ()) -> None:
        """`secrets`: current first. `legacy_salts`: old `CMSHashStringSalt`s."""
        if isinstance(secrets, str):
            raise TypeError("secrets is a sequence of secrets, not one string")
        if not secrets:
            raise ValueError("at least one secret is needed to sign links")
        if any(not secret for secret in secrets):
            raise ValueError("an empty secret would make every link forgeable")
        if isinstance(legacy_salts, str):
            raise TypeError("legacy_salts is a sequence of salts, not one string")
        # An empty salt would make the legacy hash a plain SHA-256 of the address: forgeable.
        if any(not salt for salt in legacy_salts):
            raise ValueError("an empty legacy salt would make every legacy link forgeable")
        self._keys = tuple(secret.encode("utf-8") for secret in secrets)
        self._legacy_salts = tuple(legacy_salts)

    def sign(self, purpose: Purpose, guid: uuid.UUID | str, email: str) -> str:
        """The hash for a link; ValueError when `guid` is not a GUID."""
        return self._digest(self._keys[0], purpose, canonical_guid(guid), email)

    def verify(
        self,
        purpose: Purpose,
        guid: uuid.UUID | str | None,
        email: str | None,
        hash: str | None,
    ) -> bool:
        """True when `hash` was made for this purpose, GUID and address (or is a legacy hash)."""
        if not isinstance(email, str) or not _looks_like_hash(hash):
            return False
        given = hash.lower().encode("ascii")
        try:
            guid_text = canonical_guid(guid) if guid is not None else None
        except (ValueError, TypeError, AttributeError):
            guid_text = None
        if guid_text is not None:
            for key in self._keys:
                expected = self._digest(key, purpose, guid_text, email).encode("ascii")
                if hmac.compare_digest(expected, given):
                    return True
        if purpose in LEGACY_PURPOSES:
            for salt in self._legacy_salts:
                expected = legacy_email_hash(email, salt).encode("ascii")
                if hmac.compare_digest(expected, given):
                    return True
        return False

    def sign_parts(self, purpose: Purpose, guid: uuid.UUID | str, *parts: str) -> str:
        """The hash binding several values (an address first, then e.g. a revision and a time).

        They are joined with NUL in the address's place: no address holds a NUL, so the message
        stays distinct from every single-address message, and the purpose keeps the rest apart.
        """
        return self.sign(purpose, guid, "\0".join(parts))

    def verify_parts(
        self, purpose: Purpose, guid: uuid.UUID | str | None, parts: Sequence[str], hash: str | None
    ) -> bool:
        """True when `hash` was made by `sign_parts` for these values (never a legacy hash)."""
        if purpose in LEGACY_PURPOSES or any("\0" in part for part in parts):
            return False
        return self.verify(purpose, guid, "\0".join(parts), hash)

    def sign_delivery(self, delivery_id: int) -> str:
        """A short tag (16 hex digits) proving that the hub made a reference to this delivery.

        It goes into the per-delivery return path (VERP) and provider headers, so that a forged
        bounce cannot suppress an address or count against an issue (bounces/verp.py).
        """
        return self._delivery_digest(self._keys[0], delivery_id)

    def verify_delivery(self, delivery_id: int, tag: str) -> bool:
        """True when `tag` was made for this delivery with any of the secrets."""
        if not isinstance(tag, str) or len(tag) != _DELIVERY_TAG_LENGTH or not tag.isascii():
            return False
        given = tag.lower().encode("ascii")
        return any(
            hmac.compare_digest(self._delivery_digest(key, delivery_id).encode("ascii"), given)
            for key in self._keys
        )

    @staticmethod
    def _delivery_digest(key: bytes, delivery_id: int) -> str:
        message = b"\0".join((_DELIVERY_DOMAIN, str(delivery_id).encode("ascii")))
        return hmac.digest(key, message, "sha256").hex()[:_DELIVERY_TAG_LENGTH]

    @staticmethod
    def _digest(key: bytes, purpose: Purpose, guid: str, email: str) -> str:
        # The parts before the address have fixed forms without NUL, and the address comes
        # last: no two inputs share a message. surrogatepass: a query string decoded leniently
        # may hold lone surrogates, and verification must not raise on them.
        address = normalize_email(email).encode("utf-8", "surrogatepass")
        message = b"\0".join((_DOMAIN, purpose.value.encode(), guid.encode(), address))
        return hmac.digest(key, message, "sha256").hex()
