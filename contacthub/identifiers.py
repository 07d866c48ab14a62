"""GUIDs, code names and days as the outside world writes them."""

from __future__ import annotations

import re
import uuid
from datetime import date

from contacthub.errors import InvalidInput

CODE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,100}")
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
DIGITS = re.compile(r"[0-9]+")


def parse_guid(text: object, what: str) -> uuid.UUID:
    """A GUID in any of the usual spellings (with or without braces and dashes)."""
    if isinstance(text, str) and 32 <= len(text) <= 38:
        try:
            return uuid.UUID(text)
        except ValueError:
            pass
    raise InvalidInput(
        f"{what} must be a GUID, e.g. 06b035b8-6658-4a1b-b1de-5994e4975fb1.",
        code=f"invalid_{what.lower().replace(' ', '_')}",
    )


def check_code_name(code_name: str, what: str) -> str:
    """A code name: 1 to 100 letters, digits, underscores, dots or dashes."""
    # "." and ".." would vanish from URL paths (browsers resolve them), leaving no page.
    if not CODE_NAME.fullmatch(code_name) or code_name in (".", ".."):
        raise InvalidInput(
            f"A {what} code name has 1 to 100 letters, digits, '_', '.' or '-' "
            "(and is not '.' or '..').",
            code="invalid_code_name",
            field="code_name",
        )
    return code_name


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


def whole_number(text: str, max_digits: int = 9) -> int | None:
    """`text` as a whole number of at most `max_digits` ASCII digits (an id, a cursor); else None.

    Not `str.isdigit()`: it also accepts digits that `int()` refuses, such as "²", which would
    turn a malformed id into a server error instead of a 404.
    """
    return int(text) if len(text) <= max_digits and DIGITS.fullmatch(text) else None


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
