"""Contact fields set by datainput activities: names, formats, types and length limits."""

from __future__ import annotations

from datetime import date
from typing import Any

from starlette.testclient import TestClient

from contacthub.storage.database import Database
from contacthub.storage.models import Activity
from tests.factories import TrackingSetup
from tests.tracking.support import (
    assert_rejected,
    contact_row,
    count,
    post_activities,
    results_of,
)

# A valid address of exactly 254 characters (64 before the @, labels of at most 63).
EMAIL_254 = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com"

NOTES = "<b>Met</b> at the fair.\nCall back."
EVERY_FIELD = {
    "ContactEmail": ("email", "luke.smith@example.com", "luke.smith@example.com"),
    "ContactFirstName": ("first_name", "Luke", "Luke"),
    "ContactMiddleName": ("middle_name", "Anakin", "Anakin"),
    "ContactLastName": ("last_name", "Smith", "Smith"),
    "ContactBirthday": ("birthday", "1990-05-31", date(1990, 5, 31)),
    "ContactMobilePhone": ("mobile_phone", "+420 777 123 456", "+420 777 123 456"),
    "ContactBusinessPhone": ("business_phone", "+1 (555) 010-0199", "+1 (555) 010-0199"),
    "ContactCompanyName": ("company_name", "Smith & Sons", "Smith & Sons"),
    "ContactJobTitle": ("job_title", "Engineer", "Engineer"),
    "ContactAddress1": ("address1", "1 Main Street", "1 Main Street"),
    "ContactCity": ("city", "Springfield", "Springfield"),
    "ContactZIP": ("zip", "62701", "62701"),
    "ContactCountry": ("country", "USA", "USA"),
    "ContactState": ("state", "IL", "IL"),
    "ContactNotes": ("notes", NOTES, NOTES),
}

LIMITS = {
    "ContactFirstName": ("first_name", 100),
    "ContactMiddleName": ("middle_name", 100),
    "ContactLastName": ("last_name", 100),
    "ContactCompanyName": ("company_name", 100),
    "ContactJobTitle": ("job_title", 100),
    "ContactAddress1": ("address1", 100),
    "ContactCity": ("city", 100),
    "ContactZIP": ("zip", 100),
    "ContactMobilePhone": ("mobile_phone", 26),
    "ContactBusinessPhone": ("business_phone", 26),
    # Not bounded by the seed: contacthub allows 10,000 characters of notes.
    "ContactNotes": ("notes", 10_000),
}


def data_input(fields: dict[str, Any], value: str = "Form") -> dict[str, Any]:
    return {"type": "datainput", "value": value, "contactFields": fields}


def log(
    client: TestClient, setup: TrackingSetup, contact: str, activities: list[Any]
) -> list[dict[str, Any]]:
    return results_of(post_activities(client, setup, contact, activities))


