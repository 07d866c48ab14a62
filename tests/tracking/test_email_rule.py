"""A datainput never overwrites an existing, different ContactEmail (the vendor's rule since 2024).

The data then goes to the contact that already has that email, or to a new contact, and the
activity's result says which contact: `{"status": 202, "contact": "<guid>"}`.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from starlette.testclient import TestClient

from contacthub.storage.database import Database
from contacthub.storage.models import Contact
from tests import factories
from tests.factories import TrackingSetup
from tests.tracking.support import (
    activities_of,
    contact_row,
    count,
    post_activities,
    results_of,
    titles_of,
)


def data_input(value: str, **fields: str) -> dict[str, Any]:
    return {"type": "datainput", "value": value, "contactFields": fields}


def log(
    client: TestClient, setup: TrackingSetup, contact: str, *activities: Any
) -> list[dict[str, Any]]:
    return results_of(post_activities(client, setup, contact, list(activities)))


def contacts_with_email(database: Database, email: str) -> list[str]:
    with database.read() as session:
        guids = session.scalars(
            select(Contact.guid).where(Contact.email == email).order_by(Contact.id)
        )
        return [str(guid) for guid in guids]


def test_first_email_is_set_on_the_contact(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    results = log(client, setup, contact, data_input("Form", ContactEmail="luke@example.com"))

    assert results == [{"status": 202}]
    assert contact_row(database, contact).email == "luke@example.com"


def test_a_different_email_goes_to_a_new_contact(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    contact = factories.contact_with(database, email="luke@example.com", first_name="Luke")

    [result] = log(
        client,
        setup,
        contact,
        data_input("Newsletter", ContactEmail="leia@example.com", ContactFirstName="Leia"),
    )

    assert result["status"] == 202
    new = result["contact"]
    assert new != contact
    assert str(uuid.UUID(new)) == new
    kept = contact_row(database, contact)
    assert (kept.email, kept.first_name) == ("luke@example.com", "Luke")
    created = contact_row(database, new)
    assert (created.email, created.first_name) == ("leia@example.com", "Leia")
    # The activity belongs to the contact the data went to.
    assert titles_of(database, new) == ["Data input 'Newsletter'"]
    assert activities_of(database, contact) == []
    assert count(database, Contact) == 2


def test_a_different_email_goes_to_the_contact_that_already_has_it(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    contact = factories.contact_with(database, email="luke@example.com")
    leia = factories.contact_with(database, email="leia@example.com", city="Alderaan")

    [result] = log(
        client,
        setup,
        contact,
        data_input("Form", ContactEmail="leia@example.com", ContactCity="Yavin"),
    )

    assert result == {"status": 202, "contact": leia}
    assert contact_row(database, leia).city == "Yavin"
    assert contact_row(database, contact).city is None
    assert contact_row(database, contact).email == "luke@example.com"
    assert titles_of(database, leia) == ["Data input 'Form'"]
    assert count(database, Contact) == 2


def test_of_several_contacts_with_that_email_the_oldest_gets_the_data(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    contact = factories.contact_with(database, email="luke@example.com")
    oldest = factories.contact_with(database, email="leia@example.com")
    factories.contact_with(database, email="leia@example.com")

    [result] = log(client, setup, contact, data_input("Form", ContactEmail="leia@example.com"))

    assert result == {"status": 202, "contact": oldest}


def test_the_existing_email_is_matched_case_insensitively(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    contact = factories.contact_with(database, email="luke@example.com")
    leia = factories.contact_with(database, email="Leia@Example.com")

    [result] = log(client, setup, contact, data_input("Form", ContactEmail="LEIA@example.COM"))

    assert result == {"status": 202, "contact": leia}
    assert contact_row(database, leia).email == "Leia@Example.com"  # kept as first stored


def test_the_same_email_in_other_case_is_not_a_change(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    contact = factories.contact_with(database, email="Luke.Smith@example.com")

    results = log(
        client,
        setup,
        contact,
        data_input("Form", ContactEmail="luke.smith@EXAMPLE.COM", ContactLastName="Smith"),
    )

    assert results == [{"status": 202}]
    stored = contact_row(database, contact)
    assert stored.email == "Luke.Smith@example.com"
    assert stored.last_name == "Smith"
    assert count(database, Contact) == 1


def test_data_input_without_email_stays_on_the_contact(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    contact = factories.contact_with(database, email="luke@example.com")

    results = log(client, setup, contact, data_input("Form", ContactFirstName="Luke"))

    assert results == [{"status": 202}]
    assert contact_row(database, contact).first_name == "Luke"
    assert count(database, Contact) == 1


def test_only_the_data_input_moves_the_rest_of_the_request_stays(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    contact = factories.contact_with(database, email="luke@example.com")

    before, moved, after = log(
        client,
        setup,
        contact,
        {"type": "click", "value": "before"},
        data_input("Form", ContactEmail="leia@example.com"),
        {"type": "click", "value": "after"},
    )

    assert before == after == {"status": 202}
    assert set(moved) == {"status", "contact"}
    assert titles_of(database, contact) == ["Clicked 'before'", "Clicked 'after'"]
    assert titles_of(database, moved["contact"]) == ["Data input 'Form'"]


def test_a_new_email_contact_is_reused_by_the_next_data_input(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    contact = factories.contact_with(database, email="luke@example.com")

    [first] = log(client, setup, contact, data_input("1", ContactEmail="leia@example.com"))
    [second] = log(client, setup, contact, data_input("2", ContactEmail="leia@example.com"))

    assert first["contact"] == second["contact"]
    assert contacts_with_email(database, "leia@example.com") == [first["contact"]]
    assert titles_of(database, first["contact"]) == ["Data input '1'", "Data input '2'"]


def test_a_refused_data_input_creates_no_contact(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    contact = factories.contact_with(database, email="luke@example.com")

    [result] = log(
        client,
        setup,
        contact,
        data_input("Form", ContactEmail="leia@example.com", ContactCountry="Nowhere"),
    )

    assert result["status"] == 400
    assert "contact" not in result
    assert count(database, Contact) == 1


def test_a_contact_without_email_takes_one_another_contact_has(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    # Nothing is overwritten, so the data stays where it was sent; contacts are never merged.
    leia = factories.contact_with(database, email="leia@example.com")

    results = log(client, setup, contact, data_input("Form", ContactEmail="leia@example.com"))

    assert results == [{"status": 202}]
    assert set(contacts_with_email(database, "leia@example.com")) == {leia, contact}
