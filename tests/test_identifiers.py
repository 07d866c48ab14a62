"""Ids, cursors and days as they arrive in paths, query strings and forms."""

from __future__ import annotations

from datetime import date

import pytest

from contacthub.errors import InvalidInput, with_article
from contacthub.identifiers import (
    MAX_BIG_ID,
    MAX_ID,
    check_code_name,
    parse_cursor,
    parse_day,
    whole_number,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("42", 42),
        ("123456789", 123_456_789),
        ("1234567890", 1_234_567_890),
        ("2147483647", MAX_ID),
        ("2147483648", None),
        ("00000000001", None),
        ("", None),
        ("-1", None),
        (" 1", None),
        ("1.0", None),
        ("²", None),
        ("١٢", None),
        ("1e3", None),
    ],
)
def test_whole_numbers_are_ascii_digits_only(text: str, expected: int | None) -> None:
    assert whole_number(text) == expected


def test_bigger_numbers_when_asked() -> None:
    assert whole_number(str(MAX_BIG_ID), maximum=MAX_BIG_ID) == MAX_BIG_ID
    assert whole_number(str(MAX_BIG_ID + 1), maximum=MAX_BIG_ID) is None


def test_cursors_beyond_their_ids_are_refused() -> None:
    assert parse_cursor("", "before") is None
    assert parse_cursor(str(MAX_ID), "before") == MAX_ID
    with pytest.raises(InvalidInput) as caught:
        parse_cursor(str(MAX_ID + 1), "before")
    assert (caught.value.code, caught.value.field) == ("invalid_cursor", "before")
    assert parse_cursor(str(MAX_ID + 1), "after", maximum=MAX_BIG_ID) == MAX_ID + 1


def test_days() -> None:
    assert parse_day(" 2024-05-31 ", "end") == date(2024, 5, 31)
    assert parse_day("", "end") is None
    with pytest.raises(InvalidInput):
        parse_day("2024-02-30", "start")


@pytest.mark.parametrize(
    ("noun", "expected"),
    [
        ("activity type", "An activity type"),
        ("email", "An email"),
        ("issue", "An issue"),
        ("origin", "An origin"),
        ("consent", "A consent"),
        ("subscriber", "A subscriber"),
        ("newsletter name", "A newsletter name"),
    ],
)
def test_messages_take_the_article_the_noun_needs(noun: str, expected: str) -> None:
    assert with_article(noun) == expected


def test_an_activity_type_code_name_message_says_an() -> None:
    with pytest.raises(InvalidInput) as refused:
        check_code_name("two words", "activity type")
    assert refused.value.message.startswith("An activity type code name has 1 to 100 letters")
