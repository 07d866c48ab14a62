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
# A client-chosen id per activity, for idempotent retries (contacthub/idempotency.py).
MAX_MESSAGE_ID_LENGTH = 100
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
    message_id: str | None = None
    # The properties cut to their limit (compatibility: clients never read per-item results).
    truncated: tuple[str, ...] = ()

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


def _optional_string(
    props: dict[str, Any], name: str, limit: int, *, spelled: str | None = None, stem: str = ""
) -> str | None:
    # The error codes are invalid_<stem> and <stem>_too_long; the stem is the name by default.
    value = props.get(name)
    spelled = spelled or name
    code = stem or name
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{spelled} must be a string.", code=f"invalid_{code}")
    if "\x00" in value:
        # PostgreSQL cannot store NUL in text; refuse it on every database alike.
        raise InvalidInput(f"{spelled} must not contain NUL characters.", code=f"invalid_{code}")
    if len(value) > limit:
        raise InvalidInput(f"{spelled} is longer than {limit} characters.", code=f"{code}_too_long")
    return value


def _message_id(props: dict[str, Any]) -> str | None:
    message_id = _optional_string(
        props, "messageid", MAX_MESSAGE_ID_LENGTH, spelled="messageId", stem="message_id"
    )
    if message_id == "":
        raise InvalidInput("messageId must not be empty.", code="invalid_message_id")
    return message_id


def cut_value(value: str | None) -> tuple[str | None, tuple[str, ...]]:
    """The value cut to its limit, and ("value",) when it was cut (the compatibility fix: a
    real client never reads per-item results, so a refused long page title was lost)."""
    if value is not None and len(value) > MAX_VALUE_LENGTH:
        return value[:MAX_VALUE_LENGTH], ("value",)
    return value, ()


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
    activity_type = _optional_string(props, "type", MAX_TYPE_LENGTH)
    # Any length passes here: an over-long value is cut below, not refused.
    value = _optional_string(props, "value", 2**63)
    url = _optional_string(props, "url", MAX_URL_LENGTH)
    referrer = _optional_string(props, "referrer", MAX_URL_LENGTH)
    message_id = _message_id(props)
    return _apply_rules(activity_type, value, url, referrer, props.get("contactfields"), message_id)


def check_activity_fields(
    activity_type: str | None,
    value: str | None,
    url: str | None,
    referrer: str | None,
    contact_fields: object,
    message_id: str | None = None,
) -> ActivityInput | ActivityRejection:
    """Check an activity whose properties were already read and found to be strings without
    NUL characters, in bounds but for the value (which is cut to its limit): the fast path."""
    try:
        if message_id == "":
            # The one rule the fast path's decoder (a string of at most 100) leaves to check.
            raise InvalidInput("messageId must not be empty.", code="invalid_message_id")
        return _apply_rules(activity_type, value, url, referrer, contact_fields, message_id)
    except InvalidInput as error:
        return ActivityRejection(error.status_code, error.message, error.code)


def _apply_rules(
    activity_type: str | None,
    value: str | None,
    url: str | None,
    referrer: str | None,
    contact_fields: object,
    message_id: str | None = None,
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
    value, truncated = cut_value(value)
    return ActivityInput(activity_type, value, url, referrer, fields, message_id, truncated)
