"""The `enable` and `enable_tracking` switches (the seed's Enable and EnableTracking)."""

from __future__ import annotations

import pytest

from contacthub.storage.database import Database
from contacthub.storage.models import Activity, ConsentAgreement, Contact
from tests import factories
from tests.factories import TrackingSetup
from tests.tracking.support import API, MakeClient, assert_error, count

GUID = "06b035b8-6658-4a1b-b1de-5994e4975fb1"


@pytest.mark.parametrize("switch", ["enable", "enable_tracking"])
def test_switched_off_every_endpoint_answers_404_json(
    make_client: MakeClient, database: Database, setup: TrackingSetup, contact: str, switch: str
) -> None:
    factories.consent(database, "TrackingConsent")
    client = make_client(**{switch: False}, cors_allowed_origins=["https://app.example.com"])
    body = {
        "channel": setup.channel_guid,
        "contact": contact,
        "activities": [{"type": "click", "value": "x"}],
    }
    requests = [
        ("GET", f"{API}/consents/TrackingConsent?languageName=en", None),
        ("POST", f"{API}/contacts", None),
        ("POST", f"{API}/contacts/{contact}/consents/TrackingConsent", {"agree": True}),
        ("GET", f"{API}/contacts/{contact}/consents/TrackingConsent", None),
        ("GET", f"{API}/{contact}/consents/TrackingConsent", None),
        ("POST", f"{API}/activities", body),
        ("GET", f"{API}/openapi.json", None),
    ]

    for method, url, json in requests:
        answer = client.request(method, url, headers=setup.headers, json=json)
        assert_error(answer, 404, "not_found")
        preflight = client.options(
            url,
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": method,
            },
        )
        assert_error(preflight, 404, "not_found")
        assert "access-control-allow-origin" not in preflight.headers

    assert count(database, Contact) == 1
    assert count(database, ConsentAgreement) == 0
    assert count(database, Activity) == 0


def test_switched_off_the_health_check_still_answers(
    make_client: MakeClient, setup: TrackingSetup
) -> None:
    client = make_client(enable_tracking=False)

    assert client.get("/health").status_code == 200


def test_both_switches_on_by_default(make_client: MakeClient, setup: TrackingSetup) -> None:
    client = make_client()

    assert client.post(f"{API}/contacts", headers=setup.headers).status_code == 200
