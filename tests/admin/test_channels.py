"""Admin pages of channels and API keys: create, show the key once, disable, revoke."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from starlette.testclient import TestClient

from contacthub.storage.database import Database
from contacthub.storage.models import ApiKey, AuditEvent, Channel
from tests import factories
from tests.admin.conftest import EMAIL

API = "/Kentico.Tracking"
KEY = re.compile(r"chk_[A-Za-z0-9_-]{43}")


def post(admin: TestClient, path: str, **data: str) -> Any:
    return admin.post(path, data={**data, "csrf_token": admin.csrf}, follow_redirects=False)  # type: ignore[attr-defined]


def create_channel(admin: TestClient, name: str = "Web shop", **extra: str) -> int:
    answer = post(admin, "/admin/channels/new", name=name, **extra)
    assert answer.status_code == 303, answer.text
    match = re.fullmatch(r"/admin/channels/(\d+)", answer.headers["location"])
    assert match, answer.headers["location"]
    return int(match.group(1))


def create_key(admin: TestClient, channel_id: int, **fields: str) -> tuple[str, Any]:
    """POST the key form; the plaintext shown on the answer, and the answer."""
    answer = post(admin, f"/admin/channels/{channel_id}/keys", **{"access": "tracking", **fields})
    assert answer.status_code == 200, answer.text
    keys = KEY.findall(answer.text)
    assert keys, "the answer shows no key"
    return keys[0], answer


def error_of(page: str, field: str) -> str:
    """The message shown next to a form field."""
    match = re.search(rf'<div class="error" id="e-{field}">([^<]*)</div>', page)
    assert match, f"no error next to {field!r}"
    return html.unescape(match.group(1))


def audit_actions(database: Database) -> list[tuple[str, str, str]]:
    with database.read() as session:
        rows = session.execute(
            select(AuditEvent.actor, AuditEvent.action, AuditEvent.subject).order_by(AuditEvent.id)
        ).all()
    return [
        (actor, action, subject) for actor, action, subject in rows if action != "user.signed_in"
    ]


def guid_of(database: Database, channel_id: int) -> str:
    with database.read() as session:
        return str(session.get_one(Channel, channel_id).guid)


def test_pages_need_signing_in(client: TestClient, database: Database) -> None:
    factories.tracking_channel(database)
    for path in ("/admin/channels", "/admin/channels/new", "/admin/channels/1"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/admin/sign-in?next=")
    for path in ("/admin/channels/new", "/admin/channels/1/keys", "/admin/keys/1/revoke"):
        answer = client.post(path, data={"name": "x"}, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/admin/sign-in")
    with database.read() as session:
        assert session.scalars(select(ApiKey)).all() != []  # the fixture's key, untouched
        assert session.get_one(ApiKey, 1).revoked_at is None


def test_create_a_channel_and_find_it_in_the_list(admin: TestClient, database: Database) -> None:
    form = admin.get("/admin/channels/new")
    assert form.status_code == 200
    assert 'name="name"' in form.text

    channel_id = create_channel(admin, "Web shop")
    guid = guid_of(database, channel_id)

    listing = admin.get("/admin/channels")
    assert listing.status_code == 200
    assert f'href="/admin/channels/{channel_id}">Web shop</a>' in listing.text
    assert f'data-copy="{guid}"' in listing.text  # the tracking identifier, with a copy button
    assert "0 active" in listing.text
    detail = admin.get(f"/admin/channels/{channel_id}")
    assert f'data-copy="{guid}"' in detail.text
    assert audit_actions(database) == [(EMAIL, "channel.created", "Web shop")]


def test_channel_with_a_consent_gate_from_the_start(admin: TestClient, database: Database) -> None:
    factories.consent(database, "TrackingConsent")
    form = admin.get("/admin/channels/new")
    assert '<option value="TrackingConsent"' in form.text

    channel_id = create_channel(admin, "App", required_consent="TrackingConsent")

    detail = admin.get(f"/admin/channels/{channel_id}")
    assert '<option value="TrackingConsent" selected>' in detail.text
    listing = admin.get("/admin/channels")
    assert "TrackingConsent" in listing.text


def test_channel_form_errors_are_shown_next_to_the_field(
    admin: TestClient, database: Database
) -> None:
    create_channel(admin, "Web")
    cases = [
        ({"name": "  "}, "name", "A channel name has 1 to 100 characters."),
        ({"name": "x" * 101}, "name", "A channel name has 1 to 100 characters."),
        ({"name": "Web"}, "name", "A channel named 'Web' already exists."),
        ({"name": "a/b"}, "name", "A channel name cannot contain '/'."),
        (
            {"name": "New", "required_consent": "Nope"},
            "required_consent",
            "No consent with code name 'Nope'.",
        ),
    ]
    for data, field, message in cases:
        answer = post(admin, "/admin/channels/new", **data)
        assert answer.status_code == 400, data
        assert error_of(answer.text, field) == message
        # What was typed is kept.
        assert f'value="{html.escape(data["name"].strip() or "")}"' in answer.text
    with database.read() as session:
        assert [c.name for c in session.scalars(select(Channel))] == ["Web"]


def test_hostile_channel_name_is_escaped(admin: TestClient) -> None:
    # No "/" in channel names (they are part of API URLs), so no closing tag: still hostile.
    hostile = '<script>alert("x")<img src=x onerror=alert(1)>'
    channel_id = create_channel(admin, hostile)

    for path in ("/admin/channels", f"/admin/channels/{channel_id}"):
        page = admin.get(path).text
        assert "<script>alert" not in page
        assert "<img src=x" not in page
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;img src=x onerror=alert(1)&gt;" in page


def test_changes_without_the_csrf_token_are_refused(admin: TestClient, database: Database) -> None:
    channel_id = create_channel(admin, "Web")
    create_key(admin, channel_id)
    with database.read() as session:
        key_id = session.scalars(select(ApiKey.id)).one()

    for path, data in (
        ("/admin/channels/new", {"name": "Other"}),
        (f"/admin/channels/{channel_id}/keys", {"access": "tracking"}),
        (f"/admin/channels/{channel_id}/consent-gate", {"required_consent": ""}),
        (f"/admin/keys/{key_id}/revoke", {}),
        (f"/admin/keys/{key_id}/disable", {}),
    ):
        missing = admin.post(path, data=data, follow_redirects=False)
        wrong = admin.post(path, data={**data, "csrf_token": "forged"}, follow_redirects=False)
        assert missing.status_code == 403, path
        assert wrong.status_code == 403, path

    with database.read() as session:
        assert [c.name for c in session.scalars(select(Channel))] == ["Web"]
        keys = session.scalars(select(ApiKey)).all()
        assert [(k.enabled, k.revoked_at) for k in keys] == [(True, None)]


def test_a_new_key_is_shown_once_and_works(admin: TestClient, database: Database) -> None:
    channel_id = create_channel(admin, "Web")
    key, answer = create_key(admin, channel_id, name="Storefront")

    # Shown in the answer to the POST, in the box made to copy it, and nowhere else.
    assert 'class="secret"' in answer.text
    assert f'data-copy="{key}"' in answer.text
    assert answer.headers["cache-control"] == "no-store"
    assert "location" not in answer.headers
    assert key not in answer.headers.get("set-cookie", "")
    later = admin.get(f"/admin/channels/{channel_id}")
    assert key not in later.text
    assert key[:12] in later.text  # the prefix tells keys apart
    assert 'class="secret"' not in later.text
    assert "Storefront" in later.text
    assert key not in admin.get("/admin/channels").text

    # The key works against the tracking API, for this channel.
    headers = {"Authorization": f"Bearer {key}"}
    contact = admin.post(f"{API}/contacts", headers=headers)
    assert contact.status_code == 200, contact.text
    logged = admin.post(
        f"{API}/activities",
        headers=headers,
        json={
            "channel": guid_of(database, channel_id),
            "contact": contact.json()["contact"],
            "activities": [{"type": "click", "value": "buy"}],
        },
    )
    assert logged.status_code == 207, logged.text
    assert logged.json()["results"][0]["status"] == 202
    assert (EMAIL, "key.created", key[:12]) in audit_actions(database)


def test_key_form_errors_are_shown_next_to_the_field(admin: TestClient, database: Database) -> None:
    channel_id = create_channel(admin, "Web")
    cases = [
        ({"access": "admin"}, "access", "Access must be one of: tracking, email."),
        ({"access": "tracking", "expires_at": "soon"}, "expires_at", "'soon' is not a date"),
        ({"access": "tracking", "name": "n" * 101}, "name", "A key name has at most 100"),
    ]
    for data, field, message in cases:
        answer = post(admin, f"/admin/channels/{channel_id}/keys", **data)
        assert answer.status_code == 400, data
        assert error_of(answer.text, field).startswith(message)
        assert not KEY.search(answer.text)
    with database.read() as session:
        assert session.scalars(select(ApiKey)).all() == []


def test_key_expiry_date(admin: TestClient, database: Database) -> None:
    channel_id = create_channel(admin, "Web")
    create_key(admin, channel_id, expires_at="2999-01-31")
    # A key that would be expired from the start is a mistake (a wrong year): refused.
    answer = post(
        admin, f"/admin/channels/{channel_id}/keys", access="tracking", expires_at="2020-01-31"
    )
    assert answer.status_code == 400
    assert error_of(answer.text, "expires_at") == "The expiry must be in the future."
    assert not KEY.search(answer.text)
    # A key that has expired since is shown so, and refused.
    expired = factories.api_key(database, "Web", expires_at=datetime(2020, 1, 31, tzinfo=UTC))

    page = admin.get(f"/admin/channels/{channel_id}").text
    assert "2999-01-31 00:00 UTC" in page
    assert 'badge-neutral">expired' in page
    refused = admin.post(f"{API}/contacts", headers={"Authorization": f"Bearer {expired}"})
    assert refused.status_code == 401
    assert refused.json()["code"] == "api_key_expired"


def test_disable_enable_and_revoke_a_key(admin: TestClient, database: Database) -> None:
    channel_id = create_channel(admin, "Web")
    key, _ = create_key(admin, channel_id)
    with database.read() as session:
        key_id = session.scalars(select(ApiKey.id)).one()
    headers = {"Authorization": f"Bearer {key}"}

    def contacts_code() -> int | str:
        answer = admin.post(f"{API}/contacts", headers=headers)
        return answer.status_code if answer.status_code == 200 else answer.json()["code"]

    page = admin.get(f"/admin/channels/{channel_id}").text
    assert f'action="/admin/keys/{key_id}/disable"' in page
    # Revoking asks first.
    assert re.search(rf'action="/admin/keys/{key_id}/revoke"[^>]*data-confirm="Revoke', page)

    disabled = post(admin, f"/admin/keys/{key_id}/disable")
    assert disabled.status_code == 303
    assert disabled.headers["location"] == f"/admin/channels/{channel_id}"
    assert contacts_code() == "api_key_disabled"
    page = admin.get(f"/admin/channels/{channel_id}").text
    assert 'badge-warn">disabled' in page
    assert f'action="/admin/keys/{key_id}/enable"' in page

    post(admin, f"/admin/keys/{key_id}/enable")
    assert contacts_code() == 200

    post(admin, f"/admin/keys/{key_id}/revoke")
    assert contacts_code() == "api_key_revoked"
    activities = admin.post(
        f"{API}/activities",
        headers=headers,
        json={
            "channel": guid_of(database, channel_id),
            "contact": factories.contact(database),
            "activities": [{"type": "click", "value": "x"}],
        },
    )
    assert activities.status_code == 401
    assert activities.json()["code"] == "api_key_revoked"
    page = admin.get(f"/admin/channels/{channel_id}").text
    assert 'badge-danger">revoked' in page
    assert f"/admin/keys/{key_id}/" not in page  # nothing more to do with a revoked key

    prefix = key[:12]
    assert audit_actions(database)[-3:] == [
        (EMAIL, "key.disabled", prefix),
        (EMAIL, "key.enabled", prefix),
        (EMAIL, "key.revoked", prefix),
    ]


def test_consent_gate_form(admin: TestClient, database: Database) -> None:
    factories.consent(database, "TrackingConsent")
    channel_id = create_channel(admin, "Web")
    path = f"/admin/channels/{channel_id}/consent-gate"

    answer = post(admin, path, required_consent="TrackingConsent")
    assert answer.status_code == 303
    page = admin.get(f"/admin/channels/{channel_id}").text
    assert '<option value="TrackingConsent" selected>' in page

    unknown = post(admin, path, required_consent="Nope")
    assert unknown.status_code == 400
    assert error_of(unknown.text, "required_consent") == "No consent with code name 'Nope'."

    post(admin, path, required_consent="")
    page = admin.get(f"/admin/channels/{channel_id}").text
    assert "selected>" not in page.split('name="required_consent"')[1].split("</select>")[0]
    assert [a for a in audit_actions(database) if a[1] == "channel.consent_gate_set"] == [
        (EMAIL, "channel.consent_gate_set", "Web"),
        (EMAIL, "channel.consent_gate_set", "Web"),
    ]


def test_unknown_ids_answer_404(admin: TestClient) -> None:
    assert admin.get("/admin/channels/4242").status_code == 404
    assert admin.get("/admin/channels/99999999999999999999").status_code == 404
    assert admin.get("/admin/channels/abc").status_code == 404
    for verb in ("disable", "enable", "revoke"):
        answer = post(admin, f"/admin/keys/4242/{verb}")
        assert answer.status_code == 404
        assert "No API key with id 4242." in answer.text
    assert post(admin, "/admin/channels/4242/keys", access="tracking").status_code == 404
