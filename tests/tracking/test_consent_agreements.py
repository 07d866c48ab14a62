"""Agree, revoke and check consents: /Kentico.Tracking/contacts/{guid}/consents/{consent}."""

from __future__ import annotations

import uuid

import httpx2
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from contacthub.storage.database import Database
from contacthub.storage.models import Channel, ConsentAgreement, ConsentRevision
from tests import factories
from tests.factories import TrackingSetup
from tests.tracking.support import API, agreements_of, assert_error, count


def agree(
    client: TestClient, setup: TrackingSetup, contact: str, agreed: bool, consent: str = "Consent"
) -> httpx2.Response:
    return client.post(
        f"{API}/contacts/{contact}/consents/{consent}",
        headers=setup.headers,
        json={"agree": agreed},
    )


def check(
    client: TestClient, setup: TrackingSetup, contact: str, consent: str = "Consent"
) -> httpx2.Response:
    return client.get(f"{API}/contacts/{contact}/consents/{consent}", headers=setup.headers)


@pytest.fixture(autouse=True)
def _consent(database: Database) -> None:
    factories.consent(database, "Consent")


def test_a_contact_without_any_event_has_not_agreed(
    client: TestClient, setup: TrackingSetup, contact: str
) -> None:
    answer = check(client, setup, contact)

    assert answer.status_code == 200
    assert answer.json() == {"agreed": False, "isAgreed": False}


def test_agree_then_check(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    answer = agree(client, setup, contact, True)

    assert answer.status_code == 200
    assert answer.json() == {"agreed": True, "isAgreed": True}
    assert check(client, setup, contact).json() == {"agreed": True, "isAgreed": True}
    [event] = agreements_of(database, contact)
    assert event.agreed is True


def test_revoke_after_agree(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    agree(client, setup, contact, True)

    answer = agree(client, setup, contact, False)

    assert answer.status_code == 200
    assert answer.json() == {"agreed": False, "isAgreed": False}
    assert check(client, setup, contact).json() == {"agreed": False, "isAgreed": False}


def test_every_event_is_kept_as_history(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    for agreed in (True, False, True, True):
        agree(client, setup, contact, agreed)

    events = agreements_of(database, contact)
    assert [event.agreed for event in events] == [True, False, True, True]
    with database.read() as session:
        channel_id = session.scalar(select(Channel.id).where(Channel.name == setup.channel_name))
    assert {event.channel_id for event in events} == {channel_id}
    assert all(event.created_at.tzinfo is not None for event in events)
    assert check(client, setup, contact).json()["agreed"] is True


def test_an_agreement_records_the_revision_agreed_to(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    agree(client, setup, contact, True)
    factories.consent_text(database, "Consent", "en", "<p>changed</p>", "<p>changed</p>")
    agree(client, setup, contact, True)

    first, second = agreements_of(database, contact)
    with database.read() as session:
        numbers = {
            revision.id: revision.number for revision in session.scalars(select(ConsentRevision))
        }
    assert (numbers[first.revision_id], numbers[second.revision_id]) == (1, 2)


def test_agreements_are_per_consent_and_per_contact(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    factories.consent(database, "Other")
    someone_else = factories.contact(database)

    agree(client, setup, contact, True)

    assert check(client, setup, contact, "Other").json()["agreed"] is False
    assert check(client, setup, someone_else).json()["agreed"] is False


def test_consent_code_names_match_case_insensitively(
    client: TestClient, setup: TrackingSetup, contact: str
) -> None:
    assert agree(client, setup, contact, True, consent="CONSENT").status_code == 200

    assert check(client, setup, contact, consent="consent").json()["agreed"] is True


def test_agree_property_name_matches_case_insensitively(
    client: TestClient, setup: TrackingSetup, contact: str
) -> None:
    answer = client.post(
        f"{API}/contacts/{contact}/consents/Consent", headers=setup.headers, json={"Agree": True}
    )

    assert answer.status_code == 200
    assert check(client, setup, contact).json()["agreed"] is True


def test_contact_guid_in_other_spellings(
    client: TestClient, setup: TrackingSetup, contact: str
) -> None:
    spellings = ("{" + contact.upper() + "}", contact.replace("-", ""))
    for spelling in spellings:
        assert agree(client, setup, spelling, True).status_code == 200
        assert check(client, setup, spelling).json()["agreed"] is True


def test_agree_must_be_true_or_false(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    url = f"{API}/contacts/{contact}/consents/Consent"
    bodies: list[object] = [
        {"agree": "true"},
        {"agree": 1},
        {"agree": None},
        {"agreed": True},
        {},
        {"agree": [True]},
    ]
    for body in bodies:
        assert_error(client.post(url, headers=setup.headers, json=body), 400, "invalid_agree")
    assert count(database, ConsentAgreement) == 0


def test_unknown_contact_is_404(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    unknown = str(uuid.uuid4())

    assert_error(agree(client, setup, unknown, True), 404, "unknown_contact")
    assert_error(check(client, setup, unknown), 404, "unknown_contact")
    assert count(database, ConsentAgreement) == 0


def test_unknown_consent_is_404(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    assert_error(agree(client, setup, contact, True, "Missing"), 404, "unknown_consent")
    assert_error(check(client, setup, contact, "Missing"), 404, "unknown_consent")
    assert_error(agree(client, setup, contact, True, "Con%00sent"), 404, "unknown_consent")
    assert_error(check(client, setup, contact, "Con%00sent"), 404, "unknown_consent")
    assert count(database, ConsentAgreement) == 0


def test_invalid_contact_guid_is_400(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    for guid in ("not-a-guid", "12345", "06b035b8-6658-4a1b-b1de-5994e4975fbz", "%00", "x" * 37):
        assert_error(agree(client, setup, guid, True), 400, "invalid_contact")
        assert_error(check(client, setup, guid), 400, "invalid_contact")
    assert count(database, ConsentAgreement) == 0


def test_agree_needs_a_json_content_type(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded"):
        headers = dict(setup.headers)
        if content_type:
            headers["Content-Type"] = content_type
        answer = client.post(
            f"{API}/contacts/{contact}/consents/Consent", headers=headers, content=b'{"agree":true}'
        )
        assert_error(answer, 415, "unsupported_media_type")
    assert count(database, ConsentAgreement) == 0


def test_agree_body_must_be_a_json_object(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    headers = {**setup.headers, "Content-Type": "application/json"}
    url = f"{API}/contacts/{contact}/consents/Consent"
    for body, code in (
        (b"", "empty_body"),
        (b"   ", "empty_body"),
        (b"true", "invalid_body"),
        (b"[true]", "invalid_body"),
        (b'{"agree": tru', "malformed_json"),
        (b'{"agree": true, "AGREE": false}', "duplicate_property"),
    ):
        assert_error(client.post(url, headers=headers, content=body), 400, code)
    assert count(database, ConsentAgreement) == 0


def test_agree_body_is_bounded(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    body = {"agree": True, "padding": "x" * 5000}

    answer = client.post(
        f"{API}/contacts/{contact}/consents/Consent", headers=setup.headers, json=body
    )

    assert_error(answer, 413, "body_too_large")
    assert count(database, ConsentAgreement) == 0
