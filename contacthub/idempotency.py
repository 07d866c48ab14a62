"""Idempotent requests: a retried activity or request is answered as the first time, stored once.

Two kinds of client-chosen ids, both remembered per channel for `ingest_dedupe_days`:

- an activity's `messageId`: claimed in the batch transaction that stores the activity
  (`claim_message_ids`). A claim that finds the id already stored within the window is a retry:
  the item is answered with the stored result (None stands for a plain 202) and nothing is
  stored. A row older than the window is taken over: the activity is stored as new.
- an `Idempotency-Key` header on POST /activities, POST /contacts and consent agree/revoke:
  claimed (`claim_key`) with a SHA-256 of the canonical request in the transaction that does the
  work, and filled with the answer (`finish_key`) in that same transaction. A replay within the
  window gets the same status and body; the same key with another request is refused (422); a
  claim not yet finished (the same key twice in one batch) is refused (409). Only successful
  answers are remembered: a request that fails releases its key, so the client can retry it.

The claims are `INSERT … ON CONFLICT DO NOTHING … RETURNING` (`insert_or_ignore` for keys, one
hand-written statement per batch for message ids): on
PostgreSQL a second transaction claiming the same id waits for the first to commit or roll back,
then sees its row; on SQLite one write transaction runs at a time. Both are exact across
workers, with no lock of our own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import msgspec
from sqlalchemy import Table, delete, select, tuple_, update
from sqlalchemy.orm import Session

from contacthub.errors import Conflict, HubError, InvalidInput
from contacthub.storage.database import driver_cursor, insert_or_ignore
from contacthub.storage.models import IdempotencyKey, IngestMessageId
from contacthub.storage.types import sqlite_datetime

MAX_KEY_LENGTH = 200
HEADER = "idempotency-key"
# Ids per look-up of the retries: SQLite allows 32,766 bound values per statement.
CLAIM_CHUNK = 2000

# The scopes of Idempotency-Key rows: one per endpoint that honours the header.
ACTIVITIES = "activities"
CONTACTS = "contacts"
CONSENT = "consent"

MessageKey = tuple[int, str]  # (channel_id, message_id)

_MESSAGES = cast(Table, IngestMessageId.__table__)
_KEYS = cast(Table, IdempotencyKey.__table__)
_canonical = msgspec.json.Encoder(order="sorted")


REUSED = "This Idempotency-Key was sent with another request; use a new key for a new request."


class KeyReused(HubError):
    """An Idempotency-Key sent again with a different request (422)."""

    status_code = 422
    code = "idempotency_key_reused"


def window(days: float) -> timedelta:
    """The dedupe window of the `ingest_dedupe_days` setting."""
    return timedelta(days=days)


# --- messageId ----------------------------------------------------------------------------


def claim_message_ids(
    session: Session, keys: Collection[MessageKey], now: datetime, dedupe: timedelta
) -> dict[MessageKey, dict[str, Any] | None]:
    """Claim each (channel_id, message_id) for an activity stored now; answer the retries.

    The answer maps each id that was already stored within the window to the result its item
    got then (None for a plain 202); every other id is now claimed by this transaction (rows
    older than the window are taken over). Claims go in sorted order, so that two PostgreSQL
    transactions claiming the same ids wait for each other rather than deadlock.
    """
    if not keys:
        return {}
    ordered = sorted(set(keys))
    claimed = _insert_claims(session, ordered, now)
    taken = [key for key in ordered if key not in claimed]
    if not taken:
        return {}
    return _retries(session, taken, now, now - dedupe)


# The hot path: one statement per write batch and channel (a batch mostly holds one channel),
# whatever its size, with the ids as one parameter (a JSON array on SQLite, an array on
# PostgreSQL): a multi-row INSERT built by SQLAlchemy cost more CPU than the ingest it guarded
# (docs/benchmarks.md). Rows go in the order given, so that concurrent claims of the same ids
# queue rather than deadlock.
_CLAIM = {
    "sqlite": "INSERT INTO ingest_message_ids (channel_id, message_id, created_at) "
    "SELECT ?, value, ? FROM json_each(?) WHERE true ORDER BY key "
    "ON CONFLICT DO NOTHING RETURNING message_id",
    "postgresql": "INSERT INTO ingest_message_ids (channel_id, message_id, created_at) "
    "SELECT %s, m, %s FROM unnest(%s::text[]) WITH ORDINALITY AS t(m, n) "
    "ORDER BY n ON CONFLICT DO NOTHING RETURNING message_id",
}


def _insert_claims(session: Session, ordered: list[MessageKey], now: datetime) -> set[MessageKey]:
    """Insert a row per id; answer those inserted (not already there)."""
    dialect = session.get_bind().dialect.name
    by_channel: dict[int, list[str]] = {}
    for channel_id, message_id in ordered:
        by_channel.setdefault(channel_id, []).append(message_id)
    moment: object = sqlite_datetime(now) if dialect == "sqlite" else now
    claimed: set[MessageKey] = set()
    with driver_cursor(session) as cursor:
        for channel_id, message_ids in by_channel.items():
            ids: object = json.dumps(message_ids) if dialect == "sqlite" else message_ids
            cursor.execute(_CLAIM[dialect], (channel_id, moment, ids))
            claimed.update((channel_id, message_id) for (message_id,) in cursor.fetchall())
    return claimed


def _retries(
    session: Session, keys: list[MessageKey], now: datetime, cutoff: datetime
) -> dict[MessageKey, dict[str, Any] | None]:
    retries: dict[MessageKey, dict[str, Any] | None] = {}
    columns = tuple_(_MESSAGES.c.channel_id, _MESSAGES.c.message_id)
    for start in range(0, len(keys), CLAIM_CHUNK):
        chunk = keys[start : start + CLAIM_CHUNK]
        rows = session.execute(
            select(
                _MESSAGES.c.channel_id,
                _MESSAGES.c.message_id,
                _MESSAGES.c.result,
                _MESSAGES.c.created_at,
            ).where(columns.in_(chunk))
        )
        for channel_id, message_id, result, created_at in rows:
            key = (channel_id, message_id)
            if created_at < cutoff and _take_over(session, key, now, cutoff):
                continue  # remembered too long ago: stored again, as new
            retries[key] = None if result is None else json.loads(result)
    return retries


def _take_over(session: Session, key: MessageKey, now: datetime, cutoff: datetime) -> bool:
    """Claim an expired row for now; False if another transaction renewed it meanwhile."""
    renewed = session.execute(
        update(_MESSAGES)
        .where(
            _MESSAGES.c.channel_id == key[0],
            _MESSAGES.c.message_id == key[1],
            _MESSAGES.c.created_at < cutoff,
        )
        .values(created_at=now, result=None)
        .returning(_MESSAGES.c.channel_id)
    ).first()
    return renewed is not None


def remember_results(session: Session, results: Mapping[MessageKey, dict[str, Any]]) -> None:
    """Keep the results of claimed ids that were more than a plain 202 (a data input that went to
    another contact, a cut value), so that their retries get the same answer."""
    for (channel_id, message_id), result in results.items():
        session.execute(
            update(_MESSAGES)
            .where(_MESSAGES.c.channel_id == channel_id, _MESSAGES.c.message_id == message_id)
            .values(result=json.dumps(result, separators=(",", ":")))
        )


# --- Idempotency-Key ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyClaim:
    """An Idempotency-Key as a request sent it, and what that request asked for."""

    scope: str
    key: str
    request_hash: str


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """The answer a request with an Idempotency-Key got, replayed to its retries."""

    status: int
    body: bytes
    request_hash: str = ""


def read_key(headers: Mapping[str, str]) -> str | None:
    """The request's Idempotency-Key header, checked; None without one."""
    key = headers.get(HEADER)
    if key is None:
        return None
    key = key.strip()
    if not key:
        raise InvalidInput("The Idempotency-Key header is empty.", code="invalid_idempotency_key")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(
            f"The Idempotency-Key header is longer than {MAX_KEY_LENGTH} characters.",
            code="invalid_idempotency_key",
        )
    return key


