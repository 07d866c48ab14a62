"""Double opt-in and the preference page in a real Chromium, with a real hub and SMTP server.

The subscription form → the confirmation email in the SMTP sink → its link → confirmed, with the
agreement stored; and the preference page of a sent issue: change a subscription, then leave
everything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select

from contacthub.email import sending, service
from contacthub.email.hashing import LinkSigner
from contacthub.email.sender import SmtpMailer
from contacthub.storage.database import Database
from contacthub.storage.models import ConsentAgreement, Subscriber
from tests.browser.conftest import TIMEOUT_MS, VIEWPORT, Tab, sqlite_only
from tests.email.smtp_server import HOST, SmtpServer
from tests.servers import TEST_SECRET, HubServer
from tests.subscriptions.support import HUMAN_AGENT, NEWS, SHORT_TEXT, make_newsletter

pytestmark = pytest.mark.slow

ANN = "ann@example.com"


@pytest.fixture
def person(browser: Browser, hub: HubServer) -> Iterator[Page]:
    """A tab of an ordinary desktop browser (headless Chromium's own user agent names itself
    `HeadlessChrome`, which the link-scanner rules treat as a machine)."""
    context: BrowserContext = browser.new_context(
        viewport=VIEWPORT, base_url=hub.base_url, user_agent=HUMAN_AGENT
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.route(lambda url: not url.startswith(hub.base_url + "/"), Tab.answer_elsewhere)
    tab = Tab(context.new_page(), hub.base_url)
    tab.watch()
    try:
        yield tab.page
    finally:
        context.close()
    assert not tab.problems, "\n".join(tab.problems)


def subscriber(database: Database, email: str) -> Subscriber:
    with database.read() as session:
        found = session.scalars(select(Subscriber).where(Subscriber.email == email)).one()
        session.expunge_all()
        return found


def html_link(message: EmailMessage, text: str) -> str:
    body = message.get_body(("html",))
    assert body is not None
    found = re.search(rf'<a href="([^"]+)">{text}</a>', body.get_content())
    assert found is not None
    return found.group(1).replace("&amp;", "&")


@sqlite_only
def test_subscribe_confirm_by_email_and_the_agreement_is_stored(
    person: Page, hub: HubServer, database: Database, smtp: SmtpServer
) -> None:
    guid = make_newsletter(database, base=hub.base_url)
    person.goto(f"/subscribe/{guid}")
    expect(person.get_by_text(SHORT_TEXT)).to_be_visible()
    person.get_by_label("Email address").fill(ANN)
    person.get_by_label("First name").fill("Ann")
    person.get_by_role("button", name="Subscribe").click()
    expect(person.get_by_role("heading", name="Check your inbox")).to_be_visible()
    assert subscriber(database, ANN).status == "unconfirmed"

    (message,) = smtp.messages_to(ANN)
    person.goto(html_link(message, "Confirm my subscription"))
    expect(person.get_by_role("heading", name="Subscription confirmed")).to_be_visible()
    confirmed = subscriber(database, ANN)
    assert confirmed.status == "subscribed"
    with database.read() as session:
        agreement = session.get_one(ConsentAgreement, confirmed.confirmation_agreement_id)
        assert agreement.user_agent == HUMAN_AGENT
        assert agreement.ip == "127.0.0.1"
        assert json.loads(agreement.evidence or "{}")["short_text"] == SHORT_TEXT


@sqlite_only
def test_the_preference_page_changes_subscriptions_and_leaves_everything(
    person: Page, hub: HubServer, database: Database, smtp: SmtpServer
) -> None:
    make_newsletter(database, base=hub.base_url, double_opt_in=False)
    with database.write() as session:
        service.create_newsletter(session, "Monthly", "T", "t@example.com", hub.base_url)
        service.add_subscriber(session, NEWS, ANN)
        service.add_subscriber(session, "Monthly", ANN)
        issue = str(service.create_issue(session, NEWS, "Hi", "<p>Hi</p>").guid)
    with SmtpMailer(HOST, smtp.port, timeout=10) as mailer:
        sending.send_issue(database, issue, mailer, signer=LinkSigner([TEST_SECRET]))

    person.goto(html_link(smtp.messages_to(ANN)[0], "Manage subscriptions"))
    expect(person.get_by_role("heading", name="Your subscriptions")).to_be_visible()
    expect(person.get_by_label("Monthly")).to_be_checked()
    person.get_by_label("Monthly").uncheck()
    person.get_by_role("button", name="Save my choices").click()
    expect(person.get_by_text("Saved.")).to_be_visible()
    expect(person.get_by_label("Monthly")).not_to_be_checked()
    expect(person.get_by_label(NEWS)).to_be_checked()
    with database.read() as session:
        rows = session.execute(select(Subscriber.status).where(Subscriber.email == ANN))
        assert sorted(rows.scalars()) == ["subscribed", "unsubscribed"]

    person.get_by_role("button", name="Unsubscribe from everything").click()
    expect(person.get_by_label(NEWS)).not_to_be_checked()
    with database.read() as session:
        rows = session.execute(select(Subscriber.status).where(Subscriber.email == ANN))
        assert sorted(rows.scalars()) == ["unsubscribed", "unsubscribed"]
