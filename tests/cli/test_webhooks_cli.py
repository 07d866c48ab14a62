"""`contacthub webhooks …`: endpoints, their deliveries, retry and replay from the command line."""

from __future__ import annotations

import json

from sqlalchemy import select

from contacthub.events import endpoints
from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent, WebhookDelivery
from tests import factories
from tests.cli.conftest import Cli
from tests.webhooks.support import T0, dead_delivery, hub_with_deliveries

URL = "https://crm.example.com/hooks/contacthub"


def actions(database: Database) -> list[tuple[str, str]]:
    with database.read() as session:
        return [
            (a, b)
            for a, b in session.execute(
                select(AuditEvent.actor, AuditEvent.action).order_by(AuditEvent.id)
            )
        ]


def test_add_prints_the_secret_once_and_list_shows_health(cli: Cli, database: Database) -> None:
    factories.tracking_channel(database, "Web")
    out = cli.ok(
        "webhooks",
        "add",
        "CRM",
        URL,
        "--event",
        "activity.stored",
        "--event",
        "contact.created",
        "--activity-type",
        "pagevisit",
        "--channel",
        "Web",
    )
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("whsec_")
    assert "Copy the signing secret now" in out
    with database.read() as session:
        [endpoint] = endpoints.list_endpoints(session)
        assert endpoint.secret == secret
        guid = str(endpoint.guid)
    listed = cli.json("webhooks", "list")
    assert [(w["guid"], w["events"], w["channels"]) for w in listed] == [
        (guid, ["contact.created", "activity.stored"], ["Web"])
    ]
    assert "secret" not in listed[0]
    assert (listed[0]["failures"], listed[0]["backlog"]) == (0, 0)
    table = cli.ok("webhooks", "list")
    assert guid in table
    assert "CRM" in table
    assert secret not in table
    made = cli.json("webhooks", "add", "All", URL, "--disabled")
    assert made["secret"].startswith("whsec_")
    assert (made["events"], made["enabled"]) == (["*"], False)
    assert actions(database) == [("cli", "webhook.created")] * 2


def test_update_enable_disable_rotate_remove(cli: Cli, database: Database) -> None:
    guid = hub_with_deliveries(database)
    changed = cli.json(
        "webhooks", "update", guid, "--url", URL + "?v=2", "--event", "contact.updated"
    )
    assert (changed["url"], changed["events"], changed["name"]) == (
        URL + "?v=2",
        ["contact.updated"],
        "CRM",
    )
    assert cli.json("webhooks", "disable", guid)["enabled"] is False
    assert cli.json("webhooks", "enable", guid)["enabled"] is True
    rotated = cli.json("webhooks", "rotate-secret", guid)
    with database.read() as session:
        assert endpoints.get_endpoint(session, guid).secret == rotated["secret"]
    assert cli.json("webhooks", "remove", guid)["name"] == "CRM"
    assert "unknown_webhook" in cli.fails("webhooks", "remove", guid)
    assert [a for _, a in actions(database)] == [
        "webhook.updated",
        "webhook.disabled",
        "webhook.enabled",
        "webhook.secret_rotated",
        "webhook.deleted",
    ]


def test_refusals_exit_1_with_the_code(cli: Cli, database: Database) -> None:
    assert "invalid_url" in cli.fails("webhooks", "add", "CRM", "ftp://crm.example.com/")
    assert "invalid_events" in cli.fails("webhooks", "add", "CRM", URL, "--event", "nope")
    assert "unknown_channel" in cli.fails("webhooks", "add", "CRM", URL, "--channel", "Nowhere")
    result = cli("webhooks", "add", "CRM", "https://x.example/#a", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stderr) == {
        "error": "The webhook URL may not carry a fragment or credentials.",
        "code": "invalid_url",
        "field": "url",
    }
    assert "invalid_since" in cli.fails(
        "webhooks", "replay", "00000000-0000-0000-0000-000000000000", "--since", "soon"
    )
    assert actions(database) == []


def test_deliveries_retry_replay(cli: Cli, database: Database) -> None:
    guid = hub_with_deliveries(database)
    listed = cli.json("webhooks", "deliveries", guid)
    assert [d["state"] for d in listed] == ["pending", "dead", "delivered"]
    assert len(cli.json("webhooks", "deliveries", guid, "--limit", "2")) == 2
    table = cli.ok("webhooks", "deliveries", guid)
    assert "dead" in table
    assert "503" in table
    dead = dead_delivery(database, guid)
    assert cli.json("webhooks", "retry", str(dead))["state"] == "pending"
    assert "delivery_not_dead" in cli.fails("webhooks", "retry", str(dead))
    assert "unknown_delivery" in cli.fails("webhooks", "retry", "999999")
    replayed = cli.json("webhooks", "replay", guid, "--since", T0.date().isoformat())
    assert replayed == {"events": 3, "since": T0.replace(hour=0).isoformat()}
    with database.read() as session:
        assert sorted(session.scalars(select(WebhookDelivery.state))) == ["pending"] * 3
    assert actions(database) == [("cli", "webhook.retried"), ("cli", "webhook.replayed")]
