"""`contacthub channel …` and `contacthub apikey …`, checked against the store and the live API."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from starlette.testclient import TestClient

from contacthub.storage.database import Database
from contacthub.storage.models import ApiKey, AuditEvent
from tests import factories
from tests.cli.conftest import Cli

GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def new_key(cli: Cli, channel: str = "Web", *extra: str) -> dict[str, Any]:
    record: dict[str, Any] = cli.json(
        "apikey", "create", "--channel", channel, "--access", "tracking", *extra
    )
    return record


def contacts_answer(client: TestClient, key: str) -> Any:
    """POST /contacts with the key: 200 when the key may be used, else its error."""
    return client.post("/Kentico.Tracking/contacts", headers={"Authorization": f"Bearer {key}"})


# --- channels ---------------------------------------------------------------------------------


def test_channel_create_prints_the_tracking_identifier(cli: Cli) -> None:
    output = cli.ok("channel", "create", "Web site")
    printed = GUID.findall(output)
    assert len(printed) == 1
    listed = cli.json("channel", "list")
    assert [(c["name"], c["guid"]) for c in listed] == [("Web site", printed[0])]


def test_channel_create_json(cli: Cli) -> None:
    record = cli.json("channel", "create", "Mobile app")
    assert record["name"] == "Mobile app"
    assert uuid.UUID(record["guid"]).version == 4
    assert record["required_consent"] is None


def test_duplicate_channel_name_exits_1_with_a_message(cli: Cli) -> None:
    cli.ok("channel", "create", "Web")
    message = cli.fails("channel", "create", "Web")
    assert "A channel named 'Web' already exists." in message
    assert "(channel_exists)" in message
    assert len(cli.json("channel", "list")) == 1


def test_channel_name_must_not_be_empty(cli: Cli) -> None:
    assert "(invalid_name)" in cli.fails("channel", "create", "  ")


def test_channel_name_is_printed_as_typed(cli: Cli) -> None:
    # Rich would read "[bold]" as markup (and "[/bold]" would crash it); names are data.
    # Channel names cannot hold "/" (they are part of API URLs); key names can.
    output = cli.ok("channel", "create", "[bold]Web")
    assert "[bold]Web" in output
    assert "[bold]Web" in cli.ok("channel", "list")
    assert "already exists" in cli.fails("channel", "create", "[bold]Web")
    key = cli.ok(
        "apikey", "create", "--channel", "[bold]Web", "--access", "tracking", "--name", "[/bold]"
    )
    assert "[/bold]" in key
    assert "[/bold]" in cli.ok("apikey", "list")


def test_channel_list(cli: Cli) -> None:
    assert "No channels." in cli.ok("channel", "list")
    assert cli.json("channel", "list") == []
    web = cli.json("channel", "create", "Web")
    app = cli.json("channel", "create", "App")
    listed = cli.json("channel", "list")
    assert [(c["name"], c["guid"]) for c in listed] == [
        ("App", app["guid"]),
        ("Web", web["guid"]),
    ]
    table = cli.ok("channel", "list")
    assert web["guid"] in table
    assert app["guid"] in table


def test_channel_create_with_required_consent(cli: Cli) -> None:
    assert "(unknown_consent)" in cli.fails(
        "channel", "create", "Web", "--require-consent", "TrackingConsent"
    )
    cli.ok("consent", "create", "TrackingConsent", *texts())
    record = cli.json("channel", "create", "Web", "--require-consent", "TrackingConsent")
    assert record["required_consent"] == "TrackingConsent"
    assert cli.json("channel", "list")[0]["required_consent"] == "TrackingConsent"


def texts() -> tuple[str, ...]:
    return ("--language", "en", "--short-text", "<p>Short</p>", "--full-text", "<p>Full</p>")


def test_set_consent_gate_takes_effect_on_the_api(cli: Cli, client: TestClient) -> None:
    channel = cli.json("channel", "create", "Web")
    key = new_key(cli)["key"]
    cli.ok("consent", "create", "TrackingConsent", *texts())
    headers = {"Authorization": f"Bearer {key}"}
    contact = contacts_answer(client, key).json()["contact"]
    body = {
        "channel": channel["guid"],
        "contact": contact,
        "activities": [{"type": "click", "value": "Buy"}],
    }

    gated = cli.json("channel", "set-consent-gate", "Web", "TrackingConsent")
    assert gated["required_consent"] == "TrackingConsent"
    refused = client.post("/Kentico.Tracking/activities", headers=headers, json=body)
    assert refused.status_code == 403
    assert refused.json()["code"] == "consent_required"

    agreed = client.post(
        f"/Kentico.Tracking/contacts/{contact}/consents/TrackingConsent",
        headers=headers,
        json={"agree": True},
    )
    assert agreed.status_code < 300
    accepted = client.post("/Kentico.Tracking/activities", headers=headers, json=body)
    assert accepted.status_code == 207

    # Without CONSENT the gate goes away: a contact who never agreed is accepted again.
    other = contacts_answer(client, key).json()["contact"]
    ungated = cli.json("channel", "set-consent-gate", "Web")
    assert ungated["required_consent"] is None
    assert cli.json("channel", "list")[0]["required_consent"] is None
    answer = client.post(
        "/Kentico.Tracking/activities", headers=headers, json={**body, "contact": other}
    )
    assert answer.status_code == 207
    assert answer.json() == {"results": [{"status": 202}]}


def test_set_consent_gate_refuses_unknown_names(cli: Cli) -> None:
    assert "(unknown_channel)" in cli.fails("channel", "set-consent-gate", "Nope")
    cli.ok("channel", "create", "Web")
    assert "(unknown_consent)" in cli.fails("channel", "set-consent-gate", "Web", "Nope")


# --- API keys ---------------------------------------------------------------------------------


def test_apikey_create_prints_the_key_once_in_full(cli: Cli) -> None:
    cli.ok("channel", "create", "Web")
    # A narrow terminal folds table cells; the key must still come out whole, on its own line.
    narrow = dataclasses.replace(cli, env={**cli.env, "COLUMNS": "40"})
    output = narrow.ok("apikey", "create", "--channel", "Web", "--access", "tracking")
    keys = re.findall(r"^chk_\S+$", output, flags=re.MULTILINE)
    assert len(keys) == 1
    assert len(keys[0]) >= 40
    assert "not shown again" in output
    assert output.count(keys[0]) == 1


def test_apikey_create_json_and_the_key_works(cli: Cli, client: TestClient) -> None:
    cli.ok("channel", "create", "Web")
    record = new_key(cli, "Web", "--name", "website backend")
    assert record["key"].startswith(record["prefix"])
    assert record["channel"] == "Web"
    assert record["access"] == "tracking"
    assert record["name"] == "website backend"
    assert record["status"] == "active"
    assert record["expires_at"] is None
    assert contacts_answer(client, record["key"]).status_code == 200


def test_apikey_is_stored_only_hashed(cli: Cli, database: Database) -> None:
    cli.ok("channel", "create", "Web")
    record = new_key(cli)
    plaintext = record["key"]
    secret_part = plaintext[len(record["prefix"]) :]
    assert len(secret_part) >= 32
    with database.read() as session:
        rows = session.execute(select(ApiKey.__table__)).all()
    assert len(rows) == 1
    stored = " ".join(str(value) for value in rows[0])
    assert plaintext not in stored
    assert secret_part not in stored
    assert secret_part.lower() not in stored.lower()
    assert rows[0].key_hash == hashlib.sha256(plaintext.encode()).hexdigest()


def test_apikey_create_refuses_bad_input(cli: Cli) -> None:
    cli.ok("channel", "create", "Web")
    message = cli.fails("apikey", "create", "--channel", "Web", "--access", "admin")
    assert "Access must be one of: tracking, email." in message
    assert "(unknown_channel)" in cli.fails(
        "apikey", "create", "--channel", "Nope", "--access", "tracking"
    )
    assert "(invalid_expiry)" in cli.fails(
        "apikey", "create", "--channel", "Web", "--access", "tracking", "--expires", "soon"
    )
    assert cli.json("apikey", "list") == []


def test_email_key_is_refused_by_the_tracking_api(cli: Cli, client: TestClient) -> None:
    cli.ok("channel", "create", "Web")
    record = cli.json("apikey", "create", "--channel", "Web", "--access", "email")
    assert record["access"] == "email"
    answer = contacts_answer(client, record["key"])
    assert answer.status_code == 403
    assert answer.json()["code"] == "wrong_access"


def test_apikey_expiry(cli: Cli, client: TestClient, database: Database) -> None:
    cli.ok("channel", "create", "Web")
    # A key that would be expired from the start is a mistake (a wrong year): refused.
    for past in ("2020-01-31", "2020-01-31T12:00:00+02:00"):
        message = cli.fails(
            "apikey", "create", "--channel", "Web", "--access", "tracking", "--expires", past
        )
        assert message == "error: The expiry must be in the future. (invalid_expiry)"
    assert cli.json("apikey", "list") == []
    # A key that has expired since is shown so, and refused.
    expired = factories.api_key(database, "Web", expires_at=datetime(2020, 1, 31, tzinfo=UTC))
    listed = cli.json("apikey", "list")
    assert [(k["prefix"], k["status"]) for k in listed] == [(expired[:12], "expired")]
    answer = contacts_answer(client, expired)
    assert answer.status_code == 401
    assert answer.json()["code"] == "api_key_expired"

    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert new_key(cli, "Web", "--expires", tomorrow)["expires_at"] == f"{tomorrow}T00:00:00+00:00"
    later = new_key(cli, "Web", "--expires", "2999-01-01T00:00:00+02:00")
    assert later["expires_at"] == "2998-12-31T22:00:00+00:00"
    assert later["status"] == "active"
    assert contacts_answer(client, later["key"]).status_code == 200


def test_apikey_list_never_shows_the_key(cli: Cli) -> None:
    cli.ok("channel", "create", "Web")
    cli.ok("channel", "create", "App")
    web = new_key(cli, "Web")
    app = new_key(cli, "App")
    table = cli.ok("apikey", "list")
    listed = cli.json("apikey", "list")
    for record in (web, app):
        secret_part = record["key"][len(record["prefix"]) :]
        assert secret_part not in table
        assert secret_part not in str(listed)
        assert record["prefix"] in table
    assert [k["id"] for k in listed] == [web["id"], app["id"]]
    assert all("key" not in k and k["status"] == "active" for k in listed)
    only_app = cli.json("apikey", "list", "--channel", "App")
    assert [(k["id"], k["channel"]) for k in only_app] == [(app["id"], "App")]
    assert "(unknown_channel)" in cli.fails("apikey", "list", "--channel", "Nope")


def test_disable_enable_revoke_take_effect_at_once(cli: Cli, client: TestClient) -> None:
    cli.ok("channel", "create", "Web")
    record = new_key(cli)
    key, key_id = record["key"], str(record["id"])
    assert contacts_answer(client, key).status_code == 200

    assert cli.json("apikey", "disable", key_id)["status"] == "disabled"
    answer = contacts_answer(client, key)
    assert answer.status_code == 401
    assert answer.json()["code"] == "api_key_disabled"

    assert cli.json("apikey", "enable", key_id)["status"] == "active"
    assert contacts_answer(client, key).status_code == 200

    assert cli.json("apikey", "revoke", key_id)["status"] == "revoked"
    answer = contacts_answer(client, key)
    assert answer.status_code == 401
    assert answer.json()["code"] == "api_key_revoked"

    # Revoking is for good: enabling does not bring the key back.
    assert cli.json("apikey", "enable", key_id)["status"] == "revoked"
    assert contacts_answer(client, key).status_code == 401
    assert cli.json("apikey", "list")[0]["status"] == "revoked"


def test_disabling_one_key_leaves_the_others(cli: Cli, client: TestClient) -> None:
    cli.ok("channel", "create", "Web")
    first, second = new_key(cli), new_key(cli)
    cli.ok("apikey", "disable", str(first["id"]))
    assert contacts_answer(client, first["key"]).status_code == 401
    assert contacts_answer(client, second["key"]).status_code == 200


def test_key_commands_refuse_unknown_ids(cli: Cli) -> None:
    for command in ("disable", "enable", "revoke"):
        assert "No API key with id 42." in cli.fails("apikey", command, "42")


def test_changes_are_audited_as_cli(cli: Cli, database: Database) -> None:
    factories.consent(database, "TrackingConsent")
    cli.ok("channel", "create", "Web")
    cli.ok("channel", "set-consent-gate", "Web", "TrackingConsent")
    record = new_key(cli)
    key_id = str(record["id"])
    for command in ("disable", "enable", "revoke"):
        cli.ok("apikey", command, key_id)

    with database.read() as session:
        events = session.execute(
            select(AuditEvent.actor, AuditEvent.action, AuditEvent.subject)
            .where(AuditEvent.action.like("channel.%") | AuditEvent.action.like("key.%"))
            .order_by(AuditEvent.id)
        ).all()
    assert [tuple(e) for e in events] == [
        ("cli", "channel.created", "Web"),
        ("cli", "channel.consent_gate_set", "Web"),
        ("cli", "key.created", record["prefix"]),
        ("cli", "key.disabled", record["prefix"]),
        ("cli", "key.enabled", record["prefix"]),
        ("cli", "key.revoked", record["prefix"]),
    ]
