"""Scheduling an issue from the admin, in a real browser set to Paris time: schedule it, see it
listed (in UTC), cancel it."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from contacthub.email import service as email
from contacthub.storage.database import Database
from contacthub.storage.types import utcnow
from tests.browser.conftest import TIMEOUT_MS, VIEWPORT, Tab, sign_in, sqlite_only
from tests.browser.layout import phone_and_desktop_problems
from tests.servers import HubServer

pytestmark = pytest.mark.slow

NEXT_YEAR = utcnow().year + 1


@pytest.fixture
def paris(browser: Browser, hub: HubServer, admin_user: str) -> Iterator[Tab]:
    """A signed-in tab whose browser lives in Europe/Paris (UTC+1 in December)."""
    context = browser.new_context(
        viewport=VIEWPORT, base_url=hub.base_url, timezone_id="Europe/Paris"
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.route(lambda url: not url.startswith(hub.base_url + "/"), Tab.answer_elsewhere)
    opened = Tab(context.new_page(), hub.base_url)
    opened.watch()
    try:
        sign_in(opened)
        yield opened
    finally:
        context.close()
    assert not opened.problems, "\n".join(opened.problems)


def draft(database: Database) -> str:
    with database.write() as session:
        email.create_newsletter(
            session, "Weekly", "The Shop", "news@shop.example.com", "https://news.example.com"
        )
        email.add_subscriber(session, "Weekly", "anna@example.com", first_name="Anna")
        return str(email.create_issue(session, "Weekly", "Christmas sale", "<p>Hi</p>").guid)


@sqlite_only
def test_an_issue_is_scheduled_listed_and_cancelled(paris: Tab, database: Database) -> None:
    guid = draft(database)
    tab, page = paris, paris.page
    tab.accept_dialogs()
    tab.open(f"/admin/issues/{guid}")

    card = page.locator("#schedule")
    # admin.js put the browser's zone in the label (and the hidden field).
    expect(card.get_by_text("Send at (Europe/Paris)")).to_be_visible()
    card.get_by_label(re.compile(r"Send at")).fill(f"{NEXT_YEAR}-12-24T09:00")
    card.get_by_role("button", name="Schedule").click()

    expect(page.locator(".page-header .badge")).to_have_text("scheduled")
    expect(page.get_by_role("status").or_(page.locator(".flash"))).to_contain_text(
        f"Scheduled for {NEXT_YEAR}-12-24 08:00 UTC"
    )
    expect(page.locator("#schedule")).to_contain_text(f"{NEXT_YEAR}-12-24 08:00 UTC")
    # The scheduled issue's page fits a phone and a desktop (the crawl sees a draft's only).
    assert phone_and_desktop_problems(page) == []

    tab.open("/admin/issues")
    row = page.get_by_role("row").filter(has_text="Christmas sale")
    expect(row).to_contain_text("scheduled")
    expect(row).to_contain_text(f"{NEXT_YEAR}-12-24 08:00 UTC")
    row.get_by_role("link", name="Christmas sale").click()

    page.locator("#schedule").get_by_role("button", name="Cancel schedule").click()
    expect(page.locator(".page-header .badge")).to_have_text("draft")
    with database.read() as session:
        issue = email.get_issue(session, guid)
        assert (issue.status, issue.scheduled_at) == ("draft", None)
