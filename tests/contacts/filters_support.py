"""A small audience to filter: the same world for the service, admin, API and CLI tests.

| contact | country | consent News | newsletter Weekly | group VIP | last activity |
| ------- | ------- | ------------ | ----------------- | --------- | ------------- |
| ada     | CZE     | agreed       | subscribed        | member    | 2 days ago    |
| bob     | USA     | revoked      | unsubscribed      | —         | 40 days ago   |
| cy      | —       | —            | —                 | member    | none          |
| dan     | CZE     | agreed       | —                 | —         | 10 days ago   |
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, select

from contacthub.consents import service as consents
from contacthub.email import repository as email_repository
from contacthub.email import service as email
from contacthub.groups import service as groups
from contacthub.storage.database import Database
from contacthub.storage.models import Activity, Contact
from contacthub.storage.types import utcnow
from tests import factories


@dataclass(frozen=True)
class Audience:
    ada: str
    bob: str
    cy: str
    dan: str
    now: datetime

    def names(self, guids: list[str]) -> list[str]:
        """The names of these contacts (GUIDs), in order."""
        by_guid = {self.ada: "ada", self.bob: "bob", self.cy: "cy", self.dan: "dan"}
        return [by_guid[guid] for guid in guids]


def audience(database: Database) -> Audience:
    """The contacts of the module docstring (created in that order: ada is the oldest)."""
    now = utcnow()
    ada = factories.contact_with(
        database, email="ada@example.com", first_name="Ada", last_name="Lovelace", country="CZE"
    )
    bob = factories.contact_with(database, email="bob@example.com", first_name="Bob", country="USA")
    cy = factories.contact(database)
    dan = factories.contact_with(
        database,
        email="dan@example.com",
        first_name="Dan",
        company_name="=HYPERLINK(1)",
        country="CZE",
    )
    factories.consent(database, "News")
    with database.write() as session:
        consents.record_agreement(session, ada, "News", agree=True)
        consents.record_agreement(session, bob, "News", agree=True)
        consents.record_agreement(session, bob, "News", agree=False)
        consents.record_agreement(session, dan, "News", agree=True)
        email.create_newsletter(
            session, "Weekly", "Shop", "news@example.com", "https://shop.example.com"
        )
        email.add_subscriber(session, "Weekly", "ada@example.com")
        email.add_subscriber(session, "Weekly", "bob@example.com")
        subscriber = email_repository.subscriber_by_email(
            session, email.get_newsletter(session, "Weekly").id, "bob@example.com"
        )
        assert subscriber is not None
        email.unsubscribe(session, subscriber)
        groups.create_group(session, "VIP", kind="static")
        groups.add_members(session, "VIP", [ada, cy])
    # Activities in time order, so that their ids follow time as ingest makes them.
    with database.write() as session:
        ids = {
            guid: session.scalar(select(Contact.id).where(Contact.guid == uuid.UUID(guid)))
            for guid in (ada, bob, dan)
        }
        session.execute(
            insert(Activity),
            [
                _activity(ids[bob], now - timedelta(days=40)),
                _activity(ids[dan], now - timedelta(days=10)),
                _activity(ids[ada], now - timedelta(days=3)),
                _activity(ids[ada], now - timedelta(days=2)),
            ],
        )
    return Audience(ada, bob, cy, dan, now)


def _activity(contact_id: int, at: datetime) -> dict[str, object]:
    return {
        "contact_id": contact_id,
        "channel_id": None,
        "type": "pagevisit",
        "title": "Home",
        "url": "https://shop.example.com/",
        "created_at": at,
    }
