"""`/api/consents`: consents, texts per language, revisions, default language."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from contacthub.consents import service as consents
from contacthub.storage.database import Database
from tests import factories
from tests.admin.reading import audit_actions

BODY = {
    "code_name": "TrackingConsent",
    "language": "en",
    "short_text": "<p>We track you.</p>",
    "full_text": "<p>We track you, in full.</p>",
}


def create(client: TestClient, headers: dict[str, str], **overrides: Any) -> Any:
    return client.post("/api/consents", json={**BODY, **overrides}, headers=headers)


def put_text(
    client: TestClient, headers: dict[str, str], language: str, short: str, full: str
) -> Any:
    return client.put(
        f"/api/consents/TrackingConsent/texts/{language}",
        json={"short_text": short, "full_text": full},
        headers=headers,
    )


def test_every_endpoint_needs_a_token(client: TestClient, database: Database) -> None:
    factories.consent(database)
    calls = [
        ("GET", "/api/consents", None),
        ("POST", "/api/consents", BODY),
        ("GET", "/api/consents/TrackingConsent", None),
        ("GET", "/api/consents/TrackingConsent/revisions/1", None),
        ("PUT", "/api/consents/TrackingConsent/texts/de", {"short_text": "s", "full_text": "f"}),
        ("PATCH", "/api/consents/TrackingConsent", {"default_language": "en"}),
    ]
    for method, path, body in calls:
        for headers in ({}, {"Authorization": "Bearer cht_not-a-token"}):
            answer = client.request(method, path, json=body, headers=headers)
            assert answer.status_code == 401, (method, path)
            assert answer.json()["code"] in ("missing_api_key", "invalid_token")


def test_create_and_read_a_consent(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    answer = create(client, api_headers, display_name="Tracking")
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["code_name"] == "TrackingConsent"
    assert created["display_name"] == "Tracking"
    assert created["default_language"] == "en"
    assert created["revision"] == 1
    assert created["languages"] == ["en"]
    assert created["agreed_contacts"] == 0
    assert created["texts"] == [
        {"language": "en", "short_text": BODY["short_text"], "full_text": BODY["full_text"]}
    ]
    assert [r["number"] for r in created["revisions"]] == [1]
    assert client.get("/api/consents/trackingconsent", headers=api_headers).json() == created
    listed = client.get("/api/consents", headers=api_headers).json()
    assert listed == [{k: v for k, v in created.items() if k not in ("texts", "revisions")}]
    assert ("api@example.com", "consent.created", "TrackingConsent") in audit_actions(database)


def test_bad_input_names_the_field(client: TestClient, api_headers: dict[str, str]) -> None:
    cases = [
        ({"code_name": "has space"}, 400, "invalid_code_name", "code_name"),
        ({"language": ""}, 400, "invalid_language", "language"),
        ({"short_text": ""}, 400, "invalid_text", "short_text"),
        ({"full_text": " "}, 400, "invalid_text", "full_text"),
        ({"full_text": "x" * 100_001}, 400, "invalid_text", "full_text"),
        ({"display_name": "x" * 201}, 400, "invalid_name", "display_name"),
        ({"short_text": 5}, 400, "invalid_body", "short_text"),
        ({"extra": 1}, 400, "invalid_body", None),
    ]
    for overrides, status, code, field in cases:
        answer = create(client, api_headers, **overrides)
        assert answer.status_code == status, overrides
        error = answer.json()
        assert error["code"] == code, (overrides, error)
        assert error.get("field") == field, (overrides, error)
    assert create(client, api_headers).status_code == 201
    duplicate = create(client, api_headers, code_name="TRACKINGCONSENT")
    assert duplicate.status_code == 409
    assert duplicate.json() == {
        "error": "A consent 'TRACKINGCONSENT' already exists.",
        "code": "consent_exists",
        "field": "code_name",
    }
    assert len(client.get("/api/consents", headers=api_headers).json()) == 1


def test_unknown_consents_and_revisions(client: TestClient, api_headers: dict[str, str]) -> None:
    for method, path, body in [
        ("GET", "/api/consents/Nope", None),
        ("PUT", "/api/consents/Nope/texts/en", {"short_text": "s", "full_text": "f"}),
        ("PATCH", "/api/consents/Nope", {"default_language": "en"}),
        ("GET", "/api/consents/Nope/revisions/1", None),
    ]:
        answer = client.request(method, path, json=body, headers=api_headers)
        assert answer.status_code == 404, path
        assert answer.json()["code"] == "unknown_consent", path
    nul = client.get("/api/consents/bad%00name", headers=api_headers)
    assert (nul.status_code, nul.json()["code"]) == (400, "nul_character")
    create(client, api_headers)
    for number in ("2", "0", "x", "99999999999"):
        answer = client.get(
            f"/api/consents/TrackingConsent/revisions/{number}", headers=api_headers
        )
        assert answer.status_code == 404, number
        assert answer.json()["code"] == "unknown_revision"


def test_put_a_text_makes_a_new_revision(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    create(client, api_headers)
    answer = put_text(client, api_headers, "de", "<p>Kurz</p>", "<p>Lang</p>")
    assert answer.status_code == 200, answer.text
    consent = answer.json()
    assert consent["revision"] == 2
    assert consent["languages"] == ["de", "en"]
    # The default language's texts come first.
    assert [t["language"] for t in consent["texts"]] == ["en", "de"]
    assert [(r["number"], r["languages"]) for r in consent["revisions"]] == [
        (2, ["de", "en"]),
        (1, ["en"]),
    ]
    changed = put_text(client, api_headers, "EN", "<p>New</p>", "<p>New full</p>").json()
    assert changed["revision"] == 3
    # An existing language keeps its spelling.
    assert changed["languages"] == ["de", "en"]
    assert changed["texts"][0] == {
        "language": "en",
        "short_text": "<p>New</p>",
        "full_text": "<p>New full</p>",
    }
    # Revision 1 still holds what contacts who agreed to it were shown.
    first = client.get("/api/consents/TrackingConsent/revisions/1", headers=api_headers).json()
    assert first == {
        "number": 1,
        "texts": [
            {"language": "en", "short_text": BODY["short_text"], "full_text": BODY["full_text"]}
        ],
    }
    sets = [a for a in audit_actions(database) if a[1] == "consent.text_set"]
    assert len(sets) == 2


def test_putting_the_same_texts_again_changes_nothing(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    create(client, api_headers)
    first = put_text(client, api_headers, "de", "<p>Kurz</p>", "<p>Lang</p>").json()
    again = put_text(client, api_headers, "de", "<p>Kurz</p>", "<p>Lang</p>").json()
    assert again == first
    assert again["revision"] == 2
    assert len([a for a in audit_actions(database) if a[1] == "consent.text_set"]) == 1


def test_put_text_bad_input(client: TestClient, api_headers: dict[str, str]) -> None:
    create(client, api_headers)
    cases = [
        ("de", {"short_text": "", "full_text": "f"}, "invalid_text", "short_text"),
        ("de", {"short_text": "s"}, "invalid_body", None),
        ("a b", {"short_text": "s", "full_text": "f"}, "invalid_language", "language"),
        ("x" * 21, {"short_text": "s", "full_text": "f"}, "invalid_language", "language"),
        ("%00", {"short_text": "s", "full_text": "f"}, "nul_character", "language"),
    ]
    for language, body, code, field in cases:
        answer = client.put(
            f"/api/consents/TrackingConsent/texts/{language}", json=body, headers=api_headers
        )
        assert answer.status_code == 400, language
        assert answer.json()["code"] == code, answer.json()
        assert answer.json().get("field") == field
    current = client.get("/api/consents/TrackingConsent", headers=api_headers).json()
    assert current["revision"] == 1


def test_patch_the_default_language(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    create(client, api_headers)
    put_text(client, api_headers, "de", "<p>Kurz</p>", "<p>Lang</p>")
    path = "/api/consents/TrackingConsent"
    refused = client.patch(path, json={"default_language": "fr"}, headers=api_headers)
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "The consent has no 'fr' text yet.",
        "code": "unknown_language",
        "field": "default_language",
    }
    answer = client.patch(path, json={"default_language": "DE"}, headers=api_headers)
    assert answer.status_code == 200
    assert answer.json()["default_language"] == "de"
    assert answer.json()["revision"] == 2  # the texts did not change
    assert [t["language"] for t in answer.json()["texts"]] == ["de", "en"]
    unchanged = client.patch(path, json={}, headers=api_headers)
    assert unchanged.json()["default_language"] == "de"
    assert client.patch(path, json={"display": "x"}, headers=api_headers).status_code == 400
    with database.read() as session:
        assert consents.get_texts(session, "TrackingConsent", "fr").language == "de"
    assert ("api@example.com", "consent.default_language_set", "TrackingConsent") in (
        audit_actions(database)
    )


def test_agreed_contacts(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    create(client, api_headers)
    agreeing, revoked = factories.contact(database), factories.contact(database)
    with database.write() as session:
        consents.record_agreement(session, agreeing, "TrackingConsent", agree=True)
        consents.record_agreement(session, revoked, "TrackingConsent", agree=True)
        consents.record_agreement(session, revoked, "TrackingConsent", agree=False)
    assert client.get("/api/consents", headers=api_headers).json()[0]["agreed_contacts"] == 1
    detail = client.get("/api/consents/TrackingConsent", headers=api_headers).json()
    assert detail["agreed_contacts"] == 1


def test_the_openapi_document_lists_the_consent_endpoints(client: TestClient) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    assert set(paths["/api/consents"]) == {"get", "post"}
    assert set(paths["/api/consents/{code}"]) == {"get", "patch"}
    assert set(paths["/api/consents/{code}/texts/{language}"]) == {"put"}
    assert set(paths["/api/consents/{code}/revisions/{number}"]) == {"get"}


def test_a_language_must_be_a_language_code(
    client: TestClient, api_headers: dict[str, str]
) -> None:
    for language in ("english", "xx", "en-XX"):
        answer = create(client, api_headers, language=language)
        assert answer.status_code == 400, language
        assert answer.json()["code"] == "invalid_language"
        assert answer.json()["field"] == "language"
        assert f"'{language}' is not a language code" in answer.json()["error"]
    assert create(client, api_headers).status_code == 201
    for language in ("english", "xx", "en-XX"):
        answer = put_text(client, api_headers, language, "s", "f")
        assert answer.status_code == 400, language
        assert answer.json()["code"] == "invalid_language"
    assert put_text(client, api_headers, "sr-Latn-RS", "s", "f").status_code == 200
