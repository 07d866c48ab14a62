"""The preference page: every email's signed link to change subscriptions or leave everything."""

from __future__ import annotations

import json

from sqlalchemy import select
from starlette.testclient import TestClient

from contacthub.email import service
from contacthub.email.compose import tracking_url
from contacthub.email.hashing import Purpose
from contacthub.email.signing import link_signer
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.models import ConsentAgreement, Subscriber
from tests.subscriptions.support import BASE, NEWS, make_newsletter, path_of

ANN = "ann@example.com"
OTHER = "Monthly"


def setup(database: Database) -> tuple[str, str]:
    """Ann subscribed to Weekly (double opt-in) and Monthly; answers Weekly's issue and
    Monthly's GUID."""
    make_newsletter(database)
    with database.write() as session:
        monthly = service.create_newsletter(session, OTHER, "T", "t@example.com", BASE)
        service.add_subscriber(session, NEWS, ANN, confirmed=True)
        service.add_subscriber(session, OTHER, ANN)
        service.add_subscriber(session, OTHER, "bob@example.com")
        issue = service.create_issue(session, NEWS, "Hi", "<p>Hi</p>")
        return str(issue.guid), str(monthly.guid)


def statuses(database: Database, email: str) -> dict[int, str]:
    with database.read() as session:
        query = select(Subscriber.newsletter_id, Subscriber.status).where(Subscriber.email == email)
        return {row.newsletter_id: row.status for row in session.execute(query)}


def link(settings: Settings, issue: str, email: str = ANN) -> str:
    return path_of(tracking_url(BASE, Purpose.PREFERENCES, issue, email, link_signer(settings)))


def test_the_page_lists_subscriptions_and_a_get_changes_nothing(
    client: TestClient, database: Database, settings: Settings
) -> None:
    issue, _ = setup(database)
    before = statuses(database, ANN)
    page = client.get(link(settings, issue))
    assert page.status_code == 200
    assert NEWS in page.text
    assert OTHER in page.text
    assert page.text.count("checked") == 2
    assert page.headers["referrer-policy"] == "no-referrer"
    assert statuses(database, ANN) == before


def test_choices_are_saved_and_a_newsletter_left_can_be_joined_again(
    client: TestClient, database: Database, settings: Settings
) -> None:
    issue, monthly = setup(database)
    url = link(settings, issue)
    saved = client.post(url, data={"newsletter": monthly, "action": "save"})
    assert saved.status_code == 200
    assert "Saved." in saved.text
    assert sorted(statuses(database, ANN).values()) == ["subscribed", "unsubscribed"]
    with database.read() as session:
        weekly = session.scalar(
            select(Subscriber).where(Subscriber.email == ANN, Subscriber.status == "unsubscribed")
        )
        assert weekly is not None
        # Counted against the issue whose link was used (it is Weekly's).
        assert weekly.unsubscribed_issue_id is not None
        weekly_guid = str(service.get_newsletter(session, NEWS).guid)
    again = client.post(url, data={"newsletter": [monthly, weekly_guid]})
    assert again.status_code == 200
    assert set(statuses(database, ANN).values()) == {"subscribed"}
    with database.read() as session:
        agreement = session.scalars(select(ConsentAgreement)).one()  # Weekly is double opt-in
        assert json.loads(agreement.evidence or "{}")["method"] == "preference_page"


def test_leave_everything_unsubscribes_from_every_newsletter_and_no_one_else(
    client: TestClient, database: Database, settings: Settings
) -> None:
    issue, monthly = setup(database)
    left = client.post(link(settings, issue), data={"newsletter": monthly, "action": "leave"})
    assert left.status_code == 200
    assert set(statuses(database, ANN).values()) == {"unsubscribed"}
    assert set(statuses(database, "bob@example.com").values()) == {"subscribed"}


def test_a_bad_or_foreign_link_is_refused(
    client: TestClient, database: Database, settings: Settings
) -> None:
    issue, _ = setup(database)
    url = link(settings, issue)
    assert client.get(url[:-1] + ("0" if url[-1] != "0" else "1")).status_code == 403
    bob = link(settings, issue, "bob@example.com").replace("bob%40example.com", "ann@example.com")
    bob = bob.replace("bob@example.com", ANN)
    assert client.post(bob, data={"action": "leave"}).status_code == 403
    unsubscribe = url.replace("/contacthub/preferences", "/contacthub/unsubscribe")
    assert client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}).status_code == 403
    assert set(statuses(database, ANN).values()) == {"subscribed"}
