"""Consent pages: list, new consent, texts per language, revisions, default language."""

from __future__ import annotations

import re
from typing import Any

from starlette.testclient import TestClient

from contacthub.consents import service as consents
from contacthub.storage.database import Database
from tests import factories
from tests.admin.conftest import EMAIL
from tests.admin.reading import audit_actions, field_error

NEW = {
    "code_name": "TrackingConsent",
    "display_name": "Tracking",
    "language": "en",
    "short_text": "<p>We track you.</p>",
    "full_text": "<p>We track you, <b>in full</b>.</p>",
}


def create(admin: TestClient, **overrides: str) -> Any:
    data = {**NEW, **overrides, "csrf_token": admin.csrf}  # type: ignore[attr-defined]
    return admin.post("/admin/consents/new", data=data, follow_redirects=False)


def set_text(admin: TestClient, code: str, language: str, short: str, full: str) -> Any:
    data = {
        "language": language,
        "short_text": short,
        "full_text": full,
        "csrf_token": admin.csrf,  # type: ignore[attr-defined]
    }
    return admin.post(f"/admin/consents/{code}/texts", data=data, follow_redirects=False)


def table_row(page: str, code: str) -> str:
    """The list's table row of one consent."""
    match = re.search(rf"<tr>\s*<td><a href=\"/admin/consents/{code}\">.*?</tr>", page, re.S)
    assert match, f"no row for {code}"
    return match.group(0)


def cells(row: str) -> list[str]:
    return [
        re.sub(r"<[^>]+>", "", cell).strip()
        for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    ]


