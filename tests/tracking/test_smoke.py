from starlette.testclient import TestClient

from contacthub.storage.database import Database
from tests import factories


def test_seed_request_body_example_is_accepted(client: TestClient, database: Database) -> None:
    setup = factories.tracking_channel(database)
    factories.activity_type(database, "custom_loan_calculator", "Loan calculator")
    contact = client.post("/Kentico.Tracking/contacts", headers=setup.headers).json()["contact"]
    body = {
        "channel": setup.channel_guid,
        "contact": contact,
        "activities": [
            {"type": "pagevisit", "url": "https://example.com/mypage"},
            {"type": "click", "value": "MyClickableElement"},
            {
                "type": "datainput",
                "value": "Registration form",
                "contactFields": {
                    "contactFirstName": "Luke",
                    "contactLastName": "Smith",
                    "contactEmail": "lsmith@domain.com",
                },
            },
            {"type": "custom_loan_calculator", "value": "5000"},
        ],
    }
    answer = client.post("/Kentico.Tracking/activities", headers=setup.headers, json=body)
    assert answer.status_code == 207
    assert answer.json() == {"results": [{"status": 202}] * 4}
