"""Engagement of an issue: opens and clicks over time, and who opened or clicked, on SQLite and
PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from contacthub.email import engagement
from contacthub.errors import NotFound
from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent, EmailClick, EmailIssue, EmailOpen, IssueLink
from tests.email.tracking_support import ANNA, BLOG, BOB, CAROL, SentIssue, sent_issue

SENT = datetime(2026, 3, 2, 9, 40, tzinfo=UTC)  # the first hour starts at 9:00
ORIGIN = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def hit(
    database: Database,
    sent: SentIssue,
    kind: str,
    email: str | None,
    at: datetime,
    *,
    machine: bool = False,
) -> None:
    """Store an open or a click (on the blog link) as the tracking handlers do."""
    with database.write() as session:
        issue_id = session.scalar(
            select(EmailIssue.id).where(EmailIssue.guid == uuid.UUID(sent.guid))
        )
        assert issue_id is not None
        subscriber = sent.subscriber_ids[email] if email is not None else None
        if kind == "open":
            session.add(
                EmailOpen(
                    issue_id=issue_id, subscriber_id=subscriber, is_machine=machine, created_at=at
                )
            )
            return
        link = session.scalar(
            select(IssueLink.id).where(IssueLink.issue_id == issue_id, IssueLink.target_url == BLOG)
        )
        assert link is not None
        session.add(
            EmailClick(
                link_id=link,
                issue_id=issue_id,
                subscriber_id=subscriber,
                is_machine=machine,
                created_at=at,
            )
        )


@pytest.fixture
def sent(database: Database) -> SentIssue:
    return sent_issue(database, sent_at=SENT)


def after(**delta: float) -> datetime:
    return SENT + timedelta(**delta)


def test_hourly_for_two_days_then_daily(database: Database, sent: SentIssue) -> None:
    hit(database, sent, "open", ANNA, after(minutes=5))  # 9:45: the first hour
    hit(database, sent, "open", BOB, after(minutes=25))  # 10:05: the second
    hit(database, sent, "click", ANNA, after(minutes=26))
    hit(database, sent, "click", None, after(hours=47))  # an aggregate click: still a click
    hit(database, sent, "open", BOB, after(days=2, hours=1))  # the first daily bucket
    hit(database, sent, "open", ANNA, after(days=4, hours=3))  # the third
    hit(database, sent, "open", ANNA, after(minutes=6), machine=True)  # a proxy
    with database.read() as session:
        line = engagement.timeline(session, sent.guid, now=after(days=5))
    assert line.started_at == ORIGIN
    hourly = [b for b in line.buckets if b.hourly]
    daily = [b for b in line.buckets if not b.hourly]
    assert len(hourly) == 48
    assert hourly[0].start == ORIGIN
    assert hourly[0].end == ORIGIN + timedelta(hours=1)
    assert [(b.opens, b.clicks) for b in hourly[:2]] == [(1, 0), (1, 1)]
    assert hourly[-1].clicks == 1  # 47 h after 9:40 is in the 48th hour from 9:00
    # 5 days after 9:40 is 5 days 40 minutes after 9:00: three whole days after the first two.
    assert [d.start for d in daily] == [ORIGIN + timedelta(days=n) for n in (2, 3, 4, 5)]
    assert [(d.opens, d.clicks) for d in daily] == [(1, 0), (0, 0), (1, 0), (0, 0)]
    assert (line.opens, line.clicks) == (4, 2)
    assert engagement.bucket_label(line, hourly[5]) == "+5 h"
    assert engagement.bucket_label(line, daily[1]) == "+3 d"
    data = line.as_dict()
    assert data["buckets"][0] == {
        "start": "2026-03-02T09:00:00+00:00",
        "end": "2026-03-02T10:00:00+00:00",
        "unit": "hour",
        "opens": 1,
        "clicks": 0,
    }
    assert data["buckets"][-1]["unit"] == "day"


def test_machine_hits_only_when_asked(database: Database, sent: SentIssue) -> None:
    hit(database, sent, "open", ANNA, after(minutes=1), machine=True)
    hit(database, sent, "click", ANNA, after(minutes=1), machine=True)
    with database.read() as session:
        human = engagement.timeline(session, sent.guid, now=after(hours=3))
        everything = engagement.timeline(
            session, sent.guid, include_machines=True, now=after(hours=3)
        )
    assert (human.opens, human.clicks) == (0, 0)
    assert (everything.opens, everything.clicks) == (1, 1)
    assert len(human.buckets) == 4  # 9:00 to 12:40: four hours so far, nothing in the future


def test_the_days_stop_at_the_limit_and_the_last_one_holds_the_rest(
    database: Database, sent: SentIssue
) -> None:
    hit(database, sent, "open", ANNA, after(days=400))
    with database.read() as session:
        line = engagement.timeline(session, sent.guid, now=after(days=500))
    assert len(line.buckets) == engagement.HOURLY_HOURS + engagement.MAX_DAYS
    assert line.buckets[-1].end is None
    assert line.buckets[-1].opens == 1


def test_an_issue_not_sent_has_no_timeline(database: Database, sent: SentIssue) -> None:
    with database.write() as session:
        from contacthub.email import service

        draft = service.create_issue(session, "Weekly", "Draft", "<p>x</p>")
        guid = str(draft.guid)
    with database.read() as session:
        line = engagement.timeline(session, guid)
        assert line.buckets == []
        assert line.started_at is None
        with pytest.raises(NotFound):
            engagement.timeline(session, str(uuid.uuid4()))


def test_people_who_opened_or_clicked(database: Database, sent: SentIssue) -> None:
    hit(database, sent, "open", BOB, after(minutes=30))
    hit(database, sent, "open", BOB, after(hours=5))
    hit(database, sent, "click", ANNA, after(minutes=10))  # a click counts as an open
    hit(database, sent, "click", ANNA, after(hours=2))
    hit(database, sent, "click", None, after(hours=2))  # names nobody: not in the list
    hit(database, sent, "open", CAROL, after(minutes=1), machine=True)  # a proxy: not a person
    with database.read() as session:
        page = engagement.people_page(session, sent.guid)
        with_machines = engagement.people_page(session, sent.guid, include_machines=True)
    assert page.total == 2
    assert page.next_after is None
    anna, bob = page.people
    assert (anna.email, anna.first_name, anna.opens, anna.clicks) == (ANNA, "Anna", 0, 2)
    assert (anna.first_opened_at, anna.last_seen_at) == (after(minutes=10), after(hours=2))
    assert (bob.email, bob.opens, bob.clicks) == (BOB, 2, 0)
    assert bob.first_opened_at == after(minutes=30)
    assert str(anna.contact_guid) == anna.as_dict()["contact_guid"]
    assert [p.email for p in with_machines.people] == [ANNA, BOB, CAROL]


def test_people_come_a_page_at_a_time(database: Database, sent: SentIssue) -> None:
    for email in (ANNA, BOB, CAROL):
        hit(database, sent, "open", email, after(minutes=30))
    with database.read() as session:
        first = engagement.people_page(session, sent.guid, limit=2)
        assert ([p.email for p in first.people], first.total) == ([ANNA, BOB], 3)
        assert first.next_after is not None
        second = engagement.people_page(session, sent.guid, limit=2, after=first.next_after)
    assert ([p.email for p in second.people], second.total, second.next_after) == (
        [CAROL],
        3,
        None,
    )


def test_an_export_is_audited(database: Database, sent: SentIssue) -> None:
    hit(database, sent, "open", ANNA, after(minutes=30))
    with database.write() as session:
        export = engagement.start_export(session, sent.guid, include_machines=False, actor="ada")
    with database.read() as session:
        event = session.scalars(select(AuditEvent)).one()
        assert (event.actor, event.action, event.subject) == (
            "ada",
            "issue.engagement_exported",
            sent.guid,
        )
        lines = "".join(engagement.export_lines(session, export)).split("\r\n")
    assert lines[0] == ",".join(engagement.PEOPLE_COLUMNS)
    assert lines[1].startswith(f"{ANNA},Anna,Smith,")
    assert lines[1].endswith(",1,0")
    assert lines[2:] == [""]
