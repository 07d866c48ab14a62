"""Every webhook event type, from every entry point that makes it, on SQLite and PostgreSQL.

An endpoint row wanting every event ("*") is inserted directly (the endpoints service is built
elsewhere); each change is then driven through the tracking API, the admin (signed in, with
its CSRF token), the management API, the CLI (Typer's runner), the email tracking handlers
and the provider webhooks, and the outbox rows it wrote are read back: their type, contact
and payload. Without an endpoint nothing is written; a change that rolls back writes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from starlette.testclient import TestClient

from contacthub.app import create_app
from contacthub.bounces import verp
from contacthub.contacts import service as contacts
from contacthub.email import service as email
from contacthub.email import tracking
from contacthub.email.compose import CLICK_PATH, OPEN_PATH, UNSUBSCRIBE_PATH, tracking_url
from contacthub.email.hashing import LinkSigner, Purpose
from contacthub.email.machine import HitKind
from contacthub.email.signing import link_signer
from contacthub.events import outbox
from contacthub.groups import membership
from contacthub.groups import service as groups
from contacthub.groups.queue import enqueue_contacts
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.models import Delivery, OutboxEvent, WebhookDelivery
from contacthub.storage.types import utcnow
from contacthub.users import service as users
from tests import factories
from tests.admin.conftest import sign_in
from tests.bounces.webhooks.support import basic_auth
from tests.cli.conftest import Cli, cli_on
from tests.email.smtp_server import HOST, SmtpServer, smtp_server
from tests.email.tracking_support import ANNA, BOB, SALE, SentIssue, params, sent_issue, url
from tests.events.sources_support import (
    contact_guid,
    contact_id,
    documented,
    endpoint,
    events,
    only,
    types_of,
)
from tests.subscriptions.support import (
    BASE,
    CONSENT,
    HUMAN_AGENT,
    NEWS,
    confirm_link,
    make_newsletter,
    path_of,
)
from tests.tracking.support import API, post_activities, results_of

SIGNER = LinkSigner(["test-secret"])  # the `settings` fixture's secret_key
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36"
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery staple"


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The hub's settings with the webhook dispatcher held back for an hour: these tests read
    the outbox and the delivery rows they write themselves, and a dispatcher run in between
    would add deliveries of its own (events/test_dispatcher.py tests it)."""
    return Settings(
        database_url=database_url,
        secret_key="test-secret",  # type: ignore[arg-type]
        webhook_dispatch_interval=3600.0,
    )


def newsletter(db: Database, name: str = "Weekly") -> None:
    with db.write() as session:
        email.create_newsletter(session, name, "The Team", "news@example.com", "https://ex.com")


def signed_in(client: TestClient, db: Database) -> str:
    """Sign an admin in through the form; the session's CSRF token."""
    with db.write() as session:
        users.create_user(session, ADMIN_EMAIL, ADMIN_PASSWORD, "Ada Admin")
    return sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)


def api_headers(db: Database) -> dict[str, str]:
    with db.write() as session:
        user = users.create_user(session, "api@example.com", "a long enough password")
        token = users.create_token(session, user, "tests").plaintext
    return {"Authorization": f"Bearer {token}"}


