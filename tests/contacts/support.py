"""A contact with something of everything, made the way the hub gets it: through the tracking
API (activities, data input, consents) and the email handlers (opens, clicks)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from starlette.testclient import TestClient

from contacthub.email.compose import CLICK_PATH, OPEN_PATH
from contacthub.email.hashing import LinkSigner, Purpose
from contacthub.storage.database import Database
from contacthub.storage.models import (
    Activity,
    ConsentAgreement,
    Contact,
    Delivery,
    EmailClick,
    EmailOpen,
    Subscriber,
)
from tests import factories
from tests.email.tracking_support import ANNA, SALE, SentIssue, params, sent_issue, url
from tests.factories import TrackingSetup
from tests.tracking.support import API, post_activities, results_of

SIGNER = LinkSigner(["test-secret"])  # the hub's secret in the tests' settings
BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36"
)
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
CONSENT = "TrackingConsent"
PRICING = "https://www.example.com/pricing"


@dataclass(frozen=True)
class Scenario:
    """Anna (the contact under test) and Bob (a bystander whose data must stay)."""

    setup: TrackingSetup
    anna: str
    bob: str
    sent: SentIssue

    @property
    def anna_id(self) -> int:
        return self.sent.contact_ids[ANNA]


def new_contact(client: TestClient, setup: TrackingSetup) -> str:
    answer = client.post(f"{API}/contacts", headers=setup.headers)
    assert answer.status_code == 200, answer.text
    guid: str = answer.json()["contact"]
    return guid


def track(client: TestClient, setup: TrackingSetup, guid: str, *activities: Any) -> None:
    results = results_of(post_activities(client, setup, guid, activities))
    assert all(r["status"] == 202 for r in results), results


def consent_answer(client: TestClient, setup: TrackingSetup, guid: str, agree: bool) -> None:
    answer = client.post(
        f"{API}/contacts/{guid}/consents/{CONSENT}", headers=setup.headers, json={"agree": agree}
    )
    assert answer.status_code == 200, answer.text


def open_email(client: TestClient, sent: SentIssue, user_agent: str) -> None:
    query = params(SIGNER, Purpose.OPEN, sent.guid, ANNA)
    answer = client.get(url(OPEN_PATH, query), headers={"User-Agent": user_agent})
    assert answer.status_code == 200


def click_email(client: TestClient, sent: SentIssue) -> str:
    query = params(SIGNER, Purpose.CLICK, sent.links[SALE], ANNA)
    answer = client.get(
        url(CLICK_PATH, query), headers={"User-Agent": BROWSER}, follow_redirects=False
    )
    assert answer.status_code == 303
    location: str = answer.headers["location"]
    return location


def scenario(client: TestClient, database: Database, hostile: str = "") -> Scenario:
    """Anna: activities on a channel, data input, a consent agreed (revision 1), revoked and
    agreed again (revision 2), a newsletter issue delivered, opened by her and by a proxy, a
    link clicked. Bob: a page visit to the same page. `hostile` goes into Anna's activities."""
    setup = factories.tracking_channel(database)
    factories.consent(database, CONSENT)
    anna = new_contact(client, setup)
    track(
        client,
        setup,
        anna,
        {"type": "pagevisit", "value": "Pricing", "url": PRICING, "referrer": "https://q.example/"},
        {"type": "click", "value": "Buy now" + hostile},
        {
            "type": "datainput",
            "value": "Sign-up form",
            "contactFields": {
                "ContactEmail": ANNA,
                "ContactFirstName": "Anna",
                "ContactLastName": "Smith",
                "ContactCity": "Brno",
                "ContactBirthday": "1990-05-31",
            },
        },
    )
    if hostile:
        track(
            client,
            setup,
            anna,
            {"type": "pagevisit", "value": hostile, "url": "https://x.example/" + hostile},
        )
    consent_answer(client, setup, anna, True)
    factories.consent_text(database, CONSENT, "en", "<p>Short 2</p>", "<p>Full 2</p>")
    consent_answer(client, setup, anna, False)
    consent_answer(client, setup, anna, True)
    sent = sent_issue(database)
    open_email(client, sent, BROWSER)
    open_email(client, sent, GMAIL_PROXY)
    click_email(client, sent)
    bob = new_contact(client, setup)
    track(client, setup, bob, {"type": "pagevisit", "value": "Pricing", "url": PRICING})
    result = Scenario(setup, anna, bob, sent)
    assert contact_id(database, anna) == result.anna_id
    return result


def contact_id(database: Database, guid: str) -> int | None:
    with database.read() as session:
        return session.scalar(select(Contact.id).where(Contact.guid == uuid.UUID(guid)))


@dataclass(frozen=True)
class Stored:
    """How many rows of each kind the store holds about one contact."""

    contact: int
    activities: int
    agreements: int
    subscribers: int
    deliveries: int
    opens: int
    clicks: int


def stored_about(database: Database, contact: int, subscriber: int) -> Stored:
    """Rows about a contact and its subscriber (ids taken before any erasure)."""
    with database.read() as session:

        def count(statement: Any) -> int:
            return int(session.scalar(statement) or 0)

        return Stored(
            count(select(func.count()).where(Contact.id == contact)),
            count(select(func.count()).where(Activity.contact_id == contact)),
            count(select(func.count()).where(ConsentAgreement.contact_id == contact)),
            count(select(func.count()).where(Subscriber.id == subscriber)),
            count(select(func.count()).where(Delivery.subscriber_id == subscriber)),
            count(select(func.count()).where(EmailOpen.subscriber_id == subscriber)),
            count(select(func.count()).where(EmailClick.subscriber_id == subscriber)),
        )
