"""Helpers for the email tests of the admin pages and the management API.

They send issues through the hub's background sender to a real SMTP server on loopback
(`smtp_server`), then open and click the received messages' own tracking links through the hub,
as a reader's mail client and browser (or a privacy proxy, or a link scanner) would.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from email.message import EmailMessage
from html.parser import HTMLParser
from urllib.parse import urlsplit

from sqlalchemy import update
from starlette.testclient import TestClient

from contacthub.email import background, repository, service
from contacthub.email.background import SendRun
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.models import Delivery
from contacthub.storage.types import utcnow
from tests.email.smtp_server import HOST

READER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Version/17.4 Safari"
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
BASE_URL = "https://news.example.com"
HTML = (
    '<html><body><h1>Hello {{ first_name | "there" }}</h1>'
    '<p><a href="https://shop.example.com/spring">Spring sale</a></p>'
    "</body></html>"
)


def smtp_settings(database_url: str, port: int) -> Settings:
    """Test settings whose SMTP server is the loopback one on `port`."""
    return Settings(
        database_url=database_url,
        secret_key="test-secret",
        smtp_host=HOST,
        smtp_port=port,
        smtp_timeout=10,
    )


def run_of(client: TestClient, guid: str) -> SendRun | None:
    """The hub's last background send run of the issue."""
    registry = getattr(client.app.state, background.STATE_ATTRIBUTE, None)  # type: ignore[attr-defined]
    return registry.get(uuid.UUID(guid)) if registry is not None else None


def wait_for_run(client: TestClient, guid: str, timeout: float = 30.0) -> SendRun:
    """Wait until the background run of the issue has finished; the run."""
    run = run_of(client, guid)
    assert run is not None, "no send run was started"
    assert run.thread is not None
    run.thread.join(timeout)
    assert not run.running, f"sending {guid} did not finish within {timeout} s"
    return run


def delivery_states(database: Database, guid: str) -> dict[str, str]:
    """address -> delivery status."""
    with database.read() as session:
        issue = service.get_issue(session, guid)
        return {d.email: d.status for d in repository.deliveries_of(session, issue.id)}


def backdate_deliveries(database: Database, guid: str) -> None:
    """Pretend the issue went out an hour ago: a click seconds after delivery is a scanner's."""
    with database.write() as session:
        issue = service.get_issue(session, guid)
        session.execute(
            update(Delivery)
            .where(Delivery.issue_id == issue.id)
            .values(sent_at=utcnow() - timedelta(hours=1))
        )


class Links(HTMLParser):
    """The tracked links (visible and hidden) and the open pixel of a message's HTML part."""

    def __init__(self, message: EmailMessage) -> None:
        super().__init__()
        self.visible: list[str] = []
        self.hidden: list[str] = []
        self.pixel = ""
        part = message.get_body(("html",))
        assert part is not None
        self.feed(part.get_content())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        href, src = values.get("href") or "", values.get("src") or ""
        if tag == "a" and "Redirect.ashx" in href:
            (self.hidden if values.get("aria-hidden") == "true" else self.visible).append(href)
        elif tag == "img" and "Track.ashx" in src:
            self.pixel = src


def local(url: str) -> str:
    """A link of an email (on the newsletter's public base URL) as a path on the hub."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def hit(client: TestClient, url: str, user_agent: str) -> int:
    """Follow a tracking link of an email with this user agent; the status answered."""
    response = client.get(local(url), headers={"User-Agent": user_agent}, follow_redirects=False)
    return response.status_code
