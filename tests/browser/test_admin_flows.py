"""The admin in a real browser: Chromium drives the pages of a real hub, as a person would.

The flows also take the docs' screenshots of what only they see (docs/screenshots/<name>.png,
1440x900 viewport): the sign-in form and its error, a form's error next to its field, a new key
shown once, an issue being composed. test_every_page.py takes those of every page.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from html import unescape
from urllib.parse import urlsplit

import httpx2
import pytest
from playwright.sync_api import Locator, expect
from sqlalchemy import update

from contacthub.storage.database import Database
from contacthub.storage.models import Delivery
from contacthub.storage.types import utcnow
from tests.browser.conftest import EMAIL, NAME, PASSWORD, Tab, sign_in, sqlite_only
from tests.browser.support import CLICKS, HUMAN_BROWSER, PAGES, TRACKING, Tracker, browse
from tests.email.smtp_server import SmtpServer
from tests.servers import HubServer

pytestmark = pytest.mark.slow

HOSTILE = "<img src=x onerror=alert(1)><script>alert(2)</script>"
# The newsletter's public site: its gateway routes the tracking handlers to the hub.
SITE = "https://news.example.com"


def links_in(message: EmailMessage) -> list[str]:
    """Every link and image source of a received email's HTML part."""
    part = message.get_body(("html",))
    assert part is not None
    html: str = part.get_content()
    return [unescape(found) for found in re.findall(r'(?:href|src)="([^"]+)"', html)]


def on_hub(public_url: str, hub: HubServer) -> str:
    """A link of an email, as the site's gateway passes it to the hub."""
    parts = urlsplit(public_url)
    assert f"{parts.scheme}://{parts.netloc}" == SITE, public_url
    return f"{hub.base_url}{parts.path}?{parts.query}"


def row_of(table: Locator, text: str) -> Locator:
    """The one row of a table that holds this text."""
    row = table.locator("tr").filter(has_text=text)
    expect(row).to_have_count(1)
    return row


