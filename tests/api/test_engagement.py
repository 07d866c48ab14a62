"""`/api/issues/{guid}/engagement` and `/engagement/people`, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import uuid

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent
from tests.admin.test_issue_engagement import sent_with_hits
from tests.email.tracking_support import ANNA, BOB, CAROL


def test_the_timeline_counts_human_hits_by_default(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    sent = sent_with_hits(database)
    answer = client.get(f"/api/issues/{sent.guid}/engagement", headers=api_headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["issue"], body["include_machines"]) == (sent.guid, False)
    assert (body["opens"], body["clicks"]) == (2, 2)
    units = [bucket["unit"] for bucket in body["buckets"]]
    assert units[:48] == ["hour"] * 48
    assert set(units[48:]) == {"day"}
    assert body["buckets"][0]["start"] == body["started_at"]
    everything = client.get(
        f"/api/issues/{sent.guid}/engagement?include_machines=TRUE", headers=api_headers
    ).json()
    assert (everything["opens"], everything["include_machines"]) == (3, True)


def test_people_as_json_pages(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    sent = sent_with_hits(database)
    path = f"/api/issues/{sent.guid}/engagement/people"
    first = client.get(f"{path}?limit=1&include_machines=true", headers=api_headers).json()
    assert [p["email"] for p in first["people"]] == [ANNA]
    assert first["total"] == 3
    person = first["people"][0]
    assert (person["first_name"], person["opens"], person["clicks"]) == ("Anna", 1, 1)
    assert set(person) == {
        "email",
        "first_name",
        "last_name",
        "contact_guid",
        "first_opened_at",
        "last_seen_at",
        "opens",
        "clicks",
    }
    rest = client.get(
        f"{path}?include_machines=true&after={first['next_after']}", headers=api_headers
    ).json()
    assert ([p["email"] for p in rest["people"]], rest["next_after"]) == ([BOB, CAROL], None)
    human = client.get(path, headers=api_headers).json()
    assert [p["email"] for p in human["people"]] == [ANNA, BOB]


def test_people_as_csv_are_audited(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    sent = sent_with_hits(database)
    answer = client.get(
        f"/api/issues/{sent.guid}/engagement/people?format=csv", headers=api_headers
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [(r["email"], r["opens"], r["clicks"]) for r in rows] == [
        (ANNA, "1", "1"),
        (BOB, "1", "0"),
    ]
    by_accept = client.get(
        f"/api/issues/{sent.guid}/engagement/people",
        headers={**api_headers, "Accept": "text/csv"},
    )
    assert by_accept.text == answer.text
    with database.read() as session:
        events = session.execute(
            select(AuditEvent.actor, AuditEvent.subject).where(
                AuditEvent.action == "issue.engagement_exported"
            )
        ).all()
    assert [tuple(e) for e in events] == [("api@example.com", sent.guid)] * 2


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("include_machines=yes", "include_machines"),
        ("after=x", "after"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("format=xml", "format"),
    ],
)
def test_bad_parameters_are_400(
    client: TestClient, api_headers: dict[str, str], database: Database, query: str, field: str
) -> None:
    sent = sent_with_hits(database)
    answer = client.get(f"/api/issues/{sent.guid}/engagement/people?{query}", headers=api_headers)
    assert answer.status_code == 400
    assert answer.json()["field"] == field


def test_unknown_and_malformed_issues(client: TestClient, api_headers: dict[str, str]) -> None:
    for suffix in ("engagement", "engagement/people", "engagement/people?format=csv"):
        unknown = client.get(f"/api/issues/{uuid.uuid4()}/{suffix}", headers=api_headers)
        assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_issue")
        malformed = client.get(f"/api/issues/not-a-guid/{suffix}", headers=api_headers)
        assert malformed.status_code == 400
    assert client.get(f"/api/issues/{uuid.uuid4()}/engagement").status_code == 401
