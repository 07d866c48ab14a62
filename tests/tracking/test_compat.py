"""Wire compatibility: requests exactly as the seed and the vendor's clients send them."""

from __future__ import annotations

from starlette.testclient import TestClient

from contacthub.storage.database import Database
from contacthub.storage.models import Contact
from tests import factories
from tests.factories import TrackingSetup
from tests.tracking.support import API, activities_of, contact_row, count, results_of

SEED_CHANNEL = "a3f4bc8b-6d84-454f-8215-cbec70bfaadd"
SEED_CONTACT = "06b035b8-6658-4a1b-b1de-5994e4975fb1"
# The seed's request body example, character for character (its trailing space included).
SEED_EXAMPLE = """{
    "channel": "a3f4bc8b-6d84-454f-8215-cbec70bfaadd",
    "contact": "06b035b8-6658-4a1b-b1de-5994e4975fb1",
    "activities": [
        {
            "type": "pagevisit",
            "url": "https://example.com/mypage"
        },
        {
            "type": "click",
            "value": "MyClickableElement"
        },
        {
            "type": "datainput",
            "value": "Registration form",
            "contactFields": \x20
            {
                "contactFirstName": "Luke",
                "contactLastName" : "Smith",
                "contactEmail" : "lsmith@domain.com"
            }
        },
        {
            "type": "custom_loan_calculator",
            "value": "5000"
        }
    ]
}"""


def test_the_seeds_full_request_body_example(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    factories.activity_type(database, "custom_loan_calculator", "Loan calculator")
    contact = client.post(f"{API}/contacts", headers=setup.headers).json()["contact"]
    body = (
        SEED_EXAMPLE.replace(SEED_CHANNEL, setup.channel_guid)
        .replace(SEED_CONTACT, contact)
        .encode()
    )

    answer = client.post(
        f"{API}/activities",
        headers={**setup.headers, "Content-Type": "application/json"},
        content=body,
    )

    assert answer.status_code == 207
    assert answer.json() == {"results": [{"status": 202}] * 4}
    stored = activities_of(database, contact)
    assert [(a.type, a.title) for a in stored] == [
        ("pagevisit", "Page visit 'https://example.com/mypage'"),
        ("click", "Clicked 'MyClickableElement'"),
        ("datainput", "Data input 'Registration form'"),
        ("custom_loan_calculator", "Loan calculator '5000'"),
    ]
    assert stored[0].url == "https://example.com/mypage"
    person = contact_row(database, contact)
    assert (person.first_name, person.last_name, person.email) == (
        "Luke",
        "Smith",
        "lsmith@domain.com",
    )


def test_capitalised_property_names(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    factories.activity_type(database, "custom_loan_calculator", "Loan calculator")
    body = {
        "Channel": setup.channel_guid,
        "Contact": contact,
        "Activities": [
            {"Type": "pagevisit", "Url": "https://example.com/a", "Value": "A"},
            {"Type": "click", "Value": "B", "Referrer": "https://ref.example.com"},
            {
                "Type": "datainput",
                "Value": "Form",
                "ContactFields": {"ContactFirstName": "Luke", "ContactEmail": "l@example.com"},
            },
            {"TYPE": "custom_loan_calculator", "VALUE": "5000", "URL": "https://example.com/c"},
        ],
    }

    answer = client.post(f"{API}/activities", headers=setup.headers, json=body)

    assert results_of(answer) == [{"status": 202}] * 4
    stored = activities_of(database, contact)
    assert [a.title for a in stored] == [
        "Page visit 'A'",
        "Clicked 'B'",
        "Data input 'Form'",
        "Loan calculator '5000'",
    ]
    assert stored[1].referrer == "https://ref.example.com"
    assert stored[3].url == "https://example.com/c"
    assert contact_row(database, contact).first_name == "Luke"


def test_guids_in_other_spellings(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    spellings = [
        (setup.channel_guid.upper(), contact.upper()),
        ("{" + setup.channel_guid + "}", "{" + contact + "}"),
        (setup.channel_guid.replace("-", ""), contact.replace("-", "")),
    ]
    for channel, contact_spelling in spellings:
        body = {
            "channel": channel,
            "contact": contact_spelling,
            "activities": [{"type": "click", "value": "x"}],
        }
        answer = client.post(f"{API}/activities", headers=setup.headers, json=body)
        assert results_of(answer) == [{"status": 202}], channel
    assert len(activities_of(database, contact)) == 3


def test_create_contact_with_a_json_content_type_and_no_body(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    headers = {**setup.headers, "Content-Type": "application/json"}
    answers = [
        client.post(f"{API}/contacts", headers=headers),  # no body at all
        client.post(f"{API}/contacts", headers=headers, content=b""),  # Content-Length: 0
        client.post(f"{API}/contacts", headers=headers, content=b"{}"),
        client.post(f"{API}/contacts", headers=headers, content=b"null"),
        client.post(f"{API}/contacts", headers=setup.headers),  # no Content-Type either
    ]

    for answer in answers:
        assert answer.status_code == 200, answer.text
        contact_row(database, answer.json()["contact"])
    assert count(database, Contact) == 5


def test_agreement_answers_both_agreed_and_is_agreed(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    factories.consent(database, "TrackingConsent")
    url = f"{API}/contacts/{contact}/consents/TrackingConsent"

    before = client.get(url, headers=setup.headers).json()
    agreed = client.post(url, headers=setup.headers, json={"agree": True}).json()
    after = client.get(url, headers=setup.headers).json()

    assert before == {"agreed": False, "isAgreed": False}
    assert agreed == {"agreed": True, "isAgreed": True}
    assert after == {"agreed": True, "isAgreed": True}


def test_the_seeds_check_uri_without_contacts(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    factories.consent(database, "TrackingConsent")
    # https://domain.com/Kentico.Tracking/06b035b8-…/consents/TrackingConsent, as in the seed.
    short = f"{API}/{contact}/consents/TrackingConsent"

    assert client.get(short, headers=setup.headers).json() == {"agreed": False, "isAgreed": False}
    client.post(
        f"{API}/contacts/{contact}/consents/TrackingConsent",
        headers=setup.headers,
        json={"agree": True},
    )
    assert client.get(short, headers=setup.headers).json() == {"agreed": True, "isAgreed": True}


def test_the_seeds_consent_text_uri(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    factories.consent(database, "TrackingConsent", "en", "<p>s</p>", "<p>f</p>")

    answer = client.get(f"{API}/consents/TrackingConsent?languageName=en", headers=setup.headers)

    assert answer.json() == {"shortText": "<p>s</p>", "fullText": "<p>f</p>"}


def test_the_seeds_agree_request(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    factories.consent(database, "TrackingConsent")

    answer = client.post(
        f"{API}/contacts/{contact}/consents/TrackingConsent",
        headers={**setup.headers, "Content-Type": "application/json"},
        content=b'{\n    "agree": true\n}',
    )

    assert answer.status_code == 200
