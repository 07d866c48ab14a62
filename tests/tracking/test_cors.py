"""CORS for browser clients: allowed origins configurable, preflights answered."""

from __future__ import annotations

from starlette.testclient import TestClient

from contacthub.storage.database import Database
from tests import factories
from tests.factories import TrackingSetup
from tests.tracking.support import API, MakeClient, assert_error

ALLOWED = "https://app.example.com"
OTHER = "https://evil.example.net"


def preflight(
    client: TestClient, path: str, origin: str, method: str = "POST", headers: str | None = None
) -> object:
    request_headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        request_headers["Access-Control-Request-Headers"] = headers
    return client.options(f"{API}{path}", headers=request_headers)


def test_preflight_from_an_allowed_origin_allows_authorization_and_content_type(
    make_client: MakeClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    client = make_client(cors_allowed_origins=[ALLOWED, "https://other.example.com"])
    paths = [
        ("/activities", "POST"),
        ("/contacts", "POST"),
        (f"/contacts/{contact}/consents/TrackingConsent", "POST"),
        (f"/contacts/{contact}/consents/TrackingConsent", "GET"),
        ("/consents/TrackingConsent", "GET"),
    ]

    for path, method in paths:
        answer = client.options(
            f"{API}{path}",
            headers={
                "Origin": ALLOWED,
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert answer.status_code == 200, (path, answer.text)
        assert answer.headers["access-control-allow-origin"] == ALLOWED
        allowed_headers = answer.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed_headers
        assert "content-type" in allowed_headers
        assert method in answer.headers["access-control-allow-methods"]
        assert "Origin" in answer.headers["vary"]


def test_actual_requests_from_an_allowed_origin_carry_the_cors_headers(
    make_client: MakeClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    factories.consent(database, "TrackingConsent")
    client = make_client(cors_allowed_origins=[ALLOWED])
    headers = {**setup.headers, "Origin": ALLOWED}
    body = {
        "channel": setup.channel_guid,
        "contact": contact,
        "activities": [{"type": "click", "value": "x"}],
    }

    answers = [
        client.post(f"{API}/contacts", headers=headers),
        client.post(f"{API}/activities", headers=headers, json=body),
        client.get(f"{API}/consents/TrackingConsent?languageName=en", headers=headers),
        # Errors too, so that browser code can read them.
        client.post(f"{API}/contacts", headers={"Origin": ALLOWED}),
        client.post(f"{API}/activities", headers=headers, json={"channel": "x"}),
    ]

    assert [a.status_code for a in answers] == [200, 207, 200, 401, 400]
    for answer in answers:
        assert answer.headers["access-control-allow-origin"] == ALLOWED


def test_disallowed_origin_is_not_echoed(
    make_client: MakeClient, database: Database, setup: TrackingSetup
) -> None:
    client = make_client(cors_allowed_origins=[ALLOWED])

    refused = client.options(
        f"{API}/activities",
        headers={
            "Origin": OTHER,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    actual = client.post(f"{API}/contacts", headers={**setup.headers, "Origin": OTHER})

    error = assert_error(refused, 400, "cors_refused")
    assert "origin" in error
    assert "access-control-allow-origin" not in refused.headers
    assert actual.status_code == 200  # not a browser: the hub answers, the browser blocks it
    assert "access-control-allow-origin" not in actual.headers


def test_preflight_asking_for_other_headers_or_methods_is_refused(
    make_client: MakeClient, database: Database, setup: TrackingSetup
) -> None:
    client = make_client(cors_allowed_origins=[ALLOWED])

    for method, request_headers in (("POST", "x-api-key"), ("DELETE", "content-type")):
        answer = client.options(
            f"{API}/activities",
            headers={
                "Origin": ALLOWED,
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": request_headers,
            },
        )
        assert_error(answer, 400, "cors_refused")


def test_any_origin_with_a_star(
    make_client: MakeClient, database: Database, setup: TrackingSetup
) -> None:
    client = make_client(cors_allowed_origins=["*"])

    answer = client.options(
        f"{API}/activities",
        headers={
            "Origin": OTHER,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    actual = client.post(f"{API}/contacts", headers={**setup.headers, "Origin": OTHER})

    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "*"
    assert actual.headers["access-control-allow-origin"] == "*"


def test_no_cors_headers_when_no_origin_is_configured(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    refused = client.options(
        f"{API}/activities",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    actual = client.post(f"{API}/contacts", headers={**setup.headers, "Origin": ALLOWED})

    assert_error(refused, 405, "method_not_allowed")
    assert actual.status_code == 200
    for answer in (refused, actual):
        assert not [name for name in answer.headers if name.startswith("access-control-")]
