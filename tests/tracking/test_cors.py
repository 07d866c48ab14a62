"""CORS for browser clients: allowed origins configurable, preflights answered."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from contacthub.channels import cors
from contacthub.storage.database import Database
from contacthub.tracking import endpoints
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


# --- origins managed in the store (admin, API, CLI) ---------------------------------------------

SHORT_TTL = 0.2


def allowed_by_preflight(client: TestClient, origin: str) -> bool:
    """Whether a preflight of POST /activities from `origin` is allowed."""
    answer = client.options(
        f"{API}/activities",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert answer.status_code in (200, 400, 405), answer.text
    allowed = answer.status_code == 200
    assert (answer.headers.get("access-control-allow-origin") == origin) is allowed
    return allowed


def allowed_by_actual_request(client: TestClient, setup: TrackingSetup, origin: str) -> bool:
    answer = client.post(f"{API}/contacts", headers={**setup.headers, "Origin": origin})
    assert answer.status_code == 200, answer.text
    return answer.headers.get("access-control-allow-origin") in (origin, "*")


def add_origin(database: Database, origin: str) -> int:
    with database.write() as session:
        return cors.add_origin(session, origin).id


def remove_origin(database: Database, origin_id: int) -> None:
    with database.write() as session:
        cors.remove_origin(session, origin_id)


def test_an_origin_added_in_the_store_is_allowed_once_the_cache_expires(
    make_client: MakeClient,
    database: Database,
    setup: TrackingSetup,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(endpoints, "CORS_CACHE_SECONDS", SHORT_TTL)
    client = make_client()
    assert not allowed_by_preflight(client, ALLOWED)  # loads the (empty) list

    add_origin(database, ALLOWED)
    # The hot path does not read the store on every request: the cached list still holds.
    assert not allowed_by_preflight(client, ALLOWED)
    time.sleep(SHORT_TTL + 0.05)

    assert allowed_by_preflight(client, ALLOWED)
    assert allowed_by_actual_request(client, setup, ALLOWED)
    assert not allowed_by_preflight(client, OTHER)
    assert not allowed_by_actual_request(client, setup, OTHER)


def test_an_origin_removed_from_the_store_stops_being_allowed(
    make_client: MakeClient,
    database: Database,
    setup: TrackingSetup,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(endpoints, "CORS_CACHE_SECONDS", SHORT_TTL)
    origin_id = add_origin(database, ALLOWED)
    client = make_client()
    assert allowed_by_preflight(client, ALLOWED)

    remove_origin(database, origin_id)
    time.sleep(SHORT_TTL + 0.05)

    refused = client.options(
        f"{API}/activities",
        headers={"Origin": ALLOWED, "Access-Control-Request-Method": "POST"},
    )
    # No origin is left at all: as with nothing configured, no CORS answer.
    assert_error(refused, 405, "method_not_allowed")
    assert not allowed_by_actual_request(client, setup, ALLOWED)


def test_store_and_setting_origins_add_up(
    make_client: MakeClient, database: Database, setup: TrackingSetup
) -> None:
    add_origin(database, "HTTPS://Shop.Example.com:443/")  # stored as browsers send it
    client = make_client(cors_allowed_origins=[ALLOWED])

    assert allowed_by_preflight(client, ALLOWED)
    assert allowed_by_preflight(client, "https://shop.example.com")
    assert allowed_by_actual_request(client, setup, "https://shop.example.com")
    refused = client.options(
        f"{API}/activities",
        headers={"Origin": OTHER, "Access-Control-Request-Method": "POST"},
    )
    assert_error(refused, 400, "cors_refused")


def test_a_star_in_the_store_allows_any_origin(
    make_client: MakeClient, database: Database, setup: TrackingSetup
) -> None:
    add_origin(database, "*")
    client = make_client()

    answer = client.options(
        f"{API}/activities",
        headers={"Origin": OTHER, "Access-Control-Request-Method": "POST"},
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "*"
    assert allowed_by_actual_request(client, setup, OTHER)


def test_the_last_known_origins_are_kept_when_the_store_cannot_be_read(
    make_client: MakeClient,
    database: Database,
    setup: TrackingSetup,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(endpoints, "CORS_CACHE_SECONDS", SHORT_TTL)
    add_origin(database, OTHER)
    client = make_client(cors_allowed_origins=[ALLOWED])
    assert allowed_by_preflight(client, OTHER)

    with database.write() as session:
        session.execute(text("DROP TABLE cors_origins"))
    time.sleep(SHORT_TTL + 0.05)

    # The reload fails (logged); CORS keeps working with what was known, the API answers.
    assert allowed_by_preflight(client, OTHER)
    assert allowed_by_preflight(client, ALLOWED)
    assert allowed_by_actual_request(client, setup, OTHER)


def test_requests_without_an_origin_get_no_cors_headers(
    make_client: MakeClient, database: Database, setup: TrackingSetup
) -> None:
    add_origin(database, ALLOWED)
    client = make_client()

    answer = client.post(f"{API}/contacts", headers=setup.headers)

    assert answer.status_code == 200
    assert not [name for name in answer.headers if name.startswith("access-control-")]


def test_activities_are_answered_alike_with_and_without_an_origin(
    make_client: MakeClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    # Without an Origin, POST /activities is served ahead of the route table (HotPaths); with
    # one, through the route and the CORS middleware. Both must answer the same.
    client = make_client(cors_allowed_origins=[ALLOWED], max_body_bytes=2048)
    body = {"channel": setup.channel_guid, "contact": contact, "activities": [{"type": "click"}]}
    headers = {**setup.headers, "Content-Type": "application/json"}
    requests: list[tuple[dict[str, str], bytes]] = [
        (headers, json.dumps(body).encode()),
        (headers, b"{not json"),
        (headers, json.dumps({**body, "contact": str(uuid.uuid4())}).encode()),
        ({"Content-Type": "application/json"}, json.dumps(body).encode()),
        ({**headers, "Content-Type": "text/plain"}, json.dumps(body).encode()),
        (headers, b" " * 4096),
    ]

    statuses = []
    for sent, content in requests:
        hot = client.post(f"{API}/activities", headers=sent, content=content)
        routed = client.post(
            f"{API}/activities", headers={**sent, "Origin": ALLOWED}, content=content
        )

        assert (hot.status_code, hot.content) == (routed.status_code, routed.content)
        assert {k: v for k, v in hot.headers.items() if k != "date"} == {
            k: v
            for k, v in routed.headers.items()
            if k != "date" and not k.startswith("access-control-") and k != "vary"
        }
        assert routed.headers["access-control-allow-origin"] == ALLOWED
        statuses.append(hot.status_code)
    assert statuses == [207, 400, 404, 401, 415, 413]
