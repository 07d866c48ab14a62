"""`contacthub consent …`, checked against the tracking API's consent texts."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from contacthub.storage.database import Database
from tests.admin.reading import audit_actions
from tests.cli.conftest import Cli


def create_english(cli: Cli) -> Any:
    return cli.json(
        "consent",
        "create",
        "TrackingConsent",
        "--language",
        "en",
        "--short-text",
        "<p>We track you.</p>",
        "--full-text",
        "<p>We track you, in full.</p>",
    )


def set_text(cli: Cli, language: str, short: str, full: str) -> Any:
    return cli.json(
        "consent",
        "set-text",
        "TrackingConsent",
        "--language",
        language,
        "--short-text",
        short,
        "--full-text",
        full,
    )


def api_texts(cli: Cli, client: TestClient, language: str) -> Any:
    """What a client app reads: GET /consents/TrackingConsent?languageName=…"""
    if not cli.json("channel", "list"):
        cli.ok("channel", "create", "Web")
    key = cli.json("apikey", "create", "--channel", "Web", "--access", "tracking")["key"]
    answer = client.get(
        "/Kentico.Tracking/consents/TrackingConsent",
        params={"languageName": language},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_consent_create(cli: Cli, client: TestClient) -> None:
    record = create_english(cli)
    assert record == {
        "code_name": "TrackingConsent",
        "display_name": "TrackingConsent",
        "default_language": "en",
        "languages": ["en"],
        "revision": 1,
    }
    assert api_texts(cli, client, "en") == {
        "shortText": "<p>We track you.</p>",
        "fullText": "<p>We track you, in full.</p>",
    }


def test_consent_create_with_display_name_and_table_output(cli: Cli) -> None:
    output = cli.ok(
        "consent",
        "create",
        "Newsletter",
        "--language",
        "en-US",
        "--short-text",
        "<b>Yes</b>",
        "--full-text",
        "<b>Yes, please</b>",
        "--display-name",
        "Newsletter [monthly]",
    )
    assert "Newsletter [monthly]" in output
    assert "en-US" in output
    assert cli.json("consent", "list")[0]["display_name"] == "Newsletter [monthly]"


def test_consent_create_refuses_duplicates_and_bad_names(cli: Cli) -> None:
    create_english(cli)
    args = ("--language", "en", "--short-text", "s", "--full-text", "f")
    assert "(consent_exists)" in cli.fails("consent", "create", "TrackingConsent", *args)
    assert "(invalid_code_name)" in cli.fails("consent", "create", "has space", *args)
    assert "(invalid_language)" in cli.fails(
        "consent", "create", "Other", "--language", "", "--short-text", "s", "--full-text", "f"
    )
    assert [c["code_name"] for c in cli.json("consent", "list")] == ["TrackingConsent"]


def test_set_text_adds_a_language_in_a_new_revision(cli: Cli, client: TestClient) -> None:
    create_english(cli)
    record = set_text(cli, "de", "<p>Wir verfolgen Sie.</p>", "<p>Ausführlich.</p>")
    assert record["revision"] == 2
    assert record["languages"] == ["de", "en"]
    assert record["default_language"] == "en"
    assert api_texts(cli, client, "de")["shortText"] == "<p>Wir verfolgen Sie.</p>"
    # The English text was carried over into the new revision.
    assert api_texts(cli, client, "en")["shortText"] == "<p>We track you.</p>"


def test_set_text_changes_one_language_and_keeps_the_others(cli: Cli, client: TestClient) -> None:
    create_english(cli)
    set_text(cli, "de", "<p>Wir verfolgen Sie.</p>", "<p>Ausführlich.</p>")
    record = set_text(cli, "en", "<p>New short.</p>", "<p>New full.</p>")
    assert record["revision"] == 3
    assert record["languages"] == ["de", "en"]
    assert api_texts(cli, client, "en") == {
        "shortText": "<p>New short.</p>",
        "fullText": "<p>New full.</p>",
    }
    assert api_texts(cli, client, "de")["shortText"] == "<p>Wir verfolgen Sie.</p>"


def test_set_text_of_an_unknown_consent(cli: Cli) -> None:
    message = cli.fails(
        "consent", "set-text", "Nope", "--language", "en", "--short-text", "s", "--full-text", "f"
    )
    assert "No consent with code name 'Nope'." in message


def test_set_default_language(cli: Cli, client: TestClient) -> None:
    create_english(cli)
    set_text(cli, "de", "<p>Wir verfolgen Sie.</p>", "<p>Ausführlich.</p>")
    # An unknown language falls back to the default language: English, then German.
    assert api_texts(cli, client, "fr")["shortText"] == "<p>We track you.</p>"
    record = cli.json("consent", "set-default-language", "TrackingConsent", "de")
    assert record["default_language"] == "de"
    assert record["revision"] == 2  # the texts did not change
    assert api_texts(cli, client, "fr")["shortText"] == "<p>Wir verfolgen Sie.</p>"


def test_set_default_language_needs_a_text_in_it(cli: Cli) -> None:
    create_english(cli)
    message = cli.fails("consent", "set-default-language", "TrackingConsent", "fr")
    assert "The consent has no 'fr' text yet." in message
    assert cli.json("consent", "list")[0]["default_language"] == "en"
    assert "(unknown_consent)" in cli.fails("consent", "set-default-language", "Nope", "en")


def test_consent_list(cli: Cli) -> None:
    assert cli.json("consent", "list") == []
    assert "No consents." in cli.ok("consent", "list")
    create_english(cli)
    cli.ok(
        "consent",
        "create",
        "Analytics",
        "--language",
        "fr",
        "--short-text",
        "s",
        "--full-text",
        "f",
    )
    listed = cli.json("consent", "list")
    assert [(c["code_name"], c["default_language"], c["revision"]) for c in listed] == [
        ("Analytics", "fr", 1),
        ("TrackingConsent", "en", 1),
    ]
    table = cli.ok("consent", "list")
    assert "Analytics" in table
    assert "TrackingConsent" in table


def test_consent_create_needs_both_texts(cli: Cli) -> None:
    result = cli("consent", "create", "Analytics", "--language", "fr", "--short-text", "s")
    assert result.exit_code == 2  # a usage error, reported by the command line itself
    assert "--full-text" in result.output
    assert cli.json("consent", "list") == []


def test_changes_are_recorded_in_the_audit_log(cli: Cli, database: Database) -> None:
    create_english(cli)
    set_text(cli, "de", "<p>Kurz</p>", "<p>Lang</p>")
    # The same texts again make no revision, and so no record.
    assert set_text(cli, "de", "<p>Kurz</p>", "<p>Lang</p>")["revision"] == 2
    cli.ok("consent", "set-default-language", "TrackingConsent", "de")
    assert audit_actions(database) == [
        ("cli", "consent.created", "TrackingConsent"),
        ("cli", "consent.text_set", "TrackingConsent"),
        ("cli", "consent.default_language_set", "TrackingConsent"),
    ]


NOT_LANGUAGE_CODES = ("english", "xx", "en-XX", "en-Fooo", "e")


def test_a_language_must_be_a_language_code(cli: Cli) -> None:
    texts = ("--short-text", "s", "--full-text", "f")
    for language in NOT_LANGUAGE_CODES:
        message = cli.fails("consent", "create", "Other", "--language", language, *texts)
        assert f"'{language}' is not a language code" in message
        assert message.endswith("(invalid_language)")
    assert cli.json("consent", "list") == []
    create_english(cli)
    for language in NOT_LANGUAGE_CODES:
        message = cli.fails(
            "consent", "set-text", "TrackingConsent", "--language", language, *texts
        )
        assert message.endswith("(invalid_language)")
    for language in ("en-US", "zh-Hans", "sr-Latn-RS", "es-419", "pt_BR", "fil"):
        set_text(cli, language, f"<p>{language}</p>", "<p>f</p>")
    assert cli.json("consent", "list")[0]["revision"] == 7
