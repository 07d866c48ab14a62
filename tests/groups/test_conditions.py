"""The condition language: every node kind parses and dumps back, every fault answers its code
and the path of the faulty node, the bounds hold, group references survive renames, cycles are
refused; on SQLite and PostgreSQL (references are looked up in the database)."""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import Any

import pytest
from sqlalchemy import update

from contacthub.errors import InvalidInput
from contacthub.groups.conditions import (
    MAX_DEPTH,
    MAX_LIST,
    MAX_NODES,
    ActivityCondition,
    AllOf,
    AnyOf,
    ConsentCondition,
    EmailCondition,
    FieldCondition,
    GroupCondition,
    Not,
    TimeWindow,
    check_no_cycle,
    depends_on,
    dump_conditions,
    dump_conditions_text,
    load_conditions,
    parse_conditions,
    referenced_groups,
    time_windows,
)
from contacthub.storage.database import Database
from contacthub.storage.models import ContactGroup
from tests.groups.support import (
    CHANNEL,
    CONSENT,
    CUSTOM_TYPE,
    NEWSLETTER,
    References,
    add_group,
    references,
)


@pytest.fixture
def refs(database: Database) -> References:
    return references(database)


def parse(database: Database, raw: object) -> Any:
    with database.read() as session:
        return parse_conditions(session, raw)


def every_kind(refs: References) -> dict[str, Any]:
    """A tree with every node kind and every operator of the language."""
    return {
        "all": [
            {"field": "email", "op": "equals", "value": "ada@example.com"},
            {"field": "first_name", "op": "contains", "value": "d"},
            {"field": "last_name", "op": "starts_with", "value": "Love"},
            {"field": "company_name", "op": "ends_with", "value": "Ltd"},
            {"field": "city", "op": "in", "value": ["Prague", "Brno", "Prague"]},
            {"field": "notes", "op": "is_empty"},
            {"field": "country", "op": "equals", "value": "cze"},
            {"field": "state", "op": "in", "value": ["ca", "NY"]},
            {"field": "zip", "op": "is_empty"},
            {"field": "birthday", "op": "before", "value": "2000-01-01"},
            {"field": "created_at", "op": "after", "value": "2024-01-31"},
            {"field": "updated_at", "op": "within_days", "value": 30},
            {"field": "birthday", "op": "is_empty"},
            {
                "any": [
                    {"consent": CONSENT, "state": "agreed"},
                    {"consent": CONSENT.lower(), "state": "agreed", "revision": 2},
                    {"consent": CONSENT, "state": "revoked"},
                    {"not": {"consent": CONSENT, "state": "never"}},
                ]
            },
            {"activity": "pagevisit"},
            {
                "activity": "PageVisit",
                "url_contains": "/pricing",
                "channel": CHANNEL,
                "at_least": 2,
                "within_days": 30,
            },
            {
                "activity": CUSTOM_TYPE.lower(),
                "value_equals": "Intro",
                "between": ["2024-01-01", "2024-03-31"],
            },
            {"email": "subscribed", "newsletter": NEWSLETTER},
            {
                "email": "unsubscribed",
                "newsletter": NEWSLETTER,
                "issue": refs.issue_guid,
                "within_days": 7,
            },
            {"email": "opened", "newsletter": NEWSLETTER, "issue": refs.issue_guid.upper()},
            {"email": "clicked", "newsletter": NEWSLETTER, "human_only": False, "within_days": 14},
            {"group": "Customers"},
        ]
    }


