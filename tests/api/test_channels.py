"""`/api/channels` and `/api/keys`: the management API of channels and their keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from starlette.testclient import TestClient

from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent
from tests import factories

API = "/Kentico.Tracking"
ACTOR = "api@example.com"


def assert_error(answer: Any, status: int, code: str, field: str | None = None) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["code"] == code, body
    assert body.get("field") == field, body
    assert body["error"]
    message: str = body["error"]
    return message


def audit_actions(database: Database) -> list[tuple[str, str, str]]:
    with database.read() as session:
        rows = session.execute(
            select(AuditEvent.actor, AuditEvent.action, AuditEvent.subject).order_by(AuditEvent.id)
        ).all()
    return [(actor, action, subject) for actor, action, subject in rows]


def new_key(client: TestClient, headers: dict[str, str], channel: str, **body: Any) -> Any:
    answer = client.post(
        f"/api/channels/{channel}/keys", headers=headers, json={"access": "tracking", **body}
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_every_endpoint_needs_a_token(client: TestClient, database: Database) -> None:
    factories.tracking_channel(database, "Web")
    calls = [
        ("GET", "/api/channels", None),
        ("POST", "/api/channels", {"name": "x"}),
        ("GET", "/api/channels/Web", None),
        ("PATCH", "/api/channels/Web", {"required_consent": None}),
        ("GET", "/api/channels/Web/keys", None),
        ("POST", "/api/channels/Web/keys", {"access": "tracking"}),
        ("GET", "/api/keys", None),
        ("POST", "/api/keys/1/revoke", None),
    ]
    for method, path, body in calls:
        answer = client.request(method, path, json=body)
        assert_error(answer, 401, "missing_api_key")
        bad = client.request(method, path, json=body, headers={"Authorization": "Bearer cht_x"})
        assert_error(bad, 401, "invalid_token")
    assert audit_actions(database) == []


def test_create_list_and_get_channels(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    factories.consent(database, "TrackingConsent")
    created = client.post(
        "/api/channels",
        headers=api_headers,
        json={"name": "Web shop", "required_consent": "TrackingConsent"},
    )
    assert created.status_code == 201, created.text
    channel = created.json()
    assert channel["name"] == "Web shop"
    assert channel["required_consent"] == "TrackingConsent"
    assert (channel["active_keys"], channel["keys"]) == (0, 0)
    assert len(channel["guid"]) == 36

    client.post("/api/channels", headers=api_headers, json={"name": "App"})
    listed = client.get("/api/channels", headers=api_headers).json()
    assert [c["name"] for c in listed] == ["App", "Web shop"]
    one = client.get("/api/channels/Web shop", headers=api_headers)
    assert one.json() == channel
    assert audit_actions(database) == [
        (ACTOR, "channel.created", "Web shop"),
        (ACTOR, "channel.created", "App"),
    ]


def test_channel_errors_name_the_field(client: TestClient, api_headers: dict[str, str]) -> None:
    client.post("/api/channels", headers=api_headers, json={"name": "Web"})
    post = lambda body: client.post("/api/channels", headers=api_headers, json=body)  # noqa: E731

    assert_error(post({"name": "Web"}), 409, "channel_exists", "name")
    assert_error(post({"name": " "}), 400, "invalid_name", "name")
    assert_error(post({"name": "a/b"}), 400, "invalid_name", "name")
    assert_error(post({"name": "a\x00b"}), 400, "nul_character", "name")
    assert_error(
        post({"name": "New", "required_consent": "Nope"}),
        404,
        "unknown_consent",
        "required_consent",
    )
    assert_error(post({"name": "New", "colour": "red"}), 400, "invalid_body")
    assert_error(post({}), 400, "invalid_body")
    assert_error(client.get("/api/channels/Nope", headers=api_headers), 404, "unknown_channel")


def test_patch_sets_and_removes_the_consent_gate(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    factories.consent(database, "TrackingConsent")
    client.post("/api/channels", headers=api_headers, json={"name": "Web"})

    gated = client.patch(
        "/api/channels/Web", headers=api_headers, json={"required_consent": "TrackingConsent"}
    )
    assert gated.status_code == 200, gated.text
    assert gated.json()["required_consent"] == "TrackingConsent"
    open_ = client.patch("/api/channels/Web", headers=api_headers, json={"required_consent": None})
    assert open_.json()["required_consent"] is None

    # An empty change is refused rather than read as "remove the gate".
    assert_error(
        client.patch("/api/channels/Web", headers=api_headers, json={}), 400, "invalid_body"
    )
    assert_error(
        client.patch("/api/channels/Web", headers=api_headers, json={"required_consent": "No"}),
        404,
        "unknown_consent",
        "required_consent",
    )
    assert_error(
        client.patch("/api/channels/Nope", headers=api_headers, json={"required_consent": None}),
        404,
        "unknown_channel",
    )
    gates = [a for a in audit_actions(database) if a[1] == "channel.consent_gate_set"]
    assert gates == [(ACTOR, "channel.consent_gate_set", "Web")] * 2


def test_a_new_key_is_answered_once_and_works(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    channel = client.post("/api/channels", headers=api_headers, json={"name": "Web"}).json()
    answer = client.post(
        "/api/channels/Web/keys",
        headers=api_headers,
        json={"access": "tracking", "name": "Storefront"},
    )
    assert answer.status_code == 201, answer.text
    assert answer.headers["cache-control"] == "no-store"
    created = answer.json()
    key = created["key"]
    assert key.startswith(created["prefix"])
    assert created["status"] == "active"
    assert (created["channel"], created["name"], created["access"]) == (
        "Web",
        "Storefront",
        "tracking",
    )

    for path in ("/api/keys", "/api/channels/Web/keys"):
        listed = client.get(path, headers=api_headers)
        assert key not in listed.text
        assert [k["id"] for k in listed.json()] == [created["id"]]
        assert "key" not in listed.json()[0]
    assert client.get("/api/channels/Web", headers=api_headers).json()["active_keys"] == 1

    headers = {"Authorization": f"Bearer {key}"}
    contact = client.post(f"{API}/contacts", headers=headers).json()["contact"]
    logged = client.post(
        f"{API}/activities",
        headers=headers,
        json={
            "channel": channel["guid"],
            "contact": contact,
            "activities": [{"type": "click", "value": "x"}],
        },
    )
    assert logged.status_code == 207
    assert logged.json()["results"][0]["status"] == 202
    assert (ACTOR, "key.created", created["prefix"]) in audit_actions(database)


def test_key_errors_name_the_field(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    client.post("/api/channels", headers=api_headers, json={"name": "Web"})
    post = lambda body: client.post("/api/channels/Web/keys", headers=api_headers, json=body)  # noqa: E731

    assert_error(post({"access": "admin"}), 400, "invalid_access", "access")
    assert_error(post({"access": "tracking", "name": "n" * 101}), 400, "invalid_key_name", "name")
    assert_error(
        post({"access": "tracking", "expires_at": "2030-01-01T00:00:00"}),
        400,
        "invalid_expiry",
        "expires_at",
    )
    assert_error(
        post({"access": "tracking", "expires_at": "9999-12-31T23:00:00-05:00"}),
        400,
        "invalid_expiry",
        "expires_at",
    )
    assert_error(
        post({"access": "tracking", "expires_at": "soon"}), 400, "invalid_body", "expires_at"
    )
    assert_error(post({"name": "x"}), 400, "invalid_body")
    assert_error(
        client.post("/api/channels/Nope/keys", headers=api_headers, json={"access": "tracking"}),
        404,
        "unknown_channel",
    )
    assert client.get("/api/keys", headers=api_headers).json() == []


def test_expiring_keys(client: TestClient, api_headers: dict[str, str], database: Database) -> None:
    client.post("/api/channels", headers=api_headers, json={"name": "Web"})
    later = new_key(client, api_headers, "Web", expires_at="2999-01-01T00:00:00+02:00")
    assert later["expires_at"] == "2998-12-31T22:00:00Z"
    assert later["status"] == "active"

    # A key that would be expired from the start is a mistake (a wrong year): refused.
    refused = client.post(
        "/api/channels/Web/keys",
        headers=api_headers,
        json={"access": "tracking", "expires_at": "2020-01-01T00:00:00Z"},
    )
    assert_error(refused, 400, "invalid_expiry", "expires_at")
    assert refused.json()["error"] == "The expiry must be in the future."
    # A key that has expired since is shown so, and refused.
    past = factories.api_key(database, "Web", expires_at=datetime(2020, 1, 1, tzinfo=UTC))
    listed = client.get("/api/keys", headers=api_headers).json()
    assert [k["status"] for k in listed if k["prefix"] == past[:12]] == ["expired"]
    answer = client.post(f"{API}/contacts", headers={"Authorization": f"Bearer {past}"})
    assert answer.json()["code"] == "api_key_expired"


def test_disable_enable_revoke(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    client.post("/api/channels", headers=api_headers, json={"name": "Web"})
    client.post("/api/channels", headers=api_headers, json={"name": "App"})
    created = new_key(client, api_headers, "Web")
    other = new_key(client, api_headers, "App")
    tracking = {"Authorization": f"Bearer {created['key']}"}

    def contacts_code() -> Any:
        answer = client.post(f"{API}/contacts", headers=tracking)
        return answer.status_code if answer.status_code == 200 else answer.json()["code"]

    key_path = f"/api/keys/{created['id']}"
    disabled = client.post(f"{key_path}/disable", headers=api_headers)
    assert disabled.status_code == 200
    assert (disabled.json()["status"], disabled.json()["enabled"]) == ("disabled", False)
    assert contacts_code() == "api_key_disabled"
    assert client.post(f"{key_path}/enable", headers=api_headers).json()["status"] == "active"
    assert contacts_code() == 200
    revoked = client.post(f"{key_path}/revoke", headers=api_headers).json()
    assert revoked["status"] == "revoked"
    assert revoked["revoked_at"] is not None
    assert contacts_code() == "api_key_revoked"
    # Revoking is for good.
    assert client.post(f"{key_path}/enable", headers=api_headers).json()["status"] == "revoked"
    assert contacts_code() == "api_key_revoked"

    only_app = client.get("/api/keys?channel=App", headers=api_headers).json()
    assert [(k["id"], k["status"]) for k in only_app] == [(other["id"], "active")]
    assert_error(client.get("/api/keys?channel=Nope", headers=api_headers), 404, "unknown_channel")
    for path in ("/api/keys/4242/revoke", "/api/keys/abc/disable", "/api/keys/99999999999/enable"):
        assert_error(client.post(path, headers=api_headers), 404, "unknown_api_key")
    prefix = created["prefix"]
    assert [a for a in audit_actions(database) if a[2] == prefix][1:] == [
        (ACTOR, "key.disabled", prefix),
        (ACTOR, "key.enabled", prefix),
        (ACTOR, "key.revoked", prefix),
        (ACTOR, "key.enabled", prefix),
    ]


def test_openapi_documents_the_endpoints(client: TestClient) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    assert set(paths["/api/channels"]) == {"get", "post"}
    assert set(paths["/api/channels/{name}"]) == {"get", "patch"}
    assert set(paths["/api/channels/{name}/keys"]) == {"get", "post"}
    for verb in ("disable", "enable", "revoke"):
        assert "post" in paths[f"/api/keys/{{key_id}}/{verb}"]
    assert paths["/api/channels/{name}/keys"]["post"]["summary"].startswith("Create an API key")
