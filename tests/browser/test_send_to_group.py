"""An issue sent to a contact group from the admin, in a real browser, through a real SMTP server.

The newsletter has three subscribers (one unsubscribed); the group VIP holds two of them and a
contact who never subscribed. Composed for VIP, the issue reaches the one subscribed member only.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from contacthub.contacts import service as contacts
from contacthub.email import service as email
from contacthub.groups import service as groups
from contacthub.storage.database import Database
from tests.browser.conftest import Tab, sqlite_only
from tests.email.smtp_server import SmtpServer

pytestmark = pytest.mark.slow

ANNA, BOB, CARL, DORA = (f"{n}@example.com" for n in ("anna", "bob", "carl", "dora"))
HTML = (
    '<p>Hello {{ first_name | "there" }}, <a href="https://shop.example.com/vip">your offer</a></p>'
)


def newsletter_and_group(database: Database) -> None:
    """Weekly: Anna, Bob (unsubscribed), Carl. VIP (static): Anna, Bob, Dora (no subscriber)."""
    with database.write() as session:
        email.create_newsletter(
            session, "Weekly", "The Shop", "news@shop.example.com", "https://news.example.com"
        )
        for address, first in ((ANNA, "Anna"), (BOB, "Bob"), (CARL, "Carl")):
            email.add_subscriber(session, "Weekly", address, first_name=first)
        email.unsubscribe(session, email.get_subscriber(session, "Weekly", BOB))
        contacts.create_contact(session, email=DORA)
        groups.create_group(session, "VIP", kind="static")
        groups.add_members(session, "VIP", [ANNA, BOB, DORA])


@sqlite_only
def test_an_issue_composed_for_a_group_reaches_its_subscribed_members_only(
    signed_in: Tab, database: Database, smtp: SmtpServer
) -> None:
    newsletter_and_group(database)
    tab, page = signed_in, signed_in.page
    tab.accept_dialogs()

    tab.open("/admin/issues")
    page.get_by_role("link", name="New issue").click()
    page.get_by_label("Newsletter").select_option("Weekly")
    send_to = page.get_by_label("Send to")
    expect(send_to.locator("option")).to_have_text(["All subscribers", "VIP (3 contacts)"])
    send_to.select_option("VIP")
    page.get_by_label("Subject").fill('For you, {{ first_name | "friend" }}')
    page.get_by_label("HTML body").fill(HTML)
    page.get_by_role("button", name="Save draft").click()

    details = page.locator(".card").filter(has=page.get_by_role("heading", name="Details"))
    expect(details).to_contain_text("Members of VIP")
    delivery = page.locator(".card").filter(has=page.get_by_role("heading", name="Delivery"))
    expect(delivery).to_contain_text("It will go to the 1 subscribed addresses")
    expect(delivery).to_contain_text("1 other subscribers are left out")

    # A draft may change its audience: every subscriber, then VIP again.
    details.get_by_label("Send to").select_option("")
    details.get_by_role("button", name="Save").click()
    expect(page.get_by_role("button", name="Send to 2 subscribers")).to_be_visible()
    details = page.locator(".card").filter(has=page.get_by_role("heading", name="Details"))
    details.get_by_label("Send to").select_option("VIP")
    details.get_by_role("button", name="Save").click()

    page.get_by_role("button", name="Send to 1 member of VIP").click()
    expect(page.locator(".page-header .badge")).to_have_text("sent", timeout=30_000)

    assert smtp.recipients() == [ANNA]
    [message] = smtp.messages_to(ANNA)
    assert message["Subject"] == "For you, Anna"
    delivery = page.locator(".card").filter(has=page.get_by_role("heading", name="Delivery"))
    expect(delivery).to_contain_text("Not members")
    expect(delivery.locator("dd").filter(has_text="not in VIP")).to_contain_text("1")
    # Once sent, the group is fixed: the form to change it is gone.
    expect(page.get_by_label("Send to")).to_have_count(0)
