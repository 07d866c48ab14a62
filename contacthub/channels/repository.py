"""Queries for channels and API keys."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from contacthub.storage.database import driver_cursor
from contacthub.storage.models import ApiKey, Channel
from contacthub.storage.types import guid_from_driver, utc_from_driver


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What authentication needs to know about a key and its channel."""

    key_hash: str
    access: str
    enabled: bool
    expires_at: datetime | None
    revoked_at: datetime | None
    channel_id: int
    channel_guid: str
    required_consent_id: int | None


def channel_by_name(session: Session, name: str) -> Channel | None:
    return session.scalar(select(Channel).where(Channel.name == name))


def all_channels(session: Session) -> Sequence[Channel]:
    return session.scalars(select(Channel).order_by(Channel.name)).all()


# This query runs once per batch on the ingest hot path, where SQLAlchemy's statement execution
# cost more than the query: it goes to the driver directly, the list as one parameter.
_KEYS_SELECT = """
    SELECT k.key_hash, k.access, k.enabled, k.expires_at, k.revoked_at,
           c.id, c.guid, c.required_consent_id
    FROM api_keys k JOIN channels c ON c.id = k.channel_id
"""
_KEYS_BY_HASH = {
    "sqlite": _KEYS_SELECT + "WHERE k.key_hash IN (SELECT value FROM json_each(?))",  # noqa: S608
    "postgresql": _KEYS_SELECT + "WHERE k.key_hash = ANY(%s)",
}


def keys_by_hash(session: Session, hashes: Iterable[str]) -> dict[str, KeyRecord]:
    """The keys whose SHA-256 is among `hashes`, with their channel, in one query."""
    wanted = sorted(set(hashes))
    if not wanted:
        return {}
    dialect = session.get_bind().dialect.name
    with driver_cursor(session) as cursor:
        cursor.execute(
            _KEYS_BY_HASH[dialect], (json.dumps(wanted) if dialect == "sqlite" else wanted,)
        )
        rows = cursor.fetchall()
    return {
        key_hash: KeyRecord(
            key_hash,
            access,
            bool(enabled),
            utc_from_driver(expires_at),
            utc_from_driver(revoked_at),
            channel_id,
            str(guid_from_driver(channel_guid)),
            required_consent_id,
        )
        for (
            key_hash,
            access,
            enabled,
            expires_at,
            revoked_at,
            channel_id,
            channel_guid,
            required_consent_id,
        ) in rows
    }


def all_api_keys(session: Session, channel_id: int | None = None) -> Sequence[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.id)
    if channel_id is not None:
        query = query.where(ApiKey.channel_id == channel_id)
    return session.scalars(query).all()


def api_key_by_prefix(session: Session, prefix: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
