"""From the mailbox to the statistics: an issue sent through a real SMTP server (aiosmtpd on
loopback), its links followed as a reader's mail client and browser would, against a real hub.

The emails point at the newsletter's public site; in the gateway set-up that site routes the
handlers' paths to the hub, which the test does by swapping the scheme and host.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from html import unescape
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest
from sqlalchemy import update

from contacthub.email import sending, service, stats
from contacthub.email.hashing import LinkSigner
from contacthub.email.pages import PIXEL_GIF
from contacthub.email.sender import SmtpMailer
from contacthub.storage.database import Database
from contacthub.storage.models import Delivery
from contacthub.storage.types import utcnow
from tests.email.smtp_server import HOST, SmtpServer, smtp_server
from tests.email.tracking_support import logged, subscriber_status
from tests.servers import TEST_SECRET, running_hub

pytestmark = pytest.mark.slow

NEWS = "Weekly"
SITE = "https://news.example.com"
HTML = """<html><body>
<h1>Hello {{ first_name | "there" }}!</h1>
<p><a href="https://shop.example.com/offer?for={{ first_name }}">Our offer</a></p>
<p><a href="https://news.example.com/archive">Archive</a></p>
<p>Not for you? <a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
</body></html>"""
READER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Version/17.4 Safari"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    text: str = part.get_content()
    return text


def links_in(html: str) -> list[str]:
    return [unescape(found) for found in re.findall(r'(?:href|src)="([^"]+)"', html)]


def on_hub(public_url: str, hub_url: str) -> str:
    """The public URL of a handler, routed to the hub (what the site's gateway does)."""
    parts = urlsplit(public_url)
    assert f"{parts.scheme}://{parts.netloc}" == SITE
    return f"{hub_url}{parts.path}?{parts.query}"


def test_an_issue_from_the_mailbox_to_the_statistics(
    database: Database, database_url: str, smtp: SmtpServer, tmp_path: Path
) -> None:
    with database.write() as session:
        service.create_newsletter(session, NEWS, "The Team", "team@example.com", SITE)
        service.add_subscriber(session, NEWS, "anna@example.com", "Anna")
        service.add_subscriber(session, NEWS, "bob+news@example.com")
        guid = str(service.create_issue(session, NEWS, "Spring news", HTML).guid)
    signer = LinkSigner([TEST_SECRET])
    with SmtpMailer(HOST, smtp.port, timeout=10) as mailer:
        report = sending.send_issue(database, guid, mailer, signer=signer)
    assert report.sent == 2
    # An hour passes before anyone reads it (a click seconds after delivery is a scanner's).
    with database.write() as session:
        session.execute(update(Delivery).values(sent_at=utcnow() - timedelta(hours=1)))

    (anna_mail,) = smtp.messages_to("anna@example.com")
    (bob_mail,) = smtp.messages_to("bob+news@example.com")
    anna_html = html_of(anna_mail)
    anna_links = links_in(anna_html)
    pixel = next(link for link in anna_links if "/Track.ashx?" in link)
    clicks = [link for link in anna_links if "/Redirect.ashx?" in link]
    view = next(link for link in anna_links if "/GetEmailBrowserContent.ashx?" in link)
    assert len(clicks) == 3  # the offer, the archive, and the hidden honeypot

    with (
        running_hub(database_url, tmp_path / "hub.log") as hub,
        httpx2.Client(headers={"User-Agent": READER}, timeout=10) as browser,
    ):
        # Anna's mail client loads the pixel, twice (she reads it again later).
        for _ in range(2):
            answer = browser.get(on_hub(pixel, hub.base_url))
            assert answer.status_code == 200
            assert answer.content == PIXEL_GIF
        # She clicks the offer: her browser lands on the shop with her name resolved.
        offer = browser.get(on_hub(clicks[0], hub.base_url))
        assert offer.status_code == 303
        assert offer.headers["location"] == "https://shop.example.com/offer?for=Anna"
        # Her mail gateway scanned every link, the invisible one too.
        scanner = {"User-Agent": "Mozilla/5.0 (compatible; Proofpoint URL Defense)"}
        browser.get(on_hub(clicks[2], hub.base_url), headers=scanner)
        # She opens the email in her browser: exactly the copy she received.
        page = browser.get(on_hub(view, hub.base_url))
        assert page.status_code == 200
        # (MIME ends a text part with a line break the page does not need.)
        assert page.text == anna_html.replace("\r\n", "\n").removesuffix("\n")

        # Bob's images are blocked; he clicks the archive, then unsubscribes with the button
        # his mailbox shows, which POSTs to the List-Unsubscribe URL (RFC 8058).
        bob_links = links_in(html_of(bob_mail))
        archive = [link for link in bob_links if "/Redirect.ashx?" in link][1]
        assert browser.get(on_hub(archive, hub.base_url)).headers["location"] == (
            "https://news.example.com/archive"
        )
        assert bob_mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        one_click = re.search(r"<(https://[^>]+)>", bob_mail["List-Unsubscribe"])
        assert one_click is not None
        target = on_hub(one_click.group(1), hub.base_url)
        assert "Unsubscribe?" in browser.get(target).text  # a GET changes nothing
        assert subscriber_status(database, "bob+news@example.com")[0] == "subscribed"
        done = browser.post(
            target,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert done.status_code == 200
    assert subscriber_status(database, "bob+news@example.com")[0] == "unsubscribed"

    with database.read() as session:
        figures = stats.issue_stats(session, guid).as_dict()
    assert figures["sent"] == 2
    assert figures["failed"] == 0
    assert figures["opens"]["human"] == {"total": 3, "unique": 2}  # Anna x2, Bob's click
    assert figures["opens"]["machine"] == {"total": 1, "unique": 1}  # the scanner
    assert figures["clicks"]["human"] == {"total": 2, "unique": 2}
    assert figures["clicks"]["machine"] == {"total": 1, "unique": 1}
    assert figures["unsubscribes"] == 1
    assert figures["click_through_rate"] == 1.0
    per_link = [link["clicks"]["human"]["total"] for link in figures["links"]]
    assert per_link == [1, 1, 0]
    types = [activity[1] for activity in logged(database).activities]
    assert sorted(types) == ["emailclick", "emailclick", "emailopen"]
