"""`GET /api/dashboard`: the dashboard's figures as JSON."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from contacthub.analytics.dashboard import utc_today
from contacthub.storage.database import Database
from contacthub.storage.types import utcnow
from tests import factories
from tests.analytics.support import email_issue
from tests.tracking.support import post_activities, results_of


def get(client: TestClient, headers: dict[str, str], **params: str) -> Any:
    response = client.get("/api/dashboard", headers=headers, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def assert_error(response: Any, status: int, code: str, field: str | None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert body.get("field") == field
    assert body["error"]


def test_the_dashboard_as_json(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    setup = factories.tracking_channel(database, "Website")
    contact = factories.contact(database)
    activities = [
        {"type": "pagevisit", "url": "https://example.com/pricing", "value": "Pricing"},
        {"type": "pagevisit", "url": "https://example.com/pricing", "value": "Pricing"},
        {"type": "click", "value": "<b>buy</b>"},
    ]
    assert [
        r["status"] for r in results_of(post_activities(client, setup, contact, activities))
    ] == [202] * 3
    sent_at = utcnow() - timedelta(hours=1)
    guid = email_issue(
        database,
        "Spring news",
        sent_at=sent_at,
        recipients=["anna@example.com", "bob@example.com", "carol@example.com", "dan@example.com"],
        opened=["anna@example.com", "bob@example.com", "carol@example.com"],
        clicked=["anna@example.com"],
    )
    today = utc_today()

    body = get(client, api_headers)

    start = today - timedelta(days=29)
    assert body["start"] == start.isoformat()
    assert body["end"] == today.isoformat()
    assert body["days"] == [(start + timedelta(days=n)).isoformat() for n in range(30)]
    assert body["totals"] == {
        "activities": 3,
        "new_contacts": 5,
        "contacts": 5,
        "email_opens": 0,
        "email_clicks": 0,
    }
    zeros = [0] * 29
    assert body["activities_by_type"] == [
        {"key": "pagevisit", "name": "Page visits", "total": 2, "values": [*zeros, 2]},
        {"key": "click", "name": "Clicks", "total": 1, "values": [*zeros, 1]},
    ]
    assert body["activities_by_channel"] == [
        {"key": str(_channel_id(body)), "name": "Website", "total": 3, "values": [*zeros, 3]}
    ]
    assert body["new_contacts"] == [*zeros, 5]
    assert body["top_pages"] == [{"key": "https://example.com/pricing", "count": 2}]
    assert body["top_clicks"] == [{"key": "<b>buy</b>", "count": 1}]
    assert body["latest_issues"] == [
        {
            "guid": guid,
            "subject": "Spring news",
            "newsletter": "Weekly",
            "status": "sent",
            "sent_at": sent_at.isoformat().replace("+00:00", "Z"),
            "sent": 4,
            "open_rate": 0.75,
            "click_rate": 0.25,
        }
    ]


def _channel_id(body: dict[str, Any]) -> int:
    key = body["activities_by_channel"][0]["key"]
    assert key.isdigit()
    assert key != "0"
    return int(key)


def test_a_range(client: TestClient, api_headers: dict[str, str]) -> None:
    body = get(client, api_headers, start="2024-02-28", end="2024-03-01")

    assert body["days"] == ["2024-02-28", "2024-02-29", "2024-03-01"]
    assert body["new_contacts"] == [0, 0, 0]
    assert body["activities_by_type"] == []
    assert body["latest_issues"] == []

    # A missing start is 30 days before the end.
    only_end = get(client, api_headers, end="2024-03-01")
    assert (only_end["start"], len(only_end["days"])) == ("2024-02-01", 30)

    # The first days of the calendar and the last: no overflow.
    assert get(client, api_headers, end="0001-01-05")["start"] == "0001-01-01"
    assert len(get(client, api_headers, start="9999-12-01", end="9999-12-31")["days"]) == 31


@pytest.mark.parametrize(
    ("params", "code", "field"),
    [
        ({"start": "2024-13-01"}, "invalid_parameter", "start"),
        ({"end": "tomorrow"}, "invalid_parameter", "end"),
        ({"start": "2024-05-10", "end": "2024-05-01"}, "date_range_reversed", "end"),
        ({"start": "2023-01-01", "end": "2024-01-02"}, "date_range_too_long", "start"),
    ],
)
def test_bad_ranges(
    client: TestClient, api_headers: dict[str, str], params: dict[str, str], code: str, field: str
) -> None:
    response = client.get("/api/dashboard", headers=api_headers, params=params)

    assert_error(response, 400, code, field)


def test_a_token_is_required(client: TestClient) -> None:
    assert_error(client.get("/api/dashboard"), 401, "missing_api_key", None)
    assert_error(
        client.get("/api/dashboard", headers={"Authorization": "Bearer cht_nope"}),
        401,
        "invalid_token",
        None,
    )


def test_the_openapi_document_describes_it(client: TestClient) -> None:
    document = client.get("/api/openapi.json").json()

    operation = document["paths"]["/api/dashboard"]["get"]
    assert operation["tags"] == ["Dashboard"]
    assert operation["summary"].startswith("The dashboard's figures")
    assert [p["name"] for p in operation["parameters"]] == ["start", "end", "group"]
    assert "DashboardOut" in document["components"]["schemas"]
