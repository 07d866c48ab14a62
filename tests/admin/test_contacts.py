"""Contacts pages: search list, contact page, export and erase (confirmed, audited)."""

from __future__ import annotations

import json
import re
import uuid
from html import unescape

from starlette.testclient import TestClient

from contacthub.storage.database import Database
from tests import factories
from tests.admin.conftest import EMAIL
from tests.admin.reading import audit_actions, field_error
from tests.contacts.support import contact_id, scenario, track
from tests.email.tracking_support import ANNA
from tests.tracking.support import API, assert_error, post_activities

HOSTILE = "<script>alert(1)</script>"


def guids_listed(page: str) -> list[str]:
    return re.findall(r'<a href="/admin/contacts/([0-9a-f-]{36})">', page)


def text_of(page: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def test_signed_out_every_page_asks_to_sign_in(client: TestClient, database: Database) -> None:
    guid = factories.contact(database)
    for path in ("/admin/contacts", f"/admin/contacts/{guid}", f"/admin/contacts/{guid}/erase"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/admin/sign-in?next=")
    for path in (f"/admin/contacts/{guid}/export", f"/admin/contacts/{guid}/erase"):
        answer = client.post(path, data={"confirm": guid}, follow_redirects=False)
        assert answer.status_code == 303, path
    assert contact_id(database, guid) is not None
    assert audit_actions(database) == []


def test_the_list_searches_sorts_and_counts(admin: TestClient, database: Database) -> None:
    ada = factories.contact_with(
        database, email="Ada@Example.com", first_name="Ada", last_name="Lovelace"
    )
    grace = factories.contact_with(database, email="grace@example.com", last_name="Hopper")
    anonymous = factories.contact(database)

    page = admin.get("/admin/contacts")
    assert page.status_code == 200
    assert guids_listed(page.text) == [anonymous, grace, ada]
    assert "3 contacts." in text_of(page.text)
    assert "Anonymous" in page.text

    page = admin.get("/admin/contacts", params={"q": "ADA"})
    assert guids_listed(page.text) == [ada]
    assert "1 of 3 contacts match “ADA”." in text_of(page.text)
    assert guids_listed(admin.get("/admin/contacts", params={"q": "hopp"}).text) == [grace]
    assert guids_listed(admin.get("/admin/contacts", params={"q": ada.upper()}).text) == [ada]
    nobody = admin.get("/admin/contacts", params={"q": "nobody"})
    assert "No contact matches “nobody”." in text_of(nobody.text)

    by_email = admin.get("/admin/contacts", params={"sort": "email"})
    assert guids_listed(by_email.text) == [ada, grace, anonymous]
    assert 'aria-sort="ascending"' in by_email.text
    # The header links toggle the direction and keep the search.
    page = admin.get("/admin/contacts", params={"q": "e", "sort": "-last_name"})
    assert 'href="?q=e&amp;sort=last_name"' in page.text
    assert guids_listed(page.text) == [ada, grace]


def test_the_list_pages_by_keyset(admin: TestClient, database: Database) -> None:
    guids = [factories.contact(database) for _ in range(52)]
    first = admin.get("/admin/contacts")
    assert guids_listed(first.text) == list(reversed(guids))[:50]
    assert "52 contacts." in text_of(first.text)
    match = re.search(r'href="(/admin/contacts\?[^"]*after=[^"]+)">Next page →', first.text)
    assert match, "no link to the next page"
    second = admin.get(unescape(match.group(1)))
    assert guids_listed(second.text) == [guids[1], guids[0]]
    assert '<span class="button secondary disabled">Next page →</span>' in second.text
    assert 'href="/admin/contacts?sort=-created">← First page' in second.text


def test_bad_search_input_is_shown_next_to_the_field(admin: TestClient, database: Database) -> None:
    factories.contact(database)
    answer = admin.get("/admin/contacts", params={"q": "x" * 300})
    assert answer.status_code == 400
    assert "longer than 254" in (field_error(answer.text, "q") or "")
    answer = admin.get("/admin/contacts", params={"sort": "<script>"})
    assert answer.status_code == 400
    assert "sort must be one of" in answer.text
    assert "<script>" not in answer.text
    answer = admin.get("/admin/contacts", params={"after": "garbage"})
    assert answer.status_code == 400
    assert "not a cursor of this list" in answer.text


def test_the_contact_page_shows_everything(admin: TestClient, database: Database) -> None:
    world = scenario(admin, database)
    page = admin.get(f"/admin/contacts/{world.anna}")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    text = text_of(page.text)
    assert "Anna Smith" in text
    assert ANNA in text
    assert "Brno" in text
    assert "1990-05-31" in text
    # Consents: state, revision agreed to, and the history with channels.
    assert "Agreed" in text
    assert "Agreed to revision 2 of the texts." in text
    history = re.findall(r"<td>(agreed|revoked)</td>\s*<td class=\"num\">(\d+)</td>", page.text)
    assert history == [("agreed", "2"), ("revoked", "2"), ("agreed", "1")]
    # Timeline: every channel, email opens and clicks included.
    types = re.findall(r'<span class="badge badge-\w+">(\w+)</span>', page.text)
    for kind in ("emailclick", "emailopen", "datainput", "click", "pagevisit"):
        assert kind in types
    assert "Opened email 'Spring news'" in text
    assert "Mobile app" in text
    assert "Email" in text
    # Email engagement: the subscription and the issue, human and machine apart.
    assert "Weekly" in text
    assert "Spring news" in text
    row = re.search(r"<td>Spring news<div.*?</tr>", page.text, re.S)
    assert row, "no engagement row for the issue"
    numbers = re.findall(r'<td class="num">(\d+)</td>', row.group(0))
    assert numbers == ["1", "1", "1", "0"]
    # The actions.
    assert f'action="/admin/contacts/{world.anna}/export"' in page.text
    assert f'href="/admin/contacts/{world.anna}/erase"' in page.text


def test_hostile_activity_data_is_escaped(admin: TestClient, database: Database) -> None:
    world = scenario(admin, database, hostile=HOSTILE)
    page = admin.get(f"/admin/contacts/{world.anna}")
    assert page.status_code == 200
    assert HOSTILE not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    # In the value, the title and the URL alike.
    assert "Page visit &#39;&lt;script&gt;" in page.text
    assert "https://x.example/&lt;script&gt;" in page.text


def test_the_timeline_pages_back(admin: TestClient, database: Database) -> None:
    world = scenario(admin, database)
    track(admin, world.setup, world.anna, *({"type": "click", "value": f"n{n}"} for n in range(50)))
    page = admin.get(f"/admin/contacts/{world.anna}")
    assert page.text.count("<time datetime=") == 50
    assert "Clicked &#39;n49&#39;" in page.text
    match = re.search(r'href="([^"]*\?before=\d+#timeline)">Older →', page.text)
    assert match, "no link to older activities"
    older = admin.get(unescape(match.group(1)))
    assert older.text.count("<time datetime=") == 5
    assert "Page visit &#39;Pricing&#39;" in older.text
    assert f'href="/admin/contacts/{world.anna}">← Latest' in older.text
    assert admin.get(f"/admin/contacts/{world.anna}", params={"before": "x"}).status_code == 400


def test_unknown_or_malformed_guids_are_not_found(admin: TestClient, database: Database) -> None:
    for guid in (str(uuid.uuid4()), "not-a-guid", "%3Cscript%3E"):
        for path in (f"/admin/contacts/{guid}", f"/admin/contacts/{guid}/erase"):
            answer = admin.get(path)
            assert answer.status_code == 404, path
            assert "No contact with GUID" in answer.text
            assert "<script>" not in answer.text
        answer = admin.post(
            f"/admin/contacts/{guid}/export",
            data={"csrf_token": admin.csrf},  # type: ignore[attr-defined]
        )
        assert answer.status_code == 404
    assert audit_actions(database) == [(EMAIL, "user.signed_in", "")]


def test_export_downloads_the_json_and_is_audited(admin: TestClient, database: Database) -> None:
    world = scenario(admin, database)
    answer = admin.post(f"/admin/contacts/{world.anna}/export", data={})
    assert answer.status_code == 403  # no CSRF token: refused, nothing exported
    answer = admin.post(
        f"/admin/contacts/{world.anna}/export",
        data={"csrf_token": admin.csrf},  # type: ignore[attr-defined]
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="contact-{world.anna}.json"'
    )
    assert answer.headers["cache-control"] == "no-store"
    data = json.loads(answer.text)
    assert data["contact"]["guid"] == world.anna
    assert len(data["activities"]) == 5
    assert audit_actions(database)[-1] == (EMAIL, "contact.exported", world.anna)
    assert [a for a in audit_actions(database) if a[1] == "contact.exported"] == [
        (EMAIL, "contact.exported", world.anna)
    ]


def test_erasing_needs_the_guid_or_email_typed(admin: TestClient, database: Database) -> None:
    world = scenario(admin, database)
    form = admin.get(f"/admin/contacts/{world.anna}/erase")
    assert form.status_code == 200
    text = text_of(form.text)
    assert "5 activities" in text
    assert "3 consent answers" in text
    assert "1 newsletter subscription," in text
    erase_url = f"/admin/contacts/{world.anna}/erase"
    for typed in ("", "anna", world.bob):
        answer = admin.post(
            erase_url,
            data={"confirm": typed, "csrf_token": admin.csrf},  # type: ignore[attr-defined]
        )
        assert answer.status_code == 400
        assert field_error(answer.text, "confirm") == (
            "Type the contact's GUID or email address exactly to confirm the erasure."
        )
        assert contact_id(database, world.anna) is not None
    answer = admin.post(erase_url, data={"confirm": world.anna})  # no CSRF token
    assert answer.status_code == 403
    assert contact_id(database, world.anna) is not None

    answer = admin.post(
        erase_url,
        data={"confirm": ANNA.upper(), "csrf_token": admin.csrf},  # type: ignore[attr-defined]
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/contacts"
    listing = admin.get("/admin/contacts")
    assert f"Contact {world.anna} was erased with all its data" in unescape(listing.text)
    assert world.anna not in guids_listed(listing.text)
    assert contact_id(database, world.anna) is None
    assert admin.get(f"/admin/contacts/{world.anna}").status_code == 404
    assert audit_actions(database)[-1] == (EMAIL, "contact.erased", world.anna)
    answer = post_activities(admin, world.setup, world.anna, [{"type": "click", "value": "x"}])
    assert_error(answer, 404, "unknown_contact")
    assert client_consent_unknown(admin, world.setup.headers, world.anna)


def client_consent_unknown(client: TestClient, headers: dict[str, str], guid: str) -> bool:
    answer = client.get(f"{API}/contacts/{guid}/consents/TrackingConsent", headers=headers)
    return answer.status_code == 404 and answer.json()["code"] == "unknown_contact"


def test_a_contact_without_email_is_confirmed_by_guid(
    admin: TestClient, database: Database
) -> None:
    guid = factories.contact(database)
    form = admin.get(f"/admin/contacts/{guid}/erase")
    assert "type the contact&#39;s GUID</label>" in form.text
    answer = admin.post(
        f"/admin/contacts/{guid}/erase",
        data={"confirm": "", "csrf_token": admin.csrf},  # type: ignore[attr-defined]
    )
    assert field_error(answer.text, "confirm") == (
        "Type the contact's GUID exactly to confirm the erasure."
    )
    answer = admin.post(
        f"/admin/contacts/{guid}/erase",
        data={"confirm": guid.replace("-", ""), "csrf_token": admin.csrf},  # type: ignore[attr-defined]
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert contact_id(database, guid) is None
