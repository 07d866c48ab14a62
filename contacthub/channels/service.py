"""Channels and API keys: creating, listing, disabling, revoking, and authenticating requests.

API keys are random 256-bit secrets, so a fast hash is enough to store them safely (argon2 is for
low-entropy passwords); only the SHA-256 is kept and the key is shown once, at creation.

Changes are recorded in the audit log, in the caller's unit of work, when the caller names an
`actor`: every entry point does (a user's address, or `cli`); test factories pass none.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from contacthub.audit import service as audit
from contacthub.channels import repository
from contacthub.channels.repository import KeyRecord
from contacthub.consents import repository as consent_repository
from contacthub.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from contacthub.identifiers import check_label, typed_time
from contacthub.storage.models import ApiKey, Channel, Consent
from contacthub.storage.types import utcnow

ACCESS_TYPES = ("tracking", "email")
KEY_PREFIX = "chk_"
# Ids are 32-bit integer columns: a larger id names nothing (and would overflow the driver).
MAX_ID = 2**31 - 1


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A key just created: the only moment its plaintext exists."""

    record: ApiKey
    plaintext: str


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request authenticated as: a channel, through one of its keys."""

    channel_id: int
    channel_guid: str
    required_consent_id: int | None


def hash_key(plaintext: str) -> str:
    """The stored form of an API key."""
    return hashlib.sha256(plaintext.encode("utf-8", "surrogatepass")).hexdigest()


def create_channel(
    session: Session,
    name: str,
    *,
    required_consent: str | None = None,
    actor: str | None = None,
) -> Channel:
    """Create a channel with a new tracking identifier; `actor` (if given) is audited."""
    name = check_label(name, "A channel name", code="invalid_name", field="name", minimum=1)
    # The management API addresses a channel by name in its URL path.
    if "/" in name:
        raise InvalidInput("A channel name cannot contain '/'.", code="invalid_name", field="name")
    if repository.channel_by_name(session, name) is not None:
        raise Conflict(
            f"A channel named {name!r} already exists.", code="channel_exists", field="name"
        )
    channel = Channel(name=name)
    if required_consent is not None:
        channel.required_consent_id = _consent_id(session, required_consent)
    session.add(channel)
    session.flush()
    if actor is not None:
        audit.record(
            session,
            actor,
            "channel.created",
            channel.name,
            {"guid": str(channel.guid), "required_consent": required_consent},
        )
    return channel


def get_channel(session: Session, name: str) -> Channel:
    """The channel with this name, or NotFound."""
    channel = repository.channel_by_name(session, name)
    if channel is None:
        raise NotFound(f"No channel named {name!r}.", code="unknown_channel")
    return channel


def get_channel_by_id(session: Session, channel_id: int) -> Channel:
    """The channel with this id, or NotFound."""
    channel = session.get(Channel, channel_id) if 0 < channel_id <= MAX_ID else None
    if channel is None:
        raise NotFound(f"No channel with id {channel_id}.", code="unknown_channel")
    return channel


def list_channels(session: Session) -> Sequence[Channel]:
    """Every channel, by name."""
    return repository.all_channels(session)


@dataclass(frozen=True, slots=True)
class ChannelOverview:
    """A channel as lists show it: its consent gate and how many of its keys work."""

    channel: Channel
    required_consent: str | None
    active_keys: int
    keys: int


def channel_overviews(session: Session) -> list[ChannelOverview]:
    """Every channel, by name, with its consent gate and key counts."""
    # A hub has a handful of channels and keys: counting in Python keeps one notion of "active"
    # (api_key_status) instead of a second one in SQL.
    now = utcnow()
    active: dict[int, int] = {}
    total: dict[int, int] = {}
    for key in repository.all_api_keys(session):
        total[key.channel_id] = total.get(key.channel_id, 0) + 1
        if api_key_status(key, now) == "active":
            active[key.channel_id] = active.get(key.channel_id, 0) + 1
    consent_codes = {c.id: c.code_name for c in consent_repository.all_consents(session)}
    return [
        ChannelOverview(
            channel,
            None
            if channel.required_consent_id is None
            else consent_codes.get(channel.required_consent_id),
            active.get(channel.id, 0),
            total.get(channel.id, 0),
        )
        for channel in repository.all_channels(session)
    ]


def set_consent_gate(
    session: Session, channel_name: str, consent_code: str | None, *, actor: str | None = None
) -> Channel:
    """Require (or, with None, stop requiring) a consent for the channel's activities."""
    channel = get_channel(session, channel_name)
    channel.required_consent_id = (
        None if consent_code is None else _consent_id(session, consent_code)
    )
    session.flush()
    if actor is not None:
        audit.record(
            session,
            actor,
            "channel.consent_gate_set",
            channel.name,
            {"required_consent": consent_code},
        )
    return channel


def consent_gate_of(session: Session, channel: Channel) -> str | None:
    """The code name of the consent the channel requires, if any."""
    if channel.required_consent_id is None:
        return None
    return session.get_one(Consent, channel.required_consent_id).code_name


