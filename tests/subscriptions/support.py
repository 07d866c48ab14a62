"""Shared set-up for the double opt-in and preference page tests."""

from __future__ import annotations

import re
from email.message import EmailMessage
from urllib.parse import urlsplit

from contacthub.consents import service as consents
from contacthub.email import service
from contacthub.storage.database import Database

NEWS = "Weekly"
BASE = "http://testserver"
CONSENT = "newsletter-consent"
SHORT_TEXT = "I agree to receive the Weekly newsletter."
GERMAN_TEXT = "Ich möchte den Weekly-Newsletter erhalten."
HUMAN_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/124.0 Safari/537.36"
)


def make_newsletter(database: Database, *, double_opt_in: bool = True, base: str = BASE) -> str:
    """A newsletter (with a consent in English and German); answers its GUID."""
    with database.write() as session:
        consents.create_consent(
            session, CONSENT, language="en", short_text=SHORT_TEXT, full_text="<p>Full.</p>"
        )
        consents.set_text(
            session, CONSENT, language="de", short_text=GERMAN_TEXT, full_text="<p>Voll.</p>"
        )
        newsletter = service.create_newsletter(
            session,
            NEWS,
            "The Team",
            "team@example.com",
            base,
            double_opt_in=double_opt_in,
            consent=CONSENT if double_opt_in else None,
        )
        return str(newsletter.guid)


def confirm_link(message: EmailMessage) -> str:
    """The confirmation link of a confirmation email, as a path with its query."""
    body = message.get_body(("plain",))
    assert body is not None
    found = re.search(r"https?://[^/\s]+(/subscribe/confirm\S+)", body.get_content())
    assert found is not None, body.get_content()
    return found.group(1)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"
