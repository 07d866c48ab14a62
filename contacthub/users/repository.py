"""The queries of sign-in: the user row under lock, and each client address's failures."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, delete, literal, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from contacthub.storage.models import AdminUser, SignInThrottle
from contacthub.storage.types import UTCDateTime

# The longest client key `sign_in_throttles` holds (an IPv6 network is at most 43 characters).
CLIENT_LENGTH = 100


def user_by_email(session: Session, address: str) -> AdminUser | None:
    """The user with this (normalised) address, if any."""
    return session.scalar(select(AdminUser).where(AdminUser.email == address))


def lock_user(session: Session, user_id: int) -> AdminUser | None:
    """The user's row, locked until the transaction ends (PostgreSQL; SQLite has one writer).

    `populate_existing`: the row as stored now, not as this session may have read it before.
    """
    return session.scalar(
        select(AdminUser)
        .where(AdminUser.id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def client_failures(
    session: Session, client: str, window: timedelta, now: datetime, *, lock: bool = False
) -> int:
    """Failed sign-ins from `client` in its current window (0 once the window is over)."""
    query = select(SignInThrottle.failures).where(
        SignInThrottle.client == client, SignInThrottle.window_start > now - window
    )
    if lock:
        query = query.with_for_update()
    return session.scalar(query) or 0


def count_client_failure(session: Session, client: str, window: timedelta, now: datetime) -> None:
    """Add one failure to `client`'s count, atomically; a window that is over starts again.

    One statement (an upsert), so that parallel failures from one address are all counted on
    every worker; rows of windows that are over are dropped on the way, keeping the table small.
    """
    cutoff = now - window
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert
    expired = SignInThrottle.window_start <= literal(cutoff, UTCDateTime())
    statement = insert(SignInThrottle).values(client=client, window_start=now, failures=1)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["client"],
            set_={
                "failures": case((expired, 1), else_=SignInThrottle.failures + 1),
                "window_start": case(
                    (expired, literal(now, UTCDateTime())), else_=SignInThrottle.window_start
                ),
            },
        )
    )
    # Skip rows another transaction holds: two cleanups must never wait on each other.
    stale = (
        select(SignInThrottle.client)
        .where(SignInThrottle.window_start <= cutoff)
        .limit(100)
        .with_for_update(skip_locked=True)
    )
    session.execute(delete(SignInThrottle).where(SignInThrottle.client.in_(stale)))