def _consent_id(session: Session, code_name: str) -> int:
    consent = consent_repository.consent_by_code(session, code_name)
    if consent is None:
        raise NotFound(
            f"No consent with code name {code_name!r}.",
            code="unknown_consent",
            field="required_consent",
        )
    return consent.id


def parse_expiry(text: str | None) -> datetime | None:
    """An expiry as people type it: an ISO date (00:00 UTC that day) or time (UTC if no zone).

    Empty or None: no expiry. Every time the hub shows is UTC, so a time without a zone is too.
    """
    text = (text or "").strip()
    if not text:
        return None
    return typed_time(text, code="invalid_expiry", field="expires_at")


def create_api_key(
    session: Session,
    channel_name: str,
    access: str,
    *,
    name: str = "",
    expires_at: datetime | None = None,
    actor: str | None = None,
) -> NewApiKey:
    """Create a key for a channel; the plaintext is in the answer and nowhere else."""
    name = check_label(name, "A key name", code="invalid_key_name", field="name", minimum=0)
    if access not in ACCESS_TYPES:
        raise InvalidInput(
            f"Access must be one of: {', '.join(ACCESS_TYPES)}.",
            code="invalid_access",
            field="access",
        )
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidInput(
            "The expiry needs a time zone.", code="invalid_expiry", field="expires_at"
        )
    if expires_at is not None:
        try:
            expires_at = expires_at.astimezone(UTC)  # every time the hub answers is UTC
        except OverflowError:
            raise InvalidInput(
                "The expiry is out of range.", code="invalid_expiry", field="expires_at"
            ) from None
        if expires_at <= utcnow():
            # A key that could never be used is a mistake (a wrong year, most likely), as for
            # management API tokens (users/service.py: create_token).
            raise InvalidInput(
                "The expiry must be in the future.", code="invalid_expiry", field="expires_at"
            )
    channel = get_channel(session, channel_name)
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        channel_id=channel.id,
        name=name,
        access=access,
        prefix=plaintext[: len(KEY_PREFIX) + 8],
        key_hash=hash_key(plaintext),
        enabled=True,
        expires_at=expires_at,
    )
    session.add(key)
    session.flush()
    if actor is not None:
        audit.record(
            session,
            actor,
            "key.created",
            key.prefix,
            {
                "id": key.id,
                "channel": channel.name,
                "name": name,
                "access": access,
                "expires_at": expires_at,
            },
        )
    return NewApiKey(key, plaintext)


def list_api_keys(session: Session, channel_name: str | None = None) -> Sequence[ApiKey]:
    """Every key (never its plaintext), optionally of one channel."""
    channel_id = None if channel_name is None else get_channel(session, channel_name).id
    return repository.all_api_keys(session, channel_id)


def get_api_key(session: Session, key_id: int) -> ApiKey:
    """The key with this id, or NotFound."""
    key = session.get(ApiKey, key_id) if 0 < key_id <= MAX_ID else None
    if key is None:
        raise NotFound(f"No API key with id {key_id}.", code="unknown_api_key")
    return key


def _audit_key(session: Session, actor: str | None, action: str, key: ApiKey) -> None:
    if actor is not None:
        channel = session.get_one(Channel, key.channel_id)
        audit.record(session, actor, action, key.prefix, {"id": key.id, "channel": channel.name})


def set_api_key_enabled(
    session: Session, key_id: int, enabled: bool, *, actor: str | None = None
) -> ApiKey:
    """Disable a key for a while, or enable it again (a revoked key stays revoked)."""
    key = get_api_key(session, key_id)
    key.enabled = enabled
    session.flush()
    _audit_key(session, actor, "key.enabled" if enabled else "key.disabled", key)
    return key


def revoke_api_key(session: Session, key_id: int, *, actor: str | None = None) -> ApiKey:
    """Revoke a key for good."""
    key = get_api_key(session, key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    session.flush()
    _audit_key(session, actor, "key.revoked", key)
    return key


def api_key_status(key: ApiKey | KeyRecord, now: datetime | None = None) -> str:
    """`active`, `disabled`, `expired` or `revoked`."""
    now = now or utcnow()
    if key.revoked_at is not None:
        return "revoked"
    if not key.enabled:
        return "disabled"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


def check_key(record: KeyRecord | None, presented_hash: str, access: str) -> Principal:
    """Turn a looked-up key into a Principal, or raise why it may not be used."""
    # The row was found by its hash; comparing again in constant time costs nothing and keeps
    # the check independent of how the database compares strings.
    if record is None or not hmac.compare_digest(record.key_hash, presented_hash):
        raise Unauthorized("The API key is not valid.", code="invalid_api_key")
    status = api_key_status(record)
    if status != "active":
        raise Unauthorized(f"The API key is {status}.", code=f"api_key_{status}")
    if record.access != access:
        raise Forbidden(
            f"The API key has {record.access!r} access; this endpoint needs {access!r}.",
            code="wrong_access",
        )
    return Principal(record.channel_id, record.channel_guid, record.required_consent_id)


def authenticate(session: Session, plaintext: str, access: str) -> Principal:
    """The channel a presented key belongs to, if the key may be used for `access`."""
    presented = hash_key(plaintext)
    return check_key(
        repository.keys_by_hash(session, [presented]).get(presented), presented, access
    )
