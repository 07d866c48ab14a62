"""Scheduled sends (`email.schedule`): scheduling, firing exactly once, missed schedules.

On SQLite and PostgreSQL, sending to the real SMTP sink on loopback.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from contacthub.email import schedule, sending, service, signing
from contacthub.email.schedule import Fired
from contacthub.email.sender import SmtpMailer
from contacthub.errors import Conflict, InvalidInput
from contacthub.groups import service as groups
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent, EmailIssue
from contacthub.storage.types import utcnow
from tests.email.smtp_server import HOST, SmtpServer, smtp_server
from tests.email.ui_support import HTML

READERS = ("a@example.com", "b@example.com", "c@example.com")
ADA = "ada@example.com"
GRACE = 900.0


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


def newsletter(database: Database) -> None:
    with database.write() as session:
        service.create_newsletter(
            session, "Weekly", "The Team", "news@example.com", "https://news.example.com"
        )
        for email in READERS:
            service.add_subscriber(session, "Weekly", email)


def draft(database: Database, subject: str = "Hello") -> str:
    with database.write() as session:
        return str(service.create_issue(session, "Weekly", subject, HTML).guid)


def scheduled(database: Database, at: datetime, subject: str = "Hello") -> str:
    guid = draft(database, subject)
    with database.write() as session:
        schedule.schedule_issue(session, service.get_issue(session, guid), at, actor=ADA)
    return guid


def issue_state(database: Database, guid: str) -> tuple[str, datetime | None, str | None]:
    with database.read() as session:
        issue = service.get_issue(session, guid)
        return issue.status, issue.scheduled_at, issue.scheduled_by


def events(database: Database, action: str) -> list[tuple[str, str, dict[str, str] | None]]:
    with database.read() as session:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        ).all()
        return [(e.actor, e.subject, json.loads(e.details) if e.details else None) for e in rows]


def sync_sender(database: Database, settings: Settings, port: int) -> schedule.Start:
    """Send a fired schedule right here, as the hub's background run does."""

    def start(fired: Fired) -> None:
        with SmtpMailer(HOST, port, timeout=10) as mailer:
            sending.send_issue(
                database,
                str(fired.issue_guid),
                mailer,
                signer=signing.link_signer(settings),
                actor=fired.actor,
            )

    return start


def test_a_draft_is_scheduled_rescheduled_and_cancelled(database: Database) -> None:
    newsletter(database)
    at = utcnow() + timedelta(hours=2)
    guid = scheduled(database, at)
    assert issue_state(database, guid) == ("scheduled", at, ADA)

    later = at + timedelta(days=1)
    with database.write() as session:
        schedule.schedule_issue(session, service.get_issue(session, guid), later, actor="cli")
    assert issue_state(database, guid) == ("scheduled", later, "cli")

    with database.write() as session:
        schedule.cancel_schedule(session, service.get_issue(session, guid), actor="cli")
    assert issue_state(database, guid) == ("draft", None, None)
    assert events(database, "issue.scheduled") == [
        (ADA, guid, {"at": at.isoformat()}),
        ("cli", guid, {"at": later.isoformat(), "previous": at.isoformat()}),
    ]
    assert events(database, "issue.schedule_cancelled") == [
        ("cli", guid, {"at": later.isoformat()})
    ]
    with database.write() as session, pytest.raises(Conflict) as refused:
        schedule.cancel_schedule(session, service.get_issue(session, guid), actor="cli")
    assert refused.value.code == "not_scheduled"


def test_times_in_the_past_or_without_an_offset_are_refused(database: Database) -> None:
    newsletter(database)
    guid = draft(database)
    with database.write() as session, pytest.raises(InvalidInput) as past:
        schedule.schedule_issue(
            session, service.get_issue(session, guid), utcnow() - timedelta(minutes=1), actor=ADA
        )
    assert past.value.code == "time_in_past"
    with database.write() as session, pytest.raises(InvalidInput) as far:
        schedule.schedule_issue(
            session, service.get_issue(session, guid), utcnow() + timedelta(days=800), actor=ADA
        )
    assert far.value.code == "time_too_far"
    assert issue_state(database, guid) == ("draft", None, None)
    assert events(database, "issue.scheduled") == []


