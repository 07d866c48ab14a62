"""Every page of the admin, in a real browser, on a hub full of demo data: none fails.

A crawler signs in, follows every admin link it finds (one page per route and kind of query:
sorting, paging, filters), and fails on any answer of 400 or more, any script error, console
error or CSP violation (the `tab` fixture), or a page without its heading. Each page is also
laid out at a phone's width (390 px) and a desktop's (1440 px) and must fit both
(tests/browser/layout.py: nothing wider than the window, no squeezed text, the navigation out of
the way on a phone). This is also the PostgreSQL smoke test of the browser tests: it runs on both
backends.

On SQLite it also takes the docs' screenshots of every page (docs/screenshots), with the
`contacthub demo` data set, so that they show what a hub in use looks like.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlsplit

import httpx2
import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from contacthub.channels import cors
from contacthub.demo import service as demo
from contacthub.events import endpoints as webhooks
from contacthub.groups import service as groups
from contacthub.retention import job
from contacthub.retention import policies as retention_policies
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.models import Activity, Contact, Delivery, EmailIssue, FeedbackRejection
from contacthub.suppressions import service as suppressions
from tests.browser.conftest import EMAIL, PASSWORD, Tab, sign_in
from tests.browser.layout import PHONE, phone_and_desktop_problems
from tests.webhooks.support import deliver, emit_events

pytestmark = pytest.mark.slow

# Small enough to build in seconds, large enough for paging, charts and rates.
DEMO = demo.DemoOptions(
    contacts=1_500, activities=15_000, days=56, admin_email=EMAIL, admin_password=PASSWORD
)
# Pages the crawler may open at most: a bound, should a page link to endless variants of itself.
MAX_PAGES = 150
IDS = re.compile(r"/(\d+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?=/|$)")
# Query parameters whose value makes another kind of page (the others are cursors and inputs).
KINDS = {"sort", "status", "type", "channel", "newsletter"}

# The screenshot of each page (by route), for the docs.
SHOTS = {
    "/admin/": "dashboard",
    "/admin/contacts": "contacts",
    "/admin/contacts/{}/erase": "contact-erase",
    "/admin/groups": "groups",
    "/admin/groups/new": "group-new",
    "/admin/groups/{}": "group",
    "/admin/groups/{}/edit": "group-edit",
    "/admin/groups/{}/delete": "group-delete",
    "/admin/activities": "activities",
    "/admin/newsletters": "newsletters",
    "/admin/newsletters/new": "newsletter-new",
    "/admin/newsletters/{}": "newsletter",
    "/admin/issues": "issues",
    "/admin/issues/new": "issue-new",
    "/admin/suppressions": "suppressions",
    "/admin/deliverability": "deliverability",
    "/admin/channels": "channels",
    "/admin/channels/new": "channel-new",
    "/admin/channels/{}": "channel",
    "/admin/cors": "cors",
    "/admin/consents": "consents",
    "/admin/consents/new": "consent-new",
    "/admin/activity-types": "activity-types",
    "/admin/users": "users",
    "/admin/users/{}": "user",
    "/admin/retention": "retention",
    "/admin/audit": "audit",
    "/admin/webhooks": "webhooks",
    "/admin/webhooks/new": "webhook-new",
    "/admin/webhooks/{}": "webhook",
    "/admin/webhooks/{}/edit": "webhook-edit",
}


def route_of(path: str) -> str:
    """The route a path belongs to: ids and GUIDs left out."""
    return IDS.sub("/{}", path)


def kind_of(url: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """What makes a page another page to the crawler: its route and its kind of query."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    return route_of(parts.path), tuple(
        sorted((key, value if key in KINDS else "…") for key, value in query)
    )


def admin_links(tab: Tab) -> list[str]:
    """The admin pages the current page links to (paths with their query)."""
    hrefs: list[str] = tab.page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    found = []
    for href in hrefs:
        parts = urlsplit(href)
        if f"{parts.scheme}://{parts.netloc}" != tab.base_url:
            continue
        if not parts.path.startswith("/admin/") or parts.path.startswith("/admin/static/"):
            continue
        found.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return found


# A dynamic group with a nested condition, and a static one, so that every group page is reached
# (named apart from the demo's own groups).
ENGAGED = {
    "all": [
        {"field": "email", "op": "contains", "value": "@"},
        {
            "any": [
                {"activity": "pagevisit", "at_least": 3, "within_days": 30},
                {"activity": "click", "within_days": 14},
            ]
        },
    ]
}


