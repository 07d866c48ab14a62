"""Queries for channels and API keys."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from contacthub.storage.models import ApiKey, Channel


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


def keys_by_hash(session: Session, hashes: Iterable[str]) -> dict[str, KeyRecord]:
    """The keys whose SHA-256 is among `hashes`, with their channel, in one query."""
    wanted = set(hashes)
    if not wanted:
        return {}
    rows = session.execute(
        select(
            ApiKey.key_hash,
            ApiKey.access,
            ApiKey.enabled,
            ApiKey.expires_at,
            ApiKey.revoked_at,
            Channel.id,
            Channel.guid,
            Channel.required_consent_id,
        )
        .join(Channel, Channel.id == ApiKey.channel_id)
        .where(ApiKey.key_hash.in_(wanted))
    )
    return {
        row[0]: KeyRecord(row[0], row[1], row[2], row[3], row[4], row[5], str(row[6]), row[7])
        for row in rows
    }


def all_api_keys(session: Session, channel_id: int | None = None) -> Sequence[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.id)
    if channel_id is not None:
        query = query.where(ApiKey.channel_id == channel_id)
    return session.scalars(query).all()


def api_key_by_prefix(session: Session, prefix: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
