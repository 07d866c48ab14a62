"""Admin page of the CORS origins: list, add (validated next to the field), remove."""

from __future__ import annotations

import html
import re
from typing import Any

from sqlalchemy import select
from starlette.testclient import TestClient

from contacthub.app import create_app
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent, CorsOrigin
from tests.admin.conftest import EMAIL, sign_in


def post(admin: TestClient, path: str, **data: str) -> Any:
    return admin.post(path, data={**data, "csrf_token": admin.csrf}, follow_redirects=False)  # type: ignore[attr-defined]


def stored(database: Database) -> list[str]:
    with database.read() as session:
        return list(session.scalars(select(CorsOrigin.origin).order_by(CorsOrigin.id)))


def origin_id(database: Database, origin: str) -> int:
    with database.read() as session:
        return session.scalars(select(CorsOrigin.id).where(CorsOrigin.origin == origin)).one()


def error_of(page: str, field: str) -> str:
    match = re.search(rf'<div class="error" id="e-{field}">([^<]*)</div>', page)
    assert match, f"no error next to {field!r}"
    return html.unescape(match.group(1))


def test_the_page_needs_signing_in(client: TestClient, database: Database) -> None:
    answer = client.get("/admin/cors", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/sign-in?next=%2Fadmin%2Fcors"
    added = client.post("/admin/cors", data={"origin": "https://a.example"}, follow_redirects=False)
    assert added.status_code == 303
    assert stored(database) == []


def test_add_list_and_remove_origins(admin: TestClient, database: Database) -> None:
    empty = admin.get("/admin/cors")
    assert empty.status_code == 200
    assert "No origin is allowed" in empty.text

    added = post(admin, "/admin/cors", origin="HTTPS://Shop.Example.com/")
    assert added.status_code == 303
    assert added.headers["location"] == "/admin/cors"
    assert stored(database) == ["https://shop.example.com"]
    page = admin.get("/admin/cors")
    assert "https://shop.example.com is allowed." in page.text  # the flash
    assert "<code>https://shop.example.com</code>" in page.text
    shop = origin_id(database, "https://shop.example.com")
    # Removing asks first.
    assert re.search(
        rf'action="/admin/cors/{shop}/remove"[^>]*data-confirm="Stop allowing', page.text
    )

    removed = post(admin, f"/admin/cors/{shop}/remove")
    assert removed.status_code == 303
    assert stored(database) == []
    assert "https://shop.example.com is no longer allowed." in admin.get("/admin/cors").text
    assert post(admin, f"/admin/cors/{shop}/remove").status_code == 404

    with database.read() as session:
        events = session.execute(
            select(AuditEvent.actor, AuditEvent.action, AuditEvent.subject)
            .where(AuditEvent.action.like("cors.%"))
            .order_by(AuditEvent.id)
        ).all()
    assert [tuple(e) for e in events] == [
        (EMAIL, "cors.origin_added", "https://shop.example.com"),
        (EMAIL, "cors.origin_removed", "https://shop.example.com"),
    ]


def test_errors_are_shown_next_to_the_field(admin: TestClient, database: Database) -> None:
    post(admin, "/admin/cors", origin="https://shop.example.com")
    cases = [
        ("", "Enter an origin."),
        ("shop.example.com", "does not start with http:// or https://"),
        ("https://shop.example.com/cart", "has a path"),
        ("https://shop.example.com:443", "https://shop.example.com is already allowed."),
    ]
    for typed, message in cases:
        answer = post(admin, "/admin/cors", origin=typed)
        assert answer.status_code == 400, typed
        assert message in error_of(answer.text, "origin")
        assert f'value="{html.escape(typed)}"' in answer.text  # what was typed is kept
    assert stored(database) == ["https://shop.example.com"]


def test_hostile_input_is_escaped(admin: TestClient) -> None:
    answer = post(admin, "/admin/cors", origin="https://<script>alert(1)</script>")
    assert answer.status_code == 400
    assert "<script>alert" not in answer.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in answer.text


def test_csrf_is_required(admin: TestClient, database: Database) -> None:
    post(admin, "/admin/cors", origin="https://shop.example.com")
    shop = origin_id(database, "https://shop.example.com")

    missing = admin.post("/admin/cors", data={"origin": "https://a.example"})
    forged_remove = admin.post(f"/admin/cors/{shop}/remove", data={"csrf_token": "forged"})

    assert missing.status_code == 403
    assert forged_remove.status_code == 403
    assert stored(database) == ["https://shop.example.com"]


def test_origins_of_the_setting_are_shown_read_only(
    settings: Settings, database: Database, admin_user: str
) -> None:
    configured = Settings(
        **{**settings.model_dump(), "cors_allowed_origins": ["https://app.example.com"]}
    )
    with TestClient(create_app(configured)) as client:
        sign_in(client)
        page = client.get("/admin/cors").text
    assert "<code>https://app.example.com</code>" in page
    assert "setting <code>cors_allowed_origins</code>" in page
    assert "/remove" not in page