def form(client: TestClient, csrf: str, path: str, **data: str) -> Any:
    answer = client.post(path, data={**data, "csrf_token": csrf}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return answer


# -- the tracking API ----------------------------------------------------------------------------


def test_tracking_api_contacts_data_input_and_consents(
    client: TestClient, database: Database
) -> None:
    endpoint(database)
    setup = factories.tracking_channel(database)
    factories.consent(database, "TrackingConsent")

    created = client.post(f"{API}/contacts", headers=setup.headers)
    guid = created.json()["contact"]
    event = only(events(database, outbox.CONTACT_CREATED))
    assert (event.contact_id, event.data) == (
        contact_id(database, guid),
        {"contact": guid, "fields": {}},
    )

    data_input = {
        "type": "datainput",
        "value": "Form",
        "contactFields": {"ContactEmail": "luke@example.com", "contactFirstName": "Luke"},
    }
    assert results_of(post_activities(client, setup, guid, [data_input])) == [{"status": 202}]
    updated = only(events(database, outbox.CONTACT_UPDATED))
    assert updated.contact_id == contact_id(database, guid)
    assert updated.data == {
        "contact": guid,
        "changed": ["ContactEmail", "ContactFirstName"],
        "fields": {"ContactEmail": "luke@example.com", "ContactFirstName": "Luke"},
        "source": "data_input",
    }
    stored = only(events(database, outbox.ACTIVITY_STORED))
    assert stored.data["activity"]["type"] == "datainput"

    # The same values again change nothing: no contact.updated.
    post_activities(client, setup, guid, [data_input])
    assert len(events(database, outbox.CONTACT_UPDATED)) == 1

    # Another address: the data belongs to a new contact, which is created with it.
    other = {**data_input, "contactFields": {"ContactEmail": "leia@example.com"}}
    result = results_of(post_activities(client, setup, guid, [other]))[0]
    new_guid = result["contact"]
    new = events(database, outbox.CONTACT_CREATED)[-1]
    assert (new.contact_id, new.data) == (
        contact_id(database, new_guid),
        {"contact": new_guid, "fields": {"ContactEmail": "leia@example.com"}},
    )

    path = f"{API}/contacts/{guid}/consents/TrackingConsent"
    assert client.post(path, headers=setup.headers, json={"agree": True}).status_code == 200
    assert client.post(path, headers=setup.headers, json={"agree": False}).status_code == 200
    agreed, revoked = events(database, outbox.CONSENT_AGREED, outbox.CONSENT_REVOKED)
    assert (agreed.type, revoked.type) == (outbox.CONSENT_AGREED, outbox.CONSENT_REVOKED)
    expected = {
        "contact": guid,
        "consent": "TrackingConsent",
        "revision": 1,
        "channel": setup.channel_guid,
        "source": "tracking",
    }
    assert agreed.data == revoked.data == expected
    assert agreed.contact_id == revoked.contact_id == contact_id(database, guid)


def test_without_an_endpoint_nothing_is_written(client: TestClient, database: Database) -> None:
    endpoint(database, enabled=False)  # a disabled endpoint wants nothing
    endpoint(database, ("email.bounced",))  # nor does one that wants other types
    setup = factories.tracking_channel(database)
    factories.consent(database, "TrackingConsent")
    guid = client.post(f"{API}/contacts", headers=setup.headers).json()["contact"]
    fields = {"ContactEmail": "luke@example.com"}
    post_activities(
        client, setup, guid, [{"type": "datainput", "value": "F", "contactFields": fields}]
    )
    path = f"{API}/contacts/{guid}/consents/TrackingConsent"
    client.post(path, headers=setup.headers, json={"agree": True})
    sent = sent_issue(database)
    pixel = url(OPEN_PATH, params(SIGNER, Purpose.OPEN, sent.guid, ANNA))
    assert client.get(pixel, headers={"User-Agent": BROWSER}).status_code == 200
    with database.write() as session:
        groups.create_group(session, "VIP", kind="static")
        groups.add_members(session, "VIP", [ANNA])
    assert events(database) == []


def test_a_change_that_rolls_back_writes_no_event(database: Database) -> None:
    endpoint(database)

    class Undone(Exception):
        pass

    def fails_after_the_change() -> None:
        with database.write() as session:
            contacts.create_contact(session, email="gone@example.com")
            assert session.scalar(select(func.count()).select_from(OutboxEvent)) == 1
            raise Undone

    with pytest.raises(Undone):
        fails_after_the_change()
    assert events(database) == []
    factories.contact(database)
    assert types_of(database) == [outbox.CONTACT_CREATED]


# -- the admin -----------------------------------------------------------------------------------


def test_admin_subscribers_groups_and_erasure(client: TestClient, database: Database) -> None:
    endpoint(database)
    csrf = signed_in(client, database)
    newsletter(database)
    # An anonymous contact that later gets the address: the subscription fills its name.
    known = factories.contact_with(database, email=BOB)

    form(client, csrf, "/admin/newsletters/Weekly/subscribers", email=ANNA, first_name="Anna")
    anna = contact_guid(database, ANNA)
    created = only(events(database, outbox.CONTACT_CREATED)[1:])
    assert created.data == {
        "contact": anna,
        "fields": {"ContactEmail": ANNA, "ContactFirstName": "Anna"},
    }
    form(client, csrf, "/admin/newsletters/Weekly/subscribers", email=BOB, first_name="Bob")
    updated = only(events(database, outbox.CONTACT_UPDATED))
    assert updated.data == {
        "contact": known,
        "changed": ["ContactFirstName"],
        "fields": {"ContactFirstName": "Bob"},
        "source": "subscription",
    }

    form(client, csrf, "/admin/newsletters/Weekly/unsubscribe", email=ANNA)
    left = only(events(database, outbox.EMAIL_UNSUBSCRIBED))
    assert left.contact_id == contact_id(database, anna)
    assert left.data["at"]
    assert {k: v for k, v in left.data.items() if k != "at"} == {
        "contact": anna,
        "email": ANNA,
        "newsletter": "Weekly",
        "issue": None,
        "source": "operator",
    }

    with database.write() as session:
        group = groups.create_group(session, "VIP", kind="static")
        path = f"/admin/groups/{group.guid}"
        group_guid = str(group.guid)
    form(client, csrf, f"{path}/members", contacts=f"{ANNA}\n{known}")
    entered = events(database, outbox.GROUP_ENTERED)
    assert sorted(e.data["contact"] for e in entered) == sorted([anna, known])
    assert entered[0].data["group"] == {"guid": group_guid, "name": "VIP"}
    assert entered[0].data["reason"] == f"added by {ADMIN_EMAIL}"
    form(client, csrf, f"{path}/members/remove", contacts=known)
    gone = only(events(database, outbox.GROUP_LEFT))
    assert (gone.contact_id, gone.data["contact"]) == (contact_id(database, known), known)
    assert gone.data["reason"] == f"removed by {ADMIN_EMAIL}"

    # Erasure: the contact's events and their deliveries go, then contact.erased is written.
    anna_id = contact_id(database, anna)
    endpoint_id = endpoint(database)
    with database.write() as session:
        for row in session.scalars(select(OutboxEvent)).all():
            session.add(
                WebhookDelivery(endpoint_id=endpoint_id, event_id=row.id, contact_id=row.contact_id)
            )
    before = events(database)
    assert any(e.contact_id == anna_id for e in before)
    form(client, csrf, f"/admin/contacts/{anna}/erase", confirm=anna)
    after = events(database)
    erased = only([e for e in after if e.contact_id == anna_id])
    assert (erased.type, erased.data) == (outbox.CONTACT_ERASED, {"contact": anna})
    assert [e for e in after if e.contact_id != anna_id] == [
        e for e in before if e.contact_id != anna_id
    ]
    with database.read() as session:
        deliveries = session.execute(select(WebhookDelivery.contact_id)).scalars().all()
    assert anna_id not in deliveries
    assert len(deliveries) == len([e for e in before if e.contact_id != anna_id])


# -- the management API --------------------------------------------------------------------------


def test_api_subscribers_import_groups_and_erasure(client: TestClient, database: Database) -> None:
    endpoint(database)
    headers = api_headers(database)
    newsletter(database)
    answer = client.post(
        "/api/newsletters/Weekly/subscribers",
        json={"email": ANNA, "first_name": "Anna"},
        headers=headers,
    )
    assert answer.status_code == 201, answer.text
    anna = contact_guid(database, ANNA)
    assert only(events(database, outbox.CONTACT_CREATED)).data["contact"] == anna

    known = factories.contact_with(database, email=BOB)
    body = "email,first_name,last_name\nbob@example.com,Bob,Builder\ncarl@example.com,Carl,\n"
    answer = client.post(
        "/api/newsletters/Weekly/subscribers/import",
        content=body.encode(),
        headers={**headers, "Content-Type": "text/csv"},
    )
    assert answer.status_code == 200, answer.text
    carl = contact_guid(database, "carl@example.com")
    created = events(database, outbox.CONTACT_CREATED)
    assert [e.data for e in created[2:]] == [
        {
            "contact": carl,
            "fields": {"ContactEmail": "carl@example.com", "ContactFirstName": "Carl"},
        }
    ]
    assert only(events(database, outbox.CONTACT_UPDATED)).data == {
        "contact": known,
        "changed": ["ContactFirstName", "ContactLastName"],
        "fields": {"ContactFirstName": "Bob", "ContactLastName": "Builder"},
        "source": "import",
    }

    answer = client.post(f"/api/newsletters/Weekly/subscribers/{ANNA}/unsubscribe", headers=headers)
    assert answer.status_code == 200, answer.text
    assert only(events(database, outbox.EMAIL_UNSUBSCRIBED)).data["source"] == "operator"

    with database.write() as session:
        groups.create_group(session, "VIP", kind="static")
    answer = client.post("/api/groups/VIP/members", json={"contacts": [carl]}, headers=headers)
    assert answer.status_code == 200, answer.text
    assert only(events(database, outbox.GROUP_ENTERED)).data["contact"] == carl
    answer = client.request(
        "DELETE", "/api/groups/VIP/members", json={"contacts": [carl]}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    assert only(events(database, outbox.GROUP_LEFT)).data["contact"] == carl

    carl_id = contact_id(database, carl)
    assert client.delete(f"/api/contacts/{carl}", headers=headers).status_code == 200
    of_carl = [e for e in events(database) if e.contact_id == carl_id]
    assert [(e.type, e.data) for e in of_carl] == [(outbox.CONTACT_ERASED, {"contact": carl})]


# -- the CLI -------------------------------------------------------------------------------------


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def cli(database_url: str, tmp_path: Path, smtp: SmtpServer) -> Cli:
    return cli_on(
        database_url,
        tmp_path,
        COLUMNS="200",
        CONTACTHUB_SMTP_PORT=str(smtp.port),
        CONTACTHUB_SECRET_KEY="test-secret",
    )


def test_cli_subscribers_groups_send_and_erasure(
    cli: Cli, database: Database, smtp: SmtpServer, tmp_path: Path
) -> None:
    endpoint(database)
    newsletter(database)
    cli.ok("subscriber", "add", ANNA, "--newsletter", "Weekly", "--first-name", "Anna")
    anna = contact_guid(database, ANNA)
    assert only(events(database, outbox.CONTACT_CREATED)).data == {
        "contact": anna,
        "fields": {"ContactEmail": ANNA, "ContactFirstName": "Anna"},
    }
    people = tmp_path / "people.csv"
    people.write_text("Email,FirstName\nbob@example.com,Bob\n", encoding="utf-8")
    cli.ok("subscriber", "import", str(people), "--newsletter", "Weekly")
    bob = contact_guid(database, BOB)
    assert events(database, outbox.CONTACT_CREATED)[-1].data["contact"] == bob

    with database.write() as session:
        groups.create_group(session, "VIP", kind="static")
    cli.ok("group", "add", "VIP", ANNA, BOB)
    assert sorted(e.data["contact"] for e in events(database, outbox.GROUP_ENTERED)) == sorted(
        [anna, bob]
    )
    cli.ok("group", "remove", "VIP", BOB)
    assert only(events(database, outbox.GROUP_LEFT)).data["contact"] == bob

    with database.write() as session:
        issue = email.create_issue(session, "Weekly", "Spring news", "<p>Hi</p>")
        issue_guid = str(issue.guid)
    report = cli.json("issue", "send", issue_guid)
    assert report["sent"] == 2
    sent = events(database, outbox.EMAIL_SENT)
    assert sorted(e.data["email"] for e in sent) == [ANNA, BOB]
    first = next(e for e in sent if e.data["email"] == ANNA)
    assert first.contact_id == contact_id(database, anna)
    assert first.data["sentAt"]
    assert isinstance(first.data["delivery"], int)
    assert {k: v for k, v in first.data.items() if k not in ("sentAt", "delivery")} == {
        "contact": anna,
        "email": ANNA,
        "newsletter": "Weekly",
        "issue": issue_guid,
        "subject": "Spring news",
    }
    assert sorted(smtp.recipients()) == [ANNA, BOB]

    bob_id = contact_id(database, bob)
    cli.ok("contact", "erase", bob, "--yes")
    of_bob = [e for e in events(database) if e.contact_id == bob_id]
    assert [(e.type, e.data) for e in of_bob] == [(outbox.CONTACT_ERASED, {"contact": bob})]


# -- email tracking, unsubscribe links and bounces ---------------------------------------------


@pytest.fixture
def sent(database: Database) -> SentIssue:
    return sent_issue(database)


def test_opens_clicks_and_unsubscribe_links(
    client: TestClient, database: Database, sent: SentIssue
) -> None:
    endpoint(database)
    anna_id = sent.contact_ids[ANNA]
    pixel = url(OPEN_PATH, params(SIGNER, Purpose.OPEN, sent.guid, ANNA))
    assert client.get(pixel, headers={"User-Agent": BROWSER}).status_code == 200
    opened = only(events(database, outbox.EMAIL_OPENED))
    assert opened.contact_id == anna_id
    anna = opened.data["contact"]
    assert anna == contact_guid(database, ANNA)
    assert opened.data["at"]
    assert {k: v for k, v in opened.data.items() if k != "at"} == {
        "contact": anna,
        "email": ANNA,
        "newsletter": "Weekly",
        "issue": sent.guid,
        "subject": "Spring news",
        "machine": False,
        "machineReason": None,
    }
    # A human open is an activity too: activity.stored, in the same transaction.
    stored = only(events(database, outbox.ACTIVITY_STORED))
    assert (stored.contact_id, stored.data["activity"]["type"]) == (anna_id, "emailopen")

    link = url(CLICK_PATH, params(SIGNER, Purpose.CLICK, sent.links[SALE], ANNA))
    answer = client.get(link, headers={"User-Agent": BROWSER}, follow_redirects=False)
    assert answer.status_code == 303
    clicked = only(events(database, outbox.EMAIL_CLICKED))
    assert clicked.contact_id == anna_id
    assert clicked.data["link"] == sent.links[SALE]
    assert clicked.data["url"] == answer.headers["location"]
    assert clicked.data["issue"] == sent.guid
    assert [e.data["activity"]["type"] for e in events(database, outbox.ACTIVITY_STORED)] == [
        "emailopen",
        "emailclick",
    ]

    # A machine (a mail proxy) is an event with its verdict, and no activity.
    proxy = (
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    )
    bob_pixel = url(OPEN_PATH, params(SIGNER, Purpose.OPEN, sent.guid, BOB))
    assert client.get(bob_pixel, headers={"User-Agent": proxy}).status_code == 200
    machine = events(database, outbox.EMAIL_OPENED)[-1]
    assert (machine.contact_id, machine.data["machine"]) == (sent.contact_ids[BOB], True)
    assert machine.data["machineReason"]
    assert len(events(database, outbox.ACTIVITY_STORED)) == 2

    unsubscribe = url(UNSUBSCRIBE_PATH, params(SIGNER, Purpose.UNSUBSCRIBE, sent.guid, BOB))
    one_click = {"List-Unsubscribe": "One-Click"}
    assert client.post(unsubscribe, data=one_click).status_code == 200
    left = only(events(database, outbox.EMAIL_UNSUBSCRIBED))
    assert left.contact_id == sent.contact_ids[BOB]
    assert (left.data["issue"], left.data["source"]) == (sent.guid, "link")
    # Again: no change, no event.
    client.post(unsubscribe, data=one_click)
    assert len(events(database, outbox.EMAIL_UNSUBSCRIBED)) == 1


POSTMARK_USER = "postmark"
POSTMARK_PASSWORD = "a long postmark webhook password"


@pytest.fixture
def hub(database_url: str) -> Iterator[TestClient]:
    settings = Settings(
        database_url=database_url,
        secret_key="test-secret",  # type: ignore[arg-type]
        postmark_webhook_username=POSTMARK_USER,
        postmark_webhook_password=POSTMARK_PASSWORD,  # type: ignore[arg-type]
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_bounces_and_complaints_from_a_provider_webhook(
    hub: TestClient, database: Database, sent: SentIssue
) -> None:
    endpoint(database)
    with database.read() as session:
        deliveries = dict(session.execute(select(Delivery.email, Delivery.id)).all())
    records = [
        {
            "RecordType": "Bounce",
            "ID": 1,
            "Type": "HardBounce",
            "MessageID": "00000000-0000-0000-0000-000000000001",
            "Email": ANNA,
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
            "BouncedAt": "2026-12-07T01:33:54Z",
            "Metadata": {"contacthub-delivery": verp.delivery_token(SIGNER, deliveries[ANNA])},
        },
        {
            "RecordType": "SpamComplaint",
            "ID": 2,
            "Type": "SpamComplaint",
            "MessageID": "00000000-0000-0000-0000-000000000002",
            "Email": BOB,
            "BouncedAt": "2026-12-07T01:40:00Z",
            "Metadata": {"contacthub-delivery": verp.delivery_token(SIGNER, deliveries[BOB])},
        },
    ]
    for record in records:
        answer = hub.post(
            "/webhooks/email/postmark",
            content=json.dumps(record).encode(),
            headers={
                "Content-Type": "application/json",
                **basic_auth(POSTMARK_USER, POSTMARK_PASSWORD),
            },
        )
        assert answer.status_code == 200, answer.text
    bounced = only(events(database, outbox.EMAIL_BOUNCED))
    assert bounced.contact_id == sent.contact_ids[ANNA]
    assert bounced.data["contact"] == contact_guid(database, ANNA)
    assert {k: bounced.data[k] for k in ("email", "issue", "bounce", "source", "statusCode")} == {
        "email": ANNA,
        "issue": sent.guid,
        "bounce": "hard",
        "source": "postmark",
        "statusCode": "5.1.1",
    }
    assert bounced.data["delivery"] == deliveries[ANNA]
    complained = only(events(database, outbox.EMAIL_COMPLAINED))
    assert complained.contact_id == sent.contact_ids[BOB]
    assert (complained.data["email"], complained.data["source"]) == (BOB, "postmark")
    assert "bounce" not in complained.data

    # A replayed report is no new event.
    hub.post(
        "/webhooks/email/postmark",
        content=json.dumps(records[0]).encode(),
        headers={
            "Content-Type": "application/json",
            **basic_auth(POSTMARK_USER, POSTMARK_PASSWORD),
        },
    )
    assert len(events(database, outbox.EMAIL_BOUNCED)) == 1


# -- dynamic groups ------------------------------------------------------------------------------


def test_dynamic_groups_enter_and_leave_as_conditions_change(database: Database) -> None:
    endpoint(database)
    luke = factories.contact_with(database, email="luke@example.com", first_name="Luke")
    conditions = {"field": "first_name", "op": "equals", "value": "Luke"}
    with database.write() as session:
        groups.create_group(session, "Lukes", conditions=conditions)
    entered = only(events(database, outbox.GROUP_ENTERED))
    assert entered.data["contact"] == luke
    assert entered.data["reason"].startswith("conditions met")

    # Data input renames him; the live job takes him out.
    with database.write() as session:
        contact = contacts.get_contact(session, luke)
        contacts.apply_data_input(session, contact, {"first_name": "Leia"})
        enqueue_contacts(session, [contact.id])
    membership.refresh(database)
    left = only(events(database, outbox.GROUP_LEFT))
    assert (left.data["contact"], left.data["reason"]) == (luke, membership.LEFT)


# -- the hot paths stay cheap --------------------------------------------------------------------


def statements_of_hits(database: Database, sent: SentIssue, hits: int) -> int:
    """How many statements one tracking batch of `hits` opens runs."""
    signature = SIGNER.sign(Purpose.OPEN, sent.guid, ANNA)
    jobs = [
        tracking.hit_job(
            HitKind.OPEN,
            sent.guid,
            ANNA,
            signature,
            tracking.Visitor(BROWSER, "198.51.100.7", "GET", utcnow()),
        )
        for _ in range(hits)
    ]
    count = 0

    def counted(*_: Any) -> None:
        nonlocal count
        count += 1

    engine = database.write_engine
    event.listen(engine, "before_cursor_execute", counted)
    try:
        with database.write() as session:
            tracking.process_hits(session, SIGNER, jobs)
    finally:
        event.remove(engine, "before_cursor_execute", counted)
    return count


def test_hits_cost_no_query_per_hit_with_or_without_an_endpoint(
    database: Database, sent: SentIssue
) -> None:
    # Anna's first open is an activity; later ones are not: open once first, so that the
    # batches compared differ in their number of hits only (1 and 64: one INSERT each).
    statements_of_hits(database, sent, 1)
    assert statements_of_hits(database, sent, 1) == statements_of_hits(database, sent, 64)
    assert events(database) == []
    endpoint(database)
    one, many = statements_of_hits(database, sent, 1), statements_of_hits(database, sent, 64)
    assert one == many  # with an endpoint: still a fixed number per batch
    assert len(events(database, outbox.EMAIL_OPENED)) == 65


def test_every_event_type_is_documented_with_an_example() -> None:
    assert set(documented()) == set(outbox.EVENT_TYPES)


# -- the public subscription pages ---------------------------------------------------------------


def test_double_opt_in_and_the_preference_page(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    endpoint(database)
    weekly = make_newsletter(database)
    hub_settings = settings.model_copy(update={"smtp_host": HOST, "smtp_port": smtp.port})
    with TestClient(create_app(hub_settings), headers={"user-agent": HUMAN_AGENT}) as hub:
        page = hub.get(f"/subscribe/{weekly}")
        token = re.search(r'name="token" value="([^"]+)"', page.text)
        assert token is not None
        answer = hub.post(
            f"/subscribe/{weekly}", data={"email": ANNA, "first_name": "Anna", "token": token[1]}
        )
        assert answer.status_code == 200
        anna = contact_guid(database, ANNA)
        assert only(events(database, outbox.CONTACT_CREATED)).data["contact"] == anna
        assert events(database, outbox.CONSENT_AGREED) == []  # not before the confirmation

        (message,) = smtp.messages_to(ANNA)
        assert hub.get(confirm_link(message)).status_code == 200
        agreed = only(events(database, outbox.CONSENT_AGREED))
        assert agreed.data == {
            "contact": anna,
            "consent": CONSENT,
            "revision": 2,
            "channel": None,
            "source": "double_opt_in",
        }

        with database.write() as session:
            issue = str(email.create_issue(session, NEWS, "Hi", "<p>Hi</p>").guid)
        preferences = path_of(
            tracking_url(BASE, Purpose.PREFERENCES, issue, ANNA, link_signer(hub_settings))
        )
        # Leave Weekly on the page, then join it again (a double opt-in: a new agreement).
        assert hub.post(preferences, data={"action": "save"}).status_code == 200
        left = only(events(database, outbox.EMAIL_UNSUBSCRIBED))
        assert (left.data["source"], left.data["issue"]) == ("preferences", issue)
        assert hub.post(preferences, data={"newsletter": weekly}).status_code == 200
        again = events(database, outbox.CONSENT_AGREED)[-1]
        assert (again.contact_id, again.data["source"]) == (
            contact_id(database, anna),
            "preferences",
        )
