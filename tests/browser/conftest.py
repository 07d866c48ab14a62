"""Fixtures of the browser tests: a real hub, a real Chromium, a user signed in through the form.

The hub is `contacthub serve` on a fresh migrated database (tests/servers.py); Chromium is
Debian's (/usr/bin/chromium), driven by Playwright's sync API. Playwright's own browser download
is never used. Without /usr/bin/chromium the tests skip with the reason, except under CI
(CI=true), where they fail: `scripts/install dev` installs it there.

Backends: the flows run on SQLite only (`sqlite_only`), and one smoke test (every page, signed
in) runs on both. The pages' SQL is already tested on both backends in tests/admin and
tests/api; what only a browser sees (CSP, scripts, forms, layout) does not depend on the
database, and each flow runs for seconds, so repeating all of them on PostgreSQL would double
the time of the slowest tests of the suite for little.

Every page a test opens is watched: console errors (CSP violations included: Chromium reports
them there), uncaught script errors and any answer of 400 or more (documents, styles, scripts,
images) fail the test at its end, unless the test said it expects that answer.
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    Route,
    ViewportSize,
    sync_playwright,
)
from playwright.sync_api import (
    Error as PlaywrightError,
)
from playwright.sync_api import (
    Response as PageResponse,
)

from contacthub.storage.database import Database
from contacthub.users import service as users
from tests.browser.support import Tracker
from tests.email.smtp_server import HOST as SMTP_HOST
from tests.email.smtp_server import SmtpServer, smtp_server
from tests.factories import tracking_channel
from tests.servers import HubServer, running_hub

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and nothing that reaches out to the (closed) network on its own.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1440, "height": 900}
# Screenshots are always taken; they replace the docs' ones only when asked
# (CONTACTHUB_SCREENSHOTS=docs scripts/test tests/browser), so a test run leaves the tree clean.
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TIMEOUT_MS = 15_000
BLANK_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
# How Chromium's console reports an answer of 400 or more (checked apart, see Tab._on_response).
LOAD_FAILURE = "Failed to load resource: the server responded with a status of"

EMAIL = "ada@example.com"
PASSWORD = "correct horse battery staple"
NAME = "Ada Admin"

# For tests that run on SQLite only (see the module docstring): the `database_url` fixture of
# tests/conftest.py, given one of its two parameters.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    """Playwright, for the browser tests only.

    Package-scoped rather than session-scoped on purpose: between its calls the sync API leaves
    its event loop marked as running in this thread, which would break every later test of the
    session that runs an event loop (asyncio.run()). It stops when the last browser test is done.
    """
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: install it with `apt-get install -y chromium`"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (required under CI; scripts/install dev does it)")
        pytest.skip(reason)
    with sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """One Chromium for all the browser tests; each test gets its own context (cookies)."""
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server on loopback, where the hub delivers the issues it sends."""
    with smtp_server() as server:
        yield server


@pytest.fixture
def hub(database_url: str, smtp: SmtpServer, tmp_path: Path) -> Iterator[HubServer]:
    """`contacthub serve` on the test's fresh, migrated database, delivering mail to `smtp`."""
    env = {
        "CONTACTHUB_SMTP_HOST": SMTP_HOST,
        "CONTACTHUB_SMTP_PORT": str(smtp.port),
        "CONTACTHUB_SMTP_TLS": "none",
    }
    with running_hub(database_url, tmp_path / "hub.log", env=env) as server:
        yield server
        # Shown by pytest only when the test fails: the server's side of the story.
        print(f"--- the hub's log:\n{server.log_tail(80)}")


@pytest.fixture
def admin_user(database: Database) -> str:
    """An admin user in the hub's database; answers the address (password: PASSWORD)."""
    with database.write() as session:
        users.create_user(session, EMAIL, PASSWORD, NAME)
    return EMAIL


@pytest.fixture
def tracker(database: Database, hub: HubServer) -> Iterator[Callable[[str], Tracker]]:
    """tracker(channel): a new channel with a tracking key, and an app that calls the hub's
    tracking API with it."""
    made: list[Tracker] = []

    def make(channel: str) -> Tracker:
        made.append(Tracker(hub, tracking_channel(database, channel)))
        return made[-1]

    yield make
    for app in made:
        app.close()


