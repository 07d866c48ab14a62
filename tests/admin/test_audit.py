"""The audit log page: newest first, keyset paging, details readable and escaped."""

from __future__ import annotations

import html
import re

from starlette.testclient import TestClient

from contacthub.audit import service as audit
from contacthub.storage.database import Database
from tests.admin.conftest import EMAIL

PAGE = "/admin/audit"


def rows_of(page: str) -> list[str]:
    body = re.search(r'<table class="audit-log">.*?<tbody>(.*?)</tbody>', page, re.S)
    return [] if body is None else re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)


def link(page: str, label: str) -> str | None:
    match = re.search(rf'<a [^>]*href="([^"]*)"[^>]*>{re.escape(label)}</a>', page)
    return html.unescape(match.group(1)) if match else None


def test_signed_out_goes_to_sign_in(client: TestClient) -> None:
    answer = client.get(PAGE, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/admin/sign-in?next=")


def test_shows_who_did_what(admin: TestClient, database: Database) -> None:
    with database.write() as session:
        audit.record(
            session, "cli", "channel.created", "Web shop", {"consent": "Tracking", "keys": 2}
        )
    page = admin.get(PAGE)
    assert page.status_code == 200
    rows = rows_of(page.text)
    # Newest first: the channel, then the test's own sign-in.
    assert len(rows) == 2
    assert "channel.created" in rows[0]
    assert "Web shop" in rows[0]
    assert ">cli<" in rows[0]
    assert "<dt>consent</dt><dd>Tracking</dd>" in rows[0]
    assert "<dt>keys</dt><dd>2</dd>" in rows[0]
    assert "user.signed_in" in rows[1]
    assert EMAIL in rows[1]
    assert link(page.text, "Older →") is None
    assert link(page.text, "← Newest") is None


def test_hostile_text_is_escaped(admin: TestClient, database: Database) -> None:
    with database.write() as session:
        audit.record(
            session,
            "<script>alert(1)</script>@example.com",
            "contact.erased",
            "<img src=x onerror=alert(1)>",
            {"<b>why</b>": "<script>alert(2)</script>"},
        )
    text = admin.get(PAGE).text
    assert "<script>alert" not in text
    assert "<img src=x" not in text
    assert "<b>why" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;@example.com" in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "<dt>&lt;b&gt;why&lt;/b&gt;</dt><dd>&lt;script&gt;alert(2)&lt;/script&gt;</dd>" in text


def test_paging(admin: TestClient, database: Database) -> None:
    with database.write() as session:
        ids = [audit.record(session, "cli", "token.created", f"cht_{n:04}").id for n in range(60)]
    first = admin.get(PAGE).text
    rows = rows_of(first)
    assert len(rows) == audit.PAGE_SIZE
    assert "cht_0059" in rows[0]
    older = link(first, "Older →")
    assert older == f"?before={ids[10]}"
    second = admin.get(PAGE + older).text
    rows = rows_of(second)
    # The 10 oldest tokens, then the sign-in before them all.
    assert len(rows) == 11
    assert "cht_0009" in rows[0]
    assert "user.signed_in" in rows[-1]
    assert link(second, "Older →") is None
    assert link(second, "← Newest") == PAGE


def test_a_malformed_cursor_is_a_400(admin: TestClient) -> None:
    page = admin.get(PAGE + "?before=%3Cx%3E")
    assert page.status_code == 400
    assert "before must be a whole number" in page.text
    assert "<x>" not in page.text
