"""The admin on a phone and on a desktop: the navigation folds behind a menu on a small screen
(without scripts), and the activity log fits its card at 1440 px, URLs path first and contacts
by name. Every page's layout at both widths is checked by the crawl (test_every_page.py)."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Browser, expect

from tests.browser.conftest import VIEWPORT, Tab, sign_in, sqlite_only
from tests.browser.layout import PHONE, layout_problems
from tests.browser.support import Tracker
from tests.servers import HubServer


@sqlite_only
def test_the_navigation_folds_behind_a_menu_on_a_phone_without_scripts(
    browser: Browser, hub: HubServer, admin_user: str
) -> None:
    context = browser.new_context(viewport=PHONE, base_url=hub.base_url, java_script_enabled=False)
    tab = Tab(context.new_page(), hub.base_url)
    tab.watch()
    try:
        # The sign-in page, which has no navigation, fits a phone too.
        tab.open("/admin/sign-in")
        assert not layout_problems(tab.page, PHONE)[0]
        sign_in(tab)
        page = tab.page
        navigation = page.get_by_role("navigation", name="Main")
        contacts = navigation.get_by_role("link", name="Contacts")
        menu = navigation.get_by_text("Menu")
        # Folded: the dashboard starts right under the bar.
        expect(contacts).to_be_hidden()
        assert not layout_problems(page, PHONE)[0]
        menu.click()
        expect(contacts).to_be_visible()
        contacts.click()
        page.wait_for_url(tab.url("/admin/contacts"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Contacts")
        # Folded again on the next page; the keyboard opens it too (space on the checkbox).
        expect(contacts).to_be_hidden()
        navigation.get_by_role("checkbox", name="Menu").focus()
        page.keyboard.press("Space")
        expect(contacts).to_be_visible()
        # On a desktop the links are always there, and there is no menu to open.
        page.set_viewport_size(VIEWPORT)
        page.reload()
        expect(contacts).to_be_visible()
        expect(menu).to_be_hidden()
    finally:
        context.close()
    assert not tab.problems, "\n".join(tab.problems)


@sqlite_only
def test_the_activity_log_fits_its_card_with_urls_path_first_and_contacts_by_name(
    signed_in: Tab, tracker: Callable[[str], Tracker]
) -> None:
    shop = tracker("Web shop")
    ada = shop.person("Ada", "Lovelace", "ada.lovelace@example.com")
    anonymous = shop.new_contact()
    # Long values everywhere: they are cut to fit, never widen the table.
    long_url = (
        "https://www.a-rather-long-host-name-for-a-shop.example.com/products/"
        + "walking-boots-" * 12
        + "?utm_source=newsletter&utm_campaign="
        + "spring" * 15
    )
    shop.log(
        anonymous,
        {
            "type": "pagevisit",
            "url": long_url,
            "referrer": "https://search.example.org/?q=" + "boots+" * 30,
            "value": "Walking boots for every season and every trail " * 3,
        },
    )
    shop.log(ada.guid, {"type": "pagevisit", "url": "https://shop.example.com/pricing?plan=pro"})
    page = signed_in.page
    signed_in.open("/admin/activities")
    rows = page.locator("table.activity-log tbody tr")
    expect(rows).to_have_count(3)

    newest = rows.nth(0)
    expect(newest.locator("td.contact")).to_have_text("Ada Lovelace")
    expect(newest.locator("td.contact a")).to_have_attribute("href", f"/admin/contacts/{ada.guid}")
    url = newest.locator("td.url a")
    expect(url.locator(".url-path")).to_have_text("/pricing?plan=pro")
    expect(url.locator(".url-site")).to_have_text("shop.example.com")
    expect(url).to_have_attribute("title", "https://shop.example.com/pricing?plan=pro")
    # Known by GUID only: the start of it.
    expect(rows.nth(1).locator("td.contact")).to_have_text(anonymous[:8] + "…")
    expect(rows.nth(1).locator("td.url a")).to_have_attribute("title", long_url)

    # Nothing wider than the window, nor scrolling sideways inside its card, at 1440 px.
    problems, _ = layout_problems(page, VIEWPORT)
    assert not problems, problems