@sqlite_only
def test_sign_in_refuses_a_wrong_password_then_lets_the_right_one_in_and_out(
    tab: Tab, admin_user: str
) -> None:
    page = tab.page
    # Signed out, an admin page leads to the sign-in form, which remembers where to go back.
    tab.open("/admin/contacts")
    expect(page).to_have_url(tab.url("/admin/sign-in?next=%2Fadmin%2Fcontacts"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    tab.screenshot("sign-in")

    tab.expect_status("/admin/sign-in", 401)
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("password")
    tab.screenshot("sign-in-error")
    # The address stays filled in; the password does not.
    expect(page.get_by_label("Email address")).to_have_value(EMAIL)
    expect(page.get_by_label("Password")).to_have_value("")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(tab.url("/admin/contacts"))
    expect(page.get_by_role("navigation", name="Main")).to_contain_text(NAME)

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(tab.url("/admin/sign-in"))
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    # The session is over: the pages ask to sign in again.
    tab.open("/admin/")
    expect(page).to_have_url(tab.url("/admin/sign-in?next=%2Fadmin%2F"))
    sign_in(tab)


@sqlite_only
def test_a_channel_and_a_key_made_in_the_admin_work_with_the_tracking_api(
    signed_in: Tab, hub: HubServer
) -> None:
    tab, page = signed_in, signed_in.page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Channels & keys").click()
    expect(page).to_have_url(tab.url("/admin/channels"))
    page.get_by_role("link", name="New channel").click()

    # A name is required: the form says so next to the field.
    tab.expect_status("/admin/channels/new", 400)
    page.get_by_role("button", name="Create channel").click()
    expect(page.get_by_label("Name")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#e-name")).not_to_be_empty()
    tab.screenshot("channel-new-error")

    page.get_by_label("Name").fill("Web shop")
    page.get_by_role("button", name="Create channel").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Web shop")
    channel_path = page.url.removeprefix(tab.base_url)
    channel_guid = page.locator(".copyable code").first.inner_text()
    assert uuid.UUID(channel_guid)

    page.get_by_label("Name").fill("Checkout page")
    page.get_by_label("Access").select_option("tracking")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator(".secret")
    expect(secret).to_contain_text("Copy the new key now")
    key = secret.locator(".copyable code").inner_text()
    assert key.startswith("chk_")
    tab.screenshot("new-key")
    # The copy button puts exactly the key on the clipboard.
    secret.get_by_role("button", name="Copy key").click()
    expect(secret.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == key

    # Shown once: the channel's page no longer has it, only its prefix.
    tab.open(channel_path)
    expect(page.locator(".secret")).to_have_count(0)
    assert key not in page.content()
    keys = page.get_by_role("table")
    expect(keys).to_contain_text("Checkout page")
    expect(keys).to_contain_text("active")

    # The key works against the tracking API, on this channel.
    with httpx2.Client(
        base_url=hub.base_url + TRACKING, headers={"Authorization": f"Bearer {key}"}
    ) as app:
        contact = app.post("/contacts")
        assert contact.status_code == 200, contact.text
        body = {
            "channel": channel_guid,
            "contact": contact.json()["contact"],
            "activities": [{"type": "click", "value": "Buy now"}],
        }
        logged = app.post("/activities", json=body)
        assert logged.status_code == 207, logged.text
        assert logged.json()["results"] == [{"status": 202}]

        # Disabled in the admin, the key is refused; enabled again, it works again.
        page.get_by_role("button", name="Disable").click()
        expect(page.get_by_role("status")).to_contain_text("disabled")
        assert app.post("/activities", json=body).json()["code"] == "api_key_disabled"
        page.get_by_role("button", name="Enable").click()
        expect(page.get_by_role("status")).to_contain_text("enabled")
        assert app.post("/activities", json=body).status_code == 207
        # Revoked (after the confirmation prompt), it is refused for good.
        tab.accept_dialogs()
        page.get_by_role("button", name="Revoke").click()
        expect(page.get_by_role("status")).to_contain_text("revoked")
        assert app.post("/activities", json=body).json()["code"] == "api_key_revoked"
    expect(keys).to_contain_text("revoked")

    page.get_by_role("link", name="All channels").click()
    row = page.get_by_role("row", name=re.compile("Web shop"))
    expect(row).to_contain_text(channel_guid)
    expect(row).to_contain_text("0 active")


@sqlite_only
def test_the_dashboard_charts_the_activities_logged_through_the_tracking_api(
    signed_in: Tab, tracker: Callable[[str], Tracker]
) -> None:
    tab, page = signed_in, signed_in.page
    web = tracker("Web shop")
    app = tracker("Mobile app")
    grace = web.person("Grace", "Hopper", "grace@example.com")
    alan = app.person("Alan", "Turing", "alan@example.com")
    browse(web, grace.guid, visits=5, clicks=2)
    browse(app, alan.guid, visits=2, clicks=4)
    total = 2 + 5 + 2 + 2 + 4  # the two sign-up forms, the visits and the clicks

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    activities = page.locator(".stat").filter(has_text="Activities")
    expect(activities.locator(".value")).to_have_text(str(total))
    expect(page.locator(".stat").filter(has_text="New contacts").locator(".value")).to_have_text(
        "2"
    )
    for heading in ("Activities by type", "Activities by channel", "New contacts"):
        card = page.locator(".card").filter(has=page.get_by_role("heading", name=heading))
        chart = card.locator("svg[role=img]")
        expect(chart).to_have_count(1)
        expect(chart).to_be_visible()
        # A chart that is drawn has bars or an area, not only its frame.
        assert chart.locator("rect, path, polygon").count() > 0, heading
    by_channel = page.locator(".card").filter(
        has=page.get_by_role("heading", name="Activities by channel")
    )
    expect(by_channel).to_contain_text("Web shop")
    expect(by_channel).to_contain_text("Mobile app")
    top_pages = page.locator(".card").filter(has=page.get_by_role("heading", name="Top pages"))
    # Path first, the site after; the whole URL is the link.
    top_page = top_pages.get_by_role("listitem").first
    expect(top_page).to_contain_text("/ shop.example.com")
    expect(top_page.get_by_role("link")).to_have_attribute("href", PAGES[0][0])
    top_clicks = page.locator(".card").filter(
        has=page.get_by_role("heading", name="Top clicked elements")
    )
    expect(top_clicks.get_by_role("listitem").first).to_contain_text(CLICKS[0])

    # The range picker: a preset, then a range of the user's own.
    page.get_by_role("link", name="Last 7 days").click()
    expect(page.get_by_role("link", name="Last 7 days")).to_have_attribute("aria-current", "true")
    expect(activities.locator(".value")).to_have_text(str(total))
    today = datetime.now(UTC).date()
    page.get_by_label("From", exact=True).fill((today - timedelta(days=90)).isoformat())
    page.get_by_label("To", exact=True).fill(today.isoformat())
    page.get_by_role("button", name="Show").click()
    expect(page.locator(".page-header .sub")).to_contain_text("91 days")
    expect(activities.locator(".value")).to_have_text(str(total))
    # A range that ends before it starts is refused, next to the field.
    tab.expect_status("/admin/", 400)
    page.get_by_label("From", exact=True).fill(today.isoformat())
    page.get_by_label("To", exact=True).fill((today - timedelta(days=3)).isoformat())
    page.get_by_role("button", name="Show").click()
    expect(page.locator(".field.has-error")).not_to_have_count(0)


@sqlite_only
def test_a_contacts_page_shows_the_activities_posted_for_it(
    signed_in: Tab, tracker: Callable[[str], Tracker]
) -> None:
    tab, page = signed_in, signed_in.page
    web = tracker("Web shop")
    app = tracker("Mobile app")
    grace = web.person("Grace", "Hopper", "grace@example.com")
    other = web.person("Alan", "Turing", "alan@example.com")
    browse(web, other.guid, visits=1, clicks=1)
    web.log(
        grace.guid,
        {
            "type": "pagevisit",
            "url": "https://shop.example.com/pricing?plan=team",
            "value": "Pricing",
            "referrer": "https://search.example.org/?q=contact+hub",
        },
        {"type": "click", "value": "Start free trial"},
        # From the public, so hostile: shown as text, never run.
        {"type": "click", "value": HOSTILE},
    )
    app.log(grace.guid, {"type": "pagevisit", "url": "app://settings", "value": "Settings"})

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Contacts").click()
    page.get_by_role("searchbox", name="Search").fill("hopper")
    page.get_by_role("button", name="Filter").click()
    results = page.get_by_role("table")
    expect(results.get_by_role("row")).to_have_count(2)  # the header and Grace
    expect(results).to_contain_text("grace@example.com")
    page.get_by_role("link", name="Grace Hopper").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Grace Hopper")
    expect(page).to_have_url(tab.url(f"/admin/contacts/{grace.guid}"))
    fields = page.locator("dl.fields")
    expect(fields).to_contain_text("grace@example.com")
    expect(fields).to_contain_text(grace.guid)
    timeline = page.locator("#timeline").get_by_role("listitem")
    # Newest first, from both channels, the sign-up form included; Alan's are not here.
    expect(timeline).to_have_count(5)
    expect(timeline.nth(0)).to_contain_text("Page visit 'Settings'")
    expect(timeline.nth(0)).to_contain_text("Mobile app")
    expect(timeline.nth(1)).to_contain_text(f"Clicked '{HOSTILE}'")
    expect(timeline.nth(2)).to_contain_text("Clicked 'Start free trial'")
    expect(timeline.nth(3)).to_contain_text("Page visit 'Pricing'")
    # URLs path first, the site after; the whole URL is the link and its tooltip.
    expect(timeline.nth(3)).to_contain_text("/pricing?plan=team shop.example.com")
    expect(timeline.nth(3)).to_contain_text("from /?q=contact+hub search.example.org")
    expect(
        timeline.nth(3).locator("a[title='https://shop.example.com/pricing?plan=team']")
    ).to_have_attribute("href", "https://shop.example.com/pricing?plan=team")
    expect(timeline.nth(4)).to_contain_text("Data input 'Newsletter sign-up'")
    expect(page.locator("#timeline")).not_to_contain_text("Alan")
    # The hostile value is text: no element came out of it (and no script ran: the tab
    # fixture fails the test on any script error or CSP report).
    expect(page.locator("img[src=x]")).to_have_count(0)

    # The activity log, filtered to her and one type, shows the same.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Activity log").click()
    page.get_by_label("Contact GUID").fill(grace.guid)
    page.get_by_label("Type").select_option("click")
    page.get_by_role("button", name="Filter").click()
    rows = page.get_by_role("table").locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text(HOSTILE)
    expect(rows.nth(1)).to_contain_text("Start free trial")


ISSUE_HTML = """<html><body>
<h1>Hello {{ first_name | "there" }}!</h1>
<p>Spring is here, and so is our offer.</p>
<p><a href="https://shop.example.com/offer">See the offer</a></p>
<p><a href="https://news.example.com/archive">Read the archive</a></p>
</body></html>"""
LINK_SCANNER = "Mozilla/5.0 (compatible; Proofpoint URL Defense)"


@sqlite_only
def test_an_issue_sent_from_the_admin_shows_its_opens_and_clicks(
    signed_in: Tab, database: Database, hub: HubServer, smtp: SmtpServer
) -> None:
    tab, page = signed_in, signed_in.page
    tab.accept_dialogs()
    nav = page.get_by_role("navigation", name="Main")

    nav.get_by_role("link", name="Newsletters").click()
    page.get_by_role("link", name="New newsletter").click()
    page.get_by_label("Name", exact=True).fill("Weekly")
    page.get_by_label("Sender name").fill("The Shop")
    page.get_by_label("Sender email").fill("news@shop.example.com")
    page.get_by_label("Base URL").fill(SITE)
    page.get_by_role("button", name="Create newsletter").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Weekly")
    for email, first, last in (("anna@example.com", "Anna", "Lind"), ("bob@example.com", "", "")):
        form = page.locator("#add-subscriber")
        form.get_by_label("Email", exact=True).fill(email)
        form.get_by_label("First name").fill(first)
        form.get_by_label("Last name").fill(last)
        form.get_by_role("button", name="Subscribe").click()
        expect(page.locator("#subscribers")).to_contain_text(email)

    page.get_by_role("link", name="New issue").click()
    page.get_by_label("Newsletter").select_option("Weekly")
    page.get_by_label("Subject").fill('Spring news for {{ first_name | "you" }}')
    page.get_by_label("HTML body").fill(ISSUE_HTML)
    tab.screenshot("issue-compose")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Spring news")
    # The preview is the email as the first subscriber gets it, in a sandboxed frame.
    preview = page.frame_locator("iframe.preview")
    expect(preview.get_by_role("heading", name="Hello")).to_be_visible()

    page.get_by_role("button", name="Send to 2 subscribers").click()
    # The page refreshes itself while the hub sends, until the issue is sent.
    expect(page.locator(".page-header .badge")).to_have_text("sent", timeout=30_000)
    issue_path = page.url.removeprefix(tab.base_url).split("#", 1)[0]
    assert sorted(smtp.recipients()) == ["anna@example.com", "bob@example.com"]
    (anna_mail,) = smtp.messages_to("anna@example.com")
    (bob_mail,) = smtp.messages_to("bob@example.com")
    assert anna_mail["Subject"] == "Spring news for Anna"
    assert bob_mail["Subject"] == "Spring news for you"

    # An hour passes before anyone reads it (a click seconds after delivery is a scanner's).
    with database.write() as session:
        session.execute(update(Delivery).values(sent_at=utcnow() - timedelta(hours=1)))
    anna_links = links_in(anna_mail)
    pixel = next(link for link in anna_links if "/Track.ashx?" in link)
    anna_clicks = [link for link in anna_links if "/Redirect.ashx?" in link]
    bob_clicks = [link for link in links_in(bob_mail) if "/Redirect.ashx?" in link]
    with httpx2.Client(headers={"User-Agent": HUMAN_BROWSER}, timeout=10) as reader:
        # Anna's mail client shows the images, twice; she clicks the offer.
        for _ in range(2):
            assert reader.get(on_hub(pixel, hub)).status_code == 200
        offer = reader.get(on_hub(anna_clicks[0], hub))
        assert offer.status_code == 303
        assert offer.headers["location"] == "https://shop.example.com/offer"
        # Bob's images are blocked; he reads the archive (a click is an open too).
        archive = reader.get(on_hub(bob_clicks[1], hub))
        assert archive.headers["location"] == "https://news.example.com/archive"
        # Bob's company gateway follows the links in his message first.
        scanned = reader.get(on_hub(bob_clicks[0], hub), headers={"User-Agent": LINK_SCANNER})
        assert scanned.status_code == 303

    page.get_by_role("link", name="Statistics").click()
    expect(page).to_have_url(tab.url(f"{issue_path}/stats"))

    def stat(label: str) -> Locator:
        return page.locator(".stat").filter(has=page.get_by_text(label, exact=True))

    expect(stat("Sent").locator(".value")).to_have_text("2")
    expect(stat("Open rate").locator(".value")).to_have_text(re.compile(r"^100(\.0)?\s?%$"))
    expect(stat("Open rate").locator(".hint")).to_have_text("2 human openers")
    expect(stat("Click-through rate").locator(".value")).to_have_text(
        re.compile(r"^100(\.0)?\s?%$")
    )
    figures = page.get_by_role("table").filter(has_text="Unique opens")
    # Human, machine, all. A click implies an open (Bob's images were blocked); "all" counts
    # Bob's implied open once although both a person and a scanner clicked (email/stats.py).
    for label, human, machine, everyone in (
        ("Unique opens", 2, 1, 2),
        ("Total opens", 3, 1, 3),
        ("Unique clicks", 2, 1, 2),
        ("Total clicks", 2, 1, 3),
    ):
        cells = row_of(figures, label).get_by_role("cell")
        expect(cells).to_have_text([label, str(human), str(machine), str(everyone)])
    per_link = page.get_by_role("table").filter(has_text="Human clicks")
    offer_row = row_of(per_link, "https://shop.example.com/offer")
    expect(offer_row.locator("td.num").nth(0)).to_have_text("1")  # human
    expect(offer_row.locator("td.num").nth(1)).to_have_text("1")  # the scanner
    expect(offer_row.locator("td.num").nth(2)).to_have_text("2")  # Anna and Bob's gateway
    archive_row = row_of(per_link, "https://news.example.com/archive")
    expect(archive_row.locator("td.num").nth(0)).to_have_text("1")
    expect(archive_row.locator("td.num").nth(1)).to_have_text("0")
    # The chart beside them: one bar pair (human, machine) per figure.
    chart = page.locator(".card").filter(has=page.get_by_role("heading", name="Human and machine"))
    bars = chart.get_by_role("listitem")
    expect(bars).to_have_count(4)
    expect(bars.filter(has_text="Unique opens")).to_have_text(re.compile(r"Unique opens\s*2\s*1"))

    # The issue list and the dashboard show its rates too.
    nav.get_by_role("link", name="Issues").click()
    expect(page.get_by_role("row", name=re.compile("Spring news"))).to_contain_text("100")
