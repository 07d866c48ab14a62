"""The send-rate limit: parsing, and the shared token bucket under concurrent takers, on SQLite
and PostgreSQL, alone and in real send runs through a loopback SMTP server.

The bounds checked are the limiter's promise: over any stretch of T seconds at most
`burst + rate × T` messages, whoever takes them (each taker has its own engine, as separate
processes would). A slow machine only sends fewer, so the checks cannot flake that way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from contacthub.email import ratelimit, service, signing
from contacthub.email.ratelimit import Rate, RateLimiter, parse_rate
from contacthub.email.sender import SmtpMailer
from contacthub.email.sending import SendReport, send_issue
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.models import SendRateBucket
from tests.email.smtp_server import HOST, SmtpServer, smtp_server
from tests.email.test_sending import make_issue

# Arrival times at the SMTP server trail the grants by a render and an SMTP exchange each:
# allow a few messages of that noise.
SLACK = 3


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


def assert_within(times: Sequence[float], rate: Rate, *, slack: float = SLACK) -> None:
    """No stretch between two observed grants (or arrivals) holds more than the bucket allows
    (plus `slack` messages of observation noise)."""
    times = sorted(times)
    for first in range(len(times)):
        for last in range(first, len(times)):
            allowed = rate.burst + rate.per_second * (times[last] - times[first]) + slack
            assert last - first + 1 <= allowed, (
                f"{last - first + 1} messages in {times[last] - times[first]:.3f} s"
            )


@pytest.mark.parametrize(
    ("text", "per_second"),
    [("14/s", 14.0), ("600/min", 10.0), (" 7200 / hour ", 2.0), ("3/second", 3.0), ("1.5/s", 1.5)],
)
def test_a_limit_reads_as_messages_per_unit(text: str, per_second: float) -> None:
    assert parse_rate(text).per_second == pytest.approx(per_second)


@pytest.mark.parametrize("text", ["fast", "14", "0/s", "10/day", "-1/s", "/s", "10/"])
def test_a_malformed_limit_is_refused_with_its_value(text: str) -> None:
    with pytest.raises(ValueError, match="send rate limit"):
        parse_rate(text)
    with pytest.raises(ValidationError, match="send rate limit"):
        Settings(send_rate_limit=text)


def test_the_burst_is_a_tenth_of_a_seconds_worth_and_at_least_one() -> None:
    assert parse_rate("1000/s").burst == 100
    assert parse_rate("14/s").burst == pytest.approx(1.4)
    assert parse_rate("600/min").burst == 1
    assert Settings(send_rate_limit=" ").send_rate_limit is None
    assert ratelimit.bucket_name("smtp.example.com", 587) == "smtp:smtp.example.com:587"


def test_two_takers_at_once_stay_within_the_limit(database_url: str) -> None:
    rate = parse_rate("40/s")
    granted: list[float] = []
    problems: list[BaseException] = []
    lock = threading.Lock()
    deadline = time.monotonic() + 1.2

    def taker() -> None:
        own = Database(database_url)  # its own engine and connections, as a process would have
        try:
            while time.monotonic() < deadline:
                with own.write() as session:
                    grant = ratelimit.take_tokens(session, "smtp:mail:25", rate, 3)
                # Stamped with the time the bucket gave the tokens at (its clock, read while
                # the taker held it): what the bound is about, free of scheduling noise.
                with lock:
                    granted.extend([grant.at] * grant.taken)
                time.sleep(grant.wait)
        except BaseException as error:  # surfaced below
            problems.append(error)
        finally:
            own.dispose()

    takers = [threading.Thread(target=taker) for _ in range(2)]
    for thread in takers:
        thread.start()
    for thread in takers:
        thread.join(30)

    assert problems == []
    # The bucket refilled (more than its burst went out) and never overflowed.
    assert len(granted) > rate.burst + 1
    assert_within(granted, rate, slack=1e-6)


def test_an_empty_bucket_makes_the_taker_wait_never_skip(database: Database) -> None:
    slept: list[float] = []
    limiter = RateLimiter(database, "smtp:x:25", parse_rate("10/s"), sleep=slept.append)
    assert limiter.acquire(5) == 1  # the burst: one message
    # Empty now: the limiter sleeps (here: records the sleep) until a token is due.
    clock = time.monotonic()
    while not slept and time.monotonic() - clock < 1:
        assert limiter.acquire(5) >= 1
    assert slept
    assert 0 < slept[0] <= 0.1 + 1e-9
    assert limiter.waited == pytest.approx(sum(slept))


def test_send_runs_through_one_server_share_its_limit(
    database: Database, database_url: str, settings: Settings, smtp: SmtpServer
) -> None:
    rate = parse_rate("10/s")
    first = make_issue(database, *[(f"a{n}@example.com", None) for n in range(8)])
    with database.write() as session:
        second = str(service.create_issue(session, "Weekly", "Also", "<p>Hello</p>").guid)
    arrivals: list[float] = []
    smtp.on_message = lambda _: arrivals.append(time.monotonic())
    reports: list[SendReport] = []
    problems: list[BaseException] = []

    def run(issue: str) -> None:
        own = Database(database_url)
        limiter = ratelimit.limiter_for(own, "10/s", HOST, smtp.port)
        try:
            with SmtpMailer(HOST, smtp.port, timeout=10) as mailer:
                reports.append(
                    send_issue(
                        own,
                        issue,
                        mailer,
                        signer=signing.link_signer(settings),
                        rate_limiter=limiter,
                    )
                )
        except BaseException as error:  # surfaced below
            problems.append(error)
        finally:
            own.dispose()

    runs = [threading.Thread(target=run, args=(issue,)) for issue in (first, second)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join(60)

    assert problems == []
    assert sorted(r.sent for r in reports) == [8, 8]
    assert len(smtp.recipients()) == 16
    assert len(set(smtp.recipients())) == 8  # each subscriber once per issue
    assert_within(arrivals, rate)
    # 16 messages at 10/s with a burst of 1: the runs had to wait for the bucket.
    assert sum(r.rate_limit_wait for r in reports) > 0
    assert max(arrivals) - min(arrivals) >= (16 - rate.burst - SLACK) / rate.per_second
    with database.read() as session:
        names = session.scalars(select(SendRateBucket.name)).all()
    assert names == [f"smtp:{HOST}:{smtp.port}"]
