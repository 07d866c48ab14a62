"""`/api/webhooks` and `/api/webhook-deliveries`: the management API of webhook endpoints."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.testclient import TestClient

from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent, WebhookDelivery
from tests import factories
from tests.api.test_channels import assert_error
from tests.webhooks.support import T0, dead_delivery, hub_with_deliveries

URL = "https://crm.example.com/hooks/contacthub"
ACTOR = "api@example.com"


def actions(database: Database) -> list[tuple[str, str, str]]:
    with database.read() as session:
        return [
            (a, b, c)
            for a, b, c in session.execute(
                select(AuditEvent.actor, AuditEvent.action, AuditEvent.subject).order_by(
                    AuditEvent.id
                )
            )
        ]


def create(client: TestClient, headers: dict[str, str], **body: Any) -> Any:
    answer = client.post("/api/webhooks", headers=headers, json={"name": "CRM", "url": URL, **body})
    assert answer.status_code == 201, answer.text
    assert answer.headers["cache-control"] == "no-store"
    return answer.json()


def test_every_endpoint_needs_a_token(client: TestClient, database: Database) -> None:
    guid = hub_with_deliveries(database)
    calls = [
        ("GET", "/api/webhooks", None),
        ("POST", "/api/webhooks", {"name": "x", "url": URL}),
        ("GET", f"/api/webhooks/{guid}", None),
        ("PATCH", f"/api/webhooks/{guid}", {"enabled": False}),
        ("DELETE", f"/api/webhooks/{guid}", None),
        ("POST", f"/api/webhooks/{guid}/rotate-secret", None),
        ("GET", f"/api/webhooks/{guid}/deliveries", None),
        ("POST", f"/api/webhooks/{guid}/replay", {"since": "2026-03-01T00:00:00Z"}),
        ("POST", "/api/webhook-deliveries/1/retry", None),
    ]
    for method, path, body in calls:
        assert_error(client.request(method, path, json=body), 401, "missing_api_key")
    assert actions(database) == []


def test_create_list_get_change_delete(
    client: TestClient, database: Database, api_headers: dict[str, str]
) -> None:
    factories.tracking_channel(database, "Web")
    made = create(
        client,
        api_headers,
        events=["activity.stored"],
        activity_types=["click"],
        channels=["Web"],
    )
    assert made["secret"].startswith("whsec_")
    assert made["events"] == ["activity.stored"]
    assert (made["activity_types"], made["channels"]) == (["click"], ["Web"])
    assert made["health"] == {
        "last_success_at": None,
        "last_failure_at": None,
        "last_error": None,
        "failures": 0,
        "backlog": 0,
    }
    guid = made["guid"]
    listed = client.get("/api/webhooks", headers=api_headers).json()
    assert [w["guid"] for w in listed] == [guid]
    assert "secret" not in listed[0]
    one = client.get(f"/api/webhooks/{guid}", headers=api_headers).json()
    assert "secret" not in one
    assert one["url"] == URL

    changed = client.patch(
        f"/api/webhooks/{guid}",
        headers=api_headers,
        json={"url": URL + "?v=2", "activity_types": None, "enabled": False},
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["url"], body["activity_types"], body["channels"], body["enabled"]) == (
        URL + "?v=2",
        None,
        ["Web"],
        False,
    )
    rotated = client.post(f"/api/webhooks/{guid}/rotate-secret", headers=api_headers)
    assert rotated.status_code == 200
    assert rotated.headers["cache-control"] == "no-store"
    assert rotated.json()["secret"] not in (made["secret"], None)
    deleted = client.delete(f"/api/webhooks/{guid}", headers=api_headers)
    assert deleted.status_code == 200
    assert deleted.json()["name"] == "CRM"
    assert_error(client.get(f"/api/webhooks/{guid}", headers=api_headers), 404, "unknown_webhook")
    assert actions(database) == [
        (ACTOR, "webhook.created", "CRM"),
        (ACTOR, "webhook.updated", "CRM"),
        (ACTOR, "webhook.disabled", "CRM"),
        (ACTOR, "webhook.secret_rotated", "CRM"),
        (ACTOR, "webhook.deleted", "CRM"),
    ]


def test_bad_input_is_a_json_400(
    client: TestClient, database: Database, api_headers: dict[str, str]
) -> None:
    def post(body: dict[str, Any]) -> Any:
        return client.post("/api/webhooks", headers=api_headers, json=body)

    assert_error(post({"name": "CRM", "url": "ftp://x.example/"}), 400, "invalid_url", "url")
    assert_error(post({"name": "CRM", "url": "https://x.example/#a"}), 400, "invalid_url", "url")
    assert_error(post({"name": "", "url": URL}), 400, "invalid_name", "name")
    assert_error(
        post({"name": "CRM", "url": URL, "events": ["contact.made"]}),
        400,
        "invalid_events",
        "events",
    )
    assert_error(post({"name": "CRM", "url": URL, "events": []}), 400, "invalid_events", "events")
    assert_error(
        post({"name": "CRM", "url": URL, "activity_types": ["nope"]}),
        400,
        "unknown_activity_type",
        "activity_types",
    )
    assert_error(
        post({"name": "CRM", "url": URL, "channels": ["Nowhere"]}),
        400,
        "unknown_channel",
        "channels",
    )
    assert_error(
        post({"name": "CRM", "url": URL, "events": ["email.sent"], "activity_types": ["click"]}),
        400,
        "invalid_filter",
        "activity_types",
    )
    assert_error(post({"name": "CRM", "url": URL, "secret": "mine"}), 400, "invalid_body")
    assert_error(post({"name": "CRM"}), 400, "invalid_body")
    answer = client.post(
        "/api/webhooks", headers={**api_headers, "Content-Type": "text/plain"}, content=b"{}"
    )
    assert answer.status_code == 415
    assert actions(database) == []


def test_deliveries_retry_and_replay(
    client: TestClient, database: Database, api_headers: dict[str, str]
) -> None:
    guid = hub_with_deliveries(database)
    answer = client.get(f"/api/webhooks/{guid}/deliveries", headers=api_headers)
    assert answer.status_code == 200, answer.text
    listed = answer.json()
    assert [d["state"] for d in listed] == ["pending", "dead", "delivered"]
    assert {d["endpoint"] for d in listed} == {guid}
    assert listed[1]["last_status"] == 503
    assert listed[1]["last_error"] == "HTTP 503 Service Unavailable"
    limited = client.get(f"/api/webhooks/{guid}/deliveries?limit=1", headers=api_headers).json()
    assert len(limited) == 1
    assert_error(
        client.get(f"/api/webhooks/{guid}/deliveries?limit=0", headers=api_headers),
        400,
        "invalid_parameter",
        "limit",
    )
    health = client.get(f"/api/webhooks/{guid}", headers=api_headers).json()["health"]
    assert (health["failures"], health["backlog"]) == (1, 1)

    dead = dead_delivery(database, guid)
    retried = client.post(f"/api/webhook-deliveries/{dead}/retry", headers=api_headers)
    assert retried.status_code == 200, retried.text
    assert (retried.json()["state"], retried.json()["attempts"]) == ("pending", 0)
    assert_error(
        client.post(f"/api/webhook-deliveries/{dead}/retry", headers=api_headers),
        409,
        "delivery_not_dead",
    )
    for missing in ("0", "123456789", "99999999999999999999", "x"):
        assert_error(
            client.post(f"/api/webhook-deliveries/{missing}/retry", headers=api_headers),
            404,
            "unknown_delivery",
        )

    replay = f"/api/webhooks/{guid}/replay"
    answer = client.post(replay, headers=api_headers, json={"since": T0.isoformat()})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"events": 3}
    with database.read() as session:
        assert sorted(session.scalars(select(WebhookDelivery.state))) == ["pending"] * 3
    assert_error(
        client.post(replay, headers=api_headers, json={"since": "2026-03-01T00:00:00"}),
        400,
        "invalid_since",
        "since",
    )
    assert_error(
        client.post(replay, headers=api_headers, json={"since": "yesterday"}),
        400,
        "invalid_body",
        "since",
    )
    assert_error(
        client.post(
            "/api/webhooks/nope/replay", headers=api_headers, json={"since": T0.isoformat()}
        ),
        404,
        "unknown_webhook",
    )
    assert [b for _, b, _ in actions(database)] == ["webhook.retried", "webhook.replayed"]


def test_the_document_describes_the_webhook_api(client: TestClient) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    assert set(paths["/api/webhooks"]) == {"get", "post"}
    assert set(paths["/api/webhooks/{guid}"]) == {"get", "patch", "delete"}
    for path in ("rotate-secret", "replay"):
        assert set(paths[f"/api/webhooks/{{guid}}/{path}"]) == {"post"}
    assert set(paths["/api/webhooks/{guid}/deliveries"]) == {"get"}
    retry = paths["/api/webhook-deliveries/{delivery_id}/retry"]["post"]
    assert {"404", "409"} <= set(retry["responses"])
    create = paths["/api/webhooks"]["post"]
    schema = create["responses"]["201"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/NewSecretOut"}