def fill_the_hub(database: Database) -> None:
    """The demo data set, plus what only an admin's own work leaves (audit entries, groups)."""
    demo.build(database, DEMO)
    with database.write() as session:
        cors.add_origin(session, "https://partners.example.net", actor=EMAIL)
        groups.create_group(
            session,
            "Frequent visitors",
            conditions=ENGAGED,
            description="Seen often lately",
            actor=EMAIL,
        )
        groups.create_group(session, "Press", kind="static", actor=EMAIL)
        addresses = session.scalars(
            select(Contact.email).where(Contact.email.is_not(None)).order_by(Contact.id).limit(5)
        ).all()
        groups.add_members(session, "Press", [a for a in addresses if a], actor=EMAIL)
        suppress_some(session, addresses)
        hook_some(session)
        # A retention policy that deletes nothing here, so that the page shows a run too.
        retention_policies.set_policy(session, "audit_log", 3_650, actor=EMAIL)
    url = database.url.render_as_string(hide_password=False)
    job.run(database, Settings(database_url=url, secret_key="test-secret"), EMAIL)  # type: ignore[arg-type]


def hook_some(session: Session) -> None:
    """Two webhook endpoints, one with a filter and deliveries in every state (a receiver's
    long error among them), one disabled: every column of the webhook pages has something."""
    guid = webhooks.create_endpoint(
        session,
        "CRM sync",
        "https://crm.example.com/hooks/contacthub/receive-events-from-the-hub?tenant=4711",
        events=["contact.created", "contact.updated", "activity.stored"],
        activity_types=["pagevisit", "click"],
        actor=EMAIL,
    ).endpoint.guid
    events = emit_events(session, 4)
    deliver(session, guid, events, ["delivered", "delivered", "dead", "pending"])
    endpoint = webhooks.get_endpoint(session, guid)
    endpoint.last_success_at = endpoint.created_at
    endpoint.last_failure_at = endpoint.created_at
    endpoint.last_error = (
        "HTTP 502 from https://crm.example.com/hooks/contacthub/receive-events-from-the-hub: "
        "<html><head><title>502 Bad Gateway</title></head><body>" + "upstream " * 30
    )
    webhooks.create_endpoint(
        session, "Data warehouse", "http://warehouse.internal:8080/events", enabled=False
    )


def suppress_some(session: Session, addresses: Sequence[str | None]) -> None:
    """A bounce tied to a delivery of a sent issue, a complaint, one added by hand, and refused
    feedback: every column of the suppression and deliverability pages has something to show."""
    delivery = session.scalars(
        select(Delivery)
        .join(EmailIssue, EmailIssue.id == Delivery.issue_id)
        .where(EmailIssue.status == "sent")
        .order_by(Delivery.id)
        .limit(1)
    ).one()
    suppressions.suppress(
        session,
        delivery.email,
        reason="hard_bounce",
        source="imap",
        evidence="5.1.1 <" + delivery.email + ">: Recipient address rejected: User unknown in "
        "virtual mailbox table (a long diagnostic, as remote servers write them)",
        delivery_id=delivery.id,
    )
    suppressions.suppress(
        session, str(addresses[0]), reason="complaint", source="ses", evidence="abuse"
    )
    suppressions.add_manual(
        session,
        "asked.by.phone@example.net",
        evidence="Asked by phone",
        source="admin",
        actor=EMAIL,
    )
    session.add(
        FeedbackRejection(
            source="sendgrid",
            reason="bad_signature",
            detail="The ECDSA signature of the event batch does not verify: " + "x" * 300,
        )
    )
    session.add(FeedbackRejection(source="imap", reason="malformed", detail="No report part"))