def test_every_node_kind_parses_into_its_dataclass(database: Database, refs: References) -> None:
    condition = parse(database, every_kind(refs))
    assert isinstance(condition, AllOf)
    items = condition.items
    assert items[0] == FieldCondition("email", "equals", "ada@example.com")
    assert items[4] == FieldCondition("city", "in", ("Prague", "Brno"))
    assert items[6] == FieldCondition("country", "equals", "CZE")
    assert items[7] == FieldCondition("state", "in", ("CA", "NY"))
    assert items[9] == FieldCondition("birthday", "before", date(2000, 1, 1))
    assert items[11] == FieldCondition("updated_at", "within_days", 30)
    consents = items[13]
    assert isinstance(consents, AnyOf)
    agreed, revision, revoked, negated = consents.items
    assert isinstance(agreed, ConsentCondition)
    assert agreed.code_name == CONSENT
    assert isinstance(revision, ConsentCondition)
    assert (revision.code_name, revision.revision) == (CONSENT, 2)
    assert revision.revision_id is not None
    assert isinstance(revoked, ConsentCondition)
    assert revoked.state == "revoked"
    assert isinstance(negated, Not)
    assert isinstance(negated.item, ConsentCondition)
    pricing = items[15]
    assert isinstance(pricing, ActivityCondition)
    assert (pricing.type, pricing.at_least, pricing.within_days) == ("pagevisit", 2, 30)
    assert (pricing.channel, pricing.url_contains) == (CHANNEL, "/pricing")
    assert pricing.channel_id is not None
    webinar = items[16]
    assert isinstance(webinar, ActivityCondition)
    assert webinar.type == CUSTOM_TYPE  # as the type is stored
    assert webinar.between == (date(2024, 1, 1), date(2024, 3, 31))
    opened = items[19]
    assert isinstance(opened, EmailCondition)
    assert opened.issue_guid == refs.issue_guid
    assert opened.human_only
    clicked = items[20]
    assert isinstance(clicked, EmailCondition)
    assert not clicked.human_only
    assert items[21] == GroupCondition(refs.group_ids["Customers"], "Customers")


def test_the_canonical_form_parses_back_to_the_same_condition(
    database: Database, refs: References
) -> None:
    condition = parse(database, every_kind(refs))
    stored = dump_conditions(condition)
    shown = dump_conditions(condition, for_display=True)
    assert stored["all"][-1] == {"group_id": refs.group_ids["Customers"]}
    assert shown["all"][-1] == {"group": "Customers"}
    assert stored["all"][14] == {"activity": "pagevisit", "at_least": 1}
    assert shown["all"][0] == {"field": "email", "op": "equals", "value": "ada@example.com"}
    assert parse(database, stored) == condition
    assert parse(database, shown) == condition
    assert parse(database, json.loads(dump_conditions_text(condition))) == condition
    with database.read() as session:
        assert load_conditions(session, dump_conditions_text(condition)) == condition


def test_empty_lists_are_conditions(database: Database) -> None:
    assert parse(database, {"all": []}) == AllOf(())
    assert parse(database, {"any": []}) == AnyOf(())


def test_a_renamed_group_is_still_the_same_group(database: Database, refs: References) -> None:
    with database.read() as session:
        stored = dump_conditions_text(parse_conditions(session, {"not": {"group": "Customers"}}))
    with database.write() as session:
        session.execute(update(ContactGroup).values(name="Clients"))
    with database.read() as session:
        condition = load_conditions(session, stored)
    assert dump_conditions(condition, for_display=True) == {"not": {"group": "Clients"}}
    assert referenced_groups(condition) == {refs.group_ids["Customers"]}


