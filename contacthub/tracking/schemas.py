"""The tracking API's wire formats: reading request bodies, writing answers.

Bodies are decoded with msgspec (several times faster than the alternatives, see
docs/architecture.md) into plain objects, then checked by hand: property names are matched
case-insensitively, as the vendor's own examples post `channel` and `Channel` alike, and
each activity must be able to fail alone, which a whole-body schema could not express.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from contacthub.activities.rules import (
    MAX_MESSAGE_ID_LENGTH,
    MAX_TYPE_LENGTH,
    MAX_URL_LENGTH,
    ActivityInput,
    ActivityRejection,
    check_activity,
    check_activity_fields,
    lower_keys,
)
from contacthub.errors import InvalidInput, PayloadTooLarge
from contacthub.identifiers import parse_guid

_decoder = msgspec.json.Decoder()


class _Activity(msgspec.Struct, forbid_unknown_fields=True):
    """An activity spelled exactly as the seed spells it: the fast path's shape."""

    type: Annotated[str, msgspec.Meta(max_length=MAX_TYPE_LENGTH)]
    # Any length: an over-long value is cut to its limit by the rules, not refused.
    value: str | None = None
    url: Annotated[str, msgspec.Meta(max_length=MAX_URL_LENGTH)] | None = None
    referrer: Annotated[str, msgspec.Meta(max_length=MAX_URL_LENGTH)] | None = None
    contactFields: dict[str, Any] | None = None
    messageId: Annotated[str, msgspec.Meta(max_length=MAX_MESSAGE_ID_LENGTH)] | None = None


class _ActivitiesBody(msgspec.Struct, forbid_unknown_fields=True):
    channel: uuid.UUID
    contact: uuid.UUID
    activities: list[_Activity]


_fast_decoder = msgspec.json.Decoder(_ActivitiesBody)


def decode_object(body: bytes, what: str = "The request body") -> dict[str, Any]:
    """A JSON object from a body, with lower-cased property names."""
    if not body.strip():
        raise InvalidInput(f"{what} is empty; it must be a JSON object.", code="empty_body")
    try:
        value = _decoder.decode(body)
    except msgspec.DecodeError as error:
        raise InvalidInput(f"{what} is not valid JSON: {error}.", code="malformed_json") from None
    except UnicodeDecodeError:
        # msgspec raises this, not a DecodeError, for invalid UTF-8 inside a string.
        raise InvalidInput(f"{what} is not valid UTF-8.", code="malformed_json") from None
    except RecursionError:
        # msgspec gives up on deeply nested arrays or objects; no valid body nests that deep.
        raise InvalidInput(f"{what} is nested too deeply.", code="malformed_json") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object.", code="invalid_body")
    return lower_keys(value, what)


@dataclass(frozen=True, slots=True)
class ActivitiesRequest:
    """A POST /activities body: whose activities, on which channel, each checked."""

    channel: uuid.UUID
    contact: uuid.UUID
    activities: list[ActivityInput | ActivityRejection]


def read_activities_request(body: bytes, max_activities: int) -> ActivitiesRequest:
    """Check a POST /activities body; bad activities are kept as rejections, in place.

    Most clients spell the body exactly as the seed does, with well-formed values: msgspec
    decodes that straight into typed structs, several times faster than checking a generic
    object property by property. Anything else (other spellings, unknown properties, wrong
    types, over-long values) takes the general path, which gives each activity its own error.
    """
    if b"\\u0000" in body:
        # A NUL character can only arrive escaped; the general path refuses it per property.
        return _read_general(body, max_activities)
    try:
        fast = _fast_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return _read_general(body, max_activities)
    if not fast.activities or len(fast.activities) > max_activities:
        return _read_general(body, max_activities)
    return ActivitiesRequest(
        fast.channel,
        fast.contact,
        [
            check_activity_fields(a.type, a.value, a.url, a.referrer, a.contactFields, a.messageId)
            for a in fast.activities
        ],
    )


def _read_general(body: bytes, max_activities: int) -> ActivitiesRequest:
    props = decode_object(body)
    channel = parse_guid(props.get("channel"), "channel")
    contact = parse_guid(props.get("contact"), "contact")
    activities = props.get("activities")
    if not isinstance(activities, list):
        raise InvalidInput(
            "activities must be an array of activity objects.", code="invalid_activities"
        )
    if not activities:
        raise InvalidInput("activities is empty.", code="no_activities")
    if len(activities) > max_activities:
        raise PayloadTooLarge(
            f"At most {max_activities} activities per request; send the rest in another.",
            code="too_many_activities",
        )
    return ActivitiesRequest(channel, contact, [check_activity(raw) for raw in activities])


def read_agree(body: bytes) -> bool:
    """The `agree` flag of a POST /contacts/{guid}/consents/{consent} body."""
    props = decode_object(body)
    agree = props.get("agree")
    if not isinstance(agree, bool):
        raise InvalidInput("agree must be true or false.", code="invalid_agree")
    return agree