def settle_in(tab: Tab) -> None:
    """An admin's first day, through the forms: a colleague, an API token (used at once against
    the management API), a CORS origin, a custom activity type. The audit log records them."""
    page = tab.page
    tab.open("/admin/users")
    new_user = page.locator("form[action='/admin/users']")
    new_user.get_by_label("Email address").fill("grace@example.com")
    new_user.get_by_label("Name").fill("Grace Hopper")
    new_user.get_by_label("Password").fill("a long enough password")
    new_user.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("table").first).to_contain_text("grace@example.com")

    new_token = page.locator("form[action='/admin/tokens']")
    new_token.get_by_label("Name").fill("deploy script")
    new_token.get_by_role("button", name="Create token").click()
    secret = page.locator(".secret")
    token = secret.locator(".copyable code").inner_text()
    assert token.startswith("cht_")
    tab.screenshot("new-token")
    with httpx2.Client(base_url=tab.base_url) as api:
        answer = api.get("/api/users", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        assert {user["email"] for user in answer.json()} == {EMAIL, "grace@example.com"}
    tab.open("/admin/users")
    assert token not in page.content()

    tab.open("/admin/cors")
    page.get_by_label("Origin").fill("https://app.example.org")
    page.get_by_role("button", name="Allow origin").click()
    expect(page.get_by_role("table")).to_contain_text("https://app.example.org")

    tab.open("/admin/activity-types")
    page.get_by_label("Code name").fill("custom_quiz_answer")
    page.get_by_label("Display name").fill("Quiz answer")
    page.get_by_role("button", name="Create type").click()
    expect(page.get_by_role("table").first).to_contain_text("custom_quiz_answer")


def showcase(database: Database) -> dict[str, str]:
    """The detail pages worth a screenshot, picked from the demo data."""
    with database.read() as session:
        # A reader who clicked in the newsletters: fields, consents, a timeline with email
        # activities, and email engagement all have something to show.
        reader = session.execute(
            select(Contact.guid)
            .join(Activity, Activity.contact_id == Contact.id)
            .where(Activity.type == "emailclick", Contact.first_name.is_not(None))
            .group_by(Contact.guid)
            .order_by(func.count().desc(), Contact.guid)
            .limit(1)
        ).scalar_one()
        sent = session.scalars(
            select(EmailIssue.guid)
            .where(EmailIssue.status == "sent")
            .order_by(EmailIssue.id.desc())
            .limit(1)
        ).one()
        draft = session.scalars(select(EmailIssue.guid).where(EmailIssue.status == "draft")).one()
    return {
        "contact": f"/admin/contacts/{reader}",
        "issue": f"/admin/issues/{sent}",
        "issue-stats": f"/admin/issues/{sent}/stats",
        "issue-draft": f"/admin/issues/{draft}",
    }


def test_every_admin_page_opens_without_an_error(
    tab: Tab, database: Database, database_url: str
) -> None:
    fill_the_hub(database)
    screenshots = database_url.startswith("sqlite")
    sign_in(tab)
    settle_in(tab)

    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    queue = deque(["/admin/"])
    shot: set[str] = set()
    badly_laid_out: list[str] = []
    visited = 0
    while queue and visited < MAX_PAGES:
        path = queue.popleft()
        if kind_of(path) in seen:
            continue
        seen.add(kind_of(path))
        tab.open(path)
        visited += 1
        # Every page has one main heading, and the navigation.
        expect(tab.page.get_by_role("heading", level=1)).to_have_count(1)
        expect(tab.page.get_by_role("navigation", name="Main")).to_be_visible()
        # Fits a phone and a desktop: nothing wider than the window (wide content scrolls in
        # its own box), no squeezed text, the navigation out of the way.
        badly_laid_out += phone_and_desktop_problems(tab.page)
        name = SHOTS.get(route_of(path))
        if screenshots and name and "?" not in path and name not in shot:
            tab.screenshot(name)
            tab.screenshot(f"{name}-phone", PHONE)
            shot.add(name)
        queue.extend(admin_links(tab))

    routes = {route for route, _ in seen}
    # The crawler reached every page of the navigation and the detail pages behind them.
    assert set(SHOTS) <= routes, sorted(set(SHOTS) - routes)
    assert {
        "/admin/contacts/{}",
        "/admin/issues/{}",
        "/admin/issues/{}/stats",
        "/admin/issues/{}/engagement",
    } <= routes
    assert any(
        route.startswith("/admin/consents/") and route != "/admin/consents/new" for route in routes
    )
    if screenshots:
        assert shot == set(SHOTS.values()), sorted(set(SHOTS.values()) - shot)
        for name, path in showcase(database).items():
            tab.open(path)
            tab.screenshot(name)
        tab.open("/admin/consents")
        tab.page.get_by_role("table").get_by_role("link").first.click()
        tab.screenshot("consent")
    assert not badly_laid_out, "\n".join(badly_laid_out)
