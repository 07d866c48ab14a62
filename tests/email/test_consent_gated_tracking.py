"""Consent-gated tracking: who gets a personally tracked copy, through a real SMTP server,
on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select, update

from contacthub.consents import service as consents
from contacthub.email import compose, repository, sending, service, signing, stats
from contacthub.email.sender import SmtpMailer
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.models import Contact, Delivery, EmailClick, Newsletter, Subscriber
from tests.email.smtp_server import HOST, SmtpServer, smtp_server

NEWS = "Weekly"
BASE = "https://news.example.com"
HTML = """<html><body><p>Hi {{ first_name }}</p>
<p><a href="https://shop.example.com/offer">Our offer</a></p>
<p><a href="https://shop.example.com/me?who={{ email }}">Your profile</a></p>
</body></html>"""

AGREED = "agreed@example.com"
REVOKED = "revoked@example.com"  # agreed, then revoked
SILENT = "silent@example.com"  # never answered
BACK = "back@example.com"  # revoked, then agreed again
ELSEWHERE = "elsewhere@example.com"  # agreed to another consent only


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


def contact_guid(database: Database, email: str) -> str:
    with database.read() as session:
        contact_id = session.scalar(select(Subscriber.contact_id).where(Subscriber.email == email))
        return str(session.get_one(Contact, contact_id).guid)


def make_issue(database: Database, *, gated: bool) -> str:
    """A newsletter with the five subscribers and their answers, and a draft issue."""
    with database.write() as session:
        newsletter = service.create_newsletter(session, NEWS, "The Team", "team@example.com", BASE)
        for email in (AGREED, REVOKED, SILENT, BACK, ELSEWHERE):
            service.add_subscriber(session, NEWS, email, first_name=email.split("@")[0])
        for code in ("tracking", "other"):
            consents.create_consent(
                session, code, language="en", short_text=code, full_text=f"{code} in full"
            )
        if gated:
            tracking = consents.get_consent(session, "tracking")
            newsletter.tracking_consent_id = tracking.id
        guid = str(service.create_issue(session, NEWS, "News", HTML).guid)
    answers = [
        (AGREED, "tracking", True),
        (REVOKED, "tracking", True),
        (REVOKED, "tracking", False),
        (BACK, "tracking", False),
        (BACK, "tracking", True),
        (ELSEWHERE, "other", True),
    ]
    for email, code, agree in answers:
        guid_of_contact = contact_guid(database, email)
        with database.write() as session:
            consents.record_agreement(session, guid_of_contact, code, agree=agree)
    return guid


def send(database: Database, settings: Settings, issue: str, port: int) -> sending.SendReport:
    with SmtpMailer(HOST, port, timeout=10) as mailer:
        return sending.send_issue(database, issue, mailer, signer=signing.link_signer(settings))


def tracked_flags(database: Database, issue: str) -> dict[str, bool]:
    with database.read() as session:
        found = service.get_issue(session, issue)
        return {d.email: d.tracked for d in repository.deliveries_of(session, found.id)}


def html_of(smtp: SmtpServer, email: str) -> str:
    [message] = smtp.messages_to(email)
    part = message.get_body(("html",))
    assert part is not None
    content: str = part.get_content()
    return content


def click_params(html: str) -> list[set[str]]:
    """The parameter names of each click-handler link in the HTML."""
    hrefs = [chunk.split('"', 1)[0].replace("&amp;", "&") for chunk in html.split('href="')[1:]]
    return [set(parse_qs(urlsplit(href).query)) for href in hrefs if compose.CLICK_PATH in href]


def test_only_subscribers_who_agreed_last_get_a_personally_tracked_copy(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    issue = make_issue(database, gated=True)

    report = send(database, settings, issue, smtp.port)

    assert report.sent == 5
    assert tracked_flags(database, issue) == {
        AGREED: True,
        REVOKED: False,
        SILENT: False,
        BACK: True,
        ELSEWHERE: False,
    }
    for email in (AGREED, BACK):
        html = html_of(smtp, email)
        assert compose.OPEN_PATH in html
        # The offer, the profile and the honeypot: each signed for this reader.
        assert click_params(html) == [{"linkguid", "email", "hash"}] * 3
    for email in (REVOKED, SILENT, ELSEWHERE):
        html = html_of(smtp, email)
        assert compose.OPEN_PATH not in html
        assert "<img" not in html
        # The offer and the honeypot are counted per link; the profile link names the reader,
        # so it goes straight to its target, uncounted.
        assert click_params(html) == [{"linkguid"}] * 2
        assert f'href="https://shop.example.com/me?who={email}"' in html
        # The reader can still leave and view the copy in a browser.
        assert compose.UNSUBSCRIBE_PATH in html
        assert compose.BROWSER_VIEW_PATH in html


def test_without_a_tracking_consent_every_copy_is_tracked(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    issue = make_issue(database, gated=False)
    send(database, settings, issue, smtp.port)
    assert set(tracked_flags(database, issue).values()) == {True}
    assert compose.OPEN_PATH in html_of(smtp, SILENT)


def test_the_decision_is_taken_when_the_copy_is_sent(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    # A delivery created while the newsletter was not gated, sent after it was: the copy follows
    # the setting at sending time, and `tracked` records what was sent.
    issue = make_issue(database, gated=False)
    with database.write() as session:
        found = service.get_issue(session, issue)
        repository.create_missing_deliveries(session, found)
        created = session.scalars(select(Delivery.tracked).where(Delivery.issue_id == found.id))
        assert set(created) == {True}
        tracking = consents.get_consent(session, "tracking")
        session.execute(update(Newsletter).values(tracking_consent_id=tracking.id))
    send(database, settings, issue, smtp.port)
    assert tracked_flags(database, issue)[SILENT] is False
    assert compose.OPEN_PATH not in html_of(smtp, SILENT)


def test_aggregate_clicks_count_per_link_but_in_no_unique_figure(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    issue = make_issue(database, gated=True)
    send(database, settings, issue, smtp.port)
    with database.write() as session:
        found = service.get_issue(session, issue)
        offer = repository.links_of(session, found.id)[0]
        agreed = session.scalar(select(Subscriber.id).where(Subscriber.email == AGREED))
        for subscriber_id in (agreed, None, None):
            session.add(
                EmailClick(link_id=offer.id, issue_id=found.id, subscriber_id=subscriber_id)
            )
    with database.read() as session:
        figures = stats.issue_stats(session, issue)
    assert (figures.clicks.human.total, figures.clicks.human.unique) == (3, 1)
    assert (figures.links[0].clicks.human.total, figures.links[0].clicks.human.unique) == (3, 1)
    assert (figures.opens.human.unique, figures.click_through_rate) == (1, 1 / 5)
    assert (figures.aggregate_clicks, figures.untracked_copies) == (2, 3)
    assert figures.as_dict()["aggregate_clicks"] == 2
