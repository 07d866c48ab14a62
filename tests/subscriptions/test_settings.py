"""Newsletter subscription settings and operator adds, through the API, the CLI and the admin."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from contacthub.app import create_app
from contacthub.consents import service as consents
from contacthub.settings import Settings
from contacthub.storage.database import Database
from tests.admin.conftest import admin_user, sign_in  # noqa: F401  (a fixture)
from tests.api.conftest import api_headers  # noqa: F401  (a fixture)
from tests.cli.conftest import cli_on
from tests.email.smtp_server import HOST, smtp_server
from tests.subscriptions.support import CONSENT, NEWS, make_newsletter


def test_the_api_changes_settings_and_refuses_double_opt_in_without_a_consent(
    client: TestClient,
    database: Database,
    api_headers: dict[str, str],  # noqa: F811
) -> None:
    make_newsletter(database, double_opt_in=False)
    url = f"/api/newsletters/{NEWS}"
    refused = client.patch(url, json={"double_opt_in": True}, headers=api_headers)
    assert refused.status_code == 400
    assert refused.json()["code"] == "consent_required"
    unknown = client.patch(url, json={"consent": "nope"}, headers=api_headers)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_consent")
    changed = client.patch(
        url,
        json={"double_opt_in": True, "consent": CONSENT, "tracking_consent": CONSENT},
        headers=api_headers,
    )
    assert changed.status_code == 200
    body = changed.json()
    assert (body["double_opt_in"], body["consent"], body["tracking_consent"]) == (
        True,
        CONSENT,
        CONSENT,
    )
    # Absent properties stay; null removes.
    cleared = client.patch(url, json={"tracking_consent": None}, headers=api_headers).json()
    assert (cleared["double_opt_in"], cleared["consent"], cleared["tracking_consent"]) == (
        True,
        CONSENT,
        None,
    )
    bad = client.patch(url, json={"double_opt_in": "yes"}, headers=api_headers)
    assert bad.status_code == 400
    assert client.get(url, headers=api_headers).json()["consent"] == CONSENT


def test_an_api_add_to_a_double_opt_in_newsletter_sends_the_confirmation_unless_confirmed(
    settings: Settings,
    database: Database,
    api_headers: dict[str, str],  # noqa: F811
) -> None:
    make_newsletter(database)
    with smtp_server() as smtp:
        hub_settings = settings.model_copy(update={"smtp_host": HOST, "smtp_port": smtp.port})
        with TestClient(create_app(hub_settings)) as client:
            url = f"/api/newsletters/{NEWS}/subscribers"
            pending = client.post(url, json={"email": "ann@example.com"}, headers=api_headers)
            assert pending.status_code == 201
            assert pending.json()["status"] == "unconfirmed"
            assert pending.json()["confirmation_sent_at"] is not None
            assert len(smtp.messages_to("ann@example.com")) == 1
            vouched = client.post(
                url, json={"email": "bob@example.com", "confirmed": True}, headers=api_headers
            )
            assert vouched.json()["status"] == "subscribed"
            assert vouched.json()["confirmed_at"] is not None
            assert smtp.messages_to("bob@example.com") == []
            listed = client.get(url, params={"status": "unconfirmed"}, headers=api_headers)
            assert [s["email"] for s in listed.json()["subscribers"]] == ["ann@example.com"]
        # The SMTP server is gone: the address is kept unconfirmed, the caller told to retry.
    with TestClient(create_app(hub_settings)) as client:
        failed = client.post(url, json={"email": "cy@example.com"}, headers=api_headers)
        assert (failed.status_code, failed.json()["code"]) == (503, "confirmation_not_sent")


def test_the_cli_updates_settings(database_url: str, database: Database, tmp_path: Path) -> None:
    cli = cli_on(database_url, tmp_path)
    with database.write() as session:
        consents.create_consent(
            session, CONSENT, language="en", short_text="Yes.", full_text="<p>Yes.</p>"
        )
    created = cli.json(
        "newsletter",
        "create",
        NEWS,
        "--sender-name",
        "T",
        "--sender-email",
        "t@example.com",
        "--base-url",
        "https://news.example.com",
        "--double-opt-in",
        "--consent",
        CONSENT,
    )
    assert (created["double_opt_in"], created["consent"]) == (True, CONSENT)
    assert "consent_required" in cli.fails("newsletter", "update", NEWS, "--consent", "")
    updated = cli.json("newsletter", "update", NEWS, "--no-double-opt-in", "--consent", "")
    assert (updated["double_opt_in"], updated["consent"]) == (False, None)
    updated = cli.json("newsletter", "update", NEWS, "--tracking-consent", CONSENT)
    assert updated["tracking_consent"] == CONSENT


def test_the_admin_page_saves_settings_and_shows_the_public_form(
    client: TestClient,
    database: Database,
    admin_user: str,  # noqa: F811
) -> None:
    guid = make_newsletter(database, double_opt_in=False)
    csrf = sign_in(client)
    page = client.get(f"/admin/newsletters/{guid}")
    assert f"/subscribe/{guid}" in page.text
    refused = client.post(
        f"/admin/newsletters/{guid}/settings",
        data={"csrf_token": csrf, "double_opt_in": "yes", "consent": ""},
    )
    assert refused.status_code == 400
    assert "needs a consent" in refused.text
    saved = client.post(
        f"/admin/newsletters/{guid}/settings",
        data={"csrf_token": csrf, "double_opt_in": "yes", "consent": CONSENT},
    )
    assert saved.status_code == 200
    assert "Subscription settings saved." in saved.text
    assert "Send the confirmation email" in saved.text  # the add form now asks


def test_the_cli_adds_through_the_confirmation_unless_confirmed(
    database_url: str, database: Database, tmp_path: Path
) -> None:
    make_newsletter(database)
    with smtp_server() as smtp:
        env = {
            "CONTACTHUB_SMTP_HOST": HOST,
            "CONTACTHUB_SMTP_PORT": str(smtp.port),
            "CONTACTHUB_SECRET_KEY": "a-test-secret",
        }
        cli = cli_on(database_url, tmp_path, **env)
        pending = cli.json("subscriber", "add", "ann@example.com", "--newsletter", NEWS)
        assert pending["status"] == "unconfirmed"
        assert pending["confirmation_sent_at"] is not None
        assert len(smtp.messages_to("ann@example.com")) == 1
        vouched = cli.json(
            "subscriber", "add", "bob@example.com", "--newsletter", NEWS, "--confirmed"
        )
        assert vouched["status"] == "subscribed"
        assert smtp.messages_to("bob@example.com") == []
        listed = cli.json("subscriber", "list", "--newsletter", NEWS, "--status", "unconfirmed")
        assert [row["email"] for row in listed] == ["ann@example.com"]
