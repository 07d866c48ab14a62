"""POST /Kentico.Tracking/contacts: a new anonymous contact (SPEC §2)."""

from __future__ import annotations

import uuid

from starlette.testclient import TestClient

from contacthub.storage.database import Database
from contacthub.storage.models import Contact
from tests.factories import TrackingSetup
from tests.tracking.support import API, assert_error, contact_row, count


def test_creates_an_anonymous_contact_and_answers_its_guid(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    answer = client.post(f"{API}/contacts", headers=setup.headers)

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert set(body) == {"contact"}
    guid = body["contact"]
    assert str(uuid.UUID(guid)) == guid  # the seed's spelling: lower case with dashes
    stored = contact_row(database, guid)
    assert stored.email is None
    assert stored.first_name is None
    assert stored.created_at.tzinfo is not None


def test_every_call_creates_another_contact(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    guids = {client.post(f"{API}/contacts", headers=setup.headers).json()["contact"] for _ in "abc"}

    assert len(guids) == 3
    assert count(database, Contact) == 3


def test_a_body_is_ignored_whatever_it_says(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    # The endpoint takes no body: contact fields come only through datainput activities.
    for body, content_type in (
        (b'{"ContactEmail": "a@example.com"}', "application/json"),
        (b"not json at all", "text/plain"),
        (b"\xff\xfe", "application/octet-stream"),
    ):
        answer = client.post(
            f"{API}/contacts",
            headers={**setup.headers, "Content-Type": content_type},
            content=body,
        )
        assert answer.status_code == 200
        assert contact_row(database, answer.json()["contact"]).email is None
    assert count(database, Contact) == 3


def test_only_post_is_allowed(client: TestClient, setup: TrackingSetup) -> None:
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        answer = client.request(method, f"{API}/contacts", headers=setup.headers)
        assert_error(answer, 405, "method_not_allowed")
        assert "POST" in answer.headers["allow"]


def test_a_refused_request_creates_no_contact(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    answer = client.post(f"{API}/contacts", headers={"Authorization": "Bearer chk_wrong"})

    assert_error(answer, 401, "invalid_api_key")
    assert count(database, Contact) == 0
