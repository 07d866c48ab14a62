"""The send-rate limit: a token bucket in the database, shared by every process and machine.

A provider allows so many messages per second or minute (`send_rate_limit`, "14/s", "600/min").
Workers of one hub, or hubs on several machines, send through the same server, so the limit
cannot be counted per process (listmonk's is multiplied by its worker count): the bucket is a
row of `send_rate_buckets`, named after the SMTP server (`smtp:<host>:<port>`).

The bucket fills at the limit's rate up to `burst` tokens (a tenth of a second's worth, at least
one); a message costs one token. A sender takes tokens for several messages at once, in one
short transaction (the row locked with SELECT … FOR UPDATE on PostgreSQL; SQLite's write
transactions run one at a time), and sleeps when the bucket is empty: a message waits for its
token, it is never skipped. Over any stretch of T seconds at most `burst + rate × T` messages
go out, whoever sends them.

Time is the database server's clock on PostgreSQL (machines' clocks may differ; the database's
is the one they share) and the local clock on SQLite (one machine).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from contacthub.storage.database import Database
from contacthub.storage.models import SendRateBucket

BURST_SECONDS = 0.1
_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
}
_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Rate:
    """A send-rate limit: `messages` per `seconds`."""

    messages: float
    seconds: float

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds

    @property
    def burst(self) -> float:
        """Most tokens the bucket holds: a tenth of a second's worth, at least one message."""
        return max(1.0, self.per_second * BURST_SECONDS)


def parse_rate(value: str) -> Rate:
    """`"14/s"`, `"600/min"`, `"5000/hour"` as a Rate; ValueError for anything else."""
    match = _RATE.fullmatch(value)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError(
            f"send rate limit {value!r} is not like 14/s, 600/min or 5000/hour "
            "(messages per s, min or hour)"
        )
    messages = float(match.group(1))
    if messages <= 0:
        raise ValueError(f"send rate limit {value!r} must allow at least some messages")
    return Rate(messages, _UNITS[unit])


def bucket_name(host: str, port: int) -> str:
    """The bucket of an SMTP server: every sender through it shares the limit."""
    return f"smtp:{host}:{port}"


def _now(session: Session) -> float:
    """Unix time in seconds, by the database server's clock on PostgreSQL."""
    if session.get_bind().dialect.name == "postgresql":
        return float(session.scalar(text("SELECT extract(epoch FROM clock_timestamp())")))
    return time.time()


def _ensure_bucket(session: Session, name: str, rate: Rate, now: float) -> None:
    """Create the bucket, full, if no process has yet (two at once: one row, no error)."""
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert
    session.execute(
        insert(SendRateBucket)
        .values(name=name, tokens=rate.burst, updated_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
    )


@dataclass(frozen=True, slots=True)
class Grant:
    """What one take from the bucket gave: `taken` tokens at time `at` (the bucket's clock), or
    none and the seconds to `wait` before asking again."""

    taken: int
    wait: float
    at: float


def _locked_bucket(session: Session, name: str) -> tuple[float, float] | None:
    row = session.execute(
        select(SendRateBucket.tokens, SendRateBucket.updated_at)
        .where(SendRateBucket.name == name)
        .with_for_update()
    ).one_or_none()
    return (row.tokens, row.updated_at) if row is not None else None


def take_tokens(session: Session, name: str, rate: Rate, wanted: int) -> Grant:
    """Take up to `wanted` tokens from the bucket, in the caller's (short) transaction.

    The row is locked first and the clock read after, so that the takers' times follow the
    order in which they hold the bucket.
    """
    bucket = _locked_bucket(session, name)
    if bucket is None:
        _ensure_bucket(session, name, rate, _now(session))
        bucket = _locked_bucket(session, name)
        assert bucket is not None
    tokens, updated_at = bucket
    now = max(_now(session), updated_at)  # a clock never runs backwards for the bucket
    # min(): a bucket filled under a higher limit holds no more than this one allows.
    tokens = min(rate.burst, tokens + (now - updated_at) * rate.per_second)
    taken = min(wanted, math.floor(tokens))
    session.execute(
        update(SendRateBucket)
        .where(SendRateBucket.name == name)
        .values(tokens=tokens - taken, updated_at=now)
    )
    wait = 0.0 if taken else (1.0 - tokens) / rate.per_second
    return Grant(taken, wait, now)


class RateLimiter:
    """Hands out permission to send, `rate` messages per second across every process."""

    def __init__(
        self,
        database: Database,
        name: str,
        rate: Rate,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.database = database
        self.name = name
        self.rate = rate
        self.sleep = sleep
        self.waited = 0.0  # seconds spent waiting for tokens (reports, benchmarks)

    def take(self, session: Session, wanted: int) -> Grant:
        """Take up to `wanted` tokens in the caller's write transaction (the send loop's claim);
        when none were given, sleep `wait` seconds outside the transaction and ask again."""
        return take_tokens(session, self.name, self.rate, max(1, wanted))

    def acquire(self, wanted: int) -> int:
        """Wait until at least one message may go; how many may (1 … `wanted`, at most the
        burst). Each call is one short transaction; waiting happens outside it."""
        while True:
            with self.database.write() as session:
                grant = self.take(session, wanted)
            if grant.taken:
                return grant.taken
            self.waited += grant.wait
            self.sleep(grant.wait)


def limiter_for(
    database: Database, rate_limit: str | None, host: str, port: int
) -> RateLimiter | None:
    """The limiter of the SMTP server `host:port` under `rate_limit` (None: no limit)."""
    if not rate_limit:
        return None
    return RateLimiter(database, bucket_name(host, port), parse_rate(rate_limit))