def test_parse_time_needs_an_offset_and_answers_utc() -> None:
    assert schedule.parse_time("2030-12-24T09:00:00+01:00") == datetime(2030, 12, 24, 8, tzinfo=UTC)
    assert schedule.parse_time(" 2030-12-24T08:00Z ") == datetime(2030, 12, 24, 8, tzinfo=UTC)
    for bad in ("2030-12-24T09:00", "tomorrow", "", "2030-13-01T00:00Z"):
        with pytest.raises(InvalidInput) as refused:
            schedule.parse_time(bad)
        assert refused.value.code == "invalid_time"
        assert refused.value.field == "at"


def test_local_time_is_read_in_the_given_zone() -> None:
    # Winter in Paris is UTC+1, summer UTC+2; no zone is UTC.
    assert schedule.local_time("2030-12-24T09:00", "Europe/Paris") == datetime(
        2030, 12, 24, 8, tzinfo=UTC
    )
    assert schedule.local_time("2030-07-01T09:00", "Europe/Paris") == datetime(
        2030, 7, 1, 7, tzinfo=UTC
    )
    assert schedule.local_time("2030-07-01T09:00", "") == datetime(2030, 7, 1, 9, tzinfo=UTC)
    with pytest.raises(InvalidInput) as zone:
        schedule.local_time("2030-07-01T09:00", "Mars/Olympus")
    assert zone.value.code == "invalid_time_zone"
    for bad in ("", "soon", "2030-07-01T09:00+02:00"):
        with pytest.raises(InvalidInput) as refused:
            schedule.local_time(bad, "UTC")
        assert refused.value.code == "invalid_time"


def test_only_a_draft_can_be_scheduled(database: Database) -> None:
    newsletter(database)
    guid = draft(database)
    with database.write() as session:
        service.get_issue(session, guid).status = "sending"
    with database.write() as session, pytest.raises(Conflict) as refused:
        schedule.schedule_issue(
            session, service.get_issue(session, guid), utcnow() + timedelta(hours=1), actor=ADA
        )
    assert refused.value.code == "issue_not_draft"


def test_an_issue_whose_group_was_deleted_cannot_be_scheduled(database: Database) -> None:
    newsletter(database)
    with database.write() as session:
        groups.create_group(session, "VIP", kind="static")
        guid = str(service.create_issue(session, "Weekly", "Hi", HTML, group="VIP").guid)
        issue = service.get_issue(session, guid)
        issue.status = "sent"
    with database.write() as session:
        groups.delete_group(session, "VIP")
        # A sent issue that lost its group, taken back to draft by hand: still refused.
        service.get_issue(session, guid).status = "draft"
    with database.write() as session, pytest.raises(Conflict) as refused:
        schedule.schedule_issue(
            session, service.get_issue(session, guid), utcnow() + timedelta(hours=1), actor=ADA
        )
    assert refused.value.code == "group_deleted"


def test_a_scheduled_issue_keeps_its_group(database: Database) -> None:
    newsletter(database)
    with database.write() as session:
        groups.create_group(session, "VIP", kind="static")
        guid = str(service.create_issue(session, "Weekly", "Hi", HTML, group="VIP").guid)
        schedule.schedule_issue(
            session, service.get_issue(session, guid), utcnow() + timedelta(hours=1), actor=ADA
        )
    with database.write() as session, pytest.raises(Conflict):
        groups.delete_group(session, "VIP")
    with database.write() as session, pytest.raises(Conflict) as changed:
        service.set_issue_group(session, service.get_issue(session, guid), None)
    assert changed.value.code == "issue_not_draft"