FAULTS: list[tuple[object, str, str]] = [
    # (conditions, code, path of the fault)
    ("city", "invalid_conditions", "conditions"),
    ({}, "invalid_conditions", "conditions"),
    ({"all": [], "any": []}, "invalid_conditions", "conditions"),
    ({"all": {}}, "invalid_conditions", "conditions.all"),
    ({"not": []}, "invalid_conditions", "conditions.not"),
    ({"all": [{"field": "city", "op": "is_empty"}, 5]}, "invalid_conditions", "conditions.all[1]"),
    (
        {"all": [{"any": [{"not": {"field": "nope", "op": "equals", "value": "x"}}]}]},
        "invalid_conditions",
        "conditions.all[0].any[0].not.field",
    ),
    ({"field": "city", "op": "is_empty", "extra": 1}, "invalid_conditions", "conditions.extra"),
    ({"field": "city"}, "invalid_conditions", "conditions.op"),
    (
        {"field": "city", "op": "before", "value": "2020-01-01"},
        "invalid_conditions",
        "conditions.op",
    ),
    ({"field": "city", "op": "equals"}, "invalid_conditions", "conditions.value"),
    ({"field": "city", "op": "equals", "value": ""}, "invalid_conditions", "conditions.value"),
    ({"field": "city", "op": "equals", "value": 5}, "invalid_conditions", "conditions.value"),
    (
        {"field": "city", "op": "contains", "value": "x" * 1001},
        "invalid_conditions",
        "conditions.value",
    ),
    ({"field": "city", "op": "is_empty", "value": "x"}, "invalid_conditions", "conditions.value"),
    ({"field": "city", "op": "in", "value": []}, "invalid_conditions", "conditions.value"),
    ({"field": "city", "op": "in", "value": "Prague"}, "invalid_conditions", "conditions.value"),
    ({"field": "city", "op": "in", "value": ["a", 3]}, "invalid_conditions", "conditions.value[1]"),
    ({"field": "country", "op": "equals", "value": "XX"}, "invalid_conditions", "conditions.value"),
    ({"field": "country", "op": "contains", "value": "CZ"}, "invalid_conditions", "conditions.op"),
    (
        {"field": "state", "op": "in", "value": ["CA", "ZZ"]},
        "invalid_conditions",
        "conditions.value[1]",
    ),
    (
        {"field": "birthday", "op": "before", "value": "2020-02-30"},
        "invalid_conditions",
        "conditions.value",
    ),
    (
        {"field": "birthday", "op": "after", "value": "1.1.2020"},
        "invalid_conditions",
        "conditions.value",
    ),
    (
        {"field": "created_at", "op": "within_days", "value": 0},
        "invalid_conditions",
        "conditions.value",
    ),
    (
        {"field": "created_at", "op": "within_days", "value": True},
        "invalid_conditions",
        "conditions.value",
    ),
    (
        {"field": "created_at", "op": "equals", "value": "2024-01-01"},
        "invalid_conditions",
        "conditions.op",
    ),
    ({"consent": "Nope", "state": "agreed"}, "unknown_consent", "conditions.consent"),
    ({"consent": CONSENT}, "invalid_conditions", "conditions.state"),
    ({"consent": CONSENT, "state": "maybe"}, "invalid_conditions", "conditions.state"),
    (
        {"consent": CONSENT, "state": "revoked", "revision": 1},
        "invalid_conditions",
        "conditions.revision",
    ),
    (
        {"consent": CONSENT, "state": "agreed", "revision": 3},
        "unknown_revision",
        "conditions.revision",
    ),
    (
        {"consent": CONSENT, "state": "agreed", "revision": "1"},
        "invalid_conditions",
        "conditions.revision",
    ),
    ({"activity": "nope"}, "unknown_activity_type", "conditions.activity"),
    ({"activity": 7}, "invalid_conditions", "conditions.activity"),
    ({"activity": "pagevisit", "channel": "Nope"}, "unknown_channel", "conditions.channel"),
    ({"activity": "pagevisit", "at_least": 0}, "invalid_conditions", "conditions.at_least"),
    ({"activity": "pagevisit", "at_least": 1.5}, "invalid_conditions", "conditions.at_least"),
    (
        {"activity": "pagevisit", "within_days": 36_501},
        "invalid_conditions",
        "conditions.within_days",
    ),
    (
        {"activity": "pagevisit", "within_days": 7, "between": ["2024-01-01", "2024-01-02"]},
        "invalid_conditions",
        "conditions.between",
    ),
    (
        {"activity": "pagevisit", "between": ["2024-02-01", "2024-01-01"]},
        "invalid_conditions",
        "conditions.between",
    ),
    (
        {"activity": "pagevisit", "between": ["2024-02-01"]},
        "invalid_conditions",
        "conditions.between",
    ),
    (
        {"activity": "pagevisit", "between": ["2024-02-01", "x"]},
        "invalid_conditions",
        "conditions.between[1]",
    ),
    (
        {"activity": "pagevisit", "url_contains": ""},
        "invalid_conditions",
        "conditions.url_contains",
    ),
    (
        {"activity": "pagevisit", "value_equals": "v" * 251},
        "invalid_conditions",
        "conditions.value_equals",
    ),
    ({"email": "bounced", "newsletter": NEWSLETTER}, "invalid_conditions", "conditions.email"),
    ({"email": "opened"}, "invalid_conditions", "conditions.newsletter"),
    ({"email": "opened", "newsletter": "Nope"}, "unknown_newsletter", "conditions.newsletter"),
    (
        {"email": "opened", "newsletter": NEWSLETTER, "issue": "not-a-guid"},
        "invalid_conditions",
        "conditions.issue",
    ),
    (
        {"email": "opened", "newsletter": NEWSLETTER, "issue": str(uuid.uuid4())},
        "unknown_issue",
        "conditions.issue",
    ),
    (
        {"email": "subscribed", "newsletter": NEWSLETTER, "human_only": False},
        "invalid_conditions",
        "conditions.human_only",
    ),
    (
        {"email": "opened", "newsletter": NEWSLETTER, "human_only": "yes"},
        "invalid_conditions",
        "conditions.human_only",
    ),
    (
        {"email": "subscribed", "newsletter": NEWSLETTER, "within_days": 3},
        "invalid_conditions",
        "conditions.within_days",
    ),
    ({"group": "Nope"}, "unknown_group", "conditions.group"),
    ({"group_id": 999_999}, "unknown_group", "conditions.group_id"),
    ({"group_id": "1"}, "invalid_conditions", "conditions.group_id"),
    ({"group": "Customers", "group_id": 1}, "invalid_conditions", "conditions"),
    ({"field": "city", "op": "equals", "value": "a\x00"}, "nul_character", "conditions.value"),
    ({"all": [{"group\x00": "x"}]}, "nul_character", "conditions.all[0] (a property name)"),
]


