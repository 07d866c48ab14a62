"""`/api/cors-origins`: list, add and remove the origins allowed to call the tracking API."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from contacthub.app import create_app
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent
from contacthub.tracking import endpoints

ACTOR = "api@example.com"


def assert_error(answer: Any, status: int, code: str, field: str | None = None) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert (body["code"], body.get("field")) == (code, field), body
    message: str = body["error"]
    return message


def test_a_token_is_needed(client: TestClient) -> None:
    assert_error(client.get("/api/cors-origins"), 401, "missing_api_key")
    assert_error(client.post("/api/cors-origins", json={"origin": "*"}), 401, "missing_api_key")
    assert_error(client.delete("/api/cors-origins/1"), 401, "missing_api_key")


def test_add_list_remove(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    added = client.post(
        "/api/cors-origins", headers=api_headers, json={"origin": "HTTPS://Shop.Example.com:443"}
    )
    assert added.status_code == 201, added.text
    origin = added.json()
    assert origin["origin"] == "https://shop.example.com"
    client.post("/api/cors-origins", headers=api_headers, json={"origin": "http://localhost:3000"})

    listed = client.get("/api/cors-origins", headers=api_headers).json()
    assert [o["origin"] for o in listed] == ["http://localhost:3000", "https://shop.example.com"]

    removed = client.delete(f"/api/cors-origins/{origin['id']}", headers=api_headers)
    assert removed.status_code == 204
    assert removed.content == b""
    listed = client.get("/api/cors-origins", headers=api_headers).json()
    assert [o["origin"] for o in listed] == ["http://localhost:3000"]
    assert_error(
        client.delete(f"/api/cors-origins/{origin['id']}", headers=api_headers),
        404,
        "unknown_origin",
    )
    assert_error(client.delete("/api/cors-origins/abc", headers=api_headers), 404, "unknown_origin")

    with database.read() as session:
        events = session.execute(
            select(AuditEvent.actor, AuditEvent.action, AuditEvent.subject).order_by(AuditEvent.id)
        ).all()
    assert [tuple(e) for e in events] == [
        (ACTOR, "cors.origin_added", "https://shop.example.com"),
        (ACTOR, "cors.origin_added", "http://localhost:3000"),
        (ACTOR, "cors.origin_removed", "https://shop.example.com"),
    ]


def test_bad_origins_name_the_field(client: TestClient, api_headers: dict[str, str]) -> None:
    def post(body: Any) -> Any:
        return client.post("/api/cors-origins", headers=api_headers, json=body)

    post({"origin": "https://shop.example.com"})
    assert "already allowed" in assert_error(
        post({"origin": "https://SHOP.example.com/"}), 409, "origin_exists", "origin"
    )
    assert_error(post({"origin": "https://shop.example.com/cart"}), 400, "invalid_origin", "origin")
    assert_error(post({"origin": "shop.example.com"}), 400, "invalid_origin", "origin")
    assert_error(post({"origin": 42}), 400, "invalid_body", "origin")
    assert_error(post({}), 400, "invalid_body")


def test_an_origin_added_through_the_api_reaches_the_tracking_api(
    settings: Settings, api_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(endpoints, "CORS_CACHE_SECONDS", 0.1)
    preflight = {"Origin": "https://shop.example.com", "Access-Control-Request-Method": "POST"}
    with TestClient(create_app(settings)) as client:
        before = client.options("/Kentico.Tracking/activities", headers=preflight)
        client.post(
            "/api/cors-origins", headers=api_headers, json={"origin": "https://shop.example.com"}
        )
        time.sleep(0.15)
        after = client.options("/Kentico.Tracking/activities", headers=preflight)
    assert before.status_code == 405
    assert after.status_code == 200
    assert after.headers["access-control-allow-origin"] == "https://shop.example.com"