def test_a_due_schedule_fires_once_as_the_scheduler(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    newsletter(database)
    at = utcnow() + timedelta(hours=1)
    guid = scheduled(database, at)
    later = scheduled(database, at + timedelta(hours=1), "Later")
    start = sync_sender(database, settings, smtp.port)

    early = schedule.fire_due(database, grace=GRACE, start=start, now=at - timedelta(seconds=1))
    assert early.fired == []
    assert early.missed == []
    assert smtp.received == []

    claims = schedule.fire_due(database, grace=GRACE, start=start, now=at + timedelta(seconds=3))
    assert [str(f.issue_guid) for f in claims.fired] == [guid]
    assert claims.fired[0].actor == f"schedule ({ADA})"
    assert sorted(smtp.recipients()) == sorted(READERS)
    assert issue_state(database, guid)[0] == "sent"
    assert issue_state(database, later)[0] == "scheduled"
    [started] = events(database, "issue.send_started")
    assert started[:2] == (f"schedule ({ADA})", guid)

    again = schedule.fire_due(database, grace=GRACE, start=start, now=at + timedelta(seconds=9))
    assert again.fired == []
    assert len(smtp.received) == len(READERS)


def test_two_job_runs_at_once_fire_each_schedule_once(settings: Settings, smtp: SmtpServer) -> None:
    # Two engines, as two hub processes (or machines) have; both look at the same moment.
    first, second = Database(settings.database_url), Database(settings.database_url)
    try:
        newsletter(first)
        at = utcnow() + timedelta(hours=1)
        guids = {scheduled(first, at, f"Issue {n}") for n in range(4)}
        barrier = threading.Barrier(2)
        fired: list[list[Fired]] = []
        failures: list[BaseException] = []

        def job(database: Database) -> None:
            try:
                barrier.wait(10)
                claims = schedule.fire_due(
                    database,
                    grace=GRACE,
                    start=sync_sender(database, settings, smtp.port),
                    now=at + timedelta(seconds=1),
                )
                fired.append(list(claims.fired))
            except BaseException as error:  # reported below
                failures.append(error)

        threads = [threading.Thread(target=job, args=(db,)) for db in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert failures == []
        assert sorted(str(f.issue_guid) for run in fired for f in run) == sorted(guids)
        # Every reader got every issue exactly once.
        subjects = sorted(
            (item.rcpt_tos[0], str(item.message["Subject"])) for item in smtp.received
        )
        assert subjects == sorted((r, f"Issue {n}") for r in READERS for n in range(4))
        assert len(events(first, "issue.send_started")) == 4
        for guid in guids:
            assert issue_state(first, guid)[0] == "sent"
    finally:
        first.dispose()
        second.dispose()


def test_a_schedule_missed_beyond_the_grace_waits_for_confirmation(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    newsletter(database)
    guid = scheduled(database, utcnow() + timedelta(hours=1))
    within = scheduled(database, utcnow() + timedelta(hours=1), "Within the grace")
    # The hub was down: one schedule passed 20 minutes ago, the other 5 minutes ago.
    with database.write() as session:
        for key, minutes in ((guid, 20), (within, 5)):
            session.execute(
                update(EmailIssue)
                .where(EmailIssue.guid == service.get_issue(session, key).guid)
                .values(scheduled_at=utcnow() - timedelta(minutes=minutes))
            )
    start = sync_sender(database, settings, smtp.port)

    claims = schedule.fire_due(database, grace=GRACE, start=start)
    assert [str(g) for g in claims.missed] == [guid]
    assert [str(f.issue_guid) for f in claims.fired] == [within]
    assert issue_state(database, guid)[0] == "schedule_missed"
    assert {str(m["Subject"]) for m in (r.message for r in smtp.received)} == {"Within the grace"}
    # Missed stays missed: later runs neither send it nor touch it.
    assert schedule.fire_due(database, grace=GRACE, start=start).fired == []
    assert issue_state(database, guid)[0] == "schedule_missed"

    with database.write() as session:
        schedule.confirm_schedule(session, service.get_issue(session, guid), actor="cli")
    assert issue_state(database, guid)[0] == "sending"
    start(Fired(uuid.UUID(guid), utcnow(), "unused"))
    assert issue_state(database, guid)[0] == "sent"
    assert len(smtp.messages_to(READERS[0])) == 2
    [confirmed] = events(database, "issue.schedule_confirmed")
    assert confirmed[:2] == ("cli", guid)
    with database.write() as session, pytest.raises(Conflict) as twice:
        schedule.confirm_schedule(session, service.get_issue(session, guid), actor="cli")
    assert twice.value.code == "schedule_not_missed"


def test_a_missed_schedule_can_be_rescheduled_or_cancelled(database: Database) -> None:
    newsletter(database)
    guids = [scheduled(database, utcnow() + timedelta(hours=1), f"Issue {n}") for n in range(2)]
    with database.write() as session:
        session.execute(update(EmailIssue).values(status="schedule_missed", scheduled_at=utcnow()))
    at = utcnow() + timedelta(hours=3)
    with database.write() as session:
        schedule.schedule_issue(session, service.get_issue(session, guids[0]), at, actor=ADA)
        schedule.cancel_schedule(session, service.get_issue(session, guids[1]), actor=ADA)
    assert issue_state(database, guids[0]) == ("scheduled", at, ADA)
    assert issue_state(database, guids[1]) == ("draft", None, None)


def test_the_scheduler_actor_fits_the_audit_log() -> None:
    assert schedule.scheduler_actor("ada@example.com") == "schedule (ada@example.com)"
    assert len(schedule.scheduler_actor("x" * 254)) == 254
    assert schedule.scheduler_actor(None) == "schedule (unknown)"
