"""The headless email API (/v1/emails/*), on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from contacthub.email.hashing import LinkSigner, Purpose
from contacthub.storage.database import Database
from tests import factories
from tests.email.test_endpoints import BROWSER_VIEW_POLICY
from tests.email.tracking_support import (
    ANNA,
    BLOG,
    SALE,
    SentIssue,
    logged,
    sent_issue,
    subscriber_status,
)

SIGNER = LinkSigner(["test-secret"])
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Version/17.4 Safari"


@pytest.fixture
def sent(database: Database) -> SentIssue:
    return sent_issue(database)


@pytest.fixture
def key(database: Database) -> dict[str, str]:
    setup = factories.tracking_channel(database, "Website", access="email")
    return setup.headers


def open_body(sent: SentIssue, **extra: Any) -> dict[str, Any]:
    return {
        "issueGuid": sent.guid,
        "email": ANNA,
        "hash": SIGNER.sign(Purpose.OPEN, sent.guid, ANNA),
        "userAgent": BROWSER,
        "ip": "198.51.100.7",
        **extra,
    }


def click_body(sent: SentIssue, target: str = SALE, **extra: Any) -> dict[str, Any]:
    guid = sent.links[target]
    return {
        "linkGuid": guid,
        "email": ANNA,
        "hash": SIGNER.sign(Purpose.CLICK, guid, ANNA),
        "userAgent": BROWSER,
        "ip": "198.51.100.7",
        **extra,
    }


def test_an_open_is_logged(
    client: TestClient, database: Database, sent: SentIssue, key: dict[str, str]
) -> None:
    answer = client.post("/v1/emails/opens", json=open_body(sent), headers=key)
    assert answer.status_code == 200
    assert answer.json() == {"logged": True, "isMachine": False, "machineReason": None}
    assert logged(database).opens == [(sent.subscriber_ids[ANNA], False, None)]


def test_property_names_match_in_any_case_and_alias(
    client: TestClient, database: Database, sent: SentIssue, key: dict[str, str]
) -> None:
    body = {
        "IssueGUID": sent.guid,
        "Recipient": ANNA,
        "HASH": SIGNER.sign(Purpose.OPEN, sent.guid, ANNA),
        "UserAgent": BROWSER,
    }
    assert client.post("/v1/emails/opens", json=body, headers=key).json()["logged"] is True


def test_the_website_tells_who_its_visitor_was(
    client: TestClient, database: Database, sent: SentIssue, key: dict[str, str]
) -> None:
    body = open_body(sent, userAgent="Mozilla/5.0", ip="17.58.1.2")  # Apple's proxy
    answer = client.post("/v1/emails/opens", json=body, headers=key).json()
    assert answer == {
        "logged": True,
        "isMachine": True,
        "machineReason": "Apple Mail Privacy Protection",
    }
    head = client.post("/v1/emails/opens", json=open_body(sent, method="head"), headers=key)
    assert head.json()["machineReason"] == "HEAD request"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"hash": "0" * 64}, "invalid_hash"),
        ({"hash": None}, "invalid_hash"),
        ({"email": "bob@example.com"}, "invalid_hash"),
    ],
)
def test_an_open_with_a_bad_hash_is_not_logged(
    client: TestClient,
    database: Database,
    sent: SentIssue,
    key: dict[str, str],
    change: dict[str, Any],
    reason: str,
) -> None:
    body = {k: v for k, v in {**open_body(sent), **change}.items() if v is not None}
    answer = client.post("/v1/emails/opens", json=body, headers=key)
    assert answer.status_code == 200
    assert answer.json() == {"logged": False, "reason": reason}
    assert logged(database).opens == []


def test_an_open_of_an_address_not_subscribed_is_not_logged(
    client: TestClient, database: Database, sent: SentIssue, key: dict[str, str]
) -> None:
    body = open_body(
        sent, email="x@example.com", hash=SIGNER.sign(Purpose.OPEN, sent.guid, "x@example.com")
    )
    answer = client.post("/v1/emails/opens", json=body, headers=key)
    assert answer.json() == {"logged": False, "reason": "unknown_subscriber"}
    assert logged(database).opens == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"issueGuid": "1eb1cb43-8820-4eda-866b-140c62ed7f69", "email": ANNA},
            404,
            "unknown_issue",
        ),
        ({"issueGuid": "nope", "email": ANNA}, 400, "invalid_issueguid"),
        ({"email": ANNA}, 400, "missing_issueguid"),
        ({"issueGuid": 12, "email": ANNA}, 400, "invalid_input"),
    ],
)
def test_bad_open_requests_get_clear_errors(
    client: TestClient,
    database: Database,
    sent: SentIssue,
    key: dict[str, str],
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    answer = client.post("/v1/emails/opens", json=body, headers=key)
    assert answer.status_code == status
    assert answer.json()["code"] == code
    assert logged(database).opens == []


def test_a_body_that_is_not_json_is_refused(
    client: TestClient, sent: SentIssue, key: dict[str, str]
) -> None:
    headers = {**key, "Content-Type": "application/json"}
    answer = client.post("/v1/emails/opens", content=b"{nope", headers=headers)
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_json"
    answer = client.post("/v1/emails/opens", content=b"[]", headers=headers)
    assert answer.status_code == 400
    answer = client.post("/v1/emails/opens", content=b"issueGuid=x", headers=key)
    assert answer.status_code == 415


def test_a_click_answers_the_personalised_target(
    client: TestClient, database: Database, sent: SentIssue, key: dict[str, str]
) -> None:
    answer = client.post("/v1/emails/clicks", json=click_body(sent), headers=key)
    assert answer.status_code == 200
    assert answer.json() == {
        "url": "https://shop.example.com/spring?name=Anna",
        "logged": True,
        "isMachine": False,
        "machineReason": None,
    }
    assert len(logged(database).clicks) == 1


def test_a_click_with_a_bad_hash_answers_the_links_own_target_unlogged(
    client: TestClient, database: Database, sent: SentIssue, key: dict[str, str]
) -> None:
    body = click_body(sent, hash="f" * 64, url="https://evil.example")
    answer = client.post("/v1/emails/clicks", json=body, headers=key)
    assert answer.status_code == 200
    assert answer.json() == {
        "url": "https://shop.example.com/spring?name=",
        "logged": False,
        "reason": "invalid_hash",
    }
    assert logged(database).clicks == []


def test_an_aggregate_click_is_logged_for_its_link_alone(
    client: TestClient, database: Database, sent: SentIssue, key: dict[str, str]
) -> None:
    body = {"linkGuid": sent.links[SALE], "userAgent": BROWSER, "url": "https://evil.example"}
    answer = client.post("/v1/emails/clicks", json=body, headers=key)
    assert answer.status_code == 200
    assert answer.json() == {
        "url": "https://shop.example.com/spring?name=",
        "logged": True,
        "isMachine": False,
        "machineReason": None,
    }
    [(_, subscriber, _, _)] = logged(database).clicks
    assert subscriber is None
    assert logged(database).activities == []
    # The key is still checked.
    assert client.post("/v1/emails/clicks", json=body).status_code == 401


def test_a_click_on_the_honeypot_is_a_machine_click(
    client: TestClient, database: Database, sent: SentIssue, key: dict[str, str]
) -> None:
    guid = sent.honeypot
    body = click_body(sent, BLOG, linkGuid=guid, hash=SIGNER.sign(Purpose.CLICK, guid, ANNA))
    answer = client.post("/v1/emails/clicks", json=body, headers=key).json()
    assert answer["isMachine"] is True
    assert answer["machineReason"] == "honeypot link"


def test_an_unknown_link_is_404(client: TestClient, sent: SentIssue, key: dict[str, str]) -> None:
    body = click_body(sent, linkGuid="c9fe0cee-7066-4017-b31c-6e98c0cf4bb3")
    answer = client.post("/v1/emails/clicks", json=body, headers=key)
    assert answer.status_code == 404
    assert answer.json()["code"] == "unknown_link"


def test_browser_views_answer_the_html(
    client: TestClient, sent: SentIssue, key: dict[str, str]
) -> None:
    params = {
        "issueGuid": sent.guid,
        "recipientEmail": ANNA,
        "hash": SIGNER.sign(Purpose.BROWSER_VIEW, sent.guid, ANNA),
    }
    answer = client.get("/v1/emails/browserviews", params=params, headers=key)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert "Hello Anna" in answer.text
    assert answer.headers["content-security-policy"] == BROWSER_VIEW_POLICY
    params["hash"] = SIGNER.sign(Purpose.OPEN, sent.guid, ANNA)
    refused = client.get("/v1/emails/browserviews", params=params, headers=key)
    assert refused.status_code == 403
    assert refused.json()["code"] == "invalid_hash"


def test_unsubscribes_ask_then_act(
    client: TestClient, database: Database, sent: SentIssue, key: dict[str, str]
) -> None:
    link = {
        "issueGuid": sent.guid,
        "email": ANNA,
        "hash": SIGNER.sign(Purpose.UNSUBSCRIBE, sent.guid, ANNA),
    }
    asked = client.get("/v1/emails/unsubscribes", params=link, headers=key)
    assert asked.json() == {"email": ANNA, "newsletter": "Weekly", "unsubscribed": False}
    assert subscriber_status(database, ANNA)[0] == "subscribed"
    done = client.post("/v1/emails/unsubscribes", json=link, headers=key)
    assert done.json() == {"email": ANNA, "newsletter": "Weekly", "unsubscribed": True}
    assert subscriber_status(database, ANNA)[0] == "unsubscribed"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/emails/opens"),
        ("POST", "/v1/emails/clicks"),
        ("GET", "/v1/emails/browserviews"),
        ("GET", "/v1/emails/unsubscribes"),
        ("POST", "/v1/emails/unsubscribes"),
    ],
)
def test_every_endpoint_needs_an_email_key(
    client: TestClient, database: Database, sent: SentIssue, method: str, path: str
) -> None:
    tracking_key = factories.tracking_channel(database, "App", access="tracking").headers
    email_key = factories.tracking_channel(database, "Site", access="email")
    body = open_body(sent) if "opens" in path else click_body(sent)
    link = {
        "issueGuid": sent.guid,
        "email": ANNA,
        "hash": SIGNER.sign(Purpose.UNSUBSCRIBE, sent.guid, ANNA),
    }
    if "unsubscribes" in path or "browserviews" in path:
        body = link

    def call(headers: dict[str, str]) -> Any:
        if method == "GET":
            return client.get(path, params=body, headers=headers)
        return client.post(path, json=body, headers=headers)

    assert call({}).status_code == 401
    assert call({}).json()["code"] == "missing_api_key"
    assert call({"Authorization": "Bearer chk_nope"}).status_code == 401
    wrong = call(tracking_key)
    assert wrong.status_code == 403
    assert wrong.json()["code"] == "wrong_access"
    with database.write() as session:
        from contacthub.channels import service as channels

        revoked = channels.list_api_keys(session, "Site")[0]
        channels.revoke_api_key(session, revoked.id)
    assert call(email_key.headers).status_code == 401
    assert logged(database).opens == []
    assert logged(database).clicks == []
    assert subscriber_status(database, ANNA)[0] == "subscribed"


HOSTILE_BODIES = [
    pytest.param(b'{"email": "\xff\xfe"}', id="invalid-utf8"),
    pytest.param(b"[" * 1000 + b"]" * 1000, id="nested-array"),
    pytest.param(b'{"a":' * 1000 + b"1" + b"}" * 1000, id="nested-object"),
]
HIT_PATHS = ["/v1/emails/opens", "/v1/emails/clicks", "/v1/emails/unsubscribes"]


@pytest.mark.parametrize("path", HIT_PATHS)
@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_undecodable_bodies_get_a_clear_400(
    client: TestClient, sent: SentIssue, key: dict[str, str], path: str, body: bytes
) -> None:
    headers = {**key, "Content-Type": "application/json"}
    answer = client.post(path, content=body, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "invalid_json"


def signed_body(sent: SentIssue, path: str) -> dict[str, Any]:
    if path.endswith("opens"):
        return open_body(sent)
    if path.endswith("clicks"):
        return click_body(sent)
    hash_ = SIGNER.sign(Purpose.UNSUBSCRIBE, sent.guid, ANNA)
    return {"issueGuid": sent.guid, "email": ANNA, "hash": hash_}


@pytest.mark.parametrize("path", HIT_PATHS)
@pytest.mark.parametrize("field", ["userAgent", "method", "email"])
def test_a_nul_character_gets_a_400_not_a_retry(
    client: TestClient,
    database: Database,
    sent: SentIssue,
    key: dict[str, str],
    path: str,
    field: str,
) -> None:
    body = signed_body(sent, path)
    body[field] = body.get(field, "GET") + "\x00"
    answer = client.post(path, json=body, headers=key)
    assert answer.status_code == 400, answer.text
    assert answer.json() == {
        "error": f"{field.lower()} must not contain NUL characters.",
        "code": "nul_character",
        "field": field.lower(),
    }
    assert logged(database).opens == []
    assert logged(database).clicks == []
    assert subscriber_status(database, ANNA)[0] == "subscribed"