@dataclass
class Tab:
    """A browser tab on the hub, watched for errors; what the tests drive."""

    page: Page
    base_url: str
    problems: list[str] = field(default_factory=list)
    expected_statuses: set[tuple[str, int]] = field(default_factory=set)

    def url(self, path: str) -> str:
        return self.base_url + path

    def open(self, path: str) -> PageResponse:
        """Go to a page of the hub; it must answer 200."""
        response = self.page.goto(self.url(path))
        assert response is not None, path
        assert response.status == 200, f"{path} answered {response.status}"
        return response

    def expect_status(self, path: str, status: int) -> None:
        """From now on, this path may answer this status (e.g. a refused sign-in's 401)."""
        self.expected_statuses.add((path, status))

    def screenshot(self, name: str, viewport: ViewportSize = VIEWPORT) -> Path:
        """A full-page screenshot of the current page, `viewport` wide (for the docs: see
        DOCS_SCREENSHOTS; only the desktop ones go there)."""
        folder = (
            DOCS_SCREENSHOTS
            if os.environ.get("CONTACTHUB_SCREENSHOTS") == "docs" and viewport == VIEWPORT
            else Path(tempfile.gettempdir()) / "contacthub-screenshots"
        )
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        # Fonts and images are loaded before the picture is taken.
        self.page.wait_for_load_state("networkidle")
        # The whole page, taken with a window as tall as the page: Playwright's full_page
        # option keeps the window's height, so the sticky 100vh sidebar would end mid-picture.
        height = self.page.evaluate("document.documentElement.scrollHeight")
        self.page.set_viewport_size(
            {"width": viewport["width"], "height": max(height, viewport["height"])}
        )
        try:
            self.page.screenshot(path=str(path), full_page=True, animations="disabled")
        finally:
            self.page.set_viewport_size(VIEWPORT)
        return path

    def accept_dialogs(self) -> None:
        """Answer OK to confirmation prompts (forms with data-confirm ask before erasing)."""
        self.page.on("dialog", lambda dialog: dialog.accept())

    @staticmethod
    def answer_elsewhere(route: Route) -> None:
        """What a page asks of another site gets a blank image, from here."""
        route.fulfill(status=200, content_type="image/gif", body=BLANK_GIF)

    def _on_console(self, message: ConsoleMessage) -> None:
        text = message.text
        if "Content Security Policy" in text:
            self.problems.append(f"CSP violation on {self.page.url}: {text}")
        elif message.type == "error" and not text.startswith(LOAD_FAILURE):
            self.problems.append(f"console error on {self.page.url}: {text}")

    def _on_response(self, response: PageResponse) -> None:
        # Every answer of 400 or more, not only the console's "Failed to load resource" line
        # (which does not say which resource failed).
        if response.status < 400:
            return
        path = response.url.removeprefix(self.base_url).split("?", 1)[0]
        if (path, response.status) not in self.expected_statuses:
            self.problems.append(
                f"{response.request.method} {response.url} answered {response.status}"
            )

    def _on_page_error(self, error: PlaywrightError) -> None:
        self.problems.append(f"script error on {self.page.url}: {error.message}")

    def watch(self) -> None:
        self.page.on("console", self._on_console)
        self.page.on("response", self._on_response)
        self.page.on("pageerror", self._on_page_error)


@pytest.fixture
def tab(browser: Browser, hub: HubServer) -> Iterator[Tab]:
    """A fresh browser context (no cookies) with one tab on the hub, 1440x900.

    At the end of the test, whatever went wrong in the browser fails it (see the module
    docstring).
    """
    context = browser.new_context(viewport=VIEWPORT, base_url=hub.base_url)
    context.set_default_timeout(TIMEOUT_MS)
    # The copy buttons write to the clipboard; the tests read it back.
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    opened = Tab(context.new_page(), hub.base_url)
    # Nothing leaves the machine (there is no network here, and CI must not depend on one):
    # what a page loads from another site, the remote images of an email in its sandboxed
    # preview say, gets a blank 1x1 GIF. The admin's own pages load nothing from elsewhere:
    # their CSP would refuse it, and the console check would report it.
    context.route(lambda url: not url.startswith(hub.base_url + "/"), Tab.answer_elsewhere)
    opened.watch()
    try:
        yield opened
    finally:
        context.close()
    assert not opened.problems, "\n".join(opened.problems)


def sign_in(tab: Tab, email: str = EMAIL, password: str = PASSWORD) -> None:
    """Sign in through the sign-in form, as a person does; lands on the dashboard."""
    tab.open("/admin/sign-in")
    tab.page.get_by_label("Email address").fill(email)
    tab.page.get_by_label("Password").fill(password)
    tab.page.get_by_role("button", name="Sign in").click()
    tab.page.wait_for_url(tab.url("/admin/"))


@pytest.fixture
def signed_in(tab: Tab, admin_user: str) -> Tab:
    """The tab, signed in as the admin user through the real sign-in form."""
    sign_in(tab)
    return tab
