"""The contact fields that data input may set, and the rules for their values.

Field names are matched case-insensitively (the seed's own example sends `contactFirstName`).
Every value must be a string; over-long values are refused, never cut. An empty string means
"not given": tracking data never erases what is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pycountry
from email_validator import EmailNotValidError, validate_email

from contacthub.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class ContactField:
    """One settable field: its wire name, the Contact attribute it fills, and its bound."""

    wire_name: str
    attribute: str
    max_length: int
    parse: Callable[[str], Any] | None = None


def _email(value: str) -> str:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise ValueError(f"is not a valid email address ({error})") from None


def country_code(value: str) -> str:
    """An ISO 3166-1 alpha-3 country code (any case, spaces around ignored), upper-cased; a
    ValueError saying what is expected otherwise."""
    code = value.strip().upper()
    if len(code) != 3 or pycountry.countries.get(alpha_3=code) is None:
        raise ValueError("must be an ISO 3166-1 alpha-3 country code, e.g. USA or CZE")
    return code


_country = country_code  # the name groups/conditions.py knows it by


def _us_state_codes() -> frozenset[str]:
    subdivisions = pycountry.subdivisions.get(country_code="US")  # type: ignore[no-untyped-call]
    return frozenset(sub.code.removeprefix("US-") for sub in subdivisions)


_US_STATES: frozenset[str] | None = None


def _state(value: str) -> str:
    global _US_STATES
    if _US_STATES is None:
        _US_STATES = _us_state_codes()
    code = value.strip().upper()
    if code not in _US_STATES:
        raise ValueError("must be a two-letter US state code (ANSI), e.g. CA or NY")
    return code


def _birthday(value: str) -> date:
    text = value.strip()
    try:
        if len(text) > 10:
            return datetime.fromisoformat(text).date()
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError("must be a date, e.g. 1990-05-31") from None


CONTACT_FIELDS: tuple[ContactField, ...] = (
    ContactField("ContactEmail", "email", 254, _email),
    ContactField("ContactFirstName", "first_name", 100),
    ContactField("ContactMiddleName", "middle_name", 100),
    ContactField("ContactLastName", "last_name", 100),
    ContactField("ContactBirthday", "birthday", 50, _birthday),
    ContactField("ContactMobilePhone", "mobile_phone", 26),
    ContactField("ContactBusinessPhone", "business_phone", 26),
    ContactField("ContactCompanyName", "company_name", 100),
    ContactField("ContactJobTitle", "job_title", 100),
    ContactField("ContactAddress1", "address1", 100),
    ContactField("ContactCity", "city", 100),
    ContactField("ContactZIP", "zip", 100),
    ContactField("ContactCountry", "country", 3, country_code),
    ContactField("ContactState", "state", 2, _state),
    ContactField("ContactNotes", "notes", 10_000),
)

FIELDS_BY_LOWER_NAME: Mapping[str, ContactField] = {
    field.wire_name.lower(): field for field in CONTACT_FIELDS
}


def parse_contact_fields(raw: object) -> dict[str, Any]:
    """Validate a `contactFields` object; answer Contact attribute -> clean value.

    Raises InvalidInput naming every field that is wrong.
    """
    if not isinstance(raw, dict):
        raise InvalidInput("contactFields must be a JSON object", code="invalid_contact_fields")
    clean: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in raw.items():
        field = FIELDS_BY_LOWER_NAME.get(str(name).lower())
        if field is None:
            problems.append(f"{name}: unknown contact field")
            continue
        if not isinstance(value, str):
            problems.append(f"{field.wire_name}: only string values are supported")
            continue
        if value == "":
            continue
        if "\x00" in value:
            problems.append(f"{field.wire_name}: must not contain NUL characters")
            continue
        if len(value) > field.max_length:
            problems.append(f"{field.wire_name}: longer than {field.max_length} characters")
            continue
        if field.attribute in clean:
            problems.append(f"{field.wire_name}: given more than once")
            continue
        try:
            clean[field.attribute] = field.parse(value) if field.parse else value
        except ValueError as error:
            problems.append(f"{field.wire_name}: {error}")
    if problems:
        raise InvalidInput("; ".join(problems), code="invalid_contact_fields")
    return clean
