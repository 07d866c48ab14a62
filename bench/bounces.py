"""Benchmark of taking in bounces: DSNs per second through the parser and the processor.

For each store (a fresh SQLite file; a fresh PostgreSQL database when one answers): migrates,
creates a newsletter with N subscribers and one issue sent to all of them (deliveries written
directly), and makes N bounce messages addressed to their VERP return paths: 70 % RFC 3464
hard bounces (Postfix style, with the original's headers), 20 % soft (failed 4.4.7, Gmail
style, with the original attached) and 10 % ARF complaints. Then it measures, in this run:

- the baseline: parsing the N messages with the standard library's email parser alone
  (`email.message_from_bytes`, whose result bounces/dsn.py reads), nothing stored;
- end to end: `dsn.record_messages` in units of work of 100 messages (as the IMAP poll does):
  parse, resolve the deliveries, store the events, suppress the addresses, commit;
- the replay: the same N messages again, every event recognised as a duplicate;
- one message per unit of work (as the SMTP listener commits), on the first 1,000.

and prints DSNs per second for each, with the ratio against the baseline. The run is invalid
(exit status 1) unless every event is recorded once and every hard bounce and complaint
suppresses its address.

    .venv/bin/python bench/bounces.py [--messages 5000] [--only sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import email
import email.policy
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy import func, insert, select

from contacthub.bounces import verp
from contacthub.bounces.dsn import record_messages
from contacthub.bounces.processor import FeedbackReport
from contacthub.email import service
from contacthub.email.hashing import LinkSigner
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.migrate import upgrade
from contacthub.storage.models import Delivery, DeliveryEvent, Subscriber, Suppression
from contacthub.storage.types import utcnow

POSTGRES_ADMIN = os.environ.get(
    "CONTACTHUB_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SECRET = "bench-secret-" + uuid.uuid4().hex
BOUNCE_DOMAIN = "bounces.example.com"
BATCH = 100
SINGLE = 1000

HARD = """\
Return-Path: <>
Delivered-To: {return_path}
Date: Mon,  7 Dec 2026 01:15:02 +0000 (UTC)
From: MAILER-DAEMON@mail.example.net (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {return_path}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="B{n}/mail.example.net"
Message-Id: <dsn-{n}@mail.example.net>

This is a MIME-encapsulated message.

--B{n}/mail.example.net
Content-Description: Notification
Content-Type: text/plain; charset=utf-8

This is the mail system at host mail.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

<{email}>: host mx1.example.org[192.0.2.25] said: 550 5.1.1
    <{email}>: Recipient address rejected: User unknown in virtual
    mailbox table (in reply to RCPT TO command)

--B{n}/mail.example.net
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.example.net
Arrival-Date: Mon,  7 Dec 2026 01:15:01 +0000 (UTC)

Final-Recipient: rfc822; {email}
Original-Recipient: rfc822;{email}
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx1.example.org
Diagnostic-Code: smtp; 550 5.1.1 <{email}>: Recipient address
    rejected: User unknown in virtual mailbox table

--B{n}/mail.example.net
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <{return_path}>
Received: from hub.example.com (hub.example.com [198.51.100.4])
\tby mail.example.net (Postfix) with ESMTP id 3F1A22C0421
\tfor <{email}>; Mon,  7 Dec 2026 01:15:01 +0000 (UTC)
From: The Team <news@example.com>
To: <{email}>
Subject: Spring news
Message-ID: <{guid}.{delivery}@example.com>
X-Contacthub-Delivery: {token}

--B{n}/mail.example.net--
"""

SOFT = """\
Delivered-To: {return_path}
From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: {return_path}
Subject: Delivery Status Notification (Failure)
Message-ID: <dsn-{n}@mx.google.com>
Date: Mon, 07 Dec 2026 01:20:11 -0800 (PST)
MIME-Version: 1.0
Content-Type: multipart/report; boundary="G{n}"; report-type=delivery-status

--G{n}
Content-Type: text/plain; charset="UTF-8"

** Message not delivered **

There was a problem delivering your message to {email}.

--G{n}
Content-Type: message/delivery-status

Reporting-MTA: dns; googlemail.com
Arrival-Date: Thu, 03 Dec 2026 01:15:01 -0800 (PST)

Final-Recipient: rfc822; {email}
Action: failed
Status: 4.4.7
Diagnostic-Code: smtp; The recipient server did not accept our requests to connect.
Last-Attempt-Date: Mon, 07 Dec 2026 01:20:11 -0800 (PST)

--G{n}
Content-Type: message/rfc822

Message-ID: <{guid}.{delivery}@example.com>
From: The Team <news@example.com>
To: {email}
Subject: Spring news
X-Contacthub-Delivery: {token}
Content-Type: text/plain; charset="UTF-8"

Hello, this is the newsletter.

--G{n}--
"""

COMPLAINT = """\
From: <staff@hotmail.example>
Date: Mon, 07 Dec 2026 02:00:00 +0000
Subject: complaint about message from 198.51.100.4
To: {return_path}
Message-ID: <arf-{n}@feedback.hotmail.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="A{n}"

--A{n}
Content-Type: text/plain; charset="US-ASCII"

This is an email abuse report for an email message received from IP 198.51.100.4.

--A{n}
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeGenerator/1.0
Version: 1
Original-Mail-From: <{return_path}>
Original-Rcpt-To: <{email}>
Arrival-Date: Mon, 07 Dec 2026 01:15:01 +0000

--A{n}
Content-Type: message/rfc822

From: The Team <news@example.com>
To: {email}
Subject: Spring news
Message-ID: <{guid}.{delivery}@example.com>

Hello
--A{n}--
"""


def messages(signer: LinkSigner, guid: str, deliveries: list[tuple[int, str]]) -> list[bytes]:
    """One bounce per delivery: 7 hard, 2 soft, 1 complaint in every 10."""
    made = []
    for n, (delivery, address) in enumerate(deliveries):
        template = HARD if n % 10 < 7 else SOFT if n % 10 < 9 else COMPLAINT
        text = template.format(
            n=n,
            email=address,
            delivery=delivery,
            guid=guid,
            token=verp.delivery_token(signer, delivery),
            return_path=verp.return_path(signer, delivery, BOUNCE_DOMAIN),
        )
        made.append(text.replace("\n", "\r\n").encode())
    return made


def sent_issue(database: Database, count: int) -> tuple[str, list[tuple[int, str]]]:
    """A newsletter of `count` subscribers and one issue sent to all of them."""
    with database.write() as session:
        service.create_newsletter(session, "Bench", "The Team", "news@example.com", "https://x.org")
        newsletter_id = service.get_newsletter(session, "Bench").id
        for start in range(0, count, 1000):
            for n in range(start, min(count, start + 1000)):
                service.add_subscriber(session, "Bench", f"reader{n}@example.org")
            session.flush()
        issue = service.create_issue(session, "Bench", "Spring news", "<p>Hello</p>")
        issue.status = "sent"
        subscribers = session.execute(
            select(Subscriber.id, Subscriber.email).where(Subscriber.newsletter_id == newsletter_id)
        ).all()
        now = utcnow()
        session.execute(
            insert(Delivery),
            [
                {
                    "issue_id": issue.id,
                    "subscriber_id": sid,
                    "email": address,
                    "status": "sent",
                    "attempts": 1,
                    "sent_at": now,
                }
                for sid, address in subscribers
            ],
        )
        guid = str(issue.guid)
        rows = session.execute(select(Delivery.id, Delivery.email).order_by(Delivery.id)).all()
    return guid, [(delivery_id, address) for delivery_id, address in rows]


@dataclass
class Timing:
    """Wall seconds, and CPU seconds of this process (which hardly move with the machine's
    load; the database server's own CPU, for PostgreSQL, is not in them)."""

    wall_s: float
    cpu_s: float


@contextmanager
def timed() -> Iterator[list[Timing]]:
    result: list[Timing] = []
    wall, cpu = time.perf_counter(), time.process_time()
    yield result
    result.append(Timing(time.perf_counter() - wall, time.process_time() - cpu))


def record(
    database: Database, settings: Settings, signer: LinkSigner, batch: list[bytes], size: int
) -> tuple[Timing, FeedbackReport]:
    report = FeedbackReport()
    with timed() as timing:
        _record(database, settings, signer, batch, size, report)
    return timing[0], report


def _record(
    database: Database,
    settings: Settings,
    signer: LinkSigner,
    batch: list[bytes],
    size: int,
    report: FeedbackReport,
) -> None:
    for start in range(0, len(batch), size):
        with database.write() as session:
            report.add(
                record_messages(
                    session,
                    batch[start : start + size],
                    source="imap",
                    signer=signer,
                    settings=settings,
                )
            )


def baseline(batch: list[bytes]) -> Timing:
    with timed() as timing:
        for raw in batch:
            email.message_from_bytes(raw, policy=email.policy.compat32)
    return timing[0]


def run(name: str, url: str, count: int) -> bool:
    upgrade(url)
    settings = Settings(database_url=url, secret_key=SECRET)
    signer = LinkSigner([SECRET])
    database = Database(url)
    try:
        guid, deliveries = sent_issue(database, count)
        batch = messages(signer, guid, deliveries)
        size = sum(len(raw) for raw in batch) / len(batch)
        parse = baseline(batch)
        first_time, first = record(database, settings, signer, batch, BATCH)
        replay_time, replay = record(database, settings, signer, batch, BATCH)
        single = batch[:SINGLE]
        single_time, single_report = record(database, settings, signer, single, 1)
        with database.read() as session:
            events = session.scalar(select(func.count()).select_from(DeliveryEvent))
            suppressed = session.scalar(select(func.count()).select_from(Suppression))
    finally:
        database.dispose()
    condemned = sum(1 for n in range(count) if n % 10 != 7 and n % 10 != 8)
    valid = (
        first.recorded == count == events
        and first.rejected == 0
        and replay.duplicates == count
        and replay.recorded == 0
        and single_report.duplicates == len(single)
        and suppressed == condemned
    )
    base_rate, base_cpu_rate = count / parse.wall_s, count / parse.cpu_s
    print(f"\n== {name}: {count} messages, {size / 1024:.1f} KiB each on average")
    print(f"  {'':<33} {'DSNs/s':>9}  {'ratio':>5}  {'per CPU s':>9}  {'ratio':>5}")
    print(
        f"  {'baseline (stdlib parse only)':<33} {base_rate:9,.0f}  {1:5.2f}  "
        f"{base_cpu_rate:9,.0f}  {1:5.2f}"
    )
    for label, timing, number in (
        (f"end to end, {BATCH} per commit", first_time, count),
        (f"replay, {BATCH} per commit", replay_time, count),
        ("replay, one per commit", single_time, len(single)),
    ):
        rate, cpu_rate = number / timing.wall_s, number / timing.cpu_s
        print(
            f"  {label:<33} {rate:9,.0f}  {rate / base_rate:5.2f}  "
            f"{cpu_rate:9,.0f}  {cpu_rate / base_cpu_rate:5.2f}"
        )
    print(
        f"  recorded {first.recorded}, suppressed {first.suppressed}, "
        f"replayed as duplicates {replay.duplicates}: {'valid' if valid else 'INVALID'}"
    )
    return valid


@contextmanager
def postgres_store() -> Iterator[str]:
    name = f"contacthub_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    options = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} (2 cores)")
    valid = True
    if options.only != "postgresql":
        with tempfile.TemporaryDirectory() as workdir:
            valid &= run("SQLite", f"sqlite:///{Path(workdir) / 'bench.db'}", options.messages)
    if options.only != "sqlite":
        try:
            with postgres_store() as url:
                valid &= run("PostgreSQL", url, options.messages)
        except psycopg.OperationalError as error:
            print(f"\n== PostgreSQL: skipped ({error})")
    return 0 if valid else 1


if __name__ == "__main__":
    sys.exit(main())
