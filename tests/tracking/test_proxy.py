"""The backend proxy (contacthub/tracking/proxy.py) in front of a real hub server.

The hub runs as `contacthub serve` on a free port of 127.0.0.1; the proxy is the ASGI app a
website would mount, called without any key, as browser code would call it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from starlette.testclient import TestClient

from contacthub.errors import InvalidInput
from contacthub.storage.database import Database
from contacthub.storage.models import Activity, Contact
from contacthub.tracking.proxy import MAX_BODY_BYTES, create_proxy_app
from tests import factories
from tests.factories import TrackingSetup
from tests.servers import HubServer, free_port, running_hub
from tests.tracking.support import API, activities_of, assert_error, count, results_of


@pytest.fixture
def hub(database_url: str, database: Database, tmp_path: Path) -> Iterator[HubServer]:
    with running_hub(database_url, tmp_path / "hub.log") as server:
        yield server


def proxy_to(base_url: str, key: str) -> TestClient:
    return TestClient(create_proxy_app(base_url, key))


def test_the_tracking_api_through_the_proxy_with_the_key_added(
    hub: HubServer, database: Database, setup: TrackingSetup
) -> None:
    factories.consent(database, "TrackingConsent", "en", "<p>en</p>", "<p>en full</p>")
    factories.consent_text(database, "TrackingConsent", "cs", "<p>cs</p>", "<p>cs full</p>")

    with proxy_to(hub.base_url, setup.key) as proxy:
        # A key the browser code sends (say, a leaked or made-up one) is replaced, not kept.
        created = proxy.post(
            f"{API}/contacts",
            headers={"Content-Type": "application/json", "Authorization": "Bearer chk_made_up"},
        )
        contact = created.json()["contact"]
        texts = proxy.get(f"{API}/consents/TrackingConsent?languageName=cs")
        agreed = proxy.post(
            f"{API}/contacts/{contact}/consents/TrackingConsent", json={"agree": True}
        )
        checked = proxy.get(f"{API}/contacts/{contact}/consents/TrackingConsent")
        checked_short = proxy.get(f"{API}/{contact}/consents/TrackingConsent")
        logged = proxy.post(
            f"{API}/activities",
            json={
                "channel": setup.channel_guid,
                "contact": contact,
                "activities": [
                    {"type": "click", "value": "Buy"},
                    {"type": "click"},
                ],
            },
        )

    assert created.status_code == 200
    assert texts.json() == {"shortText": "<p>cs</p>", "fullText": "<p>cs full</p>"}
    assert texts.headers["content-type"] == "application/json"
    assert agreed.json() == {"agreed": True, "isAgreed": True}
    assert checked.json() == checked_short.json() == {"agreed": True, "isAgreed": True}
    ok, refused = results_of(logged)
    assert ok == {"status": 202}
    assert refused["status"] == 400
    assert [a.title for a in activities_of(database, contact)] == ["Clicked 'Buy'"]


def test_hub_errors_pass_through_unchanged(
    hub: HubServer, database: Database, setup: TrackingSetup, contact: str
) -> None:
    with proxy_to(hub.base_url, setup.key) as proxy:
        unknown_consent = proxy.get(f"{API}/consents/Missing")
        malformed = proxy.post(
            f"{API}/activities", headers={"Content-Type": "application/json"}, content=b"{"
        )
        wrong_type = proxy.post(
            f"{API}/activities", headers={"Content-Type": "text/plain"}, content=b"{}"
        )
    with proxy_to(hub.base_url, "chk_not_a_key") as wrong_key:
        refused = wrong_key.post(f"{API}/contacts")

    assert_error(unknown_consent, 404, "unknown_consent")
    assert_error(malformed, 400, "malformed_json")
    assert_error(wrong_type, 415, "unsupported_media_type")
    assert_error(refused, 401, "invalid_api_key")
    assert count(database, Contact) == 1  # the fixture's
    assert count(database, Activity) == 0


def test_only_tracking_routes_are_forwarded(
    hub: HubServer, database: Database, setup: TrackingSetup
) -> None:
    # The hub itself answers these; the proxy must not pass them on.
    assert httpx2.get(f"{hub.base_url}/health").status_code == 200
    assert httpx2.get(f"{hub.base_url}{API}/openapi.json").status_code == 200

    with proxy_to(hub.base_url, setup.key) as proxy:
        not_forwarded = [
            proxy.get("/health"),
            proxy.get(f"{API}/openapi.json"),
            proxy.get("/v1/emails/opens"),
            proxy.get(f"{API}/contacts"),  # the route exists, but not for GET
            proxy.get("/"),
            proxy.get(f"{API}/../health"),
        ]

    for answer in not_forwarded:
        assert answer.status_code in (404, 405), answer.text
        assert_error(answer, answer.status_code)
    assert not_forwarded[3].status_code == 405
    assert count(database, Contact) == 0


def test_a_body_over_the_limit_is_refused_before_forwarding() -> None:
    # Nothing listens on this port: an answer other than 413 would be the proxy's 502.
    with proxy_to(f"http://127.0.0.1:{free_port()}", "chk_any") as proxy:
        declared = proxy.post(
            f"{API}/activities",
            headers={"Content-Type": "application/json"},
            content=b" " * (MAX_BODY_BYTES + 1),
        )
        streamed = proxy.post(
            f"{API}/activities",
            headers={"Content-Type": "application/json"},
            content=iter([b" " * MAX_BODY_BYTES, b" "]),
        )

    assert_error(declared, 413, "body_too_large")
    assert_error(streamed, 413, "body_too_large")


def test_a_hub_that_does_not_answer_is_502() -> None:
    with proxy_to(f"http://127.0.0.1:{free_port()}", "chk_any") as proxy:
        answer = proxy.post(f"{API}/contacts")

    assert answer.status_code == 502
    assert answer.json() == {"error": "The hub did not answer.", "code": "bad_gateway"}


@pytest.mark.parametrize(
    "hub_url", ["notaurl", "hub.example.com", "ftp://hub.example.com", "https://", "https://h/?a=1"]
)
def test_the_proxy_refuses_a_hub_url_it_could_never_reach(hub_url: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        create_proxy_app(hub_url, "chk_key")
    assert refused.value.code == "invalid_hub_url"
    assert refused.value.message.startswith("The hub URL ")