def test_signed_out_the_pages_ask_to_sign_in(client: TestClient, database: Database) -> None:
    factories.consent(database)
    for path in ("/admin/consents", "/admin/consents/new", "/admin/consents/TrackingConsent"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/admin/sign-in?next=")
    answer = client.post("/admin/consents/new", data=NEW, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/admin/sign-in")
    with database.read() as session:
        assert [c.code_name for c in consents.list_consents(session)] == ["TrackingConsent"]


def test_empty_list(admin: TestClient) -> None:
    page = admin.get("/admin/consents")
    assert page.status_code == 200
    assert "No consents yet" in page.text
    assert 'href="/admin/consents/new"' in page.text


def test_create_a_consent(admin: TestClient, database: Database) -> None:
    form = admin.get("/admin/consents/new")
    assert form.status_code == 200
    assert 'name="code_name"' in form.text
    answer = create(admin)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/consents/TrackingConsent"
    page = admin.get("/admin/consents/TrackingConsent")
    assert "Consent TrackingConsent created." in page.text
    assert "<h1>Tracking</h1>" in page.text
    row = cells(table_row(admin.get("/admin/consents").text, "TrackingConsent"))
    assert row[:6] == ["TrackingConsent", "Tracking", "en", "1", "en", "0"]
    assert (EMAIL, "consent.created", "TrackingConsent") in audit_actions(database)
    with database.read() as session:
        texts = consents.get_texts(session, "TrackingConsent", "en")
    assert (texts.short_text, texts.full_text) == (NEW["short_text"], NEW["full_text"])


def test_display_name_defaults_to_the_code_name(admin: TestClient) -> None:
    create(admin, display_name="")
    assert "<h1>TrackingConsent</h1>" in admin.get("/admin/consents/TrackingConsent").text


def test_new_consent_errors_show_next_to_their_fields(
    admin: TestClient, database: Database
) -> None:
    cases = [
        ({"code_name": "has space"}, "code_name", "code name has 1 to 100 letters"),
        ({"code_name": ""}, "code_name", "code name has 1 to 100 letters"),
        ({"language": ""}, "language", "A language name has 1 to 20"),
        ({"language": "en us"}, "language", "A language name has 1 to 20"),
        ({"short_text": "   "}, "short_text", "The short text is required."),
        ({"full_text": ""}, "full_text", "The full text is required."),
        ({"display_name": "x" * 201}, "display_name", "at most 200 characters"),
    ]
    for overrides, field, message in cases:
        answer = create(admin, **overrides)
        assert answer.status_code == 400, overrides
        shown = field_error(answer.text, field)
        assert shown is not None, overrides
        assert message in shown, (overrides, shown)
        # What was typed comes back in the form.
        assert 'value="Tracking"' in answer.text or overrides.get("display_name")
    assert create(admin).status_code == 303
    duplicate = create(admin, code_name="trackingconsent")
    assert duplicate.status_code == 400
    assert "already exists" in (field_error(duplicate.text, "code_name") or "")
    with database.read() as session:
        assert len(consents.list_consents(session)) == 1


def test_hostile_text_is_shown_escaped_and_previewed_in_a_sandbox(admin: TestClient) -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    create(admin, display_name="<script>name</script>", short_text=hostile, full_text=hostile)
    page = admin.get("/admin/consents/TrackingConsent").text
    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;name&lt;/script&gt;" in page
    # Source view: escaped text.
    assert '<pre class="source"><code>&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;' in page
    # Preview: a sandboxed iframe whose srcdoc attribute holds the escaped HTML.
    frames = re.findall(r"<iframe [^>]*>", page)
    assert len(frames) == 2
    for frame in frames:
        assert re.search(r"\ssandbox\s", frame), frame
        assert 'srcdoc="&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img' in frame
    listed = admin.get("/admin/consents").text
    assert "&lt;script&gt;name&lt;/script&gt;" in listed
    assert "<script>name" not in listed


def test_saving_a_language_makes_a_new_revision(admin: TestClient, database: Database) -> None:
    create(admin)
    page = admin.get("/admin/consents/TrackingConsent").text
    assert "Saving creates revision 2; contacts who agreed keep their revision" in page
    answer = set_text(admin, "TrackingConsent", "de", "<p>Kurz</p>", "<p>Lang</p>")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/consents/TrackingConsent?language=de"
    page = admin.get("/admin/consents/TrackingConsent?language=de").text
    assert "Saved as revision 2." in page
    assert "Saving creates revision 3" in page
    assert "&lt;p&gt;Kurz&lt;/p&gt;" in page
    history = re.search(r"<h2>Revision history</h2>.*?</table>", page, re.S)
    assert history
    rows = [cells(r) for r in re.findall(r"<tr>.*?</tr>", history.group(0), re.S)[1:]]
    assert [(r[0].split()[0], r[2]) for r in rows] == [("2", "de, en"), ("1", "en")]
    assert "current" in rows[0][0]
    # The English text was carried over unchanged.
    with database.read() as session:
        assert consents.get_texts(session, "TrackingConsent", "en").revision == 2
        assert consents.get_texts(session, "TrackingConsent", "en").short_text == NEW["short_text"]
    assert [a for a in audit_actions(database) if a[1] == "consent.text_set"] == [
        (EMAIL, "consent.text_set", "TrackingConsent")
    ]


def test_saving_the_same_texts_again_changes_nothing(admin: TestClient, database: Database) -> None:
    create(admin)
    answer = set_text(admin, "TrackingConsent", "en", NEW["short_text"], NEW["full_text"])
    assert answer.status_code == 303
    page = admin.get(answer.headers["location"]).text
    assert "Nothing changed: the texts are those of revision 1." in page
    with database.read() as session:
        assert consents.detail(session, "TrackingConsent").summary.revision == 1
    assert "consent.text_set" not in [a[1] for a in audit_actions(database)]


def test_an_older_revision_shows_its_own_texts(admin: TestClient) -> None:
    create(admin)
    set_text(admin, "TrackingConsent", "en", "<p>Second version</p>", "<p>Second full</p>")
    current = admin.get("/admin/consents/TrackingConsent").text
    assert "Second version" in current
    assert "not the current one" not in current
    old = admin.get("/admin/consents/TrackingConsent?revision=1").text
    assert "You are looking at revision 1, not the current one (2)." in old
    assert "We track you." in old
    assert "Second version" not in old.split("Edit or add a language")[0]
    missing = admin.get("/admin/consents/TrackingConsent?revision=7")
    assert missing.status_code == 404
    assert "has no revision 7" in missing.text


def test_text_errors_show_next_to_their_fields_and_keep_the_input(
    admin: TestClient, database: Database
) -> None:
    create(admin)
    answer = set_text(admin, "TrackingConsent", "de", "<p>Kurz &amp; gut</p>", "")
    assert answer.status_code == 400
    assert field_error(answer.text, "full_text") == "The full text is required."
    assert "&lt;p&gt;Kurz &amp;amp; gut&lt;/p&gt;</textarea>" in answer.text
    answer = set_text(admin, "TrackingConsent", "d e", "s", "f")
    assert "A language name" in (field_error(answer.text, "language") or "")
    with database.read() as session:
        assert consents.detail(session, "TrackingConsent").summary.revision == 1
    assert admin.get("/admin/consents/Nope").status_code == 404
    assert set_text(admin, "Nope", "en", "s", "f").status_code == 404


def test_change_the_default_language(admin: TestClient, database: Database) -> None:
    create(admin)
    set_text(admin, "TrackingConsent", "de", "<p>Kurz</p>", "<p>Lang</p>")
    url = "/admin/consents/TrackingConsent/default-language"
    refused = admin.post(url, data={"default_language": "fr", "csrf_token": admin.csrf})  # type: ignore[attr-defined]
    assert refused.status_code == 400
    assert field_error(refused.text, "default_language") == "The consent has no 'fr' text yet."
    answer = admin.post(
        url,
        data={"default_language": "de", "csrf_token": admin.csrf},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    page = admin.get(answer.headers["location"]).text
    assert "Default language is now de." in page
    assert "default language de" in page
    with database.read() as session:
        assert consents.get_consent(session, "TrackingConsent").default_language == "de"
        # The texts did not change.
        assert consents.detail(session, "TrackingConsent").summary.revision == 2
    assert (EMAIL, "consent.default_language_set", "TrackingConsent") in audit_actions(database)


def test_agreed_contacts_count_only_latest_agreements(
    admin: TestClient, database: Database
) -> None:
    create(admin)
    create(admin, code_name="Other")
    agreeing, revoked, came_back, other_only = (factories.contact(database) for _ in range(4))
    with database.write() as session:
        for guid, code, agree in [
            (agreeing, "TrackingConsent", True),
            (revoked, "TrackingConsent", True),
            (revoked, "TrackingConsent", False),
            (came_back, "TrackingConsent", False),
            (came_back, "TrackingConsent", True),
            (came_back, "TrackingConsent", True),
            (other_only, "Other", True),
            (agreeing, "Other", False),
        ]:
            consents.record_agreement(session, guid, code, agree=agree)
    listed = admin.get("/admin/consents").text
    assert cells(table_row(listed, "TrackingConsent"))[5] == "2"
    assert cells(table_row(listed, "Other"))[5] == "1"
    page = admin.get("/admin/consents/TrackingConsent").text
    assert re.search(r'Agreed contacts</div><div class="value">2<', page)


def test_a_consent_named_new_has_a_reachable_page(admin: TestClient) -> None:
    answer = create(admin, code_name="new", display_name="Named new")
    assert answer.headers["location"] == "/admin/consents/NEW"
    assert "<h1>Named new</h1>" in admin.get("/admin/consents/NEW").text
    assert 'href="/admin/consents/NEW"' in admin.get("/admin/consents").text


def test_a_language_must_be_a_language_code(admin: TestClient, database: Database) -> None:
    for language in ("english", "xx", "en-XX"):
        answer = create(admin, language=language)
        assert answer.status_code == 400, language
        shown = field_error(answer.text, "language") or ""
        assert f"'{language}' is not a language code" in shown, shown
    assert create(admin).status_code == 303
    for language in ("english", "xx"):
        answer = set_text(admin, "TrackingConsent", language, "s", "f")
        assert answer.status_code == 400, language
        assert "is not a language code" in (field_error(answer.text, "language") or "")
    assert set_text(admin, "TrackingConsent", "de-AT", "s", "f").status_code == 303
    with database.read() as session:
        assert consents.detail(session, "TrackingConsent").summary.languages == ["de-AT", "en"]
