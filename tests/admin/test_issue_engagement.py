"""The admin's engagement views of an issue: the chart on the issue page, who opened or clicked,
and the CSV export; on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from sqlalchemy import select
from starlette.testclient import TestClient

from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent
from contacthub.storage.types import utcnow
from tests.email.test_engagement import hit
from tests.email.tracking_support import ANNA, BOB, CAROL, SentIssue, sent_issue


def sent_with_hits(database: Database) -> SentIssue:
    # Five past the hour, so that each hit's hour after sending does not depend on the clock.
    sent_at = (utcnow() - timedelta(days=3)).replace(minute=5, second=0, microsecond=0)
    sent = sent_issue(database, sent_at=sent_at)
    hit(database, sent, "open", ANNA, sent_at + timedelta(minutes=20))
    hit(database, sent, "click", ANNA, sent_at + timedelta(hours=2))
    hit(database, sent, "open", BOB, sent_at + timedelta(days=2, hours=3))
    hit(database, sent, "open", CAROL, sent_at + timedelta(minutes=1), machine=True)
    hit(database, sent, "click", None, sent_at + timedelta(hours=2))  # aggregate
    return sent


def test_the_issue_page_charts_opens_and_clicks_over_time(
    admin: TestClient, database: Database
) -> None:
    sent = sent_with_hits(database)
    page = admin.get(f"/admin/issues/{sent.guid}")
    assert page.status_code == 200
    assert "Opens and clicks over time" in page.text
    assert (
        'aria-label="Opens and clicks (human) since the issue went out: Opens: 2, Clicks: 2"'
        in (page.text)
    )
    assert "daily from here" in page.text
    assert "<script" not in page.text.split('id="engagement"')[1].split("</div>")[0]
    machines = admin.get(f"/admin/issues/{sent.guid}?machines=yes")
    assert "Opens and clicks (human and machine) since the issue went out: Opens: 3" in (
        machines.text
    )


def test_a_draft_has_no_chart(admin: TestClient, database: Database) -> None:
    from contacthub.email import service

    sent = sent_issue(database)
    with database.write() as session:
        draft = service.create_issue(session, "Weekly", "Draft", "<p>x</p>")
        guid = draft.guid
    assert "Opens and clicks over time" not in admin.get(f"/admin/issues/{guid}").text
    assert "Opens and clicks over time" in admin.get(f"/admin/issues/{sent.guid}").text


def test_who_opened_or_clicked_human_only_by_default(admin: TestClient, database: Database) -> None:
    sent = sent_with_hits(database)
    page = admin.get(f"/admin/issues/{sent.guid}/engagement")
    assert page.status_code == 200
    assert "2 subscribers" in page.text
    assert ANNA in page.text
    assert BOB in page.text
    assert CAROL not in page.text  # only a proxy fetched her pixel
    everyone = admin.get(f"/admin/issues/{sent.guid}/engagement?machines=yes")
    assert CAROL in everyone.text
    assert "3 subscribers" in everyone.text


def test_people_are_paged(admin: TestClient, database: Database) -> None:
    sent = sent_with_hits(database)
    first = admin.get(f"/admin/issues/{sent.guid}/engagement?machines=yes")
    assert "Next →" not in first.text  # one page of 50 holds all three
    after = sent.subscriber_ids[ANNA]
    second = admin.get(f"/admin/issues/{sent.guid}/engagement?machines=yes&after={after}")
    listed = second.text.split('id="people"')[1]
    assert ANNA not in listed
    assert BOB in listed
    assert CAROL in listed
    assert f'href="/admin/issues/{sent.guid}/engagement?machines=yes">← First' in second.text
    bad = admin.get(f"/admin/issues/{sent.guid}/engagement?after=x")
    assert bad.status_code == 400


def test_the_export_is_a_csv_and_is_audited(admin: TestClient, database: Database) -> None:
    sent = sent_with_hits(database)
    answer = admin.post(
        f"/admin/issues/{sent.guid}/engagement/export",
        data={"csrf_token": admin.csrf, "machines": "yes"},  # type: ignore[attr-defined]
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert f"issue-{sent.guid}-engagement.csv" in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [(r["email"], r["opens"], r["clicks"]) for r in rows] == [
        (ANNA, "1", "1"),
        (BOB, "1", "0"),
        (CAROL, "1", "0"),
    ]
    with database.read() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "issue.engagement_exported")
        ).one()
        assert event.subject == sent.guid
        assert event.details is not None
        assert '"people": 3' in event.details
    # Without the CSRF token nothing is exported.
    refused = admin.post(f"/admin/issues/{sent.guid}/engagement/export", data={})
    assert refused.status_code == 403
