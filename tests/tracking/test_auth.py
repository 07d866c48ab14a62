"""API keys on every tracking endpoint: missing, malformed, unknown, disabled, expired, revoked,
of the wrong access type, or of another channel. A refused request stores nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient

from contacthub.channels import service as channels
from contacthub.storage.database import Database
from contacthub.storage.models import Activity, ConsentAgreement, Contact
from tests import factories
from tests.factories import TrackingSetup
from tests.tracking.support import API, api_key_id, assert_error, count, post_activities


@dataclass(frozen=True)
class Endpoint:
    name: str
    call: Callable[[TestClient, dict[str, Any]], httpx2.Response]


def endpoints(setup: TrackingSetup, contact: str) -> list[Endpoint]:
    """Every tracking endpoint, each called with a good request but for its headers."""
    body = {
        "channel": setup.channel_guid,
        "contact": contact,
        "activities": [{"type": "click", "value": "x"}],
    }
    return [
        Endpoint(
            "consent texts",
            lambda c, h: c.get(f"{API}/consents/TrackingConsent?languageName=en", headers=h),
        ),
        Endpoint("create contact", lambda c, h: c.post(f"{API}/contacts", headers=h)),
        Endpoint(
            "agree",
            lambda c, h: c.post(
                f"{API}/contacts/{contact}/consents/TrackingConsent",
                headers=h,
                json={"agree": True},
            ),
        ),
        Endpoint(
            "check",
            lambda c, h: c.get(f"{API}/contacts/{contact}/consents/TrackingConsent", headers=h),
        ),
        Endpoint(
            "check (seed URI)",
            lambda c, h: c.get(f"{API}/{contact}/consents/TrackingConsent", headers=h),
        ),
        Endpoint("activities", lambda c, h: c.post(f"{API}/activities", headers=h, json=body)),
    ]


@pytest.fixture(autouse=True)
def _consent(database: Database) -> None:
    factories.consent(database, "TrackingConsent")


def assert_refused_everywhere(
    client: TestClient,
    database: Database,
    setup: TrackingSetup,
    contact: str,
    headers: dict[str, Any],
    status: int,
    code: str,
) -> None:
    for endpoint in endpoints(setup, contact):
        answer = endpoint.call(client, headers)
        assert answer.status_code == status, (endpoint.name, answer.text)
        assert_error(answer, status, code)
        if status == 401:
            assert answer.headers["www-authenticate"] == "Bearer", endpoint.name
    assert count(database, Contact) == 1  # only the fixture's contact
    assert count(database, ConsentAgreement) == 0
    assert count(database, Activity) == 0


def assert_accepted_everywhere(
    client: TestClient, setup: TrackingSetup, contact: str, headers: dict[str, str]
) -> None:
    for endpoint in endpoints(setup, contact):
        answer = endpoint.call(client, headers)
        assert answer.status_code in (200, 207), (endpoint.name, answer.text)


def test_a_valid_key_opens_every_endpoint(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    assert_accepted_everywhere(client, setup, contact, setup.headers)

    assert count(database, Contact) == 2
    assert count(database, ConsentAgreement) == 1
    assert count(database, Activity) == 1


def test_scheme_is_case_insensitive_and_spaces_around_the_key_are_ignored(
    client: TestClient, setup: TrackingSetup, contact: str
) -> None:
    for header in (f"bearer {setup.key}", f"BEARER {setup.key}", f"Bearer   {setup.key}  "):
        assert_accepted_everywhere(client, setup, contact, {"Authorization": header})


def test_missing_key(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    assert_refused_everywhere(client, database, setup, contact, {}, 401, "missing_api_key")


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNzd29yZA==", "Token abc", "chk_justthekey"],
)
def test_malformed_authorization_header(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str, header: str
) -> None:
    headers = {"Authorization": header}

    assert_refused_everywhere(
        client, database, setup, contact, headers, 401, "invalid_authorization"
    )


def test_unknown_key(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    for key in ("chk_unknown", setup.key + "x", setup.key[:-1], setup.key.upper(), "é" * 10):
        headers: dict[str, Any] = {"Authorization": f"Bearer {key}".encode()}  # UTF-8 bytes too
        assert_refused_everywhere(client, database, setup, contact, headers, 401, "invalid_api_key")


def test_disabled_key_and_enabled_again(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    key_id = api_key_id(database, setup.key)
    with database.write() as session:
        channels.set_api_key_enabled(session, key_id, False)

    assert_refused_everywhere(
        client, database, setup, contact, setup.headers, 401, "api_key_disabled"
    )

    with database.write() as session:
        channels.set_api_key_enabled(session, key_id, True)
    assert_accepted_everywhere(client, setup, contact, setup.headers)


def test_expired_key(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    expired = factories.api_key(
        database, setup.channel_name, expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    headers = {"Authorization": f"Bearer {expired}"}

    assert_refused_everywhere(client, database, setup, contact, headers, 401, "api_key_expired")


def test_key_that_expires_later_works(
    client: TestClient, setup: TrackingSetup, contact: str, database: Database
) -> None:
    later = factories.api_key(
        database, setup.channel_name, expires_at=datetime.now(UTC) + timedelta(hours=1)
    )

    assert_accepted_everywhere(client, setup, contact, {"Authorization": f"Bearer {later}"})


def test_revoked_key(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    with database.write() as session:
        channels.revoke_api_key(session, api_key_id(database, setup.key))

    assert_refused_everywhere(
        client, database, setup, contact, setup.headers, 401, "api_key_revoked"
    )


def test_revoking_one_key_leaves_the_channels_other_keys_working(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    other = factories.api_key(database, setup.channel_name)
    with database.write() as session:
        channels.revoke_api_key(session, api_key_id(database, setup.key))

    assert_accepted_everywhere(client, setup, contact, {"Authorization": f"Bearer {other}"})


def test_email_key_is_the_wrong_access_type(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    email_key = factories.api_key(database, setup.channel_name, access="email")
    headers = {"Authorization": f"Bearer {email_key}"}

    assert_refused_everywhere(client, database, setup, contact, headers, 403, "wrong_access")


def test_channel_must_be_the_keys_own(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    website = factories.tracking_channel(database, "Website")

    # The mobile app's key with the website's channel, and the other way round.
    for key_of, channel_of in ((setup, website), (website, setup)):
        body = {
            "channel": channel_of.channel_guid,
            "contact": contact,
            "activities": [{"type": "click", "value": "x"}],
        }
        answer = client.post(f"{API}/activities", headers=key_of.headers, json=body)
        error = assert_error(answer, 403, "channel_mismatch")
        assert "channel" in error
    assert count(database, Activity) == 0


def test_channel_that_does_not_exist_is_not_the_keys_own(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    body = {
        "channel": "a3f4bc8b-6d84-454f-8215-cbec70bfaadd",  # the seed's example identifier
        "contact": contact,
        "activities": [{"type": "click", "value": "x"}],
    }

    answer = client.post(f"{API}/activities", headers=setup.headers, json=body)

    assert_error(answer, 403, "channel_mismatch")
    assert count(database, Activity) == 0


def test_a_key_revoked_while_the_hub_runs_is_refused_at_once(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    activities = [{"type": "click", "value": "x"}]
    assert post_activities(client, setup, contact, activities).status_code == 207

    with database.write() as session:
        channels.revoke_api_key(session, api_key_id(database, setup.key))

    assert_error(post_activities(client, setup, contact, activities), 401, "api_key_revoked")
    assert count(database, Activity) == 1
