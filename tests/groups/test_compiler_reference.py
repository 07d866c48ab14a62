"""The compiled SQL against a small Python evaluator of the same language, on random contacts,
consent events, activities, subscriptions and group members, on SQLite and PostgreSQL.

Hypothesis draws the data and a few conditions per example; the database is built once per test
function and emptied between examples. Times are days before a fixed `NOW`; activities are
inserted in time order, as ingest logs them (their ids follow time).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from contacthub.activities.repository import ActivityRow, insert_activities
from contacthub.email import service as email
from contacthub.groups.compiler import count_matching, matching_ids_query
from contacthub.groups.conditions import parse_conditions
from contacthub.storage.database import Database
from contacthub.storage.models import (
    Activity,
    Channel,
    ConsentAgreement,
    ConsentRevision,
    Contact,
    GroupMember,
    Subscriber,
)
from contacthub.storage.types import utcnow
from tests import factories
from tests.groups.support import add_group

NOW = utcnow().replace(microsecond=0)
CONSENT = "NewsletterConsent"
NEWSLETTER = "Weekly"
GROUP = "Customers"
CHANNELS = ("Website", "Mobile app")
CITIES = ("Prague", "prague", "Brno", "", None, "50%_Off", "a_b", "PRAGUE east")
PATTERNS = ("prague", "PRA", "gue", "%", "_", "50%_", "a_b", "x", "b")
COUNTRIES = (None, "CZE", "USA")
OFFSETS = (0.5, 3.0, 10.0, 40.0, 400.0)  # days before NOW
URLS = ("https://x.com/pricing", "https://x.com/PRICING/x", "https://x.com/blog", None)
DAYS = ((NOW - timedelta(days=12)).date(), (NOW - timedelta(days=2)).date(), NOW.date())


@dataclass(frozen=True)
class Person:
    city: str | None
    country: str | None
    created_days_ago: float
    subscription: str | None  # None, "subscribed", "unsubscribed"
    member: bool


@dataclass(frozen=True)
class Visit:
    person: int
    type: str
    url: str | None
    channel: int
    days_ago: float


@dataclass(frozen=True)
class ConsentEvent:
    person: int
    agreed: bool
    revision: int


@dataclass(frozen=True)
class Data:
    people: list[Person]
    visits: list[Visit]
    consent_events: list[ConsentEvent]


people = st.builds(
    Person,
    st.sampled_from(CITIES),
    st.sampled_from(COUNTRIES),
    st.sampled_from(OFFSETS),
    st.sampled_from((None, "subscribed", "unsubscribed")),
    st.booleans(),
)


@st.composite
def datasets(draw: st.DrawFn) -> Data:
    folks = draw(st.lists(people, min_size=1, max_size=8))
    index = st.integers(0, len(folks) - 1)
    visits = draw(
        st.lists(
            st.builds(
                Visit,
                index,
                st.sampled_from(("pagevisit", "click")),
                st.sampled_from(URLS),
                st.integers(0, 1),
                st.sampled_from(OFFSETS[:4]),
            ),
            max_size=20,
        )
    )
    events = draw(
        st.lists(st.builds(ConsentEvent, index, st.booleans(), st.integers(1, 2)), max_size=10)
    )
    return Data(folks, visits, events)


def leaves() -> st.SearchStrategy[dict[str, Any]]:
    text_ops = st.builds(
        lambda op, value: {"field": "city", "op": op, "value": value},
        st.sampled_from(("equals", "contains", "starts_with", "ends_with")),
        st.sampled_from(PATTERNS),
    )
    day = st.sampled_from(DAYS).map(date.isoformat)
    window = st.sampled_from((1, 7, 30))
    activity = st.fixed_dictionaries(
        {"activity": st.sampled_from(("pagevisit", "click"))},
        optional={
            "url_contains": st.sampled_from(("pricing", "/x", "_", "blog")),
            "channel": st.sampled_from(CHANNELS),
            "at_least": st.integers(1, 3),
            "within_days": window,
        },
    )
    return st.one_of(
        text_ops,
        st.just({"field": "city", "op": "in", "value": ["PRAGUE", "brno"]}),
        st.just({"field": "city", "op": "is_empty"}),
        st.builds(
            lambda v: {"field": "country", "op": "equals", "value": v},
            st.sampled_from(("CZE", "USA")),
        ),
        st.just({"field": "country", "op": "in", "value": ["CZE", "USA"]}),
        st.just({"field": "country", "op": "is_empty"}),
        st.builds(lambda n: {"field": "created_at", "op": "within_days", "value": n}, window),
        st.builds(
            lambda op, d: {"field": "created_at", "op": op, "value": d},
            st.sampled_from(("before", "after")),
            day,
        ),
        st.builds(
            lambda s: {"consent": CONSENT, "state": s},
            st.sampled_from(("agreed", "revoked", "never")),
        ),
        st.builds(
            lambda r: {"consent": CONSENT, "state": "agreed", "revision": r}, st.integers(1, 2)
        ),
        activity,
        st.builds(
            lambda t, a, b: {"activity": t, "between": sorted([a, b])},
            st.sampled_from(("pagevisit", "click")),
            day,
            day,
        ),
        st.builds(
            lambda e: {"email": e, "newsletter": NEWSLETTER},
            st.sampled_from(("subscribed", "unsubscribed")),
        ),
        st.just({"group": GROUP}),
    )


conditions = st.recursive(
    leaves(),
    lambda inner: st.one_of(
        st.builds(lambda items: {"all": items}, st.lists(inner, max_size=3)),
        st.builds(lambda items: {"any": items}, st.lists(inner, max_size=3)),
        st.builds(lambda item: {"not": item}, inner),
    ),
    max_leaves=8,
)


def _moment(days_ago: float) -> datetime:
    return NOW - timedelta(days=days_ago)


def _start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=NOW.tzinfo)


def evaluate(node: dict[str, Any], data: Data, who: int) -> bool:
    """The reference: what the docs say each node means, in plain Python."""
    person = data.people[who]
    if "all" in node:
        return all(evaluate(item, data, who) for item in node["all"])
    if "any" in node:
        return any(evaluate(item, data, who) for item in node["any"])
    if "not" in node:
        return not evaluate(node["not"], data, who)
    if "field" in node:
        op, value = node["op"], node.get("value")
        if node["field"] == "created_at":
            created = _moment(person.created_days_ago)
            if op == "within_days":
                return created >= NOW - timedelta(days=value)
            day = date.fromisoformat(value)
            if op == "before":
                return created < _start(day)
            return created >= _start(day + timedelta(days=1))
        stored = person.city if node["field"] == "city" else person.country
        if op == "is_empty":
            return not stored
        if stored is None:
            return False
        if op == "in":
            return stored.lower() in {v.lower() for v in value}
        text, wanted = stored.lower(), value.lower()
        return {
            "equals": text == wanted,
            "contains": wanted in text,
            "starts_with": text.startswith(wanted),
            "ends_with": text.endswith(wanted),
        }[op]
    if "consent" in node:
        events = [e for e in data.consent_events if e.person == who]
        if node["state"] == "never":
            return not events
        if not events:
            return False
        latest = events[-1]
        if node["state"] == "revoked":
            return not latest.agreed
        return latest.agreed and node.get("revision", latest.revision) == latest.revision
    if "activity" in node:
        count = 0
        for visit in data.visits:
            when = _moment(visit.days_ago)
            if visit.person != who or visit.type != node["activity"]:
                continue
            if "url_contains" in node and (
                visit.url is None or node["url_contains"].lower() not in visit.url.lower()
            ):
                continue
            if "channel" in node and CHANNELS[visit.channel] != node["channel"]:
                continue
            if "within_days" in node and when < NOW - timedelta(days=node["within_days"]):
                continue
            if "between" in node:
                first, last = (date.fromisoformat(d) for d in node["between"])
                if not _start(first) <= when < _start(last + timedelta(days=1)):
                    continue
            count += 1
        return count >= node.get("at_least", 1)
    if "email" in node:
        return person.subscription == node["email"]
    return person.member


def store(db: Database, data: Data, group_id: int, channel_ids: list[int]) -> list[int]:
    """Replace the contacts and their data with `data`; answers the contact ids in order."""
    with db.write() as session:
        for table in (Activity, ConsentAgreement, Subscriber, GroupMember, Contact):
            session.execute(delete(table))
        revisions = {
            row.number: row.id
            for row in session.execute(select(ConsentRevision.number, ConsentRevision.id))
        }
        newsletter = email.get_newsletter(session, NEWSLETTER)
        ids = []
        for number, person in enumerate(data.people):
            contact = Contact(
                city=person.city,
                country=person.country,
                created_at=_moment(person.created_days_ago),
            )
            session.add(contact)
            session.flush()
            ids.append(contact.id)
            if person.subscription:
                session.add(
                    Subscriber(
                        newsletter_id=newsletter.id,
                        contact_id=contact.id,
                        email=f"c{number}@example.com",
                        status=person.subscription,
                    )
                )
            if person.member:
                session.add(GroupMember(group_id=group_id, contact_id=contact.id))
        consent_id = session.scalar(select(ConsentRevision.consent_id))
        for event in data.consent_events:
            session.add(
                ConsentAgreement(
                    contact_id=ids[event.person],
                    consent_id=consent_id,
                    revision_id=revisions[event.revision],
                    agreed=event.agreed,
                )
            )
            session.flush()  # one at a time: ids in event order
        visits = sorted(data.visits, key=lambda v: -v.days_ago)
        insert_activities(
            session,
            [
                ActivityRow(
                    ids[v.person],
                    channel_ids[v.channel],
                    v.type,
                    v.type,
                    None,
                    v.url,
                    None,
                    _moment(v.days_ago),
                )
                for v in visits
            ],
        )
    return ids


def test_the_compiled_sql_agrees_with_the_reference(database: Database) -> None:
    factories.consent(database, CONSENT)
    factories.consent_text(database, CONSENT, "en", "<p>Short 2</p>", "<p>Full 2</p>")
    for name in CHANNELS:
        factories.tracking_channel(database, name)
    with database.write() as session:
        email.create_newsletter(
            session, NEWSLETTER, "The Team", "news@example.com", "https://www.example.com"
        )
        group_id = add_group(session, GROUP)
        channel_ids = [
            session.scalars(select(Channel.id).where(Channel.name == name)).one()
            for name in CHANNELS
        ]

    @settings(
        max_examples=50,
        deadline=None,
        # The database is built once per test function and emptied by each example.
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(datasets(), st.lists(conditions, min_size=1, max_size=4))
    def check(data: Data, raws: list[dict[str, Any]]) -> None:
        ids = store(database, data, group_id, channel_ids)
        with database.read() as session:
            for raw in raws:
                condition = parse_conditions(session, raw)
                found = set(
                    session.scalars(matching_ids_query(condition, now=NOW, session=session))
                )
                expected = {ids[who] for who in range(len(ids)) if evaluate(raw, data, who)}
                assert found == expected, raw
                assert count_matching(session, condition, now=NOW) == len(expected), raw
                # As the live job asks: for a few contacts only.
                few = set(ids[::2])
                among = select(Contact.id).where(Contact.id.in_(few))
                query = matching_ids_query(condition, now=NOW, among=among, session=session)
                assert set(session.scalars(query)) == expected & few, raw

    check()