def test_every_seed_field_is_set(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    fields = {name: sent for name, (_, sent, _) in EVERY_FIELD.items()}

    assert log(client, setup, contact, [data_input(fields)]) == [{"status": 202}]

    stored = contact_row(database, contact)
    for name, (attribute, _, expected) in EVERY_FIELD.items():
        assert getattr(stored, attribute) == expected, name


def test_field_names_match_case_insensitively(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    fields = {
        "contactFirstName": "Luke",  # as in the seed's own example
        "CONTACTLASTNAME": "Smith",
        "contactemail": "lsmith@domain.com",
        "ContactCity": "Brno",
        "contactZip": "60200",
    }

    assert log(client, setup, contact, [data_input(fields)]) == [{"status": 202}]

    stored = contact_row(database, contact)
    assert (stored.first_name, stored.last_name) == ("Luke", "Smith")
    assert (stored.email, stored.city, stored.zip) == ("lsmith@domain.com", "Brno", "60200")


def test_one_field_in_two_spellings_is_refused(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    fields = {"contactFirstName": "Luke", "ContactFirstName": "Lucas"}

    [result] = log(client, setup, contact, [data_input(fields)])

    error = assert_rejected(result, 400, "invalid_contact_fields")
    assert "ContactFirstName" in error
    assert contact_row(database, contact).first_name is None


def test_unknown_fields_are_refused_by_name(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    fields = {"ContactFirstName": "Luke", "ContactFavouriteColour": "green"}

    [result] = log(client, setup, contact, [data_input(fields)])

    error = assert_rejected(result, 400, "invalid_contact_fields")
    assert "ContactFavouriteColour" in error
    assert contact_row(database, contact).first_name is None


def test_every_wrong_field_is_named_in_the_error(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    fields = {"ContactCountry": "XX", "ContactState": "ZZ", "ContactEmail": "nope"}

    [result] = log(client, setup, contact, [data_input(fields)])

    error = assert_rejected(result, 400, "invalid_contact_fields")
    for name in fields:
        assert name in error


def test_countries_are_iso_alpha_3_codes(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    refused = ["US", "CZ", "XXX", "203", "Czechia", "U.S", "usa "]
    accepted = [("CZE", "CZE"), ("gbr", "GBR"), ("Deu", "DEU"), ("usa", "USA")]
    activities = [data_input({"ContactCountry": code}) for code in refused]
    activities += [data_input({"ContactCountry": code}) for code, _ in accepted]

    results = log(client, setup, contact, activities)

    for code, result in zip(refused, results, strict=False):
        assert "ContactCountry" in assert_rejected(result, 400, "invalid_contact_fields"), code
    assert results[len(refused) :] == [{"status": 202}] * len(accepted)
    assert contact_row(database, contact).country == "USA"


def test_states_are_two_letter_us_codes(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    refused = ["ZZ", "C", "California", "US-CA", "12", "XX"]
    accepted = [("CA", "CA"), ("ny", "NY"), ("Tx", "TX"), ("DC", "DC")]
    activities = [data_input({"ContactState": code}) for code in refused]
    activities += [data_input({"ContactState": code}) for code, _ in accepted]

    results = log(client, setup, contact, activities)

    for code, result in zip(refused, results, strict=False):
        assert "ContactState" in assert_rejected(result, 400, "invalid_contact_fields"), code
    assert results[len(refused) :] == [{"status": 202}] * len(accepted)
    assert contact_row(database, contact).state == "DC"


def test_emails_must_be_valid_addresses(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    refused = [
        "not-an-email",
        "a@b",
        "a@@example.com",
        "luke@",
        "@example.com",
        "luke smith@example.com",
        "luke@exa mple.com",
    ]
    activities = [data_input({"ContactEmail": email}) for email in refused]

    results = log(client, setup, contact, activities)

    for email, result in zip(refused, results, strict=True):
        assert "ContactEmail" in assert_rejected(result, 400, "invalid_contact_fields"), email
    assert contact_row(database, contact).email is None
    assert count(database, Activity) == 0


def test_email_domain_is_normalised_and_the_local_part_kept(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    activity = data_input({"ContactEmail": "Luke.Smith@Example.COM"})

    assert log(client, setup, contact, [activity]) == [{"status": 202}]

    assert contact_row(database, contact).email == "Luke.Smith@example.com"


def test_birthdays_must_be_dates(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    refused = ["31/05/1990", "05/31/1990", "1990-02-30", "yesterday", "1990-13-01", "1990"]
    accepted = [
        ("1990-05-31", date(1990, 5, 31)),
        ("1985-01-02T10:30:00", date(1985, 1, 2)),
        # A date-time keeps its own calendar day: no time-zone conversion.
        ("1970-12-31T23:30:00-05:00", date(1970, 12, 31)),
    ]
    activities = [data_input({"ContactBirthday": text}) for text in refused]

    results = log(client, setup, contact, activities)

    for text, result in zip(refused, results, strict=True):
        assert "ContactBirthday" in assert_rejected(result, 400, "invalid_contact_fields"), text
    assert contact_row(database, contact).birthday is None
    for text, expected in accepted:
        assert log(client, setup, contact, [data_input({"ContactBirthday": text})]) == [
            {"status": 202}
        ]
        assert contact_row(database, contact).birthday == expected


def test_only_string_values_are_supported(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    values: list[Any] = [42, 4.2, True, False, None, {"first": "Luke"}, ["Luke"]]
    activities = [data_input({"ContactFirstName": value}) for value in values]
    activities.append(data_input({"ContactZIP": 60200}))

    results = log(client, setup, contact, activities)

    for result in results:
        error = assert_rejected(result, 400, "invalid_contact_fields")
        assert "string" in error
    stored = contact_row(database, contact)
    assert (stored.first_name, stored.zip) == (None, None)
    assert count(database, Activity) == 0


def test_nul_characters_are_refused(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    # PostgreSQL cannot store NUL in text (it once gave a 503): refused on every database.
    [result] = log(client, setup, contact, [data_input({"ContactFirstName": "Lu\u0000ke"})])

    assert "ContactFirstName" in assert_rejected(result, 400, "invalid_contact_fields")
    assert contact_row(database, contact).first_name is None


def test_values_at_their_limit_are_stored_whole(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    fields: dict[str, str] = {name: "é" * limit for name, (_, limit) in LIMITS.items()}
    fields["ContactEmail"] = EMAIL_254

    assert log(client, setup, contact, [data_input(fields, value="v" * 250)]) == [{"status": 202}]

    stored = contact_row(database, contact)
    for name, (attribute, limit) in LIMITS.items():
        assert getattr(stored, attribute) == "é" * limit, name
    assert stored.email == EMAIL_254


def test_over_long_values_are_refused_with_a_clear_error_never_cut(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    over = {name: (attribute, "x" * (limit + 1)) for name, (attribute, limit) in LIMITS.items()}
    over["ContactEmail"] = ("email", "a" + EMAIL_254)
    activities = [data_input({name: text}) for name, (_, text) in over.items()]

    results = log(client, setup, contact, activities)

    for (name, _), result in zip(over.items(), results, strict=False):
        error = assert_rejected(result, 400, "invalid_contact_fields")
        limit = 254 if name == "ContactEmail" else LIMITS[name][1]
        assert f"{name}: longer than {limit} characters" in error
    stored = contact_row(database, contact)
    for name, (attribute, _) in over.items():
        assert getattr(stored, attribute) is None, name
    assert count(database, Activity) == 0
