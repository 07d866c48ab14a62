"""The condition compiler: every operator answers the right contacts, on SQLite and PostgreSQL.

The data goes through the hub's services (contacts, consents, the email tracking batch); the
activities through the ingest path's bulk insert, which lets a test choose their times. Each
answer is checked four ways: the count, the ids, the ids among a subset of contacts (the live
job's way), and compiled without a session (time windows by `created_at` alone).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from contacthub.activities.repository import ActivityRow, insert_activities
from contacthub.consents import service as consents
from contacthub.contacts import service as contacts
from contacthub.email import service as email
from contacthub.email import tracking
from contacthub.email.hashing import LinkSigner, Purpose
from contacthub.email.machine import HitKind
from contacthub.groups.compiler import count_matching, matching_ids_query
from contacthub.groups.conditions import parse_conditions
from contacthub.storage.database import Database
from contacthub.storage.models import Channel, Contact, GroupMember
from contacthub.storage.types import utcnow
from tests import factories
from tests.email.tracking_support import ANNA, BOB, CAROL, SALE, sent_issue
from tests.groups.support import add_group

NOW = utcnow()
CONSENT = "NewsletterConsent"
OTHER_CONSENT = "TrackingConsent"


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


@dataclass
class World:
    """Contacts by name (and back), and the database they live in."""

    db: Database
    ids: dict[str, int]

    @property
    def names(self) -> dict[int, str]:
        return {contact_id: name for name, contact_id in self.ids.items()}

    def matching(self, raw: object, *, now: datetime = NOW) -> set[str]:
        """The names of the contacts matching `raw`, checked to agree four ways."""
        with self.db.read() as session:
            condition = parse_conditions(session, raw)
            ids = set(session.scalars(matching_ids_query(condition, now=now, session=session)))
            assert count_matching(session, condition, now=now) == len(ids), raw
            plain = set(session.scalars(matching_ids_query(condition, now=now)))
            assert plain == ids, raw
            every = sorted(self.ids.values())
            subset = set(every[::2])
            among = select(Contact.id).where(Contact.id.in_(subset))
            found = set(
                session.scalars(
                    matching_ids_query(condition, now=now, among=among, session=session)
                )
            )
            assert found == ids & subset, raw
        return {self.names[contact_id] for contact_id in ids}


def contact_ids(db: Database, **people: dict[str, Any]) -> dict[str, int]:
    with db.write() as session:
        return {
            name: contacts.create_contact(session, **fields).id for name, fields in people.items()
        }


@pytest.fixture
def world(database: Database) -> World:
    ids = contact_ids(
        database,
        ada={
            "email": "ada@example.com",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "company_name": "50%_Off Ltd",
            "city": "Prague",
            "country": "CZE",
            "birthday": datetime(1990, 5, 1).date(),
            "created_at": days_ago(400),
        },
        bob={
            "email": "bob@example.org",
            "first_name": "Bob",
            "city": "prague",
            "country": "USA",
            "state": "CA",
            "birthday": days_ago(3).date(),
            "created_at": days_ago(10),
        },
        cyd={"city": "", "notes": "VIP", "created_at": days_ago(1)},
        dee={"city": "Brno", "company_name": "50 Off Ltd", "created_at": days_ago(100)},
    )
    return World(database, ids)


ALL = {"ada", "bob", "cyd", "dee"}


def test_text_fields(world: World) -> None:
    m = world.matching
    assert m({"field": "email", "op": "equals", "value": "ADA@example.COM"}) == {"ada"}
    assert m({"field": "email", "op": "ends_with", "value": ".ORG"}) == {"bob"}
    assert m({"field": "first_name", "op": "contains", "value": "D"}) == {"ada"}
    assert m({"field": "last_name", "op": "starts_with", "value": "love"}) == {"ada"}
    assert m({"field": "city", "op": "equals", "value": "PRAGUE"}) == {"ada", "bob"}
    assert m({"field": "city", "op": "in", "value": ["PRAGUE", "brno"]}) == {"ada", "bob", "dee"}
    assert m({"field": "city", "op": "is_empty"}) == {"cyd"}
    assert m({"field": "notes", "op": "is_empty"}) == {"ada", "bob", "dee"}
    # LIKE's wildcards in a value are plain characters.
    assert m({"field": "company_name", "op": "contains", "value": "50%_"}) == {"ada"}
    assert m({"field": "company_name", "op": "starts_with", "value": "50_"}) == set()
    assert m({"field": "company_name", "op": "ends_with", "value": "Ltd"}) == {"ada", "dee"}
    # A contact without the field is "not" anything (never NULL, never lost).
    assert m({"not": {"field": "city", "op": "equals", "value": "Prague"}}) == {"cyd", "dee"}
    assert m({"not": {"field": "last_name", "op": "contains", "value": "x"}}) == ALL
    assert m({"not": {"field": "first_name", "op": "in", "value": ["ada"]}}) == {
        "bob",
        "cyd",
        "dee",
    }


def test_code_and_date_fields(world: World) -> None:
    m = world.matching
    assert m({"field": "country", "op": "equals", "value": "cze"}) == {"ada"}
    assert m({"field": "country", "op": "in", "value": ["CZE", "USA"]}) == {"ada", "bob"}
    assert m({"field": "country", "op": "is_empty"}) == {"cyd", "dee"}
    assert m({"not": {"field": "state", "op": "equals", "value": "CA"}}) == {"ada", "cyd", "dee"}
    assert m({"field": "state", "op": "in", "value": ["NY", "CA"]}) == {"bob"}
    assert m({"field": "birthday", "op": "before", "value": "1990-05-02"}) == {"ada"}
    assert m({"field": "birthday", "op": "before", "value": "1990-05-01"}) == set()
    assert m({"field": "birthday", "op": "after", "value": "1990-05-01"}) == {"bob"}
    assert m({"field": "birthday", "op": "within_days", "value": 5}) == {"bob"}
    assert m({"field": "birthday", "op": "within_days", "value": 2}) == set()
    assert m({"field": "birthday", "op": "is_empty"}) == {"cyd", "dee"}
    assert m({"field": "created_at", "op": "within_days", "value": 30}) == {"bob", "cyd"}
    assert m(
        {"field": "created_at", "op": "within_days", "value": 30}, now=NOW + timedelta(days=25)
    ) == {"cyd"}
    created = days_ago(10).date()
    assert m({"field": "created_at", "op": "before", "value": created.isoformat()}) == {
        "ada",
        "dee",
    }
    assert m(
        {"field": "created_at", "op": "before", "value": (created + timedelta(days=1)).isoformat()}
    ) == {"ada", "bob", "dee"}
    assert m({"field": "created_at", "op": "after", "value": created.isoformat()}) == {"cyd"}
    assert m({"field": "updated_at", "op": "is_empty"}) == set()


def test_trees(world: World) -> None:
    m = world.matching
    prague = {"field": "city", "op": "equals", "value": "prague"}
    usa = {"field": "country", "op": "equals", "value": "USA"}
    assert m({"all": []}) == ALL
    assert m({"any": []}) == set()
    assert m({"not": {"any": []}}) == ALL
    assert m({"all": [prague, usa]}) == {"bob"}
    assert m({"any": [usa, {"field": "city", "op": "equals", "value": "brno"}]}) == {"bob", "dee"}
    assert m({"all": [prague, {"not": usa}]}) == {"ada"}
    assert m({"not": {"all": [prague, {"not": usa}]}}) == {"bob", "cyd", "dee"}


def agree(db: Database, contact_id: int, code_name: str, *, agree: bool = True) -> None:
    with db.write() as session:
        guid = str(session.get_one(Contact, contact_id).guid)
        consents.record_agreement(session, guid, code_name, agree=agree)


def test_consents(world: World) -> None:
    db, ids = world.db, world.ids
    factories.consent(db, CONSENT)
    factories.consent(db, OTHER_CONSENT)
    agree(db, ids["ada"], CONSENT)
    agree(db, ids["bob"], CONSENT)
    agree(db, ids["bob"], CONSENT, agree=False)
    agree(db, ids["cyd"], CONSENT)
    agree(db, ids["cyd"], CONSENT, agree=False)
    factories.consent_text(db, CONSENT, "en", "<p>Short 2</p>", "<p>Full 2</p>")
    agree(db, ids["cyd"], CONSENT)
    agree(db, ids["dee"], OTHER_CONSENT)
    m = world.matching
    assert m({"consent": CONSENT, "state": "agreed"}) == {"ada", "cyd"}
    assert m({"consent": CONSENT, "state": "agreed", "revision": 1}) == {"ada"}
    assert m({"consent": CONSENT, "state": "agreed", "revision": 2}) == {"cyd"}
    assert m({"consent": CONSENT, "state": "revoked"}) == {"bob"}
    assert m({"consent": CONSENT, "state": "never"}) == {"dee"}
    assert m({"consent": OTHER_CONSENT, "state": "agreed"}) == {"dee"}
    assert m({"not": {"consent": CONSENT, "state": "agreed"}}) == {"bob", "dee"}
    agree(db, ids["ada"], CONSENT, agree=False)
    assert m({"consent": CONSENT, "state": "revoked"}) == {"ada", "bob"}


def test_activities(world: World) -> None:
    db, ids = world.db, world.ids
    factories.tracking_channel(db, "Website")
    factories.tracking_channel(db, "Mobile app")
    factories.activity_type(db, "Webinar", "Webinar attended", enabled=False)
    with db.write() as session:
        channel = {c.name: c.id for c in session.scalars(select(Channel))}
        web, app = channel["Website"], channel["Mobile app"]
        rows = [
            (ids["bob"], web, "Webinar", "Intro", None, datetime(2024, 2, 10, 23, 59, tzinfo=UTC)),
            (ids["bob"], web, "pagevisit", None, "https://x.com/pricing", days_ago(45)),
            (ids["ada"], web, "click", "Buy", None, days_ago(40)),
            (ids["ada"], web, "pagevisit", None, "https://x.com/Pricing", days_ago(5)),
            (ids["cyd"], app, "pagevisit", None, "https://x.com/pricing_plans", days_ago(3)),
            (ids["cyd"], app, "pagevisit", None, "https://x.com/blog", days_ago(3)),
            (ids["ada"], web, "pagevisit", None, "https://x.com/Pricing", days_ago(2)),
            (ids["bob"], web, "pagevisit", None, "https://x.com/pricing", days_ago(1)),
        ]
        insert_activities(
            session,
            [ActivityRow(c, ch, t, t, v, u, None, when) for c, ch, t, v, u, when in rows],
        )
    m = world.matching
    assert m({"activity": "pagevisit"}) == {"ada", "bob", "cyd"}
    assert m({"activity": "pagevisit", "url_contains": "/PRICING"}) == {"ada", "bob", "cyd"}
    assert m({"activity": "pagevisit", "url_contains": "g_p"}) == {"cyd"}
    assert m({"activity": "pagevisit", "url_contains": "%"}) == set()
    assert m({"activity": "pagevisit", "at_least": 2}) == {"ada", "bob", "cyd"}
    assert m({"activity": "pagevisit", "at_least": 2, "url_contains": "pricing"}) == {"ada", "bob"}
    assert m({"activity": "pagevisit", "at_least": 2, "within_days": 30}) == {"ada", "cyd"}
    assert m({"activity": "pagevisit", "at_least": 2, "within_days": 4}) == {"cyd"}
    assert m({"activity": "pagevisit", "within_days": 30, "channel": "Website"}) == {"ada", "bob"}
    assert m({"activity": "pagevisit", "within_days": 30}, now=NOW + timedelta(days=28.5)) == {
        "bob"
    }
    assert m({"activity": "pagevisit", "within_days": 1}, now=NOW + timedelta(days=3)) == set()
    assert m({"activity": "pagevisit", "at_least": 3}) == set()
    assert m({"activity": "click", "value_equals": "buy"}) == {"ada"}
    assert m({"activity": "click", "value_equals": "Bu"}) == set()
    assert m({"activity": "click", "channel": "Mobile app"}) == set()
    assert m({"activity": "webinar", "between": ["2024-02-01", "2024-02-10"]}) == {"bob"}
    assert m({"activity": "Webinar", "between": ["2024-02-10", "2024-02-10"]}) == {"bob"}
    assert m({"activity": "webinar", "between": ["2024-02-11", "2030-01-01"]}) == set()
    assert m({"activity": "webinar", "between": ["2020-01-01", "2024-02-09"]}) == set()
    assert m(
        {
            "activity": "pagevisit",
            "between": [days_ago(3).date().isoformat(), NOW.date().isoformat()],
        }
    ) == {"ada", "bob", "cyd"}
    assert m({"not": {"activity": "pagevisit", "within_days": 4}}) == {"bob", "dee"} - {"bob"} | {
        "dee"
    }


SIGNER = LinkSigner(["test-secret"])
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile"


def hit(kind: HitKind, guid: str, address: str, user_agent: str = BROWSER) -> tracking.HitJob:
    purpose = Purpose.OPEN if kind is HitKind.OPEN else Purpose.CLICK
    visitor = tracking.Visitor(user_agent, "198.51.100.7", "GET", utcnow())
    return tracking.hit_job(kind, guid, address, SIGNER.sign(purpose, guid, address), visitor, None)


@pytest.fixture
def mailed(database: Database) -> Iterator[World]:
    """ANNA opened and clicked the sent issue, BOB's mail was opened by Gmail's image proxy and
    he unsubscribed through the issue; CAROL did nothing."""
    sent = sent_issue(database)
    with database.write() as session:
        outcomes = tracking.process_hits(
            session,
            SIGNER,
            [
                hit(HitKind.OPEN, sent.guid, ANNA),
                hit(HitKind.CLICK, sent.links[SALE], ANNA),
                hit(HitKind.OPEN, sent.guid, BOB, GMAIL_PROXY),
            ],
        )
        assert all(outcome.logged for outcome in outcomes)
        issue = email.get_issue(session, sent.guid)
        email.unsubscribe(session, email.get_subscriber(session, "Weekly", BOB), issue)
        email.create_newsletter(session, "Other", "Us", "us@example.com", "https://example.org")
        email.add_subscriber(session, "Other", BOB)
    names = {ANNA: "anna", BOB: "bob", CAROL: "carol"}
    ids = {names[address]: contact_id for address, contact_id in sent.contact_ids.items()}
    world = World(database, ids)
    world.issue_guid = sent.guid  # type: ignore[attr-defined]
    return world


def test_email_engagement(mailed: World) -> None:
    m = mailed.matching
    issue = mailed.issue_guid  # type: ignore[attr-defined]
    assert m({"email": "subscribed", "newsletter": "Weekly"}) == {"anna", "carol"}
    assert m({"email": "subscribed", "newsletter": "Other"}) == {"bob"}
    assert m({"email": "unsubscribed", "newsletter": "Weekly"}) == {"bob"}
    assert m({"email": "unsubscribed", "newsletter": "Weekly", "issue": issue}) == {"bob"}
    assert m({"email": "unsubscribed", "newsletter": "Weekly", "within_days": 1}) == {"bob"}
    later = NOW + timedelta(days=3)
    assert (
        m({"email": "unsubscribed", "newsletter": "Weekly", "within_days": 1}, now=later) == set()
    )
    assert m({"email": "unsubscribed", "newsletter": "Other"}) == set()
    assert m({"email": "opened", "newsletter": "Weekly"}) == {"anna"}
    assert m({"email": "opened", "newsletter": "Weekly", "issue": issue}) == {"anna"}
    assert m({"email": "opened", "newsletter": "Weekly", "human_only": False}) == {"anna", "bob"}
    assert m({"email": "opened", "newsletter": "Other", "human_only": False}) == set()
    assert m({"email": "clicked", "newsletter": "Weekly", "within_days": 1}) == {"anna"}
    assert m({"email": "clicked", "newsletter": "Weekly", "within_days": 1}, now=later) == set()
    assert m({"not": {"email": "opened", "newsletter": "Weekly"}}) == {"bob", "carol"}


def test_groups(world: World) -> None:
    with world.db.write() as session:
        group_id = add_group(session, "Customers")
        session.add_all(
            GroupMember(group_id=group_id, contact_id=world.ids[name]) for name in ("ada", "dee")
        )
        add_group(session, "Empty")
    assert world.matching({"group": "Customers"}) == {"ada", "dee"}
    assert world.matching({"not": {"group": "Customers"}}) == {"bob", "cyd"}
    assert world.matching({"group": "Empty"}) == set()


def test_id_bracket_holds_the_first_activity_of_a_moment(world: World) -> None:
    from sqlalchemy import delete

    from contacthub.groups.compiler import id_bracket
    from contacthub.storage.models import Activity

    start = days_ago(50)
    with world.db.write() as session:
        assert id_bracket(session, start) == (0, None)
        insert_activities(
            session,
            [
                ActivityRow(
                    world.ids["ada"],
                    None,
                    "click",
                    "c",
                    None,
                    None,
                    None,
                    start + timedelta(hours=n),
                )
                for n in range(0, 3000, 3)
            ],
        )
        # Gaps, as erasures leave them.
        session.execute(delete(Activity).where(Activity.id % 7 == 0))
    with world.db.read() as session:
        rows = session.execute(select(Activity.id, Activity.created_at).order_by(Activity.id)).all()
        for hours in (-5, 0, 1, 2, 3, 500, 1499, 2997, 2998, 5000):
            moment = start + timedelta(hours=hours)
            low, high = id_bracket(session, moment)
            assert all(row.created_at < moment for row in rows if row.id < low), hours
            if high is not None:
                assert all(row.created_at >= moment for row in rows if row.id >= high), hours
            first = next((row.id for row in rows if row.created_at >= moment), None)
            if first is not None:
                assert high is not None
                assert low <= first <= high, hours
                # Narrow: a million activities would leave about 250 ids to read.
                assert high - low <= 2, hours
            else:
                assert high is None
