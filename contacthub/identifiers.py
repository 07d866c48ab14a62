"""GUIDs, code names, days and base URLs as the outside world writes them."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime
from urllib.parse import urlsplit

from contacthub.errors import InvalidInput, with_article

CODE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,100}")
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
DIGITS = re.compile(r"[0-9]+")
MAX_BASE_URL = 500


def guid_or_none(text: object) -> uuid.UUID | None:
    """The GUID `text` spells (with or without braces and dashes), or None if it spells none:
    for keys that may be a GUID or a name."""
    if isinstance(text, str) and 32 <= len(text) <= 38:
        try:
            return uuid.UUID(text)
        except ValueError:
            return None
    return None


def parse_guid(text: object, what: str) -> uuid.UUID:
    """A GUID in any of the usual spellings (with or without braces and dashes)."""
    guid = guid_or_none(text)
    if guid is not None:
        return guid
    raise InvalidInput(
        f"{what} must be a GUID, e.g. 06b035b8-6658-4a1b-b1de-5994e4975fb1.",
        code=f"invalid_{what.lower().replace(' ', '_')}",
    )


def check_code_name(code_name: str, what: str) -> str:
    """A code name: 1 to 100 letters, digits, underscores, dots or dashes."""
    # "." and ".." would vanish from URL paths (browsers resolve them), leaving no page.
    if not CODE_NAME.fullmatch(code_name) or code_name in (".", ".."):
        raise InvalidInput(
            f"{with_article(what)} code name has 1 to 100 letters, digits, '_', '.' or '-' "
            "(and is not '.' or '..').",
            code="invalid_code_name",
            field="code_name",
        )
    return code_name


MAX_LABEL = 100


def check_label(
    text: str, what: str, *, code: str, field: str, minimum: int, maximum: int = MAX_LABEL
) -> str:
    """A name as stored (a channel's, a key's, a group's): stripped, within bounds, printable
    (a NUL breaks PostgreSQL, a line break breaks lists and headers)."""
    text = text.strip()
    if not minimum <= len(text) <= maximum:
        bounds = f"{minimum} to {maximum}" if minimum else f"at most {maximum}"
        raise InvalidInput(f"{what} has {bounds} characters.", code=code, field=field)
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise InvalidInput(f"{what} cannot contain control characters.", code=code, field=field)
    return text


def parse_day(text: str, field: str) -> date | None:
    """A day typed as `YYYY-MM-DD` (a date filter, a range picker); None when empty."""
    text = text.strip()
    if not text:
        return None
    try:
        if DAY.fullmatch(text):
            return date.fromisoformat(text)
    except ValueError:  # 2024-02-30 and the like
        pass
    raise InvalidInput(
        "Enter a date as YYYY-MM-DD, e.g. 2024-05-31.", code="invalid_date", field=field
    )


# Ids as the tables hold them: PostgreSQL's `integer` and `bigint`. A number beyond its column's
# range names no row, and PostgreSQL refuses to compare with it ("out of range"): every id and
# cursor parser bounds its number here, so that it answers 404 or 400 rather than 500.
MAX_ID = 2**31 - 1
"""The largest id of an Integer primary key (most tables)."""
MAX_BIG_ID = 2**63 - 1
"""The largest id of a BigInteger primary key (activities, audit events, deliveries, opens…)."""


def whole_number(text: str, *, maximum: int = MAX_ID) -> int | None:
    """`text` as a whole number from 0 to `maximum` in ASCII digits (an id, a cursor); else None.

    Not `str.isdigit()`: it also accepts digits that `int()` refuses, such as "²", which would
    turn a malformed id into a server error instead of a 404.
    """
    if len(text) > len(str(maximum)) or not DIGITS.fullmatch(text):
        return None
    number = int(text)
    return number if number <= maximum else None


def parse_cursor(
    text: str, field: str, *, maximum: int = MAX_ID, code: str = "invalid_cursor"
) -> int | None:
    """A page cursor (the id a previous page gave) from a query parameter; None when empty, and
    a 400 naming `field` when it is not a whole number from 0 to `maximum`."""
    if not text:
        return None
    number = whole_number(text, maximum=maximum)
    if number is None:
        raise InvalidInput(
            f"{field} must be a whole number (the cursor of a previous page).",
            code=code,
            field=field,
        )
    return number


def refuse_nul(text: str, field: str) -> str:
    """`text` unchanged, or a 400 naming `field` when it holds a NUL character.

    PostgreSQL cannot store NUL in text and SQLite would keep it silently; the one rule refuses it
    on both databases alike, wherever text comes in (paths, queries, JSON, forms, the CLI).
    """
    if "\x00" in text:
        raise InvalidInput(
            f"{field} must not contain NUL characters.", code="nul_character", field=field
        )
    return text


def web_url(
    text: str,
    what: str,
    *,
    code: str,
    field: str | None = None,
    maximum: int,
    query: bool = True,
    given: str | None = None,
) -> str:
    """An absolute http(s) URL the hub calls or builds on: a host, no fragment, no credentials,
    no spaces, at most `maximum` characters; a query only if `query`. The one URL rule of the
    hub's settings (base URLs, the hub behind a proxy, webhook endpoints).

    `what` names it in the messages ("base URL", "webhook URL"); `given`, the text as typed.
    """
    url = text.strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # e.g. "http://[::1": a bracket that never closes
        host = None
    if not host or parts.scheme not in ("http", "https"):
        raise InvalidInput(
            f"The {what} must be an absolute http(s) URL, e.g. https://www.example.com "
            f"({text if given is None else given!r} given).",
            code=code,
            field=field,
        )
    if (
        (parts.query and not query)
        or parts.fragment
        or "#" in url
        or parts.username
        or parts.password
    ):
        refused = "a fragment" if query else "a query, a fragment"
        raise InvalidInput(
            f"The {what} may not carry {refused} or credentials.", code=code, field=field
        )
    if len(url) > maximum or any(c.isspace() or not c.isprintable() for c in url):
        raise InvalidInput(
            f"The {what} has at most {maximum} characters and no spaces.",
            code=code,
            field=field,
        )
    return url


def base_url(text: str, what: str, *, code: str, field: str | None = None) -> str:
    """An absolute http(s) URL that others are built on (a newsletter's site, the hub behind a
    proxy): `web_url` without a query, at most 500 characters; without a trailing slash.

    `what` names it in the messages ("base URL", "hub URL").
    """
    return web_url(
        text.strip().rstrip("/"),
        what,
        code=code,
        field=field,
        maximum=MAX_BASE_URL,
        query=False,
        given=text,
    )


def refuse_nul_within(value: object, field: str = "") -> None:
    """Refuse (400) a NUL in any text of decoded JSON: strings and property names, at any depth.

    The error names where it was found, e.g. `contact_fields.first_name` or `items[2]` (below
    `field`, which names the whole value; empty for a request body).
    """
    pending: list[tuple[str, object]] = [(field, value)]
    while pending:
        where, item = pending.pop()
        if isinstance(item, str):
            refuse_nul(item, where or "The body")
        elif isinstance(item, dict):
            for name, inner in item.items():
                key = str(name)
                refuse_nul(key, f"{where} (a property name)" if where else "A property name")
                pending.append((f"{where}.{key}" if where else key, inner))
        elif isinstance(item, list):
            pending.extend((f"{where}[{index}]", inner) for index, inner in enumerate(item))


def typed_time(text: str, *, code: str, field: str) -> datetime:
    """A point in time as people type it: an ISO date (00:00 UTC that day) or time, UTC when it
    names no zone (every time the hub shows is UTC)."""
    try:
        moment = datetime.fromisoformat(text)
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidInput(
            f"{text!r} is not a date (YYYY-MM-DD) or an ISO time.", code=code, field=field
        ) from None
