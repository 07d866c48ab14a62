"""GET /Kentico.Tracking/consents/{consent}?languageName=: a consent's texts (SPEC §2)."""

from __future__ import annotations

from starlette.testclient import TestClient

from contacthub.storage.database import Database
from tests import factories
from tests.factories import TrackingSetup
from tests.tracking.support import API, assert_error

SHORT = "<p>We track <strong>page visits</strong>.</p>"
FULL = '<p>Full text with a <a href="https://example.com/privacy">link</a>.</p>\n<p>Second.</p>'


def test_texts_are_answered_as_stored_html(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    factories.consent(database, "TrackingConsent", "en", SHORT, FULL)

    answer = client.get(f"{API}/consents/TrackingConsent?languageName=en", headers=setup.headers)

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"shortText": SHORT, "fullText": FULL}


def test_each_language_has_its_own_texts(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    factories.consent(database, "TrackingConsent", "en", "<p>en short</p>", "<p>en full</p>")
    factories.consent_text(database, "TrackingConsent", "cs", "<p>cs short</p>", "<p>cs full</p>")

    czech = client.get(f"{API}/consents/TrackingConsent?languageName=cs", headers=setup.headers)
    english = client.get(f"{API}/consents/TrackingConsent?languageName=en", headers=setup.headers)

    assert czech.json() == {"shortText": "<p>cs short</p>", "fullText": "<p>cs full</p>"}
    assert english.json() == {"shortText": "<p>en short</p>", "fullText": "<p>en full</p>"}


def test_unknown_language_falls_back_to_the_default_language(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    factories.consent(database, "TrackingConsent", "en", "<p>en short</p>", "<p>en full</p>")
    factories.consent_text(database, "TrackingConsent", "cs", "<p>cs short</p>", "<p>cs full</p>")

    answer = client.get(f"{API}/consents/TrackingConsent?languageName=de", headers=setup.headers)

    assert answer.status_code == 200
    assert answer.json() == {"shortText": "<p>en short</p>", "fullText": "<p>en full</p>"}


def test_without_language_name_the_default_language_is_answered(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    factories.consent(database, "TrackingConsent", "cs", "<p>cs short</p>", "<p>cs full</p>")
    factories.consent_text(database, "TrackingConsent", "en", "<p>en short</p>", "<p>en full</p>")

    for url in (f"{API}/consents/TrackingConsent", f"{API}/consents/TrackingConsent?languageName="):
        answer = client.get(url, headers=setup.headers)
        assert answer.json() == {"shortText": "<p>cs short</p>", "fullText": "<p>cs full</p>"}


def test_language_names_match_case_insensitively(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    factories.consent(database, "TrackingConsent", "en-US", "<p>us short</p>", "<p>us full</p>")
    factories.consent_text(database, "TrackingConsent", "cs", "<p>cs short</p>", "<p>cs full</p>")

    answer = client.get(f"{API}/consents/TrackingConsent?languageName=CS", headers=setup.headers)

    assert answer.json()["shortText"] == "<p>cs short</p>"


def test_the_current_revision_is_answered(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    factories.consent(database, "TrackingConsent", "en", "<p>old</p>", "<p>old full</p>")
    factories.consent_text(database, "TrackingConsent", "en", "<p>new</p>", "<p>new full</p>")

    answer = client.get(f"{API}/consents/TrackingConsent?languageName=en", headers=setup.headers)

    assert answer.json() == {"shortText": "<p>new</p>", "fullText": "<p>new full</p>"}


def test_code_names_match_case_insensitively(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    factories.consent(database, "TrackingConsent", "en", SHORT, FULL)

    answer = client.get(f"{API}/consents/trackingconsent?languageName=en", headers=setup.headers)

    assert answer.status_code == 200
    assert answer.json()["shortText"] == SHORT


def test_unknown_consent_is_404(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    factories.consent(database, "TrackingConsent")

    answer = client.get(f"{API}/consents/MarketingConsent?languageName=en", headers=setup.headers)

    error = assert_error(answer, 404, "unknown_consent")
    assert "MarketingConsent" in error


def test_impossible_code_names_are_unknown_not_errors(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    factories.consent(database, "TrackingConsent")

    # NUL cannot be stored in PostgreSQL text: it must not reach a query (it once gave a 500).
    for name in ("Tracking%00Consent", "x" * 500, "Tracking%20Consent", "%E2%9C%93"):
        answer = client.get(f"{API}/consents/{name}?languageName=en", headers=setup.headers)
        assert_error(answer, 404, "unknown_consent")


def test_odd_language_names_fall_back_to_the_default(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    factories.consent(database, "TrackingConsent", "en", SHORT, FULL)

    for language in ("%00", "x" * 5000, "en%0A", "%E2%9C%93"):
        answer = client.get(
            f"{API}/consents/TrackingConsent?languageName={language}", headers=setup.headers
        )
        assert answer.status_code == 200, language
        assert answer.json()["shortText"] == SHORT


def test_the_language_parameter_name_matches_case_insensitively(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    factories.consent(database, "TrackingConsent", "en", "<p>en short</p>", "<p>en full</p>")
    factories.consent_text(database, "TrackingConsent", "cs", "<p>cs short</p>", "<p>cs full</p>")

    for name in ("languagename", "LanguageName", "LANGUAGENAME"):
        answer = client.get(f"{API}/consents/TrackingConsent?{name}=cs", headers=setup.headers)
        assert answer.json()["shortText"] == "<p>cs short</p>", name
