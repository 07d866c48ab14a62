"""The dashboard page: figures from the tracking API, escaping, the range picker, sign-in."""

from __future__ import annotations

import html as html_lib
import re
from datetime import timedelta

from starlette.testclient import TestClient

from contacthub.analytics import rollups
from contacthub.analytics.dashboard import utc_today
from contacthub.storage.database import Database
from contacthub.storage.types import utcnow
from tests import factories
from tests.analytics.support import email_issue
from tests.tracking.support import post_activities, results_of

HOSTILE_URL = "https://example.com/<script>alert(1)</script>"
HOSTILE_CLICK = "<img src=x onerror=alert(1)>"
HOSTILE_CHANNEL = "<img src=x onerror=alert(2)>"


def tile(page: str, label: str) -> str:
    """The value of a stat tile."""
    match = re.search(rf'<div class="label">{label}</div>\s*<div class="value">([^<]*)</div>', page)
    assert match, f"no {label} tile"
    return match.group(1)


def error_of(page: str, field: str) -> str:
    match = re.search(rf'<div class="error" id="e-{field}">([^<]*)</div>', page)
    assert match, f"no error next to {field}"
    return html_lib.unescape(match.group(1))


def subtitle(page: str) -> str:
    match = re.search(r'<div class="sub">([^<]*)</div>', page)
    assert match
    return match.group(1)


def track(
    client: TestClient, database: Database, channel: str, *activities: dict[str, str]
) -> None:
    setup = factories.tracking_channel(database, channel)
    contact = factories.contact(database)
    results = results_of(post_activities(client, setup, contact, activities))
    assert [r["status"] for r in results] == [202] * len(activities)


