"""The suppression list in a real browser: suppress an address by hand, find it, lift it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from contacthub.storage.database import Database
from contacthub.suppressions import service as suppressions
from tests.browser.conftest import Tab, sqlite_only

pytestmark = pytest.mark.slow


@sqlite_only
def test_suppress_search_and_lift(signed_in: Tab, database: Database) -> None:
    tab, page = signed_in, signed_in.page
    with database.write() as session:
        suppressions.suppress(
            session, "gone@example.org", reason="hard_bounce", source="imap", evidence="5.1.1"
        )

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Suppressions").click()
    form = page.locator("#add-suppression")
    form.get_by_label("Email address").fill("Ann@Example.com")
    form.get_by_label("Evidence").fill("Asked by phone on 3 May")
    form.get_by_role("button", name="Suppress").click()
    expect(page.get_by_role("status")).to_contain_text("ann@example.com is suppressed")
    rows = page.locator("table.suppressions tbody tr")
    expect(rows).to_have_count(1)  # the page shows the new one, searched for
    expect(rows).to_contain_text("Asked by phone on 3 May")
    expect(rows).to_contain_text("Added by hand")

    page.get_by_label("Address contains").fill("")
    page.get_by_label("Reason").select_option("hard_bounce")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("gone@example.org")

    page.get_by_label("Reason").select_option("")
    page.get_by_label("Address contains").fill("EXAMPLE.COM")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    tab.accept_dialogs()
    rows.get_by_role("button", name="Lift").click()
    expect(page.get_by_role("status")).to_contain_text("Suppression of ann@example.com lifted")
    expect(page.get_by_label("Address contains")).to_have_value("EXAMPLE.COM")
    expect(page.locator(".empty")).to_contain_text("No suppressed address matches.")
    with database.read() as session:
        assert not suppressions.is_suppressed(session, "ann@example.com")
        assert suppressions.is_suppressed(session, "gone@example.org")
