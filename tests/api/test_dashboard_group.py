"""GET /api/dashboard?group=NAME: the members' figures only."""

from __future__ import annotations

from starlette.testclient import TestClient

from contacthub.storage.database import Database
from tests.contacts.filters_support import audience


def test_the_dashboard_scoped_to_a_group(
    client: TestClient, database: Database, api_headers: dict[str, str]
) -> None:
    audience(database)
    everyone = client.get("/api/dashboard", headers=api_headers).json()
    assert everyone["group"] is None
    assert (everyone["totals"]["contacts"], everyone["totals"]["activities"]) == (4, 3)
    scoped = client.get("/api/dashboard", params={"group": "VIP"}, headers=api_headers)
    assert scoped.status_code == 200, scoped.text
    body = scoped.json()
    assert body["group"] == "VIP"
    assert (body["totals"]["contacts"], body["totals"]["activities"]) == (2, 2)
    unknown = client.get("/api/dashboard", params={"group": "Gone"}, headers=api_headers)
    assert unknown.status_code == 400
    assert (unknown.json()["code"], unknown.json()["field"]) == ("unknown_group", "group")
