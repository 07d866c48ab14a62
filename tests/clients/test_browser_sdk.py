"""The browser SDK (clients/js) end to end: Debian's Chromium runs a page using the built bundle
against a real hub process, and the hub's database is checked afterwards.

The page is served by a small test web server that also mounts the hub's backend proxy
(`create_proxy_app`) on the same origin, as a website would; one scenario calls the hub directly
with a tracking key from another origin (CORS). Every scenario checks on the hub that each
activity the page recorded was stored exactly once (by value or URL, and by messageId), and
that every `POST /activities` body the page sent validates against the tracking API's OpenAPI
document.

SQLite only: the hub's own tests cover its SQL on PostgreSQL; what is tested here (the SDK's
queue, retries and consent handling) does not depend on the database. The bundle is built
(`npm ci` and `npm run build` in clients/js) when absent. Without node or /usr/bin/chromium the
tests skip with the reason, except under CI (CI=true), where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
from playwright.sync_api import Request as PageRequest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from contacthub.channels import cors
from contacthub.consents import service as consents
from contacthub.storage.database import Database
from contacthub.storage.models import Channel, IngestMessageId
from contacthub.tracking.proxy import create_proxy_app
from tests import factories
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.clients.support import assert_valid_activities_bodies
from tests.factories import TrackingSetup
from tests.servers import HOST, HubServer, free_port
from tests.tracking.support import activities_of

SDK = Path(__file__).resolve().parents[2] / "clients" / "js"
BUNDLES = (SDK / "dist" / "contacthub.umd.js", SDK / "dist" / "contacthub.mjs")
CONSENT = "TrackingConsent"
TIMEOUT_MS = 15_000
API = "/Kentico.Tracking"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required under CI)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def bundles() -> Path:
    """The built SDK (clients/js/dist), built now if absent or older than its sources (as
    `scripts/test` does before pytest)."""
    sources = max(path.stat().st_mtime for path in (SDK / "src").iterdir())
    if all(bundle.exists() and bundle.stat().st_mtime >= sources for bundle in BUNDLES):
        return SDK / "dist"
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        _missing("node and npm are needed to build the browser SDK (clients/js)")
        raise AssertionError("unreachable")
    if not (SDK / "node_modules").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=SDK, check=True, timeout=300)
    subprocess.run([npm, "run", "build"], cwd=SDK, check=True, timeout=120)
    return SDK / "dist"


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Module-scoped, as tests/browser does it per package (see its conftest)."""
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium`")
    with sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture
def setup(database: Database) -> TrackingSetup:
    """A channel with a tracking key whose activities need the tracking consent."""
    made = factories.tracking_channel(database, "Website")
    factories.consent(database, CONSENT)
    factories.require_consent(database, "Website", CONSENT)
    return made


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title></head>
<body>
<nav><a id="next" href="#">Next</a></nav>
<button id="buy" data-contacthub="Buy">Buy now</button>
<script>window.sdkErrors = [];</script>
{loader}
<script>
// The page's own code: a click handler, and a single-page app's router.
let page = 0;
document.getElementById("buy").addEventListener("click", (e) => tracker.click(e.currentTarget));
document.getElementById("next").addEventListener("click", (e) => {{
  e.preventDefault();
  page += 1;
  history.pushState({{}}, "", "/page/" + page);
}});
</script>
</body></html>
"""
UMD_LOADER = """<script src="/sdk/contacthub.umd.js"></script>
<script>
const config = {config};
config.onError = (event) => window.sdkErrors.push(event);
window.tracker = contacthub.init(config);
</script>"""
ESM_LOADER = """<script type="module">
import {{ init }} from "/sdk/contacthub.mjs";
const config = {config};
config.onError = (event) => window.sdkErrors.push(event);
window.tracker = init(config);
</script>"""


@dataclass
class Site:
    """The test website: its pages load the SDK; `/Kentico.Tracking` is the proxy, if mounted."""

    base_url: str
    server: uvicorn.Server
    thread: threading.Thread


def serve_site(
    dist: Path,
    config: dict[str, Any],
    *,
    proxy_to: HubServer | None = None,
    key: str = "",
    esm: bool = False,
) -> Site:
    """Start the website on a free port of 127.0.0.1, in a thread; answers once it listens.

    With `proxy_to`, the hub's backend proxy (adding `key`) answers `/Kentico.Tracking/...`.
    """
    loader = ESM_LOADER if esm else UMD_LOADER

    async def page(request: Request) -> HTMLResponse:
        name = request.path_params.get("name", "home")
        html = PAGE.format(
            title=f"Page {name}",
            loader=loader.format(config=json.dumps(config)),
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    routes: list[Route | Mount] = [
        Route("/", page),
        Route("/page/{name}", page),
        Mount("/sdk", app=StaticFiles(directory=dist)),
    ]
    if proxy_to is not None:
        proxy = create_proxy_app(proxy_to.base_url, key)
        app = proxy  # the proxy's own app, with the site's pages added in front
        for route in reversed(routes):
            app.router.routes.insert(0, route)
    else:
        app = Starlette(routes=routes)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, "the test website to start")
    return Site(f"http://{HOST}:{port}", server, thread)


def stop_site(site: Site) -> None:
    site.server.should_exit = True
    site.thread.join(10)


def wait_until(condition: Callable[[], object], what: str, timeout: float = 15.0) -> None:
    """Poll `condition` until it holds; fail saying `what` did not happen."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def sdk_config(setup: TrackingSetup, endpoint: str, **more: Any) -> dict[str, Any]:
    """The SDK's options: quick flushes and retries, so that the scenarios take seconds."""
    return {
        "endpoint": endpoint,
        "channel": setup.channel_guid,
        "consent": CONSENT,
        "autoPageVisits": True,
        "flushInterval": 300,
        "backoff": {"base": 200, "max": 1000},
        **more,
    }


@dataclass
class Browsing:
    """A browser context on the site, recording every POST /activities body its pages send."""

    context: BrowserContext
    site: Site
    bodies: list[dict[str, Any]] = field(default_factory=list)
    # Uncaught script errors of its pages: they fail the test at its end.
    script_errors: list[str] = field(default_factory=list)

    def open(self, path: str = "/") -> Page:
        page = self.context.new_page()
        page.on("request", self._on_request)
        page.on("pageerror", lambda error: self.script_errors.append(error.message))
        page.goto(self.site.base_url + path)
        page.wait_for_function("window.tracker !== undefined")
        page.evaluate("tracker.ready")
        return page

    def _on_request(self, request: PageRequest) -> None:
        if request.method == "POST" and request.url.endswith(f"{API}/activities"):
            body = request.post_data
            assert body is not None
            self.bodies.append(json.loads(body))

    def sent_message_ids(self) -> set[str]:
        return {a["messageId"] for body in self.bodies for a in body["activities"]}


@pytest.fixture
def browsing(browser: Browser) -> Iterator[Callable[[Site], Browsing]]:
    made: list[Browsing] = []

    def start(site: Site) -> Browsing:
        context = browser.new_context()
        context.set_default_timeout(TIMEOUT_MS)
        made.append(Browsing(context, site))
        return made[-1]

    yield start
    for one in made:
        one.context.close()
    for one in made:
        assert one.script_errors == []


@pytest.fixture
def proxied_site(bundles: Path, hub: HubServer, setup: TrackingSetup) -> Iterator[Site]:
    """The website with the proxy mounted; the SDK calls its own origin, without a key."""
    site = serve_site(bundles, sdk_config(setup, API), proxy_to=hub, key=setup.key)
    yield site
    stop_site(site)


def stored_message_ids(database: Database, channel_guid: str) -> set[str]:
    with database.read() as session:
        channel_id = session.scalar(
            select(Channel.id).where(Channel.guid == uuid.UUID(channel_guid))
        )
        return set(
            session.scalars(
                select(IngestMessageId.message_id).where(IngestMessageId.channel_id == channel_id)
            )
        )


def stored(database: Database, contact: str) -> Counter[str]:
    """What the hub holds for the contact: a page visit by its URL, anything else by its value."""
    return Counter(
        (a.url or "") if a.type == "pagevisit" else f"{a.type}:{a.value}"
        for a in activities_of(database, contact)
    )


def assert_exactly_once(
    database: Database, setup: TrackingSetup, contact: str, browsing: Browsing, expected: list[str]
) -> None:
    """Every expected activity is stored once, nothing else is; every messageId sent is stored
    once (the hub keeps one row per channel and id); every body sent is valid."""
    found = stored(database, contact)
    assert found == Counter(expected), found
    sent = browsing.sent_message_ids()
    assert len(sent) == len(expected)
    assert stored_message_ids(database, setup.channel_guid) == sent
    assert_valid_activities_bodies(browsing.bodies)


def settle(page: Page) -> None:
    """Wait until the page's queue is empty: everything it recorded was answered for."""
    page.wait_for_function("tracker.queued === 0")
    assert page.evaluate("window.sdkErrors") == []


def test_browse_agree_go_offline_and_back_through_the_proxy(
    proxied_site: Site,
    browsing: Callable[[Site], Browsing],
    database: Database,
    setup: TrackingSetup,
) -> None:
    session = browsing(proxied_site)
    page = session.open("/")
    base = proxied_site.base_url
    # Before agreement nothing is sent; the first page visit, recorded then, is not kept.
    assert page.evaluate("tracker.consent") == "denied"
    assert page.evaluate("tracker.contact") is None
    page.click("#buy")
    # An admin token is refused before anything is sent.
    refused = page.evaluate(
        """(channel) => { try { contacthub.init({endpoint: '/x', channel, consent: 'c',
               apiKey: 'cht_secret'}); return null } catch (e) { return e.message } }""",
        setup.channel_guid,
    )
    assert "admin token" in refused
    page.evaluate("tracker.agree()")
    contact = page.evaluate("tracker.contact")
    with database.read() as db:
        assert consents.is_agreed(db, contact, CONSENT)

    page.click("#next")  # the page's router: history.pushState to /page/1
    page.click("#buy")
    page.click("#next")
    page.evaluate("history.replaceState({}, '', location.href)")  # same URL: no new visit
    page.evaluate("tracker.dataInput({ContactFirstName: 'Ada'}, 'Signup')")
    page.evaluate("tracker.flush()")
    settle(page)
    online = [f"{base}/page/1", "click:Buy", f"{base}/page/2", "datainput:Signup"]
    assert stored(database, contact) == Counter(online)

    session.context.set_offline(True)
    for name in ("a", "b", "c"):
        page.evaluate(f"tracker.click('offline {name}')")
    page.click("#next")
    page.wait_for_function("tracker.queued === 4")
    result = page.evaluate("tracker.flush()")
    assert result["retrying"] is True
    assert page.evaluate("tracker.queued") == 4
    session.context.set_offline(False)  # the page's `online` event sends the queue at once
    settle(page)

    offline = ["click:offline a", "click:offline b", "click:offline c", f"{base}/page/3"]
    assert_exactly_once(database, setup, contact, session, online + offline)
    assert [a.title for a in activities_of(database, contact)][3] == "Data input 'Signup'"


def test_a_queue_left_by_a_closed_tab_is_sent_by_the_next_one(
    proxied_site: Site,
    browsing: Callable[[Site], Browsing],
    database: Database,
    setup: TrackingSetup,
) -> None:
    session = browsing(proxied_site)
    first = session.open("/")
    first.evaluate("tracker.agree()")
    contact = first.evaluate("tracker.contact")
    first.click("#buy")
    settle(first)

    # Offline, the tab queues (and persists) what it records, then is closed mid-queue.
    session.context.set_offline(True)
    for name in ("a", "b"):
        first.evaluate(f"tracker.click('queued {name}')")
    first.evaluate("tracker.flush()")
    assert first.evaluate("tracker.queued") == 2
    assert first.evaluate("Object.keys(localStorage).some((k) => k.includes(':queue:'))")
    # Closed as a person closes a tab (its pagehide runs); an empty tab keeps the browser open.
    # (The keepalive request of its pagehide may still reach the hub once the browser is back
    # online: then the next tab's send is a duplicate, which the hub must store once.)
    session.context.new_page()
    with first.expect_event("close"):
        first.close(run_before_unload=True)
    session.context.set_offline(False)

    second = session.open("/page/again")
    assert second.evaluate("tracker.contact") == contact
    settle(second)
    wait_until(lambda: sum(stored(database, contact).values()) >= 4, "the left queue")
    second.evaluate("tracker.flush()")
    settle(second)
    expected = [
        "click:Buy",
        "click:queued a",
        "click:queued b",
        f"{proxied_site.base_url}/page/again",
    ]
    assert_exactly_once(database, setup, contact, session, expected)


def test_two_tabs_at_once_each_send_their_own_queue(
    proxied_site: Site,
    browsing: Callable[[Site], Browsing],
    database: Database,
    setup: TrackingSetup,
) -> None:
    session = browsing(proxied_site)
    left = session.open("/page/left")
    right = session.open("/page/right")
    left.evaluate("tracker.agree()")
    # The other tab follows the agreement at once (the storage event), for the same contact.
    right.wait_for_function("tracker.consent === 'agreed'")
    contact = left.evaluate("tracker.contact")
    assert right.evaluate("tracker.contact") == contact
    for name in ("1", "2", "3"):
        left.evaluate(f"tracker.click('left {name}')")
        right.evaluate(f"tracker.click('right {name}')")
    left.evaluate("tracker.flush()")
    right.evaluate("tracker.flush()")
    settle(left)
    settle(right)
    expected = [f"click:{side} {n}" for side in ("left", "right") for n in "123"]
    assert_exactly_once(database, setup, contact, session, expected)


def test_revoking_stops_tracking_and_clears_the_queue(
    proxied_site: Site,
    browsing: Callable[[Site], Browsing],
    database: Database,
    setup: TrackingSetup,
) -> None:
    session = browsing(proxied_site)
    page = session.open("/")
    page.evaluate("tracker.agree()")
    contact = page.evaluate("tracker.contact")
    page.click("#buy")
    settle(page)

    # The hub cannot be reached for activities: a click stays queued (and persisted).
    page.route(f"**{API}/activities", lambda route: route.abort())
    page.evaluate("tracker.click('never sent')")
    page.evaluate("tracker.flush()")
    assert page.evaluate("Object.keys(localStorage).some((k) => k.includes(':queue:'))")
    # Revoked before a retry got through: the click is forgotten, in memory and in storage.
    page.evaluate("tracker.revoke()")
    page.unroute(f"**{API}/activities")
    assert page.evaluate("tracker.queued") == 0
    assert not page.evaluate("Object.keys(localStorage).some((k) => k.includes(':queue:'))")
    with database.read() as db:
        assert not consents.is_agreed(db, contact, CONSENT)
    sent_before = len(session.bodies)
    page.click("#buy")
    page.click("#next")
    assert page.evaluate("tracker.flush()")["sent"] == 0
    assert page.evaluate("tracker.queued") == 0
    # A new page of the same contact does not track either.
    other = session.open("/page/later")
    other.click("#buy")
    assert other.evaluate("tracker.consent") == "denied"
    assert other.evaluate("tracker.flush()")["sent"] == 0
    assert len(session.bodies) == sent_before
    assert stored(database, contact) == Counter(["click:Buy"])
    aborted = {a["messageId"] for a in session.bodies[-1]["activities"]}
    assert stored_message_ids(database, setup.channel_guid) == session.sent_message_ids() - aborted
    assert_valid_activities_bodies(session.bodies)


def test_directly_to_the_hub_with_a_tracking_key_from_another_origin(
    bundles: Path,
    hub: HubServer,
    browsing: Callable[[Site], Browsing],
    database: Database,
    setup: TrackingSetup,
) -> None:
    # The page is on another origin than the hub: the hub must allow it (CORS), and the page
    # holds a tracking key, the only kind a page may hold. The ESM bundle this time.
    # The contact's GUID in a first-party cookie this time.
    config = sdk_config(setup, hub.base_url + API, apiKey=setup.key, contactStorage="cookie")
    site = serve_site(bundles, config, esm=True)
    try:
        with database.write() as db:
            cors.add_origin(db, site.base_url)
        session = browsing(site)
        # The hub picks up a new origin within 5 seconds: wait for it on a preflight.
        wait_until(lambda: _cors_allows(hub, site.base_url), "the hub to allow the origin")
        page = session.open("/")
        page.evaluate("tracker.agree()")
        contact = page.evaluate("tracker.contact")
        assert f"contacthub_contact={contact}" in page.evaluate("document.cookie")
        assert page.evaluate("localStorage.getItem('contacthub:contact')") is None
        page.click("#buy")
        page.click("#next")
        page.evaluate("tracker.custom('pagevisit', 'no url')")  # refused per item: reported
        page.evaluate("tracker.flush()")
        page.wait_for_function("tracker.queued === 0")
        errors = page.evaluate("window.sdkErrors")
        assert [(e["kind"], e["status"], e["code"]) for e in errors] == [
            ("rejected", 400, "missing_url")
        ]
        expected = ["click:Buy", f"{site.base_url}/page/1"]
        assert stored(database, contact) == Counter(expected)
        sent = session.sent_message_ids()
        assert len(sent) == 3  # the refused one's id is not stored
        assert stored_message_ids(database, setup.channel_guid) < sent
        assert_valid_activities_bodies(session.bodies)
    finally:
        stop_site(site)


def _cors_allows(hub: HubServer, origin: str) -> bool:
    answer = httpx2.options(
        f"{hub.base_url}{API}/activities",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    return answer.status_code == 200
