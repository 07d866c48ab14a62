"""Single-use signature tokens (Mailgun's), shared by every worker process and machine.

Mailgun signs only `timestamp + token`, not the event, so a captured signature could be sent
again with another event. As Mailgun advises, each token is taken once: the first call that
uses it inserts a row of `webhook_tokens` (INSERT … ON CONFLICT DO NOTHING) in the transaction
that records its events; a second call with the token, in any process, finds the row and is
refused. Both calls at once: PostgreSQL makes the second insert wait for the first's commit,
and SQLite's write transactions run one at a time; either way exactly one takes the token.

A row is kept while a call signed with its token could still pass the timestamp check: the
signed timestamp may be up to `max_age` seconds ahead of the clock when the token is first
seen, and is taken until `max_age` seconds after it, so rows older than twice `max_age` are
deleted, a few at a time, by the calls that claim tokens (no job, and the table stays small).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from contacthub.storage.models import WebhookToken
from contacthub.storage.types import utcnow

# How many expired rows one claim deletes at most: more than one call adds, so the table shrinks.
FORGET_BATCH = 100


def claim(
    session: Session, provider: str, token: str, *, max_age: float, now: datetime | None = None
) -> bool:
    """Take `provider`'s `token` in this transaction: True the first time, False when it was
    already taken (by this process or another). Forgets a few tokens that have expired."""
    current = utcnow() if now is None else now
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert
    taken = session.execute(
        insert(WebhookToken)
        .values(provider=provider, token=token, seen_at=current)
        .on_conflict_do_nothing(index_elements=["provider", "token"])
        .returning(WebhookToken.token)
    ).first()
    # Skip rows another transaction holds: two cleanups never wait on each other.
    expired = (
        select(WebhookToken.provider, WebhookToken.token)
        .where(WebhookToken.seen_at < current - timedelta(seconds=2 * max_age))
        .limit(FORGET_BATCH)
        .with_for_update(skip_locked=True)
    )
    session.execute(
        delete(WebhookToken).where(tuple_(WebhookToken.provider, WebhookToken.token).in_(expired))
    )
    return taken is not None
