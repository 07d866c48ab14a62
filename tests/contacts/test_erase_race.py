"""An erasure racing an ingest batch, a consent agreement or a subscription for its contact.

The batch looks the contact up, then inserts its activities. An erasure committing in between
would leave those activities behind for a contact that no longer exists. The lookup's key-share
lock makes the erasure wait for the batch, and then delete its activities too. (On SQLite the
two transactions cannot overlap at all: each holds the one write lock from its start.)
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from contacthub.activities import repository
from contacthub.activities.repository import ActivityRow
from contacthub.contacts import privacy
from contacthub.contacts import service as contacts
from contacthub.email import service as email
from contacthub.storage.database import Database
from contacthub.storage.models import Activity, ConsentAgreement, Contact
from contacthub.storage.types import utcnow
from tests import factories


# PostgreSQL only: SQLite runs the two transactions one after the other.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_erasure_waits_for_a_batch_that_looked_the_contact_up(database: Database) -> None:
    guid = factories.contact(database)
    erased = threading.Event()

    def erase() -> None:
        with database.write() as session:
            privacy.erase_contact(session, guid, "test")
        erased.set()

    eraser = threading.Thread(target=erase)
    with database.write() as batch:
        contact_id = repository.contact_ids_by_guid(batch, [uuid.UUID(guid)])[uuid.UUID(guid)]
        eraser.start()
        time.sleep(0.5)
        assert not erased.is_set(), "the erasure did not wait for the batch"
        row = ActivityRow(
            contact_id, None, "pagevisit", "Home", None, "https://a.example/", None, utcnow()
        )
        repository.insert_activities(batch, [row])
    eraser.join(timeout=30)
    assert erased.is_set()
    with database.read() as session:
        left = session.scalar(select(func.count()).where(Activity.contact_id == contact_id))
    assert left == 0


def _contact_id(database: Database, guid: str) -> int:
    with database.read() as session:
        contact_id = session.scalar(select(Contact.id).where(Contact.guid == uuid.UUID(guid)))
    assert contact_id is not None
    return contact_id


def _activities_of_id(database: Database, contact_id: int) -> int:
    with database.read() as session:
        return session.scalar(select(func.count()).where(Activity.contact_id == contact_id)) or 0


def _erase_holding_the_lock(database: Database, guid: str, held: threading.Event) -> None:
    """Erase the contact, then keep the transaction open a moment before committing."""
    with database.write() as session:
        privacy.erase_contact(session, guid, "test")
        held.set()
        time.sleep(1)


# A data input naming another contact's email moves its data (and the activity) to that contact:
# the lookup by email must hold that contact as the lookup by GUID holds the request's own.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_erasure_waits_for_a_batch_that_found_a_contact_by_email(database: Database) -> None:
    named = factories.contact_with(database, email="named@example.com")
    named_id = _contact_id(database, named)
    presenting = factories.contact_with(database, email="presenting@example.com")
    erased = threading.Event()

    def erase() -> None:
        with database.write() as session:
            privacy.erase_contact(session, named, "test")
        erased.set()

    eraser = threading.Thread(target=erase)
    with database.write() as batch:
        contact = contacts.get_contact(batch, presenting)
        target = contacts.apply_data_input(batch, contact, {"email": "named@example.com"})
        assert target.id == named_id
        eraser.start()
        time.sleep(0.5)
        assert not erased.is_set(), "the erasure did not wait for the batch"
        row = ActivityRow(target.id, None, "datainput", "Data", None, None, None, utcnow())
        repository.insert_activities(batch, [row])
    eraser.join(timeout=30)
    assert erased.is_set()
    assert _activities_of_id(database, named_id) == 0


# Through the whole hub, the other order: the erasure holds the contact when the batch looks for
# its email; the batch waits, finds it gone and gives the data to a new contact. (On SQLite the
# batch waits for the erasure's write lock: the same answer.)
def test_a_batch_naming_the_email_of_a_contact_being_erased_waits_for_it(
    client: TestClient, database: Database
) -> None:
    setup = factories.tracking_channel(database)
    named_email = "named@example.com"
    named = factories.contact_with(database, email=named_email)
    named_id = _contact_id(database, named)
    presenting = factories.contact_with(database, email="presenting@example.com")
    held = threading.Event()
    eraser = threading.Thread(target=_erase_holding_the_lock, args=(database, named, held))
    eraser.start()
    assert held.wait(timeout=30)
    body = {
        "channel": setup.channel_guid,
        "contact": presenting,
        "activities": [
            {"type": "datainput", "value": "Form", "contactFields": {"ContactEmail": named_email}}
        ],
    }
    answer = client.post("/Kentico.Tracking/activities", headers=setup.headers, json=body)
    eraser.join(timeout=30)

    assert answer.status_code == 207, answer.text
    [result] = answer.json()["results"]
    assert result["status"] == 202
    assert result["contact"] not in (named, presenting)
    assert _activities_of_id(database, named_id) == 0


# An agreement stored for a contact being erased would break the foreign key (a 500): the
# agreement waits for the erasure and answers 404 as for any unknown contact.
def test_a_consent_agreement_racing_an_erasure_answers_404(
    client: TestClient, database: Database
) -> None:
    setup = factories.tracking_channel(database)
    factories.consent(database, "Consent")
    guid = factories.contact(database)
    held = threading.Event()
    eraser = threading.Thread(target=_erase_holding_the_lock, args=(database, guid, held))
    eraser.start()
    assert held.wait(timeout=30)
    answer = client.post(
        f"/Kentico.Tracking/contacts/{guid}/consents/Consent",
        headers=setup.headers,
        json={"agree": True},
    )
    eraser.join(timeout=30)

    assert answer.status_code == 404, answer.text
    assert answer.json()["code"] == "unknown_contact"
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(ConsentAgreement)) == 0


# A subscriber points at the oldest contact with its address: an erasure holding that contact
# makes the subscription wait, then go to a new contact, instead of breaking the foreign key.
def test_a_subscription_racing_an_erasure_of_its_contact_gets_a_new_contact(
    database: Database,
) -> None:
    guid = factories.contact_with(database, email="anna@example.com")
    with database.write() as session:
        email.create_newsletter(
            session, "Weekly", "The Team", "news@example.com", "https://news.example.com"
        )
    held = threading.Event()
    eraser = threading.Thread(target=_erase_holding_the_lock, args=(database, guid, held))
    eraser.start()
    assert held.wait(timeout=30)
    with database.write() as session:
        subscriber = email.add_subscriber(session, "Weekly", "anna@example.com")
        subscribed = session.scalar(select(Contact.guid).where(Contact.id == subscriber.contact_id))
    eraser.join(timeout=30)

    assert subscribed is not None
    assert str(subscribed) != guid
