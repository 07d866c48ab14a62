"""Contact groups in a real browser: the condition builder (static/groups.js) with its live
count, a static group filled by hand, and the groups on the contact page."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from playwright.sync_api import Locator, expect

from tests.browser.conftest import VIEWPORT, Tab, sqlite_only
from tests.browser.layout import PHONE, layout_problems
from tests.browser.support import Tracker

pytestmark = pytest.mark.slow

PRICING = {"type": "pagevisit", "url": "https://shop.example.com/pricing", "value": "Pricing"}
HOME = {"type": "pagevisit", "url": "https://shop.example.com/", "value": "Home"}


def rules_of(group: Locator) -> Locator:
    """The rules and groups directly inside a builder group."""
    return group.locator(":scope > .b-children > li")


def add_rule(group: Locator) -> Locator:
    group.locator(":scope > .b-add").get_by_role("button", name="+ Rule").click()
    return rules_of(group).last


def count_is(tab: Tab, text: str) -> None:
    expect(tab.page.locator("#preview-count")).to_have_text(text)


@sqlite_only
def test_a_group_built_with_the_builder_counts_and_keeps_the_right_contacts(
    signed_in: Tab, tracker: Callable[[str], Tracker]
) -> None:
    tab, page = signed_in, signed_in.page
    web = tracker("Web shop")
    grace = web.person("Grace", "Hopper", "grace@example.com")
    alan = web.person("Alan", "Turing", "alan@example.com")
    web.person("Zoe", "Smith", "zoe@example.com")
    bob = web.person("Bob", "Jones", "bob@example.org")
    web.log(grace.guid, PRICING, HOME, PRICING)
    web.log(alan.guid, PRICING, HOME)
    web.log(bob.guid, PRICING, PRICING)
    # Intermediate trees may not check (a value not typed yet): the hub answers 400 to them.
    tab.expect_status("/admin/groups/preview", 400)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Groups").click()
    page.get_by_role("link", name="New group").click()
    page.get_by_label("Name", exact=True).fill("Engaged")
    # The builder replaced the JSON text area, and counts everyone for an empty tree.
    expect(page.locator("#builder")).to_be_visible()
    expect(page.get_by_label("Condition tree")).to_be_hidden()
    expect(page.get_by_role("button", name="Count matching contacts")).to_be_hidden()
    count_is(tab, "4 contacts match now.")

    root = page.locator(".b-root")
    address = add_rule(root)
    address.get_by_label("Field").select_option("email")
    address.get_by_label("Test").select_option("ends_with")
    address.get_by_label("Value").fill("@example.com")
    count_is(tab, "3 contacts match now.")

    root.locator(":scope > .b-add").get_by_role("button", name="+ Group of rules").click()
    nested = rules_of(root).last
    expect(nested.get_by_label("Group of rules")).to_have_value("any")
    visits = rules_of(nested).first
    visits.get_by_label("Rule").select_option("activity")
    visits = rules_of(nested).first
    visits.get_by_label("Type").select_option("pagevisit")
    visits.get_by_label("URL contains").fill("/pricing")
    # A fault is shown by its rule, as the hub names it.
    visits.get_by_label("At least (times)").fill("0")
    expect(visits).to_have_class("b-rule b-invalid")
    expect(visits.locator(".b-fault")).to_contain_text("at_least")
    visits.get_by_label("At least (times)").fill("2")
    count_is(tab, "1 contact matches now.")  # Grace: Alan visited once, Bob is not at example.com
    named = add_rule(nested)
    named.get_by_label("Field").select_option("first_name")
    named.get_by_label("Test").select_option("equals")
    named.get_by_label("Value").fill("Zoe")
    count_is(tab, "2 contacts match now.")

    # What the builder posts is the condition language's JSON.
    posted = json.loads(page.locator("#f-conditions").input_value())
    assert posted == {
        "all": [
            {"field": "email", "op": "ends_with", "value": "@example.com"},
            {
                "any": [
                    {"activity": "pagevisit", "url_contains": "/pricing", "at_least": 2},
                    {"field": "first_name", "op": "equals", "value": "Zoe"},
                ]
            },
        ]
    }
    tab.screenshot("group-builder")
    tab.screenshot("group-builder-phone", PHONE)
    assert not layout_problems(page, PHONE)[0]
    page.set_viewport_size(VIEWPORT)
    page.get_by_role("button", name="Create group").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Engaged")
    expect(page.locator(".flash")).to_have_text("Group Engaged created.")
    members = page.locator("#members tbody tr")
    expect(members).to_have_count(2)
    expect(page.locator("#members")).to_contain_text("grace@example.com")
    expect(page.locator("#members")).to_contain_text("zoe@example.com")
    tab.screenshot("group-members")

    # Editing opens the builder on the saved tree.
    page.get_by_role("link", name="Edit", exact=True).click()
    count_is(tab, "2 contacts match now.")
    nested = rules_of(page.locator(".b-root")).nth(1)
    expect(rules_of(nested).first.get_by_label("URL contains")).to_have_value("/pricing")
    nested.get_by_label("Group of rules").select_option("all")
    count_is(tab, "0 contacts match now.")
    page.get_by_role("link", name="Cancel").click()

    # The contact page lists the group and when and why she entered it.
    page.locator("#members").get_by_role("link", name="Grace Hopper").click()
    groups = page.locator("#groups")
    expect(groups.get_by_role("link", name="Engaged").first).to_be_visible()
    expect(groups.locator("tbody tr")).to_have_count(1)
    expect(groups.locator("tbody tr")).to_contain_text("entered")


@sqlite_only
def test_a_static_group_gets_a_member_by_hand(
    signed_in: Tab, tracker: Callable[[str], Tracker]
) -> None:
    tab, page = signed_in, signed_in.page
    web = tracker("Web shop")
    grace = web.person("Grace", "Hopper", "grace@example.com")
    web.person("Alan", "Turing", "alan@example.com")

    tab.open("/admin/groups/new")
    page.get_by_label("Name", exact=True).fill("VIP")
    page.get_by_label("Static").check()
    # A static group has no conditions: the builder goes away.
    expect(page.locator("#conditions")).to_be_hidden()
    page.get_by_role("button", name="Create group").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("VIP")
    expect(page.locator("#members")).to_contain_text("No members yet")

    page.get_by_label("Contacts").fill("grace@example.com\nnobody@example.com")
    page.get_by_role("button", name="Add to the group").click()
    expect(page.locator("#members-report")).to_contain_text("nobody@example.com")
    members = page.locator("#members tbody tr")
    expect(members).to_have_count(1)
    expect(members).to_contain_text("grace@example.com")

    tab.open(f"/admin/contacts/{grace.guid}")
    row = page.locator("#groups tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("VIP")
    expect(row).to_contain_text("added by")

    # Removed with the button of its row, after being asked.
    tab.accept_dialogs()
    page.locator("#groups").get_by_role("link", name="VIP").first.click()
    page.locator("#members tbody tr").get_by_role("button", name="Remove").click()
    expect(page.locator("#members")).to_contain_text("No members yet")
