"""The admin's suppression list and Deliverability page, and the suppression on the contact
page; on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select
from starlette.testclient import TestClient

from contacthub.contacts import service as contacts
from contacthub.storage.database import Database
from contacthub.storage.models import FeedbackRejection, Suppression
from contacthub.suppressions import service as suppressions
from tests.admin.conftest import EMAIL


def post(admin: TestClient, path: str, **data: str) -> object:
    return admin.post(
        path,
        data={**data, "csrf_token": admin.csrf},  # type: ignore[attr-defined]
        follow_redirects=False,
    )


def test_add_search_filter_and_lift(admin: TestClient, database: Database) -> None:
    with database.write() as session:
        for number in range(55):
            suppressions.suppress(
                session, f"bounced{number}@example.com", reason="hard_bounce", source="imap"
            )
    empty = admin.get("/admin/suppressions?q=ann")
    assert "No suppressed address matches." in empty.text

    added = post(admin, "/admin/suppressions", email="Ann@Example.com", evidence="<b>By phone</b>")
    assert added.status_code == 303  # type: ignore[attr-defined]
    page = admin.get(added.headers["location"])  # type: ignore[attr-defined]
    assert "ann@example.com is suppressed" in page.text
    assert "&lt;b&gt;By phone&lt;/b&gt;" in page.text
    assert "Added by hand" in page.text
    assert EMAIL in page.text  # by whom
    with database.read() as session:
        row = session.scalars(
            select(Suppression).where(Suppression.email == "ann@example.com")
        ).one()
        assert (row.reason, row.source, row.created_by) == ("manual", "admin", EMAIL)

    # Paging: 56 rows, 50 a page, newest first.
    first = admin.get("/admin/suppressions")
    assert first.text.count('action="/admin/suppressions/lift"') == 50
    assert "Older →</a>" in first.text
    reasons = admin.get("/admin/suppressions?reason=manual")
    assert reasons.text.count('action="/admin/suppressions/lift"') == 1
    bad = admin.get("/admin/suppressions?reason=nope")
    assert bad.status_code == 400
    assert "Unknown suppression reason" in bad.text

    twice = post(admin, "/admin/suppressions", email="ann@example.com", evidence="again")
    assert twice.status_code == 409  # type: ignore[attr-defined]
    assert "is already suppressed (manual, since" in twice.text  # type: ignore[attr-defined]
    refused = post(admin, "/admin/suppressions", email="not an address", evidence="x")
    assert refused.status_code == 400  # type: ignore[attr-defined]
    assert 'aria-invalid="true"' in refused.text  # type: ignore[attr-defined]
    assert "x</textarea>" in refused.text  # type: ignore[attr-defined]

    lifted = post(
        admin, "/admin/suppressions/lift", email="ann@example.com", back="/admin/suppressions?q=a"
    )
    assert lifted.headers["location"] == "/admin/suppressions?q=a"  # type: ignore[attr-defined]
    with database.read() as session:
        assert not suppressions.is_suppressed(session, "ann@example.com")
    again = post(admin, "/admin/suppressions/lift", email="ann@example.com")
    assert again.status_code == 404  # type: ignore[attr-defined]
    away = post(
        admin, "/admin/suppressions/lift", email="bounced1@example.com", back="https://evil.example"
    )
    assert away.headers["location"] == "/admin/suppressions"  # type: ignore[attr-defined]


def test_the_older_page_continues_the_list(admin: TestClient, database: Database) -> None:
    with database.write() as session:
        for number in range(52):
            suppressions.suppress(
                session, f"p{number:02}@example.com", reason="complaint", source="ses"
            )
    first = admin.get("/admin/suppressions")
    assert "p51@example.com" in first.text
    assert "p01@example.com" not in first.text
    cursor = first.text.split("before=", 1)[1].split('"', 1)[0]
    second = admin.get(f"/admin/suppressions?before={cursor}")
    assert "p01@example.com" in second.text
    assert "p00@example.com" in second.text
    assert "p02@example.com" not in second.text


def test_the_contact_page_shows_a_suppression(admin: TestClient, database: Database) -> None:
    with database.write() as session:
        contact = contacts.create_contact(session, email="Zoe@example.com")
        other = contacts.create_contact(session, email="yan@example.com")
        suppressions.suppress(
            session, "zoe@example.com", reason="complaint", source="ses", evidence="abuse report"
        )
        guids = contact.guid, other.guid
    shown = admin.get(f"/admin/contacts/{guids[0]}")
    assert 'id="suppression"' in shown.text
    assert "abuse report" in shown.text
    assert 'id="suppression"' not in admin.get(f"/admin/contacts/{guids[1]}").text


def test_the_deliverability_page(admin: TestClient, database: Database) -> None:
    assert "Nothing was refused." in admin.get("/admin/deliverability").text
    with database.write() as session:
        suppressions.suppress(session, "a@example.com", reason="soft_bounces", source="smtp")
        for number in range(51):
            session.add(
                FeedbackRejection(
                    source="sendgrid", reason="bad_signature", detail=f"<script>{number}"
                )
            )
    page = admin.get("/admin/deliverability")
    assert page.status_code == 200
    counts = page.text.split('id="rejection-counts"', 1)[1].split('id="rejections"', 1)[0]
    assert "<td>sendgrid</td><td><code>bad_signature</code></td>" in counts
    assert '<td class="num">51</td>' in counts
    assert "&lt;script&gt;50" in page.text
    assert "&lt;script&gt;0<" not in page.text
    cursor = page.text.split("before=", 1)[1].split("#", 1)[0]
    older = admin.get(f"/admin/deliverability?before={cursor}")
    assert "&lt;script&gt;0<" in older.text
