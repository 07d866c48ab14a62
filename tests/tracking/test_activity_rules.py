"""The rules of each activity type (seed 000): titles, required fields, custom types."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from contacthub.activities import service as activity_types
from contacthub.storage.database import Database
from contacthub.storage.models import Activity
from tests import factories
from tests.factories import TrackingSetup
from tests.tracking.support import (
    activities_of,
    assert_rejected,
    contact_row,
    count,
    post_activities,
    results_of,
    titles_of,
)

URL = "https://example.com/mypage"


def log_one(
    client: TestClient, setup: TrackingSetup, contact: str, activity: Any
) -> dict[str, Any]:
    [result] = results_of(post_activities(client, setup, contact, [activity]))
    return result


def test_titles_of_built_in_types(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    expected = [
        ({"type": "pagevisit", "url": URL, "value": "My page"}, "Page visit 'My page'"),
        ({"type": "click", "value": "MyClickableElement"}, "Clicked 'MyClickableElement'"),
        ({"type": "datainput", "value": "Registration form"}, "Data input 'Registration form'"),
        # The seed's own example logs a page visit without a value: the URL stands in for it.
        ({"type": "pagevisit", "url": URL}, f"Page visit '{URL}'"),
        ({"type": "pagevisit", "url": URL, "value": ""}, f"Page visit '{URL}'"),
        ({"type": "click", "value": 'It\'s "quoted"'}, "Clicked 'It's \"quoted\"'"),
    ]

    answer = post_activities(client, setup, contact, [activity for activity, _ in expected])

    assert results_of(answer) == [{"status": 202}] * len(expected)
    stored = activities_of(database, contact)
    assert [a.title for a in stored] == [title for _, title in expected]
    assert [a.type for a in stored] == [activity["type"] for activity, _ in expected]


def test_type_names_match_case_insensitively(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    activities = [
        {"type": "PageVisit", "url": URL, "value": "P"},
        {"type": "CLICK", "value": "C"},
        {"type": "DataInput", "value": "D"},
    ]

    assert results_of(post_activities(client, setup, contact, activities)) == [{"status": 202}] * 3

    stored = activities_of(database, contact)
    assert [a.type for a in stored] == ["pagevisit", "click", "datainput"]
    assert [a.title for a in stored] == ["Page visit 'P'", "Clicked 'C'", "Data input 'D'"]


def test_url_and_referrer_are_optional_except_for_page_visits(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    activities = [
        {"type": "click", "value": "with", "url": URL, "referrer": "https://ref.example.com"},
        {"type": "click", "value": "without"},
        {"type": "datainput", "value": "with", "url": URL},
    ]

    assert results_of(post_activities(client, setup, contact, activities)) == [{"status": 202}] * 3

    first, second, third = activities_of(database, contact)
    assert (first.url, first.referrer) == (URL, "https://ref.example.com")
    assert (second.url, second.referrer) == (None, None)
    assert (third.url, third.referrer) == (URL, None)


def test_required_fields(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    cases = [
        ({"type": "pagevisit"}, "missing_url"),
        ({"type": "pagevisit", "url": ""}, "missing_url"),
        ({"type": "pagevisit", "url": None, "value": "Title"}, "missing_url"),
        ({"type": "click"}, "missing_value"),
        ({"type": "click", "value": ""}, "missing_value"),
        ({"type": "click", "value": None, "url": URL}, "missing_value"),
        ({"type": "datainput"}, "missing_value"),
        ({"type": "datainput", "contactFields": {"ContactFirstName": "Luke"}}, "missing_value"),
        ({"value": "no type"}, "missing_type"),
        ({"type": "", "value": "x"}, "missing_type"),
        ({"type": None, "value": "x"}, "missing_type"),
    ]

    results = results_of(post_activities(client, setup, contact, [a for a, _ in cases]))

    for (activity, code), result in zip(cases, results, strict=True):
        error = assert_rejected(result, 400, code)
        assert "required" in error, activity
    assert count(database, Activity) == 0
    assert contact_row(database, contact).first_name is None


def test_malformed_activities_fail_alone(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    cases: list[tuple[Any, str]] = [
        ({"type": 5, "value": "x"}, "invalid_type"),
        ({"type": ["click"], "value": "x"}, "invalid_type"),
        ({"type": "click", "value": 5000}, "invalid_value"),
        ({"type": "click", "value": True}, "invalid_value"),
        ({"type": "click", "value": {"a": 1}}, "invalid_value"),
        ({"type": "pagevisit", "url": 42}, "invalid_url"),
        ({"type": "click", "value": "x", "referrer": ["a"]}, "invalid_referrer"),
        # PostgreSQL cannot store NUL: refused on every database (it once gave a 503).
        ({"type": "click", "value": "a\u0000b"}, "invalid_value"),
        ({"type": "pagevisit", "url": "https://example.com/\u0000"}, "invalid_url"),
        ({"type": "click", "value": "x", "referrer": "\u0000"}, "invalid_referrer"),
        ({"type": "cli\u0000ck", "value": "x"}, "invalid_type"),
        ("click", "invalid_activity"),
        (["click", "x"], "invalid_activity"),
        (None, "invalid_activity"),
        (7, "invalid_activity"),
        ({"type": "click", "value": "x", "VALUE": "y"}, "duplicate_property"),
        ({"type": "click", "value": "x", "contactFields": {"a": "b"}}, "unexpected_contact_fields"),
        ({"type": "click", "value": "x", "contactFields": "Luke"}, "unexpected_contact_fields"),
        ({"type": "emailopen", "value": "x"}, "reserved_type"),
        ({"type": "EmailClick", "value": "x"}, "reserved_type"),
    ]
    good = {"type": "click", "value": "good"}
    activities = [good]
    for activity, _ in cases:
        activities += [activity, good]

    results = results_of(post_activities(client, setup, contact, activities))

    assert results[0::2] == [{"status": 202}] * (len(cases) + 1)
    for (activity, code), result in zip(cases, results[1::2], strict=True):
        assert result["code"] == code, activity
        assert_rejected(result, 400, code)
    assert titles_of(database, contact) == ["Clicked 'good'"] * (len(cases) + 1)


@pytest.mark.parametrize(
    ("field", "limit", "base"),
    [
        ("url", 2000, {"type": "pagevisit"}),
        ("referrer", 2000, {"type": "click", "value": "x"}),
    ],
)
def test_over_long_urls_are_refused_not_cut(
    client: TestClient,
    database: Database,
    setup: TrackingSetup,
    contact: str,
    field: str,
    limit: int,
    base: dict[str, str],
) -> None:
    full = {"type": "pagevisit", "url": URL, **base}
    at_limit = {**full, field: "é" * limit}  # characters, not bytes
    over = {**full, field: "é" * (limit + 1)}

    ok, refused = results_of(post_activities(client, setup, contact, [at_limit, over]))

    assert ok == {"status": 202}
    error = assert_rejected(refused, 400, f"{field}_too_long")
    assert str(limit) in error
    [stored] = activities_of(database, contact)
    assert getattr(stored, field) == "é" * limit


@pytest.mark.parametrize("spelling", ["value", "Value"])  # the fast path and the general one
def test_over_long_values_are_cut_and_said_so(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str, spelling: str
) -> None:
    # A real client never reads per-item results: a long page title refused was lost.
    activities = [
        {"type": "click", spelling: "é" * 250},
        {"type": "click", spelling: "é" * 251},
        {"type": "pagevisit", "url": URL, spelling: "t" * 5000},
        {"type": "click", spelling: "x", "url": "u" * 2001},  # other bad input: still refused
    ]

    results = results_of(post_activities(client, setup, contact, activities))

    assert results[:3] == [
        {"status": 202},
        {"status": 202, "truncated": ["value"]},
        {"status": 202, "truncated": ["value"]},
    ]
    assert_rejected(results[3], 400, "url_too_long")
    stored = activities_of(database, contact)
    assert [a.value for a in stored] == ["é" * 250, "é" * 250, "t" * 250]
    assert stored[2].title == f"Page visit '{'t' * 250}'"


def test_long_values_give_full_titles(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    factories.activity_type(database, "long_one", "D" * 200)
    activities = [
        {"type": "click", "value": "v" * 250},
        {"type": "long_one", "value": "v" * 250},
    ]

    assert results_of(post_activities(client, setup, contact, activities)) == [{"status": 202}] * 2

    assert titles_of(database, contact) == [
        f"Clicked '{'v' * 250}'",
        f"{'D' * 200} '{'v' * 250}'",
    ]


def test_page_visit_title_from_a_long_url_is_shortened_to_the_title_column(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    # Only the derived title is shortened; the URL itself is stored whole.
    url = "https://example.com/" + "p" * 1980

    assert log_one(client, setup, contact, {"type": "pagevisit", "url": url})["status"] == 202

    [stored] = activities_of(database, contact)
    assert stored.url == url
    assert len(stored.title) == 500
    assert stored.title.startswith("Page visit 'https://example.com/ppp")


class TestCustomTypes:
    def test_enabled_type_title_is_its_display_name_and_value(
        self, client: TestClient, database: Database, setup: TrackingSetup, contact: str
    ) -> None:
        factories.activity_type(database, "custom_loan_calculator", "Loan calculator")

        result = log_one(
            client, setup, contact, {"type": "custom_loan_calculator", "value": "5000"}
        )

        assert result == {"status": 202}
        [stored] = activities_of(database, contact)
        assert stored.type == "custom_loan_calculator"
        assert stored.title == "Loan calculator '5000'"
        assert stored.value == "5000"

    def test_without_value_the_title_is_the_display_name(
        self, client: TestClient, database: Database, setup: TrackingSetup, contact: str
    ) -> None:
        factories.activity_type(database, "newsletter_signup", "Newsletter sign-up")
        activities = [
            {"type": "newsletter_signup"},
            {"type": "newsletter_signup", "value": None},
            {"type": "newsletter_signup", "value": ""},
        ]

        results = results_of(post_activities(client, setup, contact, activities))

        assert results == [{"status": 202}] * 3
        assert titles_of(database, contact) == ["Newsletter sign-up"] * 3

    def test_url_and_referrer_are_stored(
        self, client: TestClient, database: Database, setup: TrackingSetup, contact: str
    ) -> None:
        factories.activity_type(database, "download", "Download")

        log_one(client, setup, contact, {"type": "download", "url": URL, "referrer": "r"})

        [stored] = activities_of(database, contact)
        assert (stored.url, stored.referrer, stored.title) == (URL, "r", "Download")

    def test_code_names_match_case_insensitively_and_store_the_type_as_defined(
        self, client: TestClient, database: Database, setup: TrackingSetup, contact: str
    ) -> None:
        factories.activity_type(database, "Custom_Loan_Calculator", "Loan calculator")

        result = log_one(client, setup, contact, {"type": "custom_loan_calculator", "value": "1"})

        assert result == {"status": 202}
        [stored] = activities_of(database, contact)
        assert stored.type == "Custom_Loan_Calculator"

    def test_unknown_type_fails_alone(
        self, client: TestClient, database: Database, setup: TrackingSetup, contact: str
    ) -> None:
        factories.activity_type(database, "known", "Known")
        activities = [{"type": "unknown_thing", "value": "x"}, {"type": "known"}]

        unknown, known = results_of(post_activities(client, setup, contact, activities))

        error = assert_rejected(unknown, 400, "unknown_activity_type")
        assert "unknown_thing" in error
        assert known == {"status": 202}
        assert titles_of(database, contact) == ["Known"]

    def test_unknown_type_with_no_custom_types_at_all(
        self, client: TestClient, database: Database, setup: TrackingSetup, contact: str
    ) -> None:
        result = log_one(client, setup, contact, {"type": "custom_loan_calculator"})

        assert_rejected(result, 400, "unknown_activity_type")
        assert count(database, Activity) == 0

    def test_disabled_type_fails_alone_and_works_again_once_enabled(
        self, client: TestClient, database: Database, setup: TrackingSetup, contact: str
    ) -> None:
        factories.activity_type(database, "quiz", "Quiz", enabled=False)
        activities = [{"type": "quiz", "value": "1"}, {"type": "click", "value": "c"}]

        disabled, click = results_of(post_activities(client, setup, contact, activities))

        error = assert_rejected(disabled, 400, "activity_type_disabled")
        assert "quiz" in error
        assert click == {"status": 202}
        assert titles_of(database, contact) == ["Clicked 'c'"]

        with database.write() as session:
            activity_types.set_enabled(session, "quiz", True)
        assert log_one(client, setup, contact, {"type": "quiz", "value": "2"}) == {"status": 202}
        assert titles_of(database, contact) == ["Clicked 'c'", "Quiz '2'"]

    def test_disabling_a_type_takes_effect_at_once(
        self, client: TestClient, database: Database, setup: TrackingSetup, contact: str
    ) -> None:
        factories.activity_type(database, "quiz", "Quiz")
        assert log_one(client, setup, contact, {"type": "quiz"}) == {"status": 202}

        with database.write() as session:
            activity_types.set_enabled(session, "quiz", False)

        assert_rejected(
            log_one(client, setup, contact, {"type": "quiz"}), 400, "activity_type_disabled"
        )
        assert count(database, Activity) == 1

    def test_custom_types_do_not_take_contact_fields(
        self, client: TestClient, database: Database, setup: TrackingSetup, contact: str
    ) -> None:
        factories.activity_type(database, "quiz", "Quiz")
        activity = {"type": "quiz", "contactFields": {"ContactFirstName": "Luke"}}

        assert_rejected(log_one(client, setup, contact, activity), 400, "unexpected_contact_fields")
        assert contact_row(database, contact).first_name is None


class TestDataInput:
    def test_fields_update_the_contact(
        self, client: TestClient, database: Database, setup: TrackingSetup, contact: str
    ) -> None:
        activity = {
            "type": "datainput",
            "value": "Registration form",
            "contactFields": {"ContactFirstName": "Luke", "ContactCity": "Brno"},
        }

        assert log_one(client, setup, contact, activity) == {"status": 202}

        stored = contact_row(database, contact)
        assert (stored.first_name, stored.city) == ("Luke", "Brno")
        [logged] = activities_of(database, contact)
        assert logged.title == "Data input 'Registration form'"

    def test_without_contact_fields_only_the_activity_is_logged(
        self, client: TestClient, database: Database, setup: TrackingSetup, contact: str
    ) -> None:
        for activity in (
            {"type": "datainput", "value": "Form"},
            {"type": "datainput", "value": "Form", "contactFields": None},
            {"type": "datainput", "value": "Form", "contactFields": {}},
        ):
            assert log_one(client, setup, contact, activity) == {"status": 202}

        assert titles_of(database, contact) == ["Data input 'Form'"] * 3
        assert contact_row(database, contact).first_name is None

    def test_an_empty_contact_fields_object_is_ignored_on_other_types(
        self, client: TestClient, database: Database, setup: TrackingSetup, contact: str
    ) -> None:
        # Client libraries that always send the property send it empty: nothing to refuse.
        activity = {"type": "click", "value": "Buy", "contactFields": {}}

        assert log_one(client, setup, contact, activity) == {"status": 202}
        assert titles_of(database, contact) == ["Clicked 'Buy'"]

    def test_later_inputs_change_earlier_ones_and_empty_strings_erase_nothing(
        self, client: TestClient, database: Database, setup: TrackingSetup, contact: str
    ) -> None:
        activities = [
            {"type": "datainput", "value": "1", "contactFields": {"ContactFirstName": "Luke"}},
            {
                "type": "datainput",
                "value": "2",
                "contactFields": {"ContactFirstName": "Lucas", "ContactLastName": "Smith"},
            },
            {
                "type": "datainput",
                "value": "3",
                "contactFields": {"ContactFirstName": "", "ContactLastName": ""},
            },
        ]

        assert (
            results_of(post_activities(client, setup, contact, activities)) == [{"status": 202}] * 3
        )

        stored = contact_row(database, contact)
        assert (stored.first_name, stored.last_name) == ("Lucas", "Smith")

    def test_one_bad_field_refuses_the_whole_data_input(
        self, client: TestClient, database: Database, setup: TrackingSetup, contact: str
    ) -> None:
        activities = [
            {
                "type": "datainput",
                "value": "Form",
                "contactFields": {"ContactFirstName": "Luke", "ContactCountry": "Narnia"},
            },
            {"type": "click", "value": "after"},
        ]

        bad, click = results_of(post_activities(client, setup, contact, activities))

        error = assert_rejected(bad, 400, "invalid_contact_fields")
        assert "ContactCountry" in error
        assert click == {"status": 202}
        assert contact_row(database, contact).first_name is None
        assert titles_of(database, contact) == ["Clicked 'after'"]

    def test_contact_fields_must_be_an_object(
        self, client: TestClient, database: Database, setup: TrackingSetup, contact: str
    ) -> None:
        activities = [
            {"type": "datainput", "value": "Form", "contactFields": fields}
            for fields in ("Luke", ["ContactFirstName", "Luke"], 3, True)
        ]

        results = results_of(post_activities(client, setup, contact, activities))

        for result in results:
            assert_rejected(result, 400, "invalid_contact_fields")
        assert count(database, Activity) == 0
