"""The contacts list's filter form, its columns, and Export CSV of what is filtered (audited)."""

from __future__ import annotations

import json
import re

from sqlalchemy import select
from starlette.testclient import TestClient

from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent
from tests.admin.conftest import EMAIL
from tests.admin.reading import audit_actions, field_error
from tests.contacts.csv_reading import csv_rows
from tests.contacts.filters_support import audience


def guids_listed(page: str) -> list[str]:
    return re.findall(r'<a href="/admin/contacts/([0-9a-f-]{36})">', page)


def test_the_form_offers_every_group_consent_and_newsletter(
    admin: TestClient, database: Database
) -> None:
    audience(database)
    page = admin.get("/admin/contacts").text
    assert '<option value="VIP"' in page
    assert '<option value="News"' in page
    assert '<option value="Weekly"' in page
    assert '<option value="CZE"' in page
    for name in ("q", "group", "consent", "newsletter", "country", "active_within", "inactive_for"):
        assert f'name="{name}"' in page, name


def test_filters_narrow_the_list_and_show_the_columns(
    admin: TestClient, database: Database
) -> None:
    world = audience(database)
    page = admin.get(
        "/admin/contacts", params={"consent": "News", "country": "CZE", "sort": "created"}
    )
    assert page.status_code == 200
    assert world.names(guids_listed(page.text)) == ["ada", "dan"]
    assert "2 of 4 contacts match." in re.sub(r"\s+", " ", page.text)
    # The selected values stay selected; the columns show country and company.
    assert re.search(r'<option value="News"\s+selected>', page.text)
    assert '<th class="wide">Country</th>' in page.text
    assert "=HYPERLINK(1)" in page.text  # shown as typed, escaped by the template
    # The next page keeps the filters.
    first = admin.get("/admin/contacts", params={"group": "VIP", "sort": "created"}).text
    assert world.names(guids_listed(first)) == ["ada", "cy"]
    nobody = admin.get("/admin/contacts", params={"newsletter": "Weekly", "inactive_for": "3"})
    assert "No contact matches the search and filters." in nobody.text


def test_bad_filters_are_named_next_to_their_field(admin: TestClient, database: Database) -> None:
    audience(database)
    for params, field in (
        ({"country": "XX"}, "country"),
        ({"group": "Nobody"}, "group"),
        ({"consent": "Nope"}, "consent"),
        ({"newsletter": "Monthly"}, "newsletter"),
        ({"active_within": "0"}, "active_within"),
        ({"inactive_for": "soon"}, "inactive_for"),
    ):
        page = admin.get("/admin/contacts", params=params)
        assert page.status_code == 400, params
        assert field_error(page.text, field), params


def test_export_csv_is_what_is_filtered_escaped_and_audited(
    admin: TestClient, database: Database
) -> None:
    world = audience(database)
    answer = admin.post(
        "/admin/contacts/export",
        data={"csrf_token": admin.csrf, "country": "CZE", "sort": "created"},  # type: ignore[attr-defined]
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"].startswith('attachment; filename="contacts-')
    rows = csv_rows(answer.content.decode("utf-8"))
    assert [row["guid"] for row in rows] == [world.ada, world.dan]
    ada, dan = rows
    assert (ada["email"], ada["first_name"], ada["last_name"]) == (
        "ada@example.com",
        "Ada",
        "Lovelace",
    )
    assert ada["country"] == "CZE"
    assert ada["last_activity_at"].startswith(str(world.now.year))
    # A cell a spreadsheet would run as a formula starts with a quote.
    assert dan["company_name"] == "'=HYPERLINK(1)"
    assert audit_actions(database)[-1] == (EMAIL, "contact.list_exported", "")
    with database.read() as session:
        details = session.scalars(select(AuditEvent.details).order_by(AuditEvent.id.desc())).first()
    assert details is not None
    assert json.loads(details) == {"contacts": 2, "country": "CZE"}


def test_export_of_bad_filters_shows_the_form_and_records_nothing(
    admin: TestClient, database: Database
) -> None:
    audience(database)
    answer = admin.post(
        "/admin/contacts/export",
        data={"csrf_token": admin.csrf, "group": "Nobody"},  # type: ignore[attr-defined]
    )
    assert answer.status_code == 400
    assert field_error(answer.text, "group") == "No group named 'Nobody'."
    assert [a for _, a, _ in audit_actions(database) if a == "contact.list_exported"] == []


def test_export_needs_the_csrf_token(admin: TestClient, database: Database) -> None:
    audience(database)
    answer = admin.post("/admin/contacts/export", data={"country": "CZE"})
    assert answer.status_code == 403
    assert [a for _, a, _ in audit_actions(database) if a == "contact.list_exported"] == []
