"""The dashboard service: every figure exact, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import delete, select, update

from contacthub.activities import service as activity_types
from contacthub.analytics import dashboard as service
from contacthub.analytics import rollups
from contacthub.errors import InvalidInput
from contacthub.identifiers import parse_day
from contacthub.storage.database import Database
from contacthub.storage.models import Channel, Delivery, EmailIssue, EmailOpen, Subscriber
from tests.analytics.support import Act, add, at, channel, contact_id, email_issue

START, END = date(2024, 5, 1), date(2024, 5, 3)


def board(db: Database, start: date = START, end: date = END) -> service.Dashboard:
    with db.read() as session:
        return service.dashboard(session, start, end)


def test_activities_per_day_by_type_and_by_channel(database: Database) -> None:
    web, app = channel(database, "Website"), channel(database, "Mobile app")
    with database.write() as session:
        activity_types.create_type(session, "webinar", display_name="Webinar sign-up")
    anna = contact_id(database)
    add(
        database,
        anna,
        Act(at("2024-05-01"), "pagevisit", web, None, "https://example.com/"),
        Act(at("2024-05-01"), "pagevisit", app, None, "https://example.com/"),
        Act(at("2024-05-03", "23:59"), "pagevisit", web, None, "https://example.com/"),
        Act(at("2024-05-03"), "click", web, "buy"),
        Act(at("2024-05-02"), "webinar", web, "May"),
        Act(at("2024-05-02"), "emailopen", None, "News"),
        Act(at("2024-05-02"), "emailclick", None, "News", "https://shop.example.com/"),
        Act(at("2024-05-02"), "emailclick", None, "News", "https://shop.example.com/"),
        # Outside the range: counted nowhere.
        Act(at("2024-04-30", "23:59"), "pagevisit", web, None, "https://example.com/"),
        Act(at("2024-05-04", "00:00"), "pagevisit", web, None, "https://example.com/"),
    )

    def check(result: service.Dashboard) -> None:
        assert result.days == (date(2024, 5, 1), date(2024, 5, 2), date(2024, 5, 3))
        # Largest first; display names for built-in and custom types.
        assert [(s.key, s.name, s.values) for s in result.by_type] == [
            ("pagevisit", "Page visits", (2, 0, 1)),
            ("emailclick", "Email clicks", (0, 2, 0)),
            ("click", "Clicks", (0, 0, 1)),
            ("emailopen", "Email opens", (0, 1, 0)),
            ("webinar", "Webinar sign-up", (0, 1, 0)),
        ]
        assert [(s.key, s.name, s.values) for s in result.by_channel] == [
            (str(web), "Website", (1, 1, 2)),
            ("0", "Email", (0, 3, 0)),
            (str(app), "Mobile app", (1, 0, 0)),
        ]
        assert result.totals.activities == 8
        assert result.totals.email_opens == 1
        assert result.totals.email_clicks == 2
        assert result.top_pages == (service.TopEntry("https://example.com/", 3),)
        assert result.top_clicks == (service.TopEntry("buy", 1),)

    check(board(database))
    rollups.refresh(database)
    check(board(database))


def test_a_deleted_channel_keeps_its_activities_under_a_name_of_its_own(
    database: Database,
) -> None:
    old = channel(database, "Old site")
    add(database, contact_id(database), Act(at("2024-05-01"), "click", old, "buy"))
    with database.write() as session:
        session.execute(delete(Channel).where(Channel.id == old))

    assert [s.name for s in board(database).by_channel] == [f"Deleted channel #{old}"]


def test_new_contacts_per_utc_day(database: Database) -> None:
    for moment in (
        at("2024-04-30", "23:59"),  # before the range
        at("2024-05-01", "00:00"),
        datetime.fromisoformat("2024-05-02T01:30:00+02:00"),  # 23:30 UTC on 1 May
        at("2024-05-03", "23:59"),
        at("2024-05-04", "00:00"),  # after it
    ):
        contact_id(database, created_at=moment)

    result = board(database)

    assert result.new_contacts == (2, 0, 1)
    assert result.totals.new_contacts == 3
    assert result.totals.contacts == 5


def test_an_empty_hub(database: Database) -> None:
    result = board(database)

    assert result.totals == service.Totals(0, 0, 0, 0, 0)
    assert result.by_type == result.by_channel == ()
    assert result.new_contacts == (0, 0, 0)
    assert result.top_pages == result.top_clicks == result.latest_issues == ()


def test_latest_issues_sent_first_with_human_rates(database: Database) -> None:
    now = at("2024-05-10")
    people = [f"reader{n}@example.com" for n in range(4)]
    older = email_issue(database, "April news", sent_at=now - timedelta(days=30), recipients=people)
    newest = email_issue(
        database,
        "May news",
        sent_at=now - timedelta(days=1),
        recipients=people,
        opened=people[:2],
        machine_opened=people[2:],
        # A click proves an open: reader2's open counts as human through it.
        clicked=[people[2]],
    )
    drafts = [email_issue(database, f"Draft {n}") for n in range(3)]
    middle = email_issue(
        database, "Mid May", sent_at=now - timedelta(days=5), recipients=people[:1]
    )
    oldest = email_issue(database, "Oldest", sent_at=now - timedelta(days=60), recipients=people)

    issues = board(database).latest_issues

    assert [str(i.guid) for i in issues] == [newest, middle, older, oldest, drafts[2]]
    first = issues[0]
    assert (first.subject, first.newsletter, first.status) == ("May news", "Weekly", "sent")
    assert first.sent_at == now - timedelta(days=1)
    assert first.sent == 4
    assert first.open_rate == pytest.approx(3 / 4)
    assert first.click_rate == pytest.approx(1 / 4)
    assert (issues[2].sent, issues[2].open_rate, issues[2].click_rate) == (4, 0.0, 0.0)
    draft = issues[4]
    assert (draft.status, draft.sent_at, draft.sent) == ("draft", None, 0)
    assert draft.open_rate is None
    assert draft.click_rate is None
    assert isinstance(draft.guid, uuid.UUID)


def test_default_range_is_the_last_30_days() -> None:
    assert service.default_range(date(2024, 3, 1)) == (date(2024, 2, 1), date(2024, 3, 1))
    assert service.resolve_range(None, None, date(2024, 3, 1)) == service.default_range(
        date(2024, 3, 1)
    )
    # A missing end is today; a missing start 30 days before the end.
    assert service.resolve_range(date(2024, 2, 20), None, date(2024, 3, 1)) == (
        date(2024, 2, 20),
        date(2024, 3, 1),
    )
    assert service.resolve_range(None, date(2023, 12, 31), date(2024, 3, 1)) == (
        date(2023, 12, 2),
        date(2023, 12, 31),
    )
    assert service.resolve_range(None, date(1, 1, 5)) == (date(1, 1, 1), date(1, 1, 5))
    start, end = service.default_range()
    assert end == service.utc_today()
    assert (end - start).days == 29


def test_range_checks() -> None:
    with pytest.raises(InvalidInput) as reversed_range:
        service.resolve_range(date(2024, 5, 2), date(2024, 5, 1))
    assert (reversed_range.value.code, reversed_range.value.field) == ("date_range_reversed", "end")

    with pytest.raises(InvalidInput) as too_long:
        service.check_range(date(2023, 1, 1), date(2024, 1, 2))  # 367 days
    assert (too_long.value.code, too_long.value.field) == ("date_range_too_long", "start")
    service.check_range(date(2023, 1, 2), date(2024, 1, 2))  # 366 days: fine
    service.check_range(date(2024, 1, 1), date(2024, 1, 1))  # one day: fine


@pytest.mark.parametrize(
    "text", ["2024-13-01", "2024-02-30", "yesterday", "20240501", "2024-W01-1"]
)
def test_malformed_dates_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as error:
        parse_day(text, "start")
    assert (error.value.code, error.value.field) == ("invalid_date", "start")


def test_dates_parse() -> None:
    assert parse_day(" 2024-05-31 ", "end") == date(2024, 5, 31)
    assert parse_day("", "end") is None


def test_the_service_checks_the_range_too(database: Database) -> None:
    with pytest.raises(InvalidInput):
        board(database, date(2024, 5, 3), date(2024, 5, 1))


def test_issue_figures_are_kept_for_a_minute(database: Database) -> None:
    people = ["anna@example.com", "bob@example.com"]
    guid = email_issue(database, "News", sent_at=at("2024-05-01"), recipients=people)

    def open_rate(now: float) -> float | None:
        with database.read() as session:
            (issue,) = service.latest_issues(session, now=now)
            assert str(issue.guid) == guid
            return issue.open_rate

    assert open_rate(1_000.0) == 0.0
    with database.write() as session:
        issue_id = session.scalars(
            select(EmailIssue.id).where(EmailIssue.guid == uuid.UUID(guid))
        ).one()
        subscriber_id = session.scalars(
            select(Subscriber.id).where(Subscriber.email == people[0])
        ).one()
        session.add(EmailOpen(issue_id=issue_id, subscriber_id=subscriber_id))

    assert open_rate(1_000.0 + service.ISSUE_FIGURES_TTL - 1) == 0.0
    assert open_rate(1_000.0 + service.ISSUE_FIGURES_TTL) == 0.5


def test_issue_figures_are_counted_afresh_when_the_status_changes(database: Database) -> None:
    guid = email_issue(database, "News", recipients=["anna@example.com"])
    with database.read() as session:
        assert service.latest_issues(session, now=0.0)[0].sent == 0
    with database.write() as session:
        issue = session.scalars(select(EmailIssue).where(EmailIssue.guid == uuid.UUID(guid))).one()
        issue.status, issue.sent_at = "sent", at("2024-05-01")
        session.execute(update(Delivery).values(status="sent", sent_at=at("2024-05-01")))

    with database.read() as session:
        assert service.latest_issues(session, now=1.0)[0].sent == 1
    # Only the issues shown are kept.
    assert len(service.recent_figures) == 1
