"""Admin pages of webhook endpoints: list with health, create (secret shown once), edit, enable,
disable, delete, rotate, replay, retry; sign-in and CSRF like every admin page."""

from __future__ import annotations

import html
import re
from typing import Any

from sqlalchemy import select
from starlette.testclient import TestClient

from contacthub.events import endpoints
from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent, WebhookDelivery
from tests import factories
from tests.admin.conftest import EMAIL
from tests.webhooks.support import T0, dead_delivery, hub_with_deliveries

SECRET = re.compile(r"whsec_[A-Za-z0-9+/]{43}=")
URL = "https://crm.example.com/hooks/contacthub"


def post(admin: TestClient, path: str, data: dict[str, Any] | None = None) -> Any:
    return admin.post(
        path,
        data={**(data or {}), "csrf_token": admin.csrf},  # type: ignore[attr-defined]
        follow_redirects=False,
    )


def error_of(page: str, field: str) -> str:
    match = re.search(rf'<div class="error" id="e-{field}">([^<]*)</div>', page)
    assert match, f"no error next to {field!r}"
    return html.unescape(match.group(1))


def actions(database: Database) -> list[tuple[str, str, str]]:
    with database.read() as session:
        rows = session.execute(
            select(AuditEvent.actor, AuditEvent.action, AuditEvent.subject).order_by(AuditEvent.id)
        ).all()
    return [(a, b, c) for a, b, c in rows if b != "user.signed_in"]


