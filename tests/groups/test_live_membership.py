"""Live membership is exact: after any stream of events and clock moves, the members the live
job keeps (`membership.refresh`) are the members a fresh evaluation of every group finds.

Hypothesis draws groups (one of them naming another, and a static one named by conditions)
and a stream of events: contacts created, activities through the real ingest path (page
visits, data input changing a field), consents agreed and revoked, subscriptions and
unsubscriptions, email opens and clicks, static members added and removed, a group's
conditions changed, and the clock moving across the groups' time windows. The job runs at
random points of the stream, with the injected clock; after each run, every dynamic group is
compared with a fresh evaluation. On SQLite and PostgreSQL.

A running hub (the app's lifespan) moves a contact into a group within seconds of an activity
posted to the tracking API.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from contacthub.activities.ingest import IngestJob, process_batch
from contacthub.activities.rules import DATA_INPUT, PAGE_VISIT, ActivityInput
from contacthub.channels.service import hash_key
from contacthub.consents import service as consents
from contacthub.contacts import service as contacts
from contacthub.email import service as email
from contacthub.errors import Conflict
from contacthub.groups import compiler, conditions, membership, repository
from contacthub.groups import service as groups
from contacthub.storage import leases
from contacthub.storage.database import Database
from contacthub.storage.models import (
    Activity,
    ConsentAgreement,
    Contact,
    ContactGroup,
    EmailClick,
    EmailOpen,
    GroupMembershipState,
    GroupPendingContact,
    IssueLink,
    Subscriber,
)
from contacthub.storage.types import utcnow
from tests import factories
from tests.tracking.support import post_activities, results_of

CONSENT = "Marketing"
NEWSLETTER = "Weekly"
CITIES = ("Prague", "Brno")
URLS = ("https://www.example.com/pricing", "https://www.example.com/blog")
WINDOWS = (1, 3, 7)

live = settings(
    max_examples=25,
    deadline=None,
    # One database per test function; each example starts by emptying what examples write.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- conditions ----------------------------------------------------------------------------------

leaves = st.one_of(
    st.builds(
        lambda url, at_least, days: {
            "activity": PAGE_VISIT,
            "url_contains": url,
            "at_least": at_least,
            **({"within_days": days} if days else {}),
        },
        st.sampled_from(["/pricing", "/blog", "example"]),
        st.integers(1, 2),
        st.sampled_from((None, *WINDOWS)),
    ),
    st.builds(
        lambda state: {"consent": CONSENT, "state": state},
        st.sampled_from(["agreed", "revoked", "never"]),
    ),
    st.builds(
        lambda city: {"field": "city", "op": "equals", "value": city}, st.sampled_from(CITIES)
    ),
    st.just({"field": "city", "op": "is_empty"}),
    st.builds(
        lambda days: {"field": "created_at", "op": "within_days", "value": days},
        st.sampled_from(WINDOWS),
    ),
    st.builds(
        lambda event: {"email": event, "newsletter": NEWSLETTER},
        st.sampled_from(["subscribed", "unsubscribed"]),
    ),
    st.builds(
        lambda event, human, days: {
            "email": event,
            "newsletter": NEWSLETTER,
            "human_only": human,
            **({"within_days": days} if days else {}),
        },
        st.sampled_from(["opened", "clicked"]),
        st.booleans(),
        st.sampled_from((None, *WINDOWS)),
    ),
    st.just({"group": "Static"}),
)

trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(lambda items: {"all": items}),
        st.lists(children, min_size=1, max_size=3).map(lambda items: {"any": items}),
        children.map(lambda item: {"not": item}),
    ),
    max_leaves=3,
)

# -- events --------------------------------------------------------------------------------------

who = st.integers(0, 7)  # a contact, modulo the contacts there are
visits = st.tuples(st.just("visit"), who, st.sampled_from(URLS))
ticks = st.tuples(
    st.just("tick"),
    st.sampled_from(
        [timedelta(minutes=5), timedelta(hours=12), timedelta(days=1), timedelta(days=4)]
    ),
)
refreshes = st.tuples(st.just("refresh"))
events = st.one_of(
    # What changes answers most often comes up most often.
    visits,
    visits,
    ticks,
    ticks,
    refreshes,
    refreshes,
    st.tuples(st.just("contact"), st.sampled_from((None, *CITIES))),
    st.tuples(st.just("data"), who, st.sampled_from(CITIES)),
    st.tuples(st.just("consent"), who, st.booleans()),
    st.tuples(st.just("subscribe"), who),
    st.tuples(st.just("unsubscribe"), who),
    st.tuples(st.just("open"), who, st.booleans()),
    st.tuples(st.just("click"), who, st.booleans()),
    st.tuples(st.just("static"), who, st.booleans()),
    st.tuples(st.just("conditions"), trees),
)


@dataclass
class World:
    """The test's hub data: what examples share (channel, consent, newsletter) and the clock."""

    database: Database
    setup: factories.TrackingSetup
    issue_id: int
    link_id: int
    clock: datetime = field(default_factory=lambda: utcnow().replace(microsecond=0))
    people: list[tuple[int, uuid.UUID, str]] = field(default_factory=list)

    def person(self, index: int) -> tuple[int, uuid.UUID, str]:
        return self.people[index % len(self.people)]

    def ingest(self, contact: uuid.UUID, activity: ActivityInput) -> None:
        job = IngestJob(
            hash_key(self.setup.key),
            uuid.UUID(self.setup.channel_guid),
            contact,
            [activity],
            self.clock,
        )
        with self.database.write() as session:
            [outcome] = process_batch(session, [job])
        assert outcome.error is None, outcome.error

    def new_contact(self, city: str | None) -> None:
        address = f"person{len(self.people)}@example.com"
        with self.database.write() as session:
            contact = contacts.create_contact(session, email=address, city=city)
            self.people.append((contact.id, contact.guid, address))

    def hit(self, index: int, model: type[EmailOpen] | type[EmailClick], machine: bool) -> None:
        with self.database.write() as session:
            subscriber = session.scalar(
                select(Subscriber).where(Subscriber.email == self.person(index)[2])
            )
            if subscriber is None:
                return
            values: dict[str, Any] = {
                "issue_id": self.issue_id,
                "subscriber_id": subscriber.id,
                "is_machine": machine,
                "created_at": self.clock,
            }
            if model is EmailClick:
                values["link_id"] = self.link_id
            session.add(model(**values))

    def apply(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "contact":
            self.new_contact(event[1])
        elif kind == "visit":
            self.ingest(self.person(event[1])[1], ActivityInput(PAGE_VISIT, None, event[2], None))
        elif kind == "data":
            fields = {"city": event[2]}
            self.ingest(
                self.person(event[1])[1], ActivityInput(DATA_INPUT, None, None, None, fields)
            )
        elif kind == "consent":
            with self.database.write() as session:
                consents.record_agreement(
                    session, str(self.person(event[1])[1]), CONSENT, agree=event[2]
                )
        elif kind == "subscribe":
            # Subscribing a subscribed address is refused: then nothing changes.
            with self.database.write() as session, contextlib.suppress(Conflict):
                email.add_subscriber(session, NEWSLETTER, self.person(event[1])[2])
        elif kind == "unsubscribe":
            with self.database.write() as session:
                subscriber = session.scalar(
                    select(Subscriber).where(Subscriber.email == self.person(event[1])[2])
                )
                if subscriber is not None:
                    email.unsubscribe(session, subscriber)
        elif kind in ("open", "click"):
            self.hit(event[1], EmailOpen if kind == "open" else EmailClick, event[2])
        elif kind == "static":
            change = groups.add_members if event[2] else groups.remove_members
            with self.database.write() as session:
                change(session, "Static", [self.person(event[1])[2]])
        elif kind == "conditions":
            with self.database.write() as session:
                groups.update_group(session, "Base", conditions=event[1], now=self.clock)
        elif kind == "tick":
            self.clock += event[1]
        else:
            membership.refresh(self.database, now=self.clock)
            self.assert_exact()

    def assert_exact(self) -> None:
        """Every dynamic group's members are what a fresh evaluation finds now."""
        with self.database.read() as session:
            for group in repository.dynamic_groups(session):
                assert group.conditions is not None
                condition = conditions.load_conditions(session, group.conditions)
                fresh = set(session.scalars(compiler.matching_ids_query(condition, now=self.clock)))
                kept = repository.member_ids(session, group.id)
                assert kept == fresh, (group.name, group.conditions, kept ^ fresh)


def _empty(database: Database) -> None:
    """Remove what an example writes (not the channel, consent and newsletter)."""
    with database.write() as session:
        for model in (
            EmailClick,
            EmailOpen,
            ContactGroup,
            GroupPendingContact,
            GroupMembershipState,
            Activity,
            ConsentAgreement,
            Subscriber,
            Contact,
        ):
            session.execute(delete(model))


@pytest.fixture
def world(database: Database) -> World:
    setup = factories.tracking_channel(database)
    factories.consent(database, CONSENT)
    with database.write() as session:
        email.create_newsletter(
            session, NEWSLETTER, "The Team", "news@example.com", "https://news.example.com"
        )
        issue = email.create_issue(
            session, NEWSLETTER, "News", '<p><a href="https://www.example.com/">Shop</a></p>'
        )
        issue.status = "sent"
        link = session.scalars(select(IssueLink).where(IssueLink.issue_id == issue.id)).first()
        assert link is not None
        issue_id, link_id = issue.id, link.id
    return World(database, setup, issue_id, link_id)


PRICING_TODAY = {"activity": PAGE_VISIT, "url_contains": "/pricing", "within_days": 1}


@live
# A visit leaving its window as time passes, seen through a group naming the first.
@example(
    base=PRICING_TODAY,
    other={"not": PRICING_TODAY},
    referring={"all": []},
    before=[("visit", 0, URLS[0])],
    after=[("refresh",), ("tick", timedelta(hours=12)), ("refresh",), ("tick", timedelta(days=1))],
    naming="not",
)
# New visits make members leave a group that counts them negatively, and non-members enter
# one that counts them positively, or both at once.
@example(
    base={"not": {"activity": PAGE_VISIT, "url_contains": "/pricing"}},
    other={"activity": PAGE_VISIT, "url_contains": "/blog", "at_least": 2},
    referring={"any": [{"activity": PAGE_VISIT, "url_contains": "/blog"}, {"not": PRICING_TODAY}]},
    before=[("visit", 1, URLS[1])],
    after=[
        ("refresh",),
        ("visit", 0, URLS[0]),
        ("visit", 1, URLS[1]),
        ("refresh",),
        ("visit", 2, URLS[0]),
    ],
    naming="any",
)
# Queued changes (consent, subscription, static members) and new opens, through a named group.
@example(
    base={"any": [{"consent": CONSENT, "state": "agreed"}, {"group": "Static"}]},
    other={"email": "opened", "newsletter": NEWSLETTER, "human_only": True},
    referring={"email": "subscribed", "newsletter": NEWSLETTER},
    before=[("subscribe", 1)],
    after=[
        ("consent", 0, True),
        ("static", 2, True),
        ("open", 1, False),
        ("refresh",),
        ("consent", 0, False),
        ("open", 1, True),
        ("unsubscribe", 1),
        ("static", 2, False),
        ("data", 2, "Prague"),
    ],
    naming="all",
)
@given(
    base=trees,
    other=trees,
    referring=trees,
    before=st.lists(events, max_size=10),
    after=st.lists(events, max_size=30),
    naming=st.sampled_from(["all", "any", "not"]),
)
def test_incremental_membership_equals_a_rebuild(
    world: World,
    base: dict[str, Any],
    other: dict[str, Any],
    referring: dict[str, Any],
    before: list[tuple[Any, ...]],
    after: list[tuple[Any, ...]],
    naming: str,
) -> None:
    _empty(world.database)
    world.people.clear()
    world.clock = utcnow().replace(microsecond=0)
    for city in (None, "Prague", "Brno"):
        world.new_contact(city)
    with world.database.write() as session:
        groups.create_group(session, "Static", kind="static")
    for event in before:
        if event[0] not in ("static", "conditions"):
            world.apply(event)
    named = {"group": "Base"}
    refers = {
        "all": {"all": [named, referring]},
        "any": {"any": [named, referring]},
        "not": {"all": [{"not": named}, referring]},
    }[naming]
    with world.database.write() as session:
        groups.create_group(session, "Base", conditions=base, now=world.clock)
        groups.create_group(session, "Other", conditions=other, now=world.clock)
        groups.create_group(session, "Refers", conditions=refers, now=world.clock)
    world.assert_exact()
    for event in after:
        world.apply(event)
    world.apply(("refresh",))


def test_the_job_is_one_query_without_dynamic_groups(world: World) -> None:
    world.new_contact("Prague")
    world.ingest(world.person(0)[1], ActivityInput(PAGE_VISIT, None, URLS[0], None))
    with world.database.write() as session:
        groups.create_group(session, "Static", kind="static")
    assert membership.refresh(world.database) == membership.RefreshReport()
    with world.database.read() as session:
        # Nothing moved: not even the cursors' row was written.
        assert session.scalar(select(GroupMembershipState)) is None


def pricing_visitors(world: World) -> None:
    """The dynamic group "Pricing": contacts who visited a pricing page within a day."""
    with world.database.write() as session:
        groups.create_group(
            session,
            "Pricing",
            conditions={"activity": PAGE_VISIT, "url_contains": "/pricing", "within_days": 1},
            now=world.clock,
        )


def test_cursors_move_and_the_queue_empties(world: World) -> None:
    for city in ("Prague", "Brno"):
        world.new_contact(city)
    pricing_visitors(world)
    world.ingest(world.person(0)[1], ActivityInput(PAGE_VISIT, None, URLS[0], None))
    world.apply(("consent", 1, True))
    report = membership.refresh(world.database, now=world.clock)
    assert (report.candidates, report.entered, report.left) == (2, 1, 0)
    with world.database.read() as session:
        state = session.scalars(select(GroupMembershipState)).one()
        assert state.last_activity_id == session.scalar(select(Activity.id))
        assert state.evaluated_at == world.clock
        assert session.scalar(select(GroupPendingContact)) is None
        history = groups.membership_history(session, world.person(0)[0])
        assert [(h.group_name, h.entered, h.reason) for h in history] == [
            ("Pricing", True, "conditions met")
        ]
    # Nothing new: nobody to evaluate.
    assert membership.refresh(world.database, now=world.clock).candidates == 0
    # A day later the visit is out of the window.
    world.clock += timedelta(days=1, seconds=1)
    report = membership.refresh(world.database, now=world.clock)
    assert (report.candidates, report.entered, report.left) == (1, 0, 1)
    with world.database.read() as session:
        history = groups.membership_history(session, world.person(0)[0])
        assert (history[0].entered, history[0].reason) == (False, "conditions no longer met")


def test_the_periodic_run_evaluates_in_one_process_at_a_time(world: World) -> None:
    # The app's job passes `lease_seconds`: of two processes, the one holding the lease runs.
    world.new_contact("Prague")
    pricing_visitors(world)

    def run(holder: str) -> membership.RefreshReport:
        return membership.refresh(world.database, now=world.clock, lease_seconds=60, holder=holder)

    world.ingest(world.person(0)[1], ActivityInput(PAGE_VISIT, None, URLS[0], None))
    assert run("worker 1").entered == 1
    world.clock += timedelta(days=1, seconds=1)  # the visit leaves the window
    assert run("worker 2") == membership.RefreshReport(skipped=True)
    with world.database.write() as session:
        leases.release(session, membership.LEASE, holder="worker 1")  # worker 1 stops
    assert run("worker 2").left == 1
    assert run("worker 1") == membership.RefreshReport(skipped=True)


def test_the_first_dynamic_group_moves_the_cursors_past_the_history(world: World) -> None:
    # History recorded while no dynamic group exists: activities, an open and a click.
    for city in ("Prague", "Brno"):
        world.new_contact(city)
    world.apply(("subscribe", 0))
    for index in (0, 1):
        world.ingest(world.person(index)[1], ActivityInput(PAGE_VISIT, None, URLS[0], None))
    world.apply(("open", 0, False))
    world.apply(("click", 0, False))
    with world.database.write() as session:
        groups.create_group(session, "Static", kind="static")
        groups.create_group(
            session, "Pricing", conditions={"activity": PAGE_VISIT, "url_contains": "/pricing"}
        )
    with world.database.read() as session:
        state = session.scalars(select(GroupMembershipState)).one()
        highs = [
            session.scalar(select(func.max(c))) for c in (Activity.id, EmailOpen.id, EmailClick.id)
        ]
        # Everything so far is in the group's computation: the job does not read it again.
        assert [
            state.last_activity_id,
            state.last_email_open_id,
            state.last_email_click_id,
        ] == highs
        assert repository.member_ids(session, _group_id(session, "Pricing")) == {
            world.person(0)[0],
            world.person(1)[0],
        }
    assert membership.refresh(world.database).candidates == 0
    # What comes later is the job's.
    world.new_contact(None)
    world.ingest(world.person(2)[1], ActivityInput(PAGE_VISIT, None, URLS[0], None))
    report = membership.refresh(world.database)
    assert (report.candidates, report.entered) == (1, 1)
    # A second dynamic group leaves the cursors where the job has them.
    world.ingest(world.person(0)[1], ActivityInput(PAGE_VISIT, None, URLS[1], None))
    with world.database.write() as session:
        groups.create_group(
            session, "Blog", conditions={"activity": PAGE_VISIT, "url_contains": "/blog"}
        )
    assert membership.refresh(world.database).candidates == 1


def test_creating_the_first_dynamic_group_does_not_hold_ingest_back(world: World) -> None:
    if world.database.is_sqlite:
        pytest.skip("SQLite has one writer at a time: ingest waits for any write transaction")
    world.new_contact(None)
    with world.database.write() as session:
        groups.create_group(
            session, "Pricing", conditions={"activity": PAGE_VISIT, "url_contains": "/pricing"}
        )
        # The SHARE lock that made the high ids final was released with its savepoint: an
        # insert in another transaction goes through while this one is still open.
        with world.database.write() as other:
            other.execute(text("SET LOCAL lock_timeout = '2s'"))
            other.execute(
                insert(Activity).values(
                    contact_id=world.person(0)[0], type=PAGE_VISIT, title="Visit", url=URLS[0]
                )
            )


@pytest.mark.parametrize("change", ["rebuild", "conditions"])
def test_a_run_evaluated_before_its_write_is_redone_if_what_it_read_changed(
    world: World, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    if not world.database.is_sqlite:
        pytest.skip("on PostgreSQL a run evaluates inside its write transaction")
    world.new_contact(None)
    pricing = {"activity": PAGE_VISIT, "url_contains": "/pricing"}
    with world.database.write() as session:
        groups.create_group(session, "Pricing", conditions=pricing, now=world.clock)
    membership.refresh(world.database, now=world.clock)
    world.ingest(world.person(0)[1], ActivityInput(PAGE_VISIT, None, URLS[0], None))
    plan = membership._plan
    changed: list[bool] = []

    def plan_then_change(*args: Any, write: bool) -> Any:
        # Between the run's read transaction and its write transaction, the group's members
        # are computed in full (the contact enters) or from new conditions (it does not).
        run = plan(*args, write=write)
        if not write and not changed:
            changed.append(True)
            with world.database.write() as session:
                if change == "rebuild":
                    groups.rebuild_group(session, "Pricing", now=world.clock)
                else:
                    blog = {"activity": PAGE_VISIT, "url_contains": "/blog"}
                    groups.update_group(session, "Pricing", conditions=blog, now=world.clock)
        return run

    monkeypatch.setattr(membership, "_plan", plan_then_change)
    membership.refresh(world.database, now=world.clock)
    assert changed
    world.assert_exact()


def _group_id(session: Session, name: str) -> int:
    group = repository.group_by_name(session, name)
    assert group is not None
    return group.id


def test_a_running_hub_moves_a_contact_within_seconds(
    client: TestClient, database: Database
) -> None:
    setup = factories.tracking_channel(database)
    guid = factories.contact(database)
    with database.write() as session:
        groups.create_group(
            session, "Pricing", conditions={"activity": PAGE_VISIT, "url_contains": "/pricing"}
        )
    response = post_activities(
        client, setup, guid, [{"type": PAGE_VISIT, "url": "https://www.example.com/pricing"}]
    )
    assert results_of(response) == [{"status": 202}]
    posted = time.monotonic()
    while True:
        with database.read() as session:
            if groups.member_count(session, groups.get_group(session, "Pricing").id) == 1:
                break
        assert time.monotonic() - posted < 10, "the contact did not enter the group"
        time.sleep(0.05)


def test_the_job_pauses_longer_after_slow_runs() -> None:
    # Fast runs: the configured interval.
    assert membership.pause_after(1.0, 0.01) == 1.0
    # Slow runs: 19 times the run (the job takes about 5 % of the time), at most 3 s.
    assert membership.pause_after(1.0, 0.1) == pytest.approx(1.9)
    assert membership.pause_after(1.0, 1.0) == 3.0
    # A configured interval longer than that is kept.
    assert membership.pause_after(10.0, 1.0) == 10.0
