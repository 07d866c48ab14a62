"""Export and erasure (SPEC §5), on SQLite and PostgreSQL, with data made through the tracking
API and the email handlers."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from contacthub.analytics import rollups
from contacthub.contacts import privacy
from contacthub.errors import InvalidInput, NotFound
from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent
from contacthub.storage.types import utcnow
from tests.contacts.support import (
    BROWSER,
    CONSENT,
    PRICING,
    Scenario,
    Stored,
    click_email,
    open_email,
    scenario,
    stored_about,
    track,
)
from tests.email.tracking_support import ANNA, BOB, SALE, logged
from tests.tracking.support import API, assert_error, post_activities

NOTHING = Stored(0, 0, 0, 0, 0, 0, 0)


def audit_events(database: Database) -> list[tuple[str, str, str, str | None]]:
    with database.read() as session:
        return [
            (e.actor, e.action, e.subject, e.details)
            for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))
        ]


def export(database: Database, guid: str, actor: str = "ada@example.com") -> dict[str, Any]:
    with database.write() as session:
        return privacy.export_contact(session, guid, actor)


def erase(database: Database, guid: str, actor: str = "ada@example.com") -> privacy.Erasure:
    with database.write() as session:
        return privacy.erase_contact(session, guid, actor)


def test_the_export_holds_everything_stored_about_the_contact(
    client: TestClient, database: Database
) -> None:
    world = scenario(client, database)
    data = export(database, world.anna.upper())  # any spelling of the GUID
    json.dumps(data)  # plain JSON data, nothing to convert
    assert data["format"] == "contacthub.contact-export"
    assert data["version"] == 1
    contact = data["contact"]
    assert isinstance(contact, dict)
    assert contact["guid"] == world.anna
    fields = contact["fields"]
    assert fields["ContactEmail"] == ANNA
    assert fields["ContactFirstName"] == "Anna"
    assert fields["ContactLastName"] == "Smith"
    assert fields["ContactCity"] == "Brno"
    assert fields["ContactBirthday"] == "1990-05-31"
    assert fields["ContactCountry"] is None
    assert len(fields) == 15

    agreements = data["consent_agreements"]
    assert [(a["consent"], a["agreed"], a["revision"], a["channel"]) for a in agreements] == [
        (CONSENT, True, 1, "Mobile app"),
        (CONSENT, False, 2, "Mobile app"),
        (CONSENT, True, 2, "Mobile app"),
    ]

    activities = data["activities"]
    assert [(a["type"], a["channel"]) for a in activities] == [
        ("pagevisit", "Mobile app"),
        ("click", "Mobile app"),
        ("datainput", "Mobile app"),
        ("emailopen", None),
        ("emailclick", None),
    ]
    assert activities[0]["url"] == PRICING
    assert activities[0]["referrer"] == "https://q.example/"
    assert activities[0]["title"] == "Page visit 'Pricing'"
    assert activities[4]["url"] == "https://shop.example.com/spring?name=Anna"

    [subscription] = data["subscriptions"]
    assert subscription["newsletter"] == "Weekly"
    assert subscription["email"] == ANNA
    assert subscription["status"] == "subscribed"
    [delivery] = data["deliveries"]
    assert delivery["issue"] == world.sent.guid
    assert delivery["status"] == "sent"
    assert delivery["subject"] == "Spring news"
    opens = data["email_opens"]
    assert [(o["issue"], o["machine"], o["user_agent"]) for o in opens] == [
        (world.sent.guid, False, BROWSER),
        (world.sent.guid, True, opens[1]["user_agent"]),
    ]
    assert opens[1]["machine_reason"]
    [click] = data["email_clicks"]
    assert click["link"] == world.sent.links[SALE]
    assert click["url"] == SALE
    assert click["machine"] is False

    # Nothing of Bob's.
    assert world.bob not in json.dumps(data)
    assert BOB not in json.dumps(data)
    assert audit_events(database)[-1] == (
        "ada@example.com",
        "contact.exported",
        world.anna,
        None,
    )


def test_an_anonymous_contact_exports_empty_lists(client: TestClient, database: Database) -> None:
    world = scenario(client, database)
    data = export(database, world.bob)
    assert data["consent_agreements"] == []
    assert data["subscriptions"] == []
    assert data["deliveries"] == []
    assert data["email_opens"] == []
    assert data["email_clicks"] == []
    assert [a["type"] for a in data["activities"]] == ["pagevisit"]


def _totals(database: Database) -> tuple[int, dict[str, int]]:
    today = utcnow().date()
    with database.read() as session:
        counts = rollups.activity_counts(session, today - timedelta(days=1), today)
        pages = dict(rollups.top_keys(session, "page", today - timedelta(days=1), today))
    return sum(row.count for row in counts), pages


def test_erasure_removes_everything_and_nothing_else(
    client: TestClient, database: Database
) -> None:
    world = scenario(client, database)
    anna_subscriber = world.sent.subscriber_ids[ANNA]
    bob_subscriber = world.sent.subscriber_ids[BOB]
    bob_contact = world.sent.contact_ids[BOB]
    before = stored_about(database, world.anna_id, anna_subscriber)
    assert before.activities == 5
    assert (before.agreements, before.subscribers, before.deliveries) == (3, 1, 1)
    assert (before.opens, before.clicks) == (2, 1)
    bob_before = stored_about(database, bob_contact, bob_subscriber)
    rollups.refresh(database)
    total_before, pages_before = _totals(database)
    assert pages_before[PRICING] == 2  # Anna's and Bob's visits

    erasure = erase(database, world.anna)

    assert erasure.as_dict() == {
        "erased": world.anna,
        "activities": 5,
        "consent_agreements": 3,
        "subscriptions": 1,
        "deliveries": 1,
        "email_opens": 2,
        "email_clicks": 1,
    }
    assert stored_about(database, world.anna_id, anna_subscriber) == NOTHING
    assert stored_about(database, bob_contact, bob_subscriber) == bob_before
    # The dashboard's counts lose Anna's activities, and only hers.
    total_after, pages_after = _totals(database)
    assert total_after == total_before - 5
    assert pages_after[PRICING] == 1
    # The audit log names the GUID only: no address, no name, no details.
    actor, action, subject, details = audit_events(database)[-1]
    assert (actor, action, subject, details) == (
        "ada@example.com",
        "contact.erased",
        world.anna,
        None,
    )
    everything = json.dumps(audit_events(database)).lower()
    assert "anna" not in everything
    assert "smith" not in everything


def test_activities_not_yet_rolled_up_are_erased_too(
    client: TestClient, database: Database
) -> None:
    world = scenario(client, database)
    rollups.refresh(database)
    # One more activity after the rollups' high mark: counted live, not in the rollups yet.
    track(client, world.setup, world.anna, {"type": "pagevisit", "url": PRICING})
    total_before, pages_before = _totals(database)
    assert pages_before[PRICING] == 3
    erase(database, world.anna)
    total_after, pages_after = _totals(database)
    assert total_after == total_before - 6
    assert pages_after[PRICING] == 1
    rollups.refresh(database)
    assert _totals(database) == (total_after, pages_after)


def test_after_erasure_the_tracking_api_treats_the_guid_as_unknown(
    client: TestClient, database: Database
) -> None:
    world = scenario(client, database)
    erase(database, world.anna)
    answer = post_activities(client, world.setup, world.anna, [{"type": "click", "value": "x"}])
    assert_error(answer, 404, "unknown_contact")
    consent_url = f"{API}/contacts/{world.anna}/consents/{CONSENT}"
    assert_error(client.get(consent_url, headers=world.setup.headers), 404, "unknown_contact")
    answer = client.post(consent_url, headers=world.setup.headers, json={"agree": True})
    assert_error(answer, 404, "unknown_contact")
    # The old email's links still answer, but log nothing about the erased address.
    stored = logged(database)
    open_email(client, world.sent, BROWSER)
    assert click_email(client, world.sent) == "https://shop.example.com/spring?name="
    assert logged(database) == stored
    # Bob is untouched and still tracked.
    track(client, world.setup, world.bob, {"type": "click", "value": "still here"})


def test_erasing_twice_or_an_unknown_guid_is_not_found(
    client: TestClient, database: Database
) -> None:
    world: Scenario = scenario(client, database)
    erase(database, world.anna)
    for guid in (world.anna, "not-a-guid", "", "ada@example.com"):
        with database.write() as session, pytest.raises(NotFound) as caught:
            privacy.erase_contact(session, guid, "x")
        assert caught.value.code == "unknown_contact"
        with database.write() as session, pytest.raises(NotFound):
            privacy.export_contact(session, guid, "x")
    assert [e for e in audit_events(database) if e[1] == "contact.erased"] == [
        ("ada@example.com", "contact.erased", world.anna, None)
    ]


def test_the_confirmation_takes_the_guid_or_the_email(
    client: TestClient, database: Database
) -> None:
    world = scenario(client, database)
    for wrong in ("", "anna", world.bob, "bob@example.com", world.anna[:-1]):
        with database.write() as session, pytest.raises(InvalidInput) as caught:
            privacy.erase_confirmed(session, world.anna, wrong, "x")
        assert caught.value.code == "confirmation_mismatch"
        assert caught.value.field == "confirm"
    assert stored_about(database, world.anna_id, world.sent.subscriber_ids[ANNA]).contact == 1
    with database.write() as session:
        privacy.erase_confirmed(session, world.anna, " ANNA@Example.com ", "x")
    with database.write() as session:
        privacy.erase_confirmed(session, world.bob, world.bob.upper().replace("-", ""), "x")
    assert [e[2] for e in audit_events(database) if e[1] == "contact.erased"] == [
        world.anna,
        world.bob,
    ]


def test_the_erasure_preview_counts_what_would_go(client: TestClient, database: Database) -> None:
    world = scenario(client, database)
    with database.read() as session:
        preview = privacy.erasure_preview(session, world.anna)
    assert (preview.guid, preview.email, preview.name) == (world.anna, ANNA, "Anna Smith")
    assert (preview.activities, preview.consent_agreements, preview.subscriptions) == (5, 3, 1)