def test_pages_need_sign_in(client: TestClient, database: Database) -> None:
    guid = hub_with_deliveries(database)
    for path in ("/admin/webhooks", "/admin/webhooks/new", f"/admin/webhooks/{guid}"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/admin/sign-in?next=")
    answer = client.post(f"/admin/webhooks/{guid}/delete", follow_redirects=False)
    assert answer.status_code == 303
    with database.read() as session:
        assert endpoints.get_endpoint(session, guid)


def test_changes_without_the_csrf_token_are_refused(admin: TestClient, database: Database) -> None:
    guid = hub_with_deliveries(database)
    dead = dead_delivery(database, guid)
    for path, data in (
        ("/admin/webhooks/new", {"name": "X", "url": URL, "events": "*"}),
        (f"/admin/webhooks/{guid}/edit", {"name": "X", "url": URL, "events": "*"}),
        (f"/admin/webhooks/{guid}/disable", {}),
        (f"/admin/webhooks/{guid}/rotate-secret", {}),
        (f"/admin/webhooks/{guid}/replay", {"since": "2026-03-01"}),
        (f"/admin/webhooks/{guid}/delete", {}),
        (f"/admin/webhook-deliveries/{dead}/retry", {}),
    ):
        answer = admin.post(path, data={**data, "csrf_token": "forged"}, follow_redirects=False)
        assert answer.status_code == 403, path
    assert actions(database) == []


def test_create_shows_the_secret_once(admin: TestClient, database: Database) -> None:
    factories.tracking_channel(database, "Web")
    answer = post(
        admin,
        "/admin/webhooks/new",
        {
            "name": "CRM",
            "url": URL,
            "events": ["activity.stored", "contact.created"],
            "activity_types": ["pagevisit"],
            "channels": ["Web"],
        },
    )
    assert answer.status_code == 200, answer.text
    [secret] = set(SECRET.findall(answer.text))
    assert "Copy the signing secret now" in answer.text
    with database.read() as session:
        [endpoint] = endpoints.list_endpoints(session)
        assert endpoint.secret == secret
        shown = endpoints.view(session, endpoint)
    assert shown.events == ["contact.created", "activity.stored"]
    assert (shown.activity_types, shown.channels) == (["pagevisit"], ["Web"])
    # Nowhere else: not on the detail page, the list or the edit form.
    for path in (
        "/admin/webhooks",
        f"/admin/webhooks/{shown.guid}",
        f"/admin/webhooks/{shown.guid}/edit",
    ):
        page = admin.get(path)
        assert page.status_code == 200
        assert secret not in page.text
    listing = admin.get("/admin/webhooks").text
    assert "CRM" in listing
    assert URL in listing
    assert actions(database) == [(EMAIL, "webhook.created", "CRM")]


def test_a_refused_form_keeps_what_was_typed(admin: TestClient, database: Database) -> None:
    answer = post(
        admin,
        "/admin/webhooks/new",
        {"name": "CRM", "url": "ftp://crm.example.com/", "events": "contact.created"},
    )
    assert answer.status_code == 400
    assert "http(s)" in error_of(answer.text, "url")
    assert 'value="CRM"' in answer.text
    assert re.search(r'value="contact.created"\s+checked', answer.text)
    answer = post(admin, "/admin/webhooks/new", {"name": "CRM", "url": URL})
    assert answer.status_code == 400
    assert "at least one event" in error_of(answer.text, "events")
    answer = post(
        admin,
        "/admin/webhooks/new",
        {"name": "CRM", "url": URL, "events": "email.sent", "activity_types": "click"},
    )
    assert answer.status_code == 400
    assert "activity.stored" in error_of(answer.text, "activity_types")
    assert actions(database) == []


def test_detail_shows_health_and_deliveries_and_edits(
    admin: TestClient, database: Database
) -> None:
    guid = hub_with_deliveries(database)
    page = admin.get(f"/admin/webhooks/{guid}")
    assert page.status_code == 200
    text = page.text
    assert "HTTP 503 Service Unavailable" in text
    assert text.count("/retry") == 1  # only the dead delivery has a retry button
    for state in ("delivered", "dead", "pending"):
        assert f">{state}</span>" in text
    listing = admin.get("/admin/webhooks").text
    assert "2026-03-01" in listing  # last success

    answer = post(
        admin,
        f"/admin/webhooks/{guid}/edit",
        {"name": "CRM v2", "url": URL + "?v=2", "events": "contact.updated"},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/admin/webhooks/{guid}"
    with database.read() as session:
        shown = endpoints.view(session, endpoints.get_endpoint(session, guid))
    assert (shown.name, shown.url, shown.events) == ("CRM v2", URL + "?v=2", ["contact.updated"])
    edit = admin.get(f"/admin/webhooks/{guid}/edit").text
    assert re.search(r'value="contact.updated"\s+checked', edit)
    bad = post(admin, f"/admin/webhooks/{guid}/edit", {"name": "", "url": URL, "events": "*"})
    assert bad.status_code == 400
    assert error_of(bad.text, "name")


def test_enable_disable_rotate_delete(admin: TestClient, database: Database) -> None:
    guid = hub_with_deliveries(database)
    assert post(admin, f"/admin/webhooks/{guid}/disable").status_code == 303
    assert ">disabled</span>" in admin.get("/admin/webhooks").text
    assert post(admin, f"/admin/webhooks/{guid}/enable").status_code == 303
    rotated = post(admin, f"/admin/webhooks/{guid}/rotate-secret")
    assert rotated.status_code == 200
    [secret] = set(SECRET.findall(rotated.text))
    with database.read() as session:
        assert endpoints.get_endpoint(session, guid).secret == secret
    assert post(admin, f"/admin/webhooks/{guid}/delete").status_code == 303
    assert admin.get(f"/admin/webhooks/{guid}").status_code == 404
    assert [a for _, a, _ in actions(database)] == [
        "webhook.disabled",
        "webhook.enabled",
        "webhook.secret_rotated",
        "webhook.deleted",
    ]


def test_retry_and_replay(admin: TestClient, database: Database) -> None:
    guid = hub_with_deliveries(database)
    dead = dead_delivery(database, guid)
    answer = post(admin, f"/admin/webhook-deliveries/{dead}/retry")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/admin/webhooks/{guid}"
    with database.read() as session:
        assert session.get_one(WebhookDelivery, dead).state == "pending"
    # Not dead any more: 409, on the error page.
    assert post(admin, f"/admin/webhook-deliveries/{dead}/retry").status_code == 409
    assert post(admin, "/admin/webhook-deliveries/99999999999999999999/retry").status_code == 404

    refused = post(admin, f"/admin/webhooks/{guid}/replay", {"since": "last week"})
    assert refused.status_code == 400
    assert "YYYY-MM-DD" in error_of(refused.text, "since")
    answer = post(admin, f"/admin/webhooks/{guid}/replay", {"since": T0.strftime("%Y-%m-%dT%H:%M")})
    assert answer.status_code == 303
    with database.read() as session:
        states = session.scalars(select(WebhookDelivery.state)).all()
    assert sorted(states) == ["pending"] * 3
    assert [a for _, a, _ in actions(database)] == ["webhook.retried", "webhook.replayed"]


def test_unknown_endpoints_are_404(admin: TestClient) -> None:
    for path in ("/admin/webhooks/nope", "/admin/webhooks/00000000-0000-0000-0000-000000000000"):
        assert admin.get(path).status_code == 404
    assert post(admin, "/admin/webhooks/nope/disable").status_code == 404
