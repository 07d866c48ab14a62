"""GET /api/contacts with filters, and as CSV (`?format=csv` or Accept: text/csv), audited."""

from __future__ import annotations

import json

from sqlalchemy import select
from starlette.testclient import TestClient

from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent
from tests.contacts.csv_reading import csv_rows
from tests.contacts.filters_support import audience


def exports(database: Database) -> list[tuple[str, dict[str, object]]]:
    with database.read() as session:
        rows = session.execute(
            select(AuditEvent.actor, AuditEvent.details)
            .where(AuditEvent.action == "contact.list_exported")
            .order_by(AuditEvent.id)
        ).all()
    return [(actor, json.loads(details)) for actor, details in rows]


def test_filters_narrow_the_page_and_the_total(
    client: TestClient, database: Database, api_headers: dict[str, str]
) -> None:
    world = audience(database)
    answer = client.get(
        "/api/contacts",
        params={"consent": "News", "active_within": "30", "sort": "created", "limit": "1"},
        headers=api_headers,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["total"] == 2
    assert [c["guid"] for c in body["contacts"]] == [world.ada]
    assert body["contacts"][0]["country"] == "CZE"
    assert body["contacts"][0]["last_activity_at"] is not None
    following = client.get(
        "/api/contacts",
        params={
            "consent": "News",
            "active_within": "30",
            "sort": "created",
            "limit": "1",
            "after": body["next_after"],
        },
        headers=api_headers,
    ).json()
    assert [c["guid"] for c in following["contacts"]] == [world.dan]
    assert following["next_after"] is None
    both = client.get(
        "/api/contacts", params={"group": "VIP", "inactive_for": "3"}, headers=api_headers
    ).json()
    assert [c["guid"] for c in both["contacts"]] == [world.cy]


def test_bad_filters_are_a_400_naming_the_parameter(
    client: TestClient, database: Database, api_headers: dict[str, str]
) -> None:
    audience(database)
    for params, code in (
        ({"group": "Nobody"}, "unknown_group"),
        ({"consent": "Nope"}, "unknown_consent"),
        ({"newsletter": "Monthly"}, "unknown_newsletter"),
        ({"country": "ZZZ"}, "invalid_country"),
        ({"active_within": "0"}, "invalid_parameter"),
        ({"inactive_for": "3651"}, "invalid_parameter"),
        ({"format": "xml"}, "invalid_parameter"),
    ):
        answer = client.get("/api/contacts", params=params, headers=api_headers)
        assert answer.status_code == 400, params
        body = answer.json()
        assert (body["code"], body["field"]) == (code, next(iter(params))), body
        if "format" in params:
            continue
        csv_too = client.get(
            "/api/contacts", params={**params, "format": "csv"}, headers=api_headers
        )
        assert csv_too.status_code == 400, params
    assert exports(database) == []


def test_csv_streams_every_match_and_is_audited(
    client: TestClient, database: Database, api_headers: dict[str, str]
) -> None:
    world = audience(database)
    answer = client.get(
        "/api/contacts",
        params={"format": "csv", "country": "CZE", "sort": "created", "limit": "1"},
        headers=api_headers,
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    rows = csv_rows(answer.text)
    # Every match, whatever `limit` says.
    assert [row["guid"] for row in rows] == [world.ada, world.dan]
    assert rows[1]["company_name"] == "'=HYPERLINK(1)"
    by_accept = client.get(
        "/api/contacts", params={"q": "bob"}, headers={**api_headers, "Accept": "text/csv"}
    )
    assert [row["guid"] for row in csv_rows(by_accept.text)] == [world.bob]
    assert exports(database) == [
        ("api@example.com", {"contacts": 2, "country": "CZE"}),
        ("api@example.com", {"contacts": 1, "q": "bob"}),
    ]
    # ?format=json wins over the Accept header.
    json_page = client.get(
        "/api/contacts", params={"format": "json"}, headers={**api_headers, "Accept": "text/csv"}
    )
    assert json_page.json()["total"] == 4
