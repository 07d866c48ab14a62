"""`/api/users` and `/api/tokens`: admin users and management API tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from starlette.testclient import TestClient

from contacthub.storage.database import Database
from contacthub.storage.models import AdminToken
from contacthub.users import service as users
from tests import factories
from tests.admin.reading import audit_actions

CALLER = "api@example.com"


def create_user(client: TestClient, headers: dict[str, str], **body: Any) -> Any:
    return client.post(
        "/api/users",
        json={"email": "bob@example.com", "password": "a long enough password", **body},
        headers=headers,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def id_of(client: TestClient, headers: dict[str, str], email: str) -> int:
    listed = client.get("/api/users", headers=headers).json()
    return next(u["id"] for u in listed if u["email"] == email)


def test_every_endpoint_needs_a_valid_token(client: TestClient, database: Database) -> None:
    for method, path in [
        ("GET", "/api/users"),
        ("POST", "/api/users"),
        ("PATCH", "/api/users/1"),
        ("GET", "/api/tokens"),
        ("POST", "/api/tokens"),
        ("POST", "/api/tokens/1/revoke"),
    ]:
        missing = client.request(method, path)
        assert missing.status_code == 401, path
        assert missing.json()["code"] == "missing_api_key"
        wrong = client.request(method, path, headers=bearer("cht_" + "x" * 43))
        assert wrong.status_code == 401, path
        assert wrong.json()["code"] == "invalid_token"


def test_create_and_list_users(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    answer = create_user(client, api_headers, email="Bob@Example.com", name="Bob")
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert (created["email"], created["name"], created["enabled"]) == (
        "bob@example.com",
        "Bob",
        True,
    )
    assert created["last_sign_in_at"] is None
    assert "password" not in created
    assert "password_hash" not in created
    listed = client.get("/api/users", headers=api_headers).json()
    assert [u["email"] for u in listed] == [CALLER, "bob@example.com"]
    assert (CALLER, "user.created", "bob@example.com") in audit_actions(database)
    assert not isinstance(
        factories.sign_in(database, "bob@example.com", "a long enough password"), Exception
    )


def test_user_errors_name_the_field(client: TestClient, api_headers: dict[str, str]) -> None:
    create_user(client, api_headers)
    duplicate = create_user(client, api_headers, email="BOB@example.com")
    assert duplicate.status_code == 409
    assert duplicate.json() == {
        "error": "A user bob@example.com already exists.",
        "code": "user_exists",
        "field": "email",
    }
    short = create_user(client, api_headers, email="carol@example.com", password="x" * 11)
    assert short.status_code == 400
    assert short.json()["code"] == "invalid_password"
    assert short.json()["field"] == "password"
    bad_email = create_user(client, api_headers, email="not an address")
    assert bad_email.status_code == 400
    assert bad_email.json()["field"] == "email"
    long_name = create_user(client, api_headers, email="dave@example.com", name="n" * 101)
    assert long_name.json()["field"] == "name"
    extra = create_user(client, api_headers, email="erin@example.com", role="admin")
    assert extra.status_code == 400
    assert extra.json()["code"] == "invalid_body"
    listed = client.get("/api/users", headers=api_headers).json()
    assert [u["email"] for u in listed] == [CALLER, "bob@example.com"]


def test_a_token_is_shown_once_and_works(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    answer = client.post("/api/tokens", json={"name": "deploy"}, headers=api_headers)
    assert answer.status_code == 201, answer.text
    created = answer.json()
    token = created["token"]
    assert token.startswith("cht_")
    assert created["prefix"] == token[:12]
    assert (created["user"], created["name"], created["status"]) == (CALLER, "deploy", "active")
    # It works, acting as the user who created it.
    assert client.get("/api/users", headers=bearer(token)).status_code == 200
    listed = client.get("/api/tokens", headers=api_headers).json()
    assert [t["name"] for t in listed] == ["tests", "deploy"]
    assert all("token" not in t for t in listed)
    assert token not in client.get("/api/tokens", headers=api_headers).text
    assert (CALLER, "token.created", token[:12]) in audit_actions(database)


def test_token_expiry(client: TestClient, api_headers: dict[str, str], database: Database) -> None:
    past = client.post(
        "/api/tokens", json={"expires_at": "2020-01-01T00:00:00Z"}, headers=api_headers
    )
    assert past.status_code == 400
    assert past.json()["code"] == "invalid_expiry"
    assert past.json()["field"] == "expires_at"
    no_zone = client.post(
        "/api/tokens", json={"expires_at": "2999-01-01T00:00:00"}, headers=api_headers
    )
    assert no_zone.status_code == 400
    assert no_zone.json()["field"] == "expires_at"
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    created = client.post("/api/tokens", json={"expires_at": soon}, headers=api_headers).json()
    assert client.get("/api/users", headers=bearer(created["token"])).status_code == 200
    # Time passes (the row says so).
    with database.write() as session:
        session.execute(
            update(AdminToken)
            .where(AdminToken.id == created["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    refused = client.get("/api/users", headers=bearer(created["token"]))
    assert refused.status_code == 401
    assert refused.json()["code"] == "token_expired"
    listed = client.get("/api/tokens", headers=api_headers).json()
    assert [t["status"] for t in listed] == ["active", "expired"]


def test_a_revoked_token_is_refused(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    created = client.post("/api/tokens", json={"name": "ci"}, headers=api_headers).json()
    answer = client.post(f"/api/tokens/{created['id']}/revoke", headers=api_headers)
    assert answer.status_code == 200
    assert answer.json()["status"] == "revoked"
    refused = client.get("/api/users", headers=bearer(created["token"]))
    assert refused.status_code == 401
    assert refused.json()["code"] == "token_revoked"
    for token_id in ("999", "abc", "99999999999999"):
        missing = client.post(f"/api/tokens/{token_id}/revoke", headers=api_headers)
        assert missing.status_code == 404, token_id
        assert missing.json()["code"] == "unknown_token"
    assert (CALLER, "token.revoked", created["prefix"]) in audit_actions(database)


def test_a_disabled_users_tokens_are_refused(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    create_user(client, api_headers)
    with database.write() as session:
        bob = users.get_user_by_email(session, "bob@example.com")
        bobs_token = users.create_token(session, bob, "bob's").plaintext
    assert client.get("/api/users", headers=bearer(bobs_token)).status_code == 200
    bob_id = id_of(client, api_headers, "bob@example.com")
    answer = client.patch(f"/api/users/{bob_id}", json={"enabled": False}, headers=api_headers)
    assert answer.status_code == 200
    assert answer.json()["enabled"] is False
    refused = client.get("/api/users", headers=bearer(bobs_token))
    assert refused.status_code == 401
    assert refused.json()["code"] == "user_disabled"
    client.patch(f"/api/users/{bob_id}", json={"enabled": True}, headers=api_headers)
    assert client.get("/api/users", headers=bearer(bobs_token)).status_code == 200
    actions = [a[1] for a in audit_actions(database)]
    assert "user.disabled" in actions
    assert "user.enabled" in actions


def test_nobody_disables_themselves(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    create_user(client, api_headers)  # so that the caller is not the last enabled user
    me = id_of(client, api_headers, CALLER)
    answer = client.patch(f"/api/users/{me}", json={"enabled": False}, headers=api_headers)
    assert answer.status_code == 400
    assert answer.json()["code"] == "cannot_disable_self"
    assert client.get("/api/users", headers=api_headers).status_code == 200


def test_set_a_password(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    create_user(client, api_headers)
    bob_id = id_of(client, api_headers, "bob@example.com")
    path = f"/api/users/{bob_id}"
    short = client.patch(path, json={"password": "short"}, headers=api_headers)
    assert short.status_code == 400
    assert short.json()["field"] == "password"
    answer = client.patch(path, json={"password": "a brand new password"}, headers=api_headers)
    assert answer.status_code == 200
    assert isinstance(
        factories.sign_in(database, "bob@example.com", "a long enough password"), Exception
    )
    assert not isinstance(
        factories.sign_in(database, "bob@example.com", "a brand new password"), Exception
    )
    assert (CALLER, "user.password_set", "bob@example.com") in audit_actions(database)
    for user_id in ("999", "abc"):
        missing = client.patch(f"/api/users/{user_id}", json={}, headers=api_headers)
        assert missing.status_code == 404
        assert missing.json()["code"] == "unknown_user"
