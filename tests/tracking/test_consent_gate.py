"""The opt-in per-channel consent gate: activities only of contacts who agreed to a consent."""

from __future__ import annotations

import httpx2
import pytest
from starlette.testclient import TestClient

from contacthub.storage.database import Database
from contacthub.storage.models import Activity
from tests import factories
from tests.factories import TrackingSetup
from tests.tracking.support import (
    API,
    activities_of,
    assert_error,
    contact_row,
    count,
    post_activities,
    results_of,
)

ACTIVITIES = [
    {"type": "click", "value": "x"},
    {"type": "datainput", "value": "Form", "contactFields": {"ContactFirstName": "Luke"}},
]


def set_agreement(
    client: TestClient, setup: TrackingSetup, contact: str, agree: bool, consent: str
) -> httpx2.Response:
    return client.post(
        f"{API}/contacts/{contact}/consents/{consent}", headers=setup.headers, json={"agree": agree}
    )


@pytest.fixture
def gated(database: Database, setup: TrackingSetup) -> TrackingSetup:
    """The channel of `setup`, requiring TrackingConsent."""
    factories.consent(database, "TrackingConsent")
    factories.require_consent(database, setup.channel_name, "TrackingConsent")
    return setup


def test_without_agreement_activities_are_refused_and_nothing_stored(
    client: TestClient, database: Database, gated: TrackingSetup, contact: str
) -> None:
    answer = post_activities(client, gated, contact, ACTIVITIES)

    error = assert_error(answer, 403, "consent_required")
    assert "consent" in error
    assert count(database, Activity) == 0
    assert contact_row(database, contact).first_name is None


def test_agree_then_revoke(
    client: TestClient, database: Database, gated: TrackingSetup, contact: str
) -> None:
    assert set_agreement(client, gated, contact, True, "TrackingConsent").status_code == 200

    accepted = post_activities(client, gated, contact, ACTIVITIES)

    assert results_of(accepted) == [{"status": 202}] * 2
    assert len(activities_of(database, contact)) == 2

    assert set_agreement(client, gated, contact, False, "TrackingConsent").status_code == 200

    assert_error(post_activities(client, gated, contact, ACTIVITIES), 403, "consent_required")
    assert len(activities_of(database, contact)) == 2

    set_agreement(client, gated, contact, True, "TrackingConsent")
    assert results_of(post_activities(client, gated, contact, ACTIVITIES)) == [{"status": 202}] * 2


def test_another_consent_does_not_open_the_gate(
    client: TestClient, database: Database, gated: TrackingSetup, contact: str
) -> None:
    factories.consent(database, "MarketingConsent")
    set_agreement(client, gated, contact, True, "MarketingConsent")

    assert_error(post_activities(client, gated, contact, ACTIVITIES), 403, "consent_required")


def test_the_gate_is_per_contact(
    client: TestClient, database: Database, gated: TrackingSetup, contact: str
) -> None:
    other = factories.contact(database)
    set_agreement(client, gated, other, True, "TrackingConsent")

    assert_error(post_activities(client, gated, contact, ACTIVITIES), 403, "consent_required")
    assert results_of(post_activities(client, gated, other, ACTIVITIES)) == [{"status": 202}] * 2


def test_channels_without_a_gate_are_unaffected(
    client: TestClient, database: Database, gated: TrackingSetup, contact: str
) -> None:
    website = factories.tracking_channel(database, "Website")

    assert (
        results_of(post_activities(client, website, contact, ACTIVITIES)) == [{"status": 202}] * 2
    )


def test_the_gate_leaves_contacts_and_consent_endpoints_open(
    client: TestClient, database: Database, gated: TrackingSetup, contact: str
) -> None:
    # A client must be able to create a contact and record its agreement before tracking it.
    headers = gated.headers
    assert client.post(f"{API}/contacts", headers=headers).status_code == 200
    assert client.get(f"{API}/consents/TrackingConsent", headers=headers).status_code == 200
    assert (
        client.get(f"{API}/contacts/{contact}/consents/TrackingConsent", headers=headers).json()[
            "agreed"
        ]
        is False
    )


def test_turning_the_gate_off_opens_the_channel_again(
    client: TestClient, database: Database, gated: TrackingSetup, contact: str
) -> None:
    assert_error(post_activities(client, gated, contact, ACTIVITIES), 403, "consent_required")

    factories.require_consent(database, gated.channel_name, None)

    assert results_of(post_activities(client, gated, contact, ACTIVITIES)) == [{"status": 202}] * 2


def test_unknown_contact_is_still_404_on_a_gated_channel(
    client: TestClient, database: Database, gated: TrackingSetup
) -> None:
    unknown = "06b035b8-6658-4a1b-b1de-5994e4975fb1"

    assert_error(post_activities(client, gated, unknown, ACTIVITIES), 404, "unknown_contact")