def test_every_fault_answers_its_code_and_the_path_of_the_node(
    database: Database, refs: References
) -> None:
    for raw, code, path in FAULTS:
        with pytest.raises(InvalidInput) as caught:
            parse(database, raw)
        assert (caught.value.code, caught.value.field) == (code, path), raw
        assert caught.value.message, raw
        if code != "nul_character":
            assert caught.value.message.startswith(f"{path}: "), raw


def test_an_issue_of_another_newsletter_is_unknown(database: Database, refs: References) -> None:
    with database.write() as session:
        from contacthub.email import service as email

        email.create_newsletter(session, "Other", "Us", "us@example.com", "https://example.org")
    with pytest.raises(InvalidInput) as caught:
        parse(database, {"email": "opened", "newsletter": "Other", "issue": refs.issue_guid})
    assert caught.value.code == "unknown_issue"


def test_stored_conditions_that_are_not_json_are_refused(database: Database) -> None:
    with database.read() as session, pytest.raises(InvalidInput) as caught:
        load_conditions(session, "{not json")
    assert (caught.value.code, caught.value.field) == ("invalid_conditions", "conditions")


def nested_nots(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"field": "city", "op": "is_empty"}
    for _ in range(levels - 1):
        node = {"not": node}
    return node


def test_depth_is_bounded(database: Database) -> None:
    assert isinstance(parse(database, nested_nots(MAX_DEPTH)), Not)
    with pytest.raises(InvalidInput) as caught:
        parse(database, nested_nots(MAX_DEPTH + 1))
    assert caught.value.field == "conditions" + ".not" * MAX_DEPTH
    assert caught.value.code == "invalid_conditions"