def request_hash(method: str, path: str, body: object = None) -> str:
    """SHA-256 of the canonical request: method, path, and the body as canonical JSON (keys
    sorted, no spaces), so that the same request spelled with other spacing is the same."""
    digest = hashlib.sha256(f"{method.upper()} {path}\n".encode())
    digest.update(_canonical.encode(body))
    return digest.hexdigest()


def canonical_json_body(body: bytes) -> object:
    """A JSON body as a value to hash; a body that is not JSON hashes as its bytes."""
    try:
        return msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return body.hex()


def claim_key(
    session: Session, channel_id: int, claim: KeyClaim, now: datetime, dedupe: timedelta
) -> StoredAnswer | None:
    """Claim the key for this request (None: go on, then `finish_key`), or answer its replay.

    Raises KeyReused (422) when the key came with another request, Conflict (409) while the
    request that claimed it has not finished.
    """
    statement = (
        insert_or_ignore(session, _KEYS, ["channel_id", "scope", "key"])
        .values(
            channel_id=channel_id,
            scope=claim.scope,
            key=claim.key,
            request_hash=claim.request_hash,
            created_at=now,
        )
        .returning(_KEYS.c.channel_id)
    )
    if session.execute(statement).first() is not None:
        return None
    row = session.execute(
        select(_KEYS.c.request_hash, _KEYS.c.status, _KEYS.c.response, _KEYS.c.created_at).where(
            *_key_is(channel_id, claim)
        )
    ).one()
    if row.created_at < now - dedupe:
        # Remembered too long ago: this is a new request.
        session.execute(
            update(_KEYS)
            .where(*_key_is(channel_id, claim))
            .values(request_hash=claim.request_hash, status=None, response=None, created_at=now)
        )
        return None
    if row.request_hash != claim.request_hash:
        raise KeyReused(REUSED)
    if row.status is None:
        raise Conflict(
            "A request with this Idempotency-Key is still running; retry once it has finished.",
            code="idempotency_key_in_use",
        )
    return StoredAnswer(row.status, (row.response or "").encode(), row.request_hash)