def test_signed_out_goes_to_sign_in(client: TestClient) -> None:
    response = client.get("/admin/?start=2024-05-01", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == ("/admin/sign-in?next=%2Fadmin%2F%3Fstart%3D2024-05-01")


def test_dashboard_shows_what_was_tracked(admin: TestClient, database: Database) -> None:
    track(
        admin,
        database,
        "Website",
        {"type": "pagevisit", "url": "https://example.com/pricing", "value": "Pricing"},
        {"type": "pagevisit", "url": "https://example.com/pricing", "value": "Pricing"},
        {"type": "pagevisit", "url": "https://example.com/", "value": "Home"},
        {"type": "click", "value": "buy-button"},
    )
    track(admin, database, "Mobile app", {"type": "click", "value": "menu"})
    guid = email_issue(
        database,
        "Spring news",
        sent_at=utcnow() - timedelta(hours=2),
        recipients=["anna@example.com", "bob@example.com"],
        opened=["anna@example.com"],
    )

    response = admin.get("/admin/")

    assert response.status_code == 200
    page = response.text
    today = utc_today()
    start = today - timedelta(days=29)
    assert subtitle(page).startswith(f"{start.day} {start:%b %Y} – {today.day} {today:%b %Y}")
    assert tile(page, "Activities") == "5"
    # Two contacts from tracking, two subscribers' contacts.
    assert tile(page, "New contacts") == "4"
    assert tile(page, "Contacts") == "4"
    for heading in (
        "Activities by type",
        "Activities by channel",
        "New contacts",
        "Top pages",
        "Top clicked elements",
        "Latest email issues",
    ):
        assert f"<h2>{heading}</h2>" in page
    assert page.count('role="img"') == 3
    # Legends name the series with their totals.
    assert '<span class="name">Page visits</span><span class="total">3</span>' in page
    assert '<span class="name">Website</span><span class="total">4</span>' in page
    assert '<span class="name">Mobile app</span><span class="total">1</span>' in page
    # Top lists, largest first, with proportional bars.
    pages = re.findall(r'href="(https://example\.com/[^"]*)"', page)
    assert pages == ["https://example.com/pricing", "https://example.com/"]
    assert page.count('class="meter"') == 4
    assert '<rect width="50" height="6" fill="#4f46e5"/>' in page
    # The latest issue, with its rates.
    assert f'<a href="/admin/issues/{guid}">Spring news</a>' in page
    assert "50.0 %" in page  # one of two recipients opened
    # Nothing inline for the CSP to block.
    assert " style=" not in page
    assert "<script>" not in page.split("</head>", 1)[1]


def test_figures_are_the_same_once_rolled_up(admin: TestClient, database: Database) -> None:
    track(
        admin,
        database,
        "Website",
        {"type": "pagevisit", "url": "https://example.com/"},
        {"type": "click", "value": "buy"},
    )
    before = admin.get("/admin/").text

    assert rollups.refresh(database) == 2

    after = admin.get("/admin/").text
    assert tile(after, "Activities") == tile(before, "Activities") == "2"
    assert re.findall(r"<svg class=\"chart\".*?</svg>", after, re.S) == re.findall(
        r"<svg class=\"chart\".*?</svg>", before, re.S
    )


def test_hostile_values_are_escaped(admin: TestClient, database: Database) -> None:
    factories.activity_type(database, "webinar", "<b>Webinar</b>")
    track(
        admin,
        database,
        HOSTILE_CHANNEL,
        {"type": "pagevisit", "url": HOSTILE_URL, "value": "<script>x</script>"},
        {"type": "pagevisit", "url": "javascript:alert(3)"},
        {"type": "click", "value": HOSTILE_CLICK},
        {"type": "webinar", "value": "May"},
    )

    page = admin.get("/admin/").text

    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # the clicked element
    assert "&lt;img src=x onerror=alert(2)&gt;" in page  # the channel, in the chart's legend
    assert "<b>Webinar</b>" not in page
    assert "&lt;b&gt;Webinar&lt;/b&gt;" in page
    # Only http(s) URLs become links.
    assert 'href="javascript:' not in page
    assert "javascript:alert(3)" in page


def test_a_range_picked(admin: TestClient, database: Database) -> None:
    response = admin.get("/admin/?start=2024-05-01&end=2024-05-07")

    assert response.status_code == 200
    assert subtitle(response.text) == "1 May 2024 – 7 May 2024 · 7 days (UTC)"
    assert 'value="2024-05-01"' in response.text
    assert 'value="2024-05-07"' in response.text
    assert "No activities in this range." in response.text
    assert "No email issues yet." in response.text


def test_presets(admin: TestClient) -> None:
    page = admin.get("/admin/").text
    today = utc_today()

    for days in (7, 30, 90):
        start = today - timedelta(days=days - 1)
        assert f'href="/admin/?start={start}&amp;end={today}"' in page
    # The default range is the 30-day preset.
    assert re.search(r'current" href="[^"]*" aria-current="true">Last 30 days', page)


def test_malformed_dates_are_named_next_to_their_field(admin: TestClient) -> None:
    response = admin.get("/admin/?start=2024-13-01&end=someday")

    assert response.status_code == 400
    page = response.text
    assert error_of(page, "start") == "Enter a date as YYYY-MM-DD, e.g. 2024-05-31."
    assert error_of(page, "end") == "Enter a date as YYYY-MM-DD, e.g. 2024-05-31."
    # What was typed stays, to be corrected; the page shows the default range meanwhile.
    assert 'value="2024-13-01"' in page
    assert 'value="someday"' in page
    assert "· 30 days (UTC)" in subtitle(page)


def test_impossible_ranges_are_refused(admin: TestClient) -> None:
    reversed_range = admin.get("/admin/?start=2024-05-10&end=2024-05-01")
    assert reversed_range.status_code == 400
    assert error_of(reversed_range.text, "end") == "The end date is before the start date."
    assert "· 30 days (UTC)" in subtitle(reversed_range.text)

    too_long = admin.get("/admin/?start=2023-01-01&end=2024-05-01")
    assert too_long.status_code == 400
    assert "at most 366 days" in error_of(too_long.text, "start")

    hostile = admin.get("/admin/", params={"start": '"><script>alert(1)</script>'})
    assert hostile.status_code == 400
    assert "<script>alert(1)" not in hostile.text
    assert 'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in hostile.text
