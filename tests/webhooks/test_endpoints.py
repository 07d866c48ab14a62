"""The webhook endpoints' service (events/endpoints.py) and what operators do with deliveries
(events/deliveries.py: retry, replay, health), on both databases."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from contacthub.channels import service as channels
from contacthub.errors import Conflict, HubError, NotFound
from contacthub.events import deliveries, endpoints, outbox
from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent, OutboxEvent, WebhookDelivery, WebhookEndpoint
from tests import factories
from tests.webhooks.support import (
    T0,
    dead_delivery,
    deliver,
    emit_events,
    endpoint_id,
    hub_with_deliveries,
)

URL = "https://crm.example.com/hooks/contacthub?tenant=7"


def audit_log(database: Database) -> list[tuple[str, str, str, dict[str, object]]]:
    with database.read() as session:
        return [
            (e.actor, e.action, e.subject, json.loads(e.details or "{}"))
            for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))
        ]


def refused(database: Database, code: str, field: str | None, **arguments: object) -> str:
    arguments = {"name": "CRM", "url": URL, **arguments}
    with pytest.raises(HubError) as caught, database.write() as session:
        endpoints.create_endpoint(session, **arguments)  # type: ignore[arg-type]
    assert (caught.value.code, caught.value.field) == (code, field), caught.value.message
    return caught.value.message


def test_create_makes_a_secret_shown_once_and_audits_without_it(database: Database) -> None:
    factories.tracking_channel(database, "Web")
    with database.write() as session:
        new = endpoints.create_endpoint(
            session,
            "  CRM  ",
            URL,
            events=["activity.stored", "contact.created", "contact.created"],
            activity_types=["PageVisit"],
            channels=["Web"],
            actor="ada@example.com",
        )
    assert new.secret.startswith("whsec_")
    assert len(base64.b64decode(new.secret.removeprefix("whsec_"), validate=True)) == 32
    shown = new.endpoint
    assert (shown.name, shown.url, shown.enabled) == ("CRM", URL, True)
    # Event types in the documented order, each once; the activity type as the hub spells it.
    assert shown.events == ["contact.created", "activity.stored"]
    assert (shown.activity_types, shown.channels) == (["pagevisit"], ["Web"])
    assert shown.created_by == "ada@example.com"
    [(actor, action, subject, details)] = audit_log(database)
    assert (actor, action, subject) == ("ada@example.com", "webhook.created", "CRM")
    assert details == {
        "guid": shown.guid,
        "url": URL,
        "events": ["contact.created", "activity.stored"],
        "activity_types": ["pagevisit"],
        "channels": ["Web"],
        "enabled": True,
    }
    assert new.secret not in json.dumps(audit_log(database))
    with database.read() as session:
        stored = endpoints.get_endpoint(session, shown.guid)
        assert stored.secret == new.secret
        # The outbox reads the stored subscription: channel ids, lower-case types.
        subscription = outbox.Subscription.of(stored)
        web = channels.get_channel(session, "Web").id
        assert subscription.wants_activity("pagevisit", web)
        assert not subscription.wants_activity("click", web)
        assert not subscription.wants_activity("pagevisit", None)
        assert not subscription.wants(outbox.CONTACT_UPDATED)
        assert endpoints.view(session, stored).health == deliveries.EndpointHealth()


@pytest.mark.parametrize(
    "url",
    [
        "ftp://crm.example.com/hook",
        "crm.example.com/hook",
        "https:///hook",
        "http://[::1",
        "https://crm.example.com/hook#part",
        "https://user:secret@crm.example.com/hook",
        "https://crm.example.com/a hook",
        "https://crm.example.com/\x01",
        "https://crm.example.com/" + "a" * 2000,
        "",
    ],
)
def test_only_an_absolute_http_url_is_taken(database: Database, url: str) -> None:
    message = refused(database, "invalid_url", "url", url=url)
    assert "webhook URL" in message


def test_events_are_known_types_or_every_one(database: Database) -> None:
    assert "contact.made" in refused(database, "invalid_events", "events", events=["contact.made"])
    refused(database, "invalid_events", "events", events=[])
    with database.write() as session:
        shown = endpoints.create_endpoint(
            session, "All", URL, events=["contact.created", "*"]
        ).endpoint
    assert shown.events == ["*"]


def test_filters_name_existing_types_and_channels_and_need_activity_events(
    database: Database,
) -> None:
    factories.activity_type(database, "Quiz_Answer", "Quiz answer")
    refused(database, "unknown_activity_type", "activity_types", activity_types=["nope"])
    refused(database, "unknown_channel", "channels", channels=["Nowhere"])
    refused(
        database,
        "invalid_filter",
        "activity_types",
        events=["contact.created"],
        activity_types=["click"],
    )
    with database.write() as session:
        shown = endpoints.create_endpoint(
            session, "Quiz", URL, events=["*"], activity_types=["quiz_answer", "QUIZ_ANSWER"]
        ).endpoint
        # No filter given, or an empty one: every type and channel.
        other = endpoints.create_endpoint(session, "Any", URL, activity_types=[], channels=[])
    assert shown.activity_types == ["Quiz_Answer"]
    assert (other.endpoint.activity_types, other.endpoint.channels) == (None, None)


def test_update_changes_what_is_given_and_records_what_changed(database: Database) -> None:
    factories.tracking_channel(database, "Web")
    with database.write() as session:
        guid = endpoints.create_endpoint(session, "CRM", URL).endpoint.guid
    with database.write() as session:
        endpoints.update_endpoint(
            session,
            guid,
            url="https://crm.example.com/v2",
            events=["activity.stored"],
            channels=["Web"],
            actor="cli",
        )
    with database.write() as session:
        # Unchanged: nothing recorded.
        endpoints.update_endpoint(session, guid, name="CRM", actor="cli")
        shown = endpoints.view(session, endpoints.get_endpoint(session, guid))
    assert (shown.name, shown.url, shown.events) == (
        "CRM",
        "https://crm.example.com/v2",
        ["activity.stored"],
    )
    assert shown.channels == ["Web"]
    assert audit_log(database)[-1] == (
        "cli",
        "webhook.updated",
        "CRM",
        {
            "guid": guid,
            "url": "https://crm.example.com/v2",
            "events": ["activity.stored"],
            "channels": ["Web"],
        },
    )
    assert len(audit_log(database)) == 1
    with database.write() as session:
        endpoints.update_endpoint(session, guid, channels=None, actor="cli")
    assert audit_log(database)[-1][3] == {"guid": guid, "channels": None}
    # A filter stays valid only while the endpoint wants activity events.
    with pytest.raises(HubError) as caught, database.write() as session:
        endpoints.update_endpoint(session, guid, activity_types=["click"], events=["email.sent"])
    assert caught.value.code == "invalid_filter"


def test_disabled_endpoints_get_no_events_and_enabling_is_audited(database: Database) -> None:
    with database.write() as session:
        guid = endpoints.create_endpoint(session, "CRM", URL).endpoint.guid
        assert outbox.emit(session, outbox.CONTACT_CREATED, contact_id=None, data={})
        endpoints.set_enabled(session, guid, False, actor="cli")
        # The change is seen in the same unit of work: no endpoint wants events now.
        assert not outbox.emit(session, outbox.CONTACT_CREATED, contact_id=None, data={})
        endpoints.set_enabled(session, guid, False, actor="cli")  # already: records nothing
    with database.write() as session:
        endpoints.set_enabled(session, guid, True, actor="cli")
        assert outbox.emit(session, outbox.CONTACT_CREATED, contact_id=None, data={})
    assert [a for _, a, _, _ in audit_log(database)] == ["webhook.disabled", "webhook.enabled"]


def test_delete_removes_the_endpoint_and_its_deliveries(database: Database) -> None:
    guid = hub_with_deliveries(database)
    with database.write() as session:
        endpoints.create_endpoint(session, "Other", URL)
    with database.write() as session:
        endpoints.delete_endpoint(session, guid, actor="cli")
    with database.read() as session:
        assert session.scalar(select(WebhookDelivery.id).limit(1)) is None
        assert [e.name for e in endpoints.list_endpoints(session)] == ["Other"]
        assert len(session.scalars(select(OutboxEvent.id)).all()) == 3
        with pytest.raises(NotFound):
            endpoints.get_endpoint(session, guid)
    assert audit_log(database) == [("cli", "webhook.deleted", "CRM", {"guid": guid})]


def test_rotating_makes_a_new_secret(database: Database) -> None:
    with database.write() as session:
        new = endpoints.create_endpoint(session, "CRM", URL)
    with database.write() as session:
        rotated = endpoints.rotate_secret(session, new.endpoint.guid, actor="cli")
    assert rotated.secret.startswith("whsec_")
    assert rotated.secret != new.secret
    with database.read() as session:
        assert endpoints.get_endpoint(session, new.endpoint.guid).secret == rotated.secret
    assert audit_log(database) == [
        ("cli", "webhook.secret_rotated", "CRM", {"guid": new.endpoint.guid})
    ]


def test_unknown_endpoints_are_not_found(database: Database) -> None:
    with database.read() as session:
        for key in ("not-a-guid", "00000000-0000-0000-0000-000000000000", "\x00"):
            with pytest.raises(NotFound) as caught:
                endpoints.get_endpoint(session, key)
            assert caught.value.code == "unknown_webhook"


def test_health_counts_failures_and_backlog(database: Database) -> None:
    guid = hub_with_deliveries(database)
    with database.write() as session:
        quiet = endpoints.create_endpoint(session, "Quiet", URL).endpoint.guid
        # A pending delivery that failed once and waits for its next try counts as both.
        [event] = emit_events(session, 1, start=T0 + timedelta(days=1))
        [waiting] = deliver(session, guid, [event], ["pending"])
        session.get_one(WebhookDelivery, waiting).attempts = 2
    with database.read() as session:
        health = deliveries.health(session)
        crm = health[endpoint_id(session, guid)]
        assert (crm.failures, crm.backlog) == (2, 2)
        assert crm.last_success_at == T0
        assert crm.last_error == "HTTP 503 Service Unavailable"
        assert health[endpoint_id(session, quiet)] == deliveries.EndpointHealth()
        [shown] = [v for v in endpoints.overviews(session) if v.guid == guid]
        assert shown.health == crm
        recent = endpoints.recent_deliveries(session, guid, 2)
        assert [d.state for d in recent] == ["pending", "pending"]
        assert [d.event_type for d in recent] == ["contact.updated"] * 2


def test_retry_sends_a_dead_delivery_again(database: Database) -> None:
    guid = hub_with_deliveries(database)
    dead = dead_delivery(database, guid)
    with database.write() as session:
        retried = endpoints.retry_delivery(session, dead, actor="cli")
    assert (retried.state, retried.attempts, retried.endpoint) == ("pending", 0, guid)
    with database.read() as session:
        event = session.scalars(
            select(OutboxEvent.event_id)
            .join(WebhookDelivery, WebhookDelivery.event_id == OutboxEvent.id)
            .where(WebhookDelivery.id == dead)
        ).one()
    assert audit_log(database) == [
        ("cli", "webhook.retried", "CRM", {"guid": guid, "delivery": dead, "event": str(event)})
    ]
    with database.write() as session, pytest.raises(Conflict) as caught:
        deliveries.retry(session, dead, actor="cli")  # pending now
    assert caught.value.code == "delivery_not_dead"
    for missing in (0, 10**6, 2**63):
        with database.write() as session, pytest.raises(NotFound) as lost:
            deliveries.retry(session, missing, actor="cli")
        assert lost.value.code == "unknown_delivery"
    assert len(audit_log(database)) == 1


def test_replay_queues_every_wanted_event_since_a_time_again(database: Database) -> None:
    factories.tracking_channel(database, "Web")
    guid = hub_with_deliveries(database)  # events at T0, T0+1h, T0+2h
    with database.write() as session:
        # An event at T0+3h no delivery was made for yet, and one the endpoint does not want
        # (another endpoint wanted it).
        [late] = emit_events(session, 1, start=T0 + timedelta(hours=3))
        endpoints.create_endpoint(session, "Mail", URL, events=["email.sent"])
        outbox.emit(
            session, outbox.EMAIL_SENT, contact_id=1, data={}, moment=T0 + timedelta(hours=4)
        )
        endpoints.update_endpoint(session, guid, events=["contact.updated"])
    with database.write() as session:
        count = endpoints.replay(session, guid, T0 + timedelta(hours=1), actor="cli")
    assert count == 3
    with database.read() as session:
        rows = session.execute(
            select(WebhookDelivery.event_id, WebhookDelivery.state, WebhookDelivery.attempts)
            .where(WebhookDelivery.endpoint_id == endpoint_id(session, guid))
            .order_by(WebhookDelivery.event_id)
        ).all()
        # The first event (before `since`) stays delivered; the dead one and the pending one are
        # pending with a full set of tries; the late one has its delivery now. Same event rows,
        # so the same event ids.
        assert [(state, attempts) for _, state, attempts in rows] == [
            ("delivered", 1),
            ("pending", 0),
            ("pending", 0),
            ("pending", 0),
        ]
        assert rows[-1].event_id == late
    assert audit_log(database)[-1] == (
        "cli",
        "webhook.replayed",
        "CRM",
        {"guid": guid, "since": (T0 + timedelta(hours=1)).isoformat(), "events": 3},
    )
    with database.write() as session:
        # Replaying again: the same deliveries, none added.
        assert endpoints.replay(session, guid, T0, actor="cli") == 4
        assert len(session.scalars(select(WebhookDelivery.id)).all()) == 4
        with pytest.raises(HubError) as caught:
            endpoints.replay(session, guid, T0.replace(tzinfo=None), actor="cli")
        assert caught.value.code == "invalid_since"
        with pytest.raises(NotFound):
            deliveries.replay(session, 10**6, T0, actor="cli")


def test_replay_follows_the_activity_filters(database: Database) -> None:
    factories.tracking_channel(database, "Web")
    with database.write() as session:
        web = channels.get_channel(session, "Web").id
        guid = endpoints.create_endpoint(
            session, "Visits", URL, events=["activity.stored"], activity_types=["pagevisit"]
        ).endpoint.guid
        for kind, channel in (("pagevisit", web), ("click", web), ("pagevisit", None)):
            outbox.emit(
                session,
                outbox.ACTIVITY_STORED,
                contact_id=1,
                data={"activity": {"type": kind, "channelId": channel}},
                moment=T0,
            )
    with database.write() as session:
        assert endpoints.replay(session, guid, T0, actor="cli") == 2
        endpoints.update_endpoint(session, guid, channels=["Web"])
        assert endpoints.replay(session, guid, T0, actor="cli") == 1


def test_parse_since_takes_dates_and_times_in_utc() -> None:
    assert endpoints.parse_since("2026-03-01") == T0.replace(hour=0)
    assert endpoints.parse_since("2026-03-01T09:00") == T0
    assert endpoints.parse_since("2026-03-01T10:00+01:00") == T0
    for text in ("", "yesterday", "2026-02-30"):
        with pytest.raises(HubError) as caught:
            endpoints.parse_since(text)
        assert (caught.value.code, caught.value.field) == ("invalid_since", "since")


def test_the_secret_is_kept_for_signing(database: Database) -> None:
    with database.write() as session:
        new = endpoints.create_endpoint(session, "CRM", URL)
    with database.read() as session:
        [stored] = session.scalars(select(WebhookEndpoint)).all()
        assert stored.secret == new.secret