def finish_key(
    session: Session, channel_id: int, claim: KeyClaim, status: int, body: bytes
) -> None:
    """Store the answer of the request that claimed the key (same transaction as its work)."""
    session.execute(
        update(_KEYS)
        .where(*_key_is(channel_id, claim))
        .values(status=status, response=body.decode())
    )


def release_key(session: Session, channel_id: int, claim: KeyClaim) -> None:
    """Forget a claim whose request failed: errors are not remembered, a retry runs again."""
    session.execute(delete(_KEYS).where(*_key_is(channel_id, claim)))


def _key_is(channel_id: int, claim: KeyClaim) -> Iterable[Any]:
    return (
        _KEYS.c.channel_id == channel_id,
        _KEYS.c.scope == claim.scope,
        _KEYS.c.key == claim.key,
    )


# --- expiry ---------------------------------------------------------------------------------


def forget_expired(session: Session, now: datetime, *, days: float = 7.0) -> int:
    """Delete the message ids and idempotency keys older than the window; how many rows went.

    The retention job calls it with the `ingest_dedupe_days` setting. Rows past the window are
    already ignored (taken over) by the claims, so this only keeps the tables small.
    """
    cutoff = now - window(days)
    removed = 0
    for table in (_MESSAGES, _KEYS):
        result = session.execute(delete(table).where(table.c.created_at < cutoff))
        removed += int(getattr(result, "rowcount", 0) or 0)
    return removed
