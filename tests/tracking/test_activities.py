"""POST /Kentico.Tracking/activities: 207 multi-status, what is stored, partial failures."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from starlette.testclient import TestClient

from contacthub.storage.database import Database
from contacthub.storage.models import Activity, Channel
from tests import factories
from tests.factories import TrackingSetup
from tests.tracking.support import (
    MakeClient,
    activities_of,
    assert_rejected,
    contact_row,
    count,
    post_activities,
    results_of,
)


def test_one_result_per_activity_in_order(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    answer = post_activities(
        client,
        setup,
        contact,
        [
            {"type": "click", "value": "first"},
            {"type": "click"},  # no value: refused alone
            {"type": "pagevisit", "url": "https://example.com/third", "value": "Third"},
        ],
    )

    assert answer.status_code == 207
    assert answer.headers["content-type"] == "application/json"
    first, second, third = results_of(answer)
    assert first == {"status": 202}
    assert_rejected(second, 400, "missing_value")
    assert third == {"status": 202}
    assert [a.title for a in activities_of(database, contact)] == [
        "Clicked 'first'",
        "Page visit 'Third'",
    ]


def test_stored_activity_has_every_field(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    before = datetime.now(UTC)
    post_activities(
        client,
        setup,
        contact,
        [
            {
                "type": "pagevisit",
                "value": "Pricing",
                "url": "https://example.com/pricing",
                "referrer": "https://search.example.org/?q=hub",
            }
        ],
    )
    after = datetime.now(UTC)

    [stored] = activities_of(database, contact)
    with database.read() as session:
        channel_id = session.scalar(select(Channel.id).where(Channel.name == setup.channel_name))
    assert stored.type == "pagevisit"
    assert stored.title == "Page visit 'Pricing'"
    assert stored.value == "Pricing"
    assert stored.url == "https://example.com/pricing"
    assert stored.referrer == "https://search.example.org/?q=hub"
    assert stored.channel_id == channel_id
    assert stored.contact_id == contact_row(database, contact).id
    assert before - timedelta(seconds=1) <= stored.created_at <= after + timedelta(seconds=1)


def test_activities_of_one_request_are_stored_in_order(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    values = [f"element {n}" for n in range(50)]

    answer = post_activities(
        client, setup, contact, [{"type": "click", "value": v} for v in values]
    )

    assert results_of(answer) == [{"status": 202}] * 50
    assert [a.value for a in activities_of(database, contact)] == values


def test_the_limit_of_activities_per_request_is_accepted(
    make_client: MakeClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    client = make_client(max_activities_per_request=7)

    answer = post_activities(client, setup, contact, [{"type": "click", "value": "x"}] * 7)

    assert results_of(answer) == [{"status": 202}] * 7
    assert count(database, Activity) == 7


def test_a_request_of_only_bad_activities_is_still_207(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    answer = post_activities(client, setup, contact, [{"type": "click"}, {"type": "pagevisit"}])

    first, second = results_of(answer)
    assert_rejected(first, 400, "missing_value")
    assert_rejected(second, 400, "missing_url")
    assert count(database, Activity) == 0


def test_activities_of_several_contacts_stay_apart(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    alice, bob = factories.contact(database), factories.contact(database)

    post_activities(client, setup, alice, [{"type": "click", "value": "alice"}])
    post_activities(client, setup, bob, [{"type": "click", "value": "bob"}] * 2)

    assert [a.value for a in activities_of(database, alice)] == ["alice"]
    assert [a.value for a in activities_of(database, bob)] == ["bob", "bob"]


def test_concurrent_requests_are_all_stored(
    client: TestClient, database: Database, setup: TrackingSetup
) -> None:
    # Many requests at once go through the group-commit writer together: each is answered only
    # after its own activities are committed, none is lost or mixed up.
    contacts = [factories.contact(database) for _ in range(12)]
    answers: dict[str, int] = {}

    def send(contact: str) -> None:
        activities = [{"type": "click", "value": contact}] * 5
        answers[contact] = post_activities(client, setup, contact, activities).status_code

    threads = [threading.Thread(target=send, args=(contact,)) for contact in contacts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert answers == dict.fromkeys(contacts, 207)
    for contact in contacts:
        assert [a.value for a in activities_of(database, contact)] == [contact] * 5


def test_answer_202_means_stored_by_the_time_the_answer_arrives(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    for n in range(1, 6):
        post_activities(client, setup, contact, [{"type": "click", "value": str(n)}])
        # Read through another connection, right after the answer: it is already committed.
        assert count(database, Activity) == n