def test_the_number_of_nodes_is_bounded(database: Database) -> None:
    leaf = {"field": "city", "op": "is_empty"}
    assert len(parse(database, {"all": [leaf] * (MAX_NODES - 1)}).items) == MAX_NODES - 1
    with pytest.raises(InvalidInput) as caught:
        parse(database, {"all": [leaf] * MAX_NODES})
    assert caught.value.field == f"conditions.all[{MAX_NODES - 1}]"
    with pytest.raises(InvalidInput) as caught:
        parse(database, {"any": [leaf] * (MAX_LIST + 1)})
    assert caught.value.field == "conditions.any"


def test_lists_of_values_are_bounded(database: Database) -> None:
    values = [f"city {n}" for n in range(MAX_LIST)]
    parsed = parse(database, {"field": "city", "op": "in", "value": values})
    assert len(parsed.value) == MAX_LIST
    with pytest.raises(InvalidInput) as caught:
        parse(database, {"field": "city", "op": "in", "value": [*values, "one more"]})
    assert caught.value.field == "conditions.value"


def test_what_a_condition_depends_on(database: Database, refs: References) -> None:
    condition = parse(database, every_kind(refs))
    found = depends_on(condition)
    assert found.fields == {
        "email", "first_name", "last_name", "company_name", "city", "notes", "country",
        "state", "zip", "birthday", "created_at", "updated_at",
    }  # fmt: skip
    assert len(found.consents) == 1
    assert found.activity_types == {"pagevisit", CUSTOM_TYPE}
    assert found.activities
    assert len(found.newsletters) == 1
    assert found.subscriptions
    assert found.email_opens
    assert found.email_clicks
    assert found.groups == {refs.group_ids["Customers"]}
    only_fields = depends_on(parse(database, {"field": "city", "op": "is_empty"}))
    assert not only_fields.activities
    assert not (only_fields.subscriptions)
    assert not (only_fields.email_opens)
    assert not (only_fields.email_clicks)
    assert not (only_fields.consents)
    assert not (only_fields.groups)
    assert not (only_fields.newsletters)


def test_time_windows_are_the_relative_ones(database: Database, refs: References) -> None:
    assert time_windows(parse(database, every_kind(refs))) == (
        TimeWindow(30, "field", "updated_at"),
        TimeWindow(30, "activity", "pagevisit"),
        TimeWindow(7, "email", "unsubscribed"),
        TimeWindow(14, "email", "clicked"),
    )
    assert (
        time_windows(
            parse(database, {"activity": "click", "between": ["2024-01-01", "2024-01-02"]})
        )
        == ()
    )


def test_a_cycle_between_groups_is_refused(database: Database) -> None:
    with database.write() as session:
        first = add_group(session, "First")
        second = add_group(session, "Second", json.dumps({"all": [{"group_id": first}]}))
        third = add_group(session, "Third", json.dumps({"not": {"group": "Second"}}))
    with database.read() as session:
        # First may not name Third (Third -> Second -> First), nor itself.
        condition = parse_conditions(
            session, {"any": [{"field": "city", "op": "is_empty"}, {"group": "Third"}]}
        )
        with pytest.raises(InvalidInput) as caught:
            check_no_cycle(session, first, condition)
        assert (caught.value.code, caught.value.field) == ("group_cycle", "conditions.any[1]")
        assert "'First' → 'Third' → 'Second' → 'First'" in caught.value.message
        with pytest.raises(InvalidInput) as caught:
            check_no_cycle(session, first, parse_conditions(session, {"group": "First"}))
        assert (caught.value.code, caught.value.field) == ("group_cycle", "conditions")
        # No cycle: Third may name First, Second may keep its condition, a new group anything.
        check_no_cycle(session, third, parse_conditions(session, {"group": "First"}))
        check_no_cycle(session, second, parse_conditions(session, {"group_id": first}))
        check_no_cycle(session, None, condition)
