"""The rules of each activity type (seed 000), checked without touching the database.

An activity arrives as a JSON object whose property names may come in any case. It is either
accepted as an `ActivityInput` or refused alone as an `ActivityRejection`; custom types are
resolved later, against the stored types, inside the write transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from contacthub.contacts.fields import parse_contact_fields
from contacthub.errors import InvalidInput

PAGE_VISIT = "pagevisit"
CLICK = "click"
DATA_INPUT = "datainput"
# Email engagement is logged by the hub itself, never through the tracking API.
EMAIL_OPEN = "emailopen"
EMAIL_CLICK = "emailclick"
BUILT_IN_TYPES = frozenset({PAGE_VISIT, CLICK, DATA_INPUT, EMAIL_OPEN, EMAIL_CLICK})
TRACKABLE_BUILT_IN_TYPES = frozenset({PAGE_VISIT, CLICK, DATA_INPUT})
RESERVED_TYPES = BUILT_IN_TYPES - TRACKABLE_BUILT_IN_TYPES

MAX_TYPE_LENGTH = 100
MAX_VALUE_LENGTH = 250
MAX_URL_LENGTH = 2000
# The title column's bound: titles are derived, so they are cut to it (only a page visit titled
# by a long URL, or an email with a long subject, reaches it).
MAX_TITLE_LENGTH = 500


# Not frozen: a frozen dataclass pays for object.__setattr__ on every field, and ten of
# these are built per request on the hot path.
@dataclass(slots=True)
class ActivityInput:
    """An activity that passed the checks that need no database."""

    type: str
    value: str | None
    url: str | None
    referrer: str | None
    contact_fields: dict[str, Any] = field(default_factory=dict)

    @property
    def is_custom(self) -> bool:
        return self.type not in TRACKABLE_BUILT_IN_TYPES

    def title(self, custom_display_name: str | None = None) -> str:
        """The activity's title, as the seed spells it for each type."""
        quoted = f"'{self.value if self.value is not None else ''}'"
        if self.type == PAGE_VISIT:
            # The seed's own example posts a page visit without a value: show the URL then.
            return f"Page visit '{self.value if self.value else self.url}'"
        if self.type == CLICK:
            return f"Clicked {quoted}"
        if self.type == DATA_INPUT:
            return f"Data input {quoted}"
        name = custom_display_name or self.type
        return f"{name} {quoted}" if self.value else name


@dataclass(slots=True)
class ActivityRejection:
    """An activity refused alone; its place in the 207 answer carries this."""

    status: int
    error: str
    code: str

    def as_result(self) -> dict[str, Any]:
        return {"status": self.status, "error": self.error, "code": self.code}


def lower_keys(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """The object with lower-cased property names; two spellings of one name are an error."""
    lowered = {key.lower(): value for key, value in raw.items()}
    if len(lowered) != len(raw):
        raise InvalidInput(
            f"{where} has the same property twice in different case.", code="duplicate_property"
        )
    return lowered


def _optional_string(props: dict[str, Any], name: str, limit: int) -> str | None:
    value = props.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string.", code=f"invalid_{name}")
    if "\x00" in value:
        # PostgreSQL cannot store NUL in text; refuse it on every database alike.
        raise InvalidInput(f"{name} must not contain NUL characters.", code=f"invalid_{name}")
    if len(value) > limit:
        raise InvalidInput(f"{name} is longer than {limit} characters.", code=f"{name}_too_long")
    return value


def check_activity(raw: object) -> ActivityInput | ActivityRejection:
    """Check one activity object against the rules of its type."""
    try:
        return _check(raw)
    except InvalidInput as error:
        return ActivityRejection(error.status_code, error.message, error.code)


def _check(raw: object) -> ActivityInput:
    if not isinstance(raw, dict):
        raise InvalidInput("An activity must be a JSON object.", code="invalid_activity")
    props = lower_keys(raw, "The activity")
    return _apply_rules(
        _optional_string(props, "type", MAX_TYPE_LENGTH),
        _optional_string(props, "value", MAX_VALUE_LENGTH),
        _optional_string(props, "url", MAX_URL_LENGTH),
        _optional_string(props, "referrer", MAX_URL_LENGTH),
        props.get("contactfields"),
    )


def check_activity_fields(
    activity_type: str | None,
    value: str | None,
    url: str | None,
    referrer: str | None,
    contact_fields: object,
) -> ActivityInput | ActivityRejection:
    """Check an activity whose properties were already read and found to be strings in bounds,
    without NUL characters."""
    try:
        return _apply_rules(activity_type, value, url, referrer, contact_fields)
    except InvalidInput as error:
        return ActivityRejection(error.status_code, error.message, error.code)


def _apply_rules(
    activity_type: str | None,
    value: str | None,
    url: str | None,
    referrer: str | None,
    contact_fields: object,
) -> ActivityInput:
    if not activity_type:
        raise InvalidInput("type is required.", code="missing_type")
    activity_type = activity_type.lower()
    if activity_type in RESERVED_TYPES:
        raise InvalidInput(
            f"{activity_type} activities are logged by the hub itself.", code="reserved_type"
        )
    if activity_type == PAGE_VISIT and not url:
        raise InvalidInput("url is required for pagevisit activities.", code="missing_url")
    if activity_type in (CLICK, DATA_INPUT) and not value:
        raise InvalidInput(
            f"value is required for {activity_type} activities.", code="missing_value"
        )
    fields: dict[str, Any] = {}
    if contact_fields is not None and contact_fields != {}:  # an empty object says nothing
        if activity_type != DATA_INPUT:
            raise InvalidInput(
                "contactFields is only for datainput activities.", code="unexpected_contact_fields"
            )
        fields = parse_contact_fields(contact_fields)
    return ActivityInput(activity_type, value, url, referrer, fields)
