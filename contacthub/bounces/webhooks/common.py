"""What every provider's webhook shares: the refusals, the parsed call, small field readers.

A provider module turns one signed call into an `Intake`: the feedback events to record (through
the feedback processor) and the events it does not use, each with why. A call it does not take
raises a `HubError` (with an explicit `code`): the JSON error's code and the rejection's reason.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from contacthub.bounces.processor import FeedbackEvent
from contacthub.errors import Forbidden, InvalidInput, Unauthorized

# The largest body a webhook call may have: SendGrid posts batches of up to 768 KB, SNS messages
# are at most 256 KB; Postmark's bounce may carry the bounced message's first part.
MAX_BODY = 2 * 1024 * 1024
# A diagnostic or detail kept from a provider's event (the processor cuts too).
MAX_TEXT = 2_000
MAX_EVENT_ID = 200
_ENHANCED_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
# ASCII digits only (`int` would take other scripts' digits and spaces, which are not signed so).
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")
_decoder = msgspec.json.Decoder()


@dataclass(slots=True)
class Intake:
    """One verified call: the events to record and those not used (reason, detail)."""

    events: list[FeedbackEvent] = field(default_factory=list)
    unused: list[tuple[str, str]] = field(default_factory=list)
    # Said in the JSON answer, e.g. that an SNS subscription was confirmed.
    note: str | None = None
    # A signature token the call may be taken with only once (Mailgun's): claimed in the
    # transaction that records the events (tokens.py), else the call is refused as replayed.
    single_use_token: str | None = None

    def ignore(self, what: str) -> None:
        """An event of a kind the hub does not use (opens, clicks, ...): counted, not lost."""
        self.unused.append(("ignored_event", what))

    def malformed(self, what: str) -> None:
        """One event of an otherwise good call that cannot be read."""
        self.unused.append(("malformed", what))


def event_key(first: str, *rest: str) -> str:
    """An event id made of parts (`<message id>:<recipient>`), at most 200 characters: longer
    ones keep the first part and a digest of the rest."""
    key = ":".join((first, *rest))
    if len(key) <= MAX_EVENT_ID:
        return key
    digest = hashlib.sha256(":".join(rest).encode("utf-8", "surrogatepass")).hexdigest()
    return f"{first[: MAX_EVENT_ID - 65]}:{digest}"


def as_dict(value: object) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one (providers' optional parts)."""
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    """`value` if it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def decode_json(body: bytes) -> Any:
    """The body as JSON, or `Malformed`."""
    try:
        return _decoder.decode(body)
    except msgspec.DecodeError as error:
        raise InvalidInput(f"The body is not JSON: {error}.", code="malformed") from None


def text(value: object, limit: int = MAX_TEXT) -> str | None:
    """A string field, stripped and cut to `limit`; None when absent, empty or not a string."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    cut = str(value).strip()[:limit]
    return cut or None


def enhanced_status(*candidates: object) -> str | None:
    """The first enhanced status code (`5.1.1`) found in the candidates, in order."""
    for candidate in candidates:
        found = _ENHANCED_STATUS.search(candidate) if isinstance(candidate, str) else None
        if found:
            return found.group(1)
    return None


def unix_time(value: object) -> datetime | None:
    """A Unix timestamp (seconds, int, float or digits) as a UTC time; None if it is not one."""
    if isinstance(value, bool):
        return None
    try:
        seconds = float(value)  # type: ignore[arg-type]
        return datetime.fromtimestamp(seconds, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def iso_time(value: object) -> datetime | None:
    """An ISO 8601 time (`2019-11-05T16:33:54.9070259Z`) in UTC; None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def angle_bracketed(message_id: object) -> str | None:
    """A Message-ID in angle brackets, as the hub writes it: `<guid.id@domain>`."""
    value = text(message_id, 998)
    if value is None:
        return None
    return value if value.startswith("<") else f"<{value}>"


def check_timestamp(value: str | None, max_age: float, *, now: float | None = None) -> int:
    """The signed timestamp (Unix seconds), refused when it is missing, not a number, or
    further than `max_age` seconds from now (either way: a clock may run ahead)."""
    if value is None or not value.strip():
        raise Unauthorized("The call has no timestamp.", code="missing_signature")
    if not _UNIX_SECONDS.fullmatch(value):
        raise Forbidden("The timestamp is not a number of seconds.", code="bad_signature")
    stamp = int(value)
    current = time.time() if now is None else now
    if abs(current - stamp) > max_age:
        raise Forbidden(
            f"The timestamp is {int(current - stamp)} seconds off; at most {int(max_age)} "
            "are allowed.",
            code="stale_timestamp",
        )
    return stamp
