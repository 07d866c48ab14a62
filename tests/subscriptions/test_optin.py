"""Double opt-in through the public form and JSON API, with a real SMTP server on loopback."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from contacthub import app as app_module
from contacthub.app import create_app
from contacthub.consents import service as consents
from contacthub.email import sending, service, signing
from contacthub.email.hashing import Purpose
from contacthub.email.sender import SmtpMailer
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.models import ConsentAgreement, ConsentRevision, Subscriber
from contacthub.storage.types import utcnow
from contacthub.subscriptions import optin
from tests.email.smtp_server import HOST, SmtpServer, smtp_server
from tests.races import overlapping
from tests.subscriptions.support import (
    CONSENT,
    GERMAN_TEXT,
    HUMAN_AGENT,
    NEWS,
    SHORT_TEXT,
    confirm_link,
    make_newsletter,
)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def hub_settings(settings: Settings, smtp: SmtpServer) -> Settings:
    return settings.model_copy(update={"smtp_host": HOST, "smtp_port": smtp.port})


@pytest.fixture
def hub(hub_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(hub_settings), headers={"user-agent": HUMAN_AGENT}) as client:
        yield client


def subscriber(database: Database, email: str) -> Subscriber | None:
    with database.read() as session:
        found = session.scalar(select(Subscriber).where(Subscriber.email == email))
        session.expunge_all()
        return found


def form_token(hub: TestClient, guid: str) -> str:
    page = hub.get(f"/subscribe/{guid}")
    assert page.status_code == 200
    found = re.search(r'name="token" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def test_the_form_sends_one_confirmation_and_its_link_confirms_with_evidence(
    hub: TestClient, database: Database, smtp: SmtpServer
) -> None:
    guid = make_newsletter(database)
    page = hub.get(f"/subscribe/{guid}")
    assert SHORT_TEXT in page.text  # the person sees what they agree to
    assert subscriber(database, "ann@example.com") is None  # a GET changes nothing
    token = form_token(hub, guid)
    sent = hub.post(
        f"/subscribe/{guid}", data={"email": "Ann@Example.com", "first_name": "Ann", "token": token}
    )
    assert sent.status_code == 200
    assert "Check your inbox" in sent.text
    pending = subscriber(database, "ann@example.com")
    assert pending is not None
    assert pending.status == "unconfirmed"
    assert pending.confirmation_sent_at is not None
    (message,) = smtp.messages_to("ann@example.com")
    assert SHORT_TEXT in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    # Asking again at once sends nothing more (the per-address limit) and answers the same.
    again = hub.post(f"/subscribe/{guid}", data={"email": "ann@example.com", "token": token})
    assert "Check your inbox" in again.text
    assert len(smtp.messages_to("ann@example.com")) == 1

    # Sending an issue now reaches nobody: unconfirmed subscribers are never mailed.
    settings = hub.app.state.hub.settings  # type: ignore[attr-defined]
    with database.write() as session:
        issue = str(service.create_issue(session, NEWS, "Hi", "<p>Hi</p>").guid)
    with SmtpMailer(HOST, settings.smtp_port, timeout=10) as mailer:
        report = sending.send_issue(database, issue, mailer, signer=signing.link_signer(settings))
    assert report.sent == 0

    confirmed = hub.get(confirm_link(message), headers={"x-forwarded-for": "203.0.113.9"})
    assert confirmed.status_code == 200
    assert "Subscription confirmed" in confirmed.text
    done = subscriber(database, "ann@example.com")
    assert done is not None
    assert done.status == "subscribed"
    assert done.confirmed_at is not None
    with database.read() as session:
        agreement = session.get_one(ConsentAgreement, done.confirmation_agreement_id)
        revision = session.get_one(ConsentRevision, agreement.revision_id)
        assert agreement.agreed
        assert revision.number == 2  # the revision the email showed (en and de texts)
        assert agreement.user_agent == HUMAN_AGENT
        assert agreement.ip == "testclient"  # the peer: its X-Forwarded-For is not trusted
        evidence = json.loads(agreement.evidence or "{}")
        assert evidence["method"] == "double_opt_in"
        assert evidence["short_text"] == SHORT_TEXT
        assert evidence["email"] == "ann@example.com"

    # The link again: already confirmed, nothing new stored.
    twice = hub.get(confirm_link(message))
    assert "Already confirmed" in twice.text
    with database.read() as session:
        assert len(session.scalars(select(ConsentAgreement)).all()) == 1


def test_a_link_scanner_is_asked_to_press_the_button_and_confirms_nothing(
    hub: TestClient, database: Database, smtp: SmtpServer
) -> None:
    guid = make_newsletter(database)
    answer = hub.post(f"/subscribe/{guid}", json={"email": "bob@example.com"})
    assert answer.status_code == 202
    assert answer.json()["status"] == "pending_confirmation"
    link = confirm_link(smtp.messages_to("bob@example.com")[0])
    for headers in ({"user-agent": "Mimecast Safe Links"}, {"user-agent": "python-httpx/0.27"}):
        scanned = hub.get(link, headers=headers)
        assert scanned.status_code == 200
        assert "Confirm your subscription" in scanned.text
    assert hub.head(link).status_code == 200
    pending = subscriber(database, "bob@example.com")
    assert pending is not None
    assert pending.status == "unconfirmed"
    pressed = hub.post(link, data={"confirm": "yes"}, headers={"user-agent": "Mimecast"})
    assert "Subscription confirmed" in pressed.text
    confirmed = subscriber(database, "bob@example.com")
    assert confirmed is not None
    assert confirmed.status == "subscribed"


def test_the_email_speaks_the_subscribers_language(
    hub: TestClient, database: Database, smtp: SmtpServer
) -> None:
    guid = make_newsletter(database)
    answer = hub.post(f"/subscribe/{guid}", json={"email": "eva@example.com", "language": "de-AT"})
    assert answer.status_code == 202
    (message,) = smtp.messages_to("eva@example.com")
    assert GERMAN_TEXT in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    hub.get(confirm_link(message))
    done = subscriber(database, "eva@example.com")
    assert done is not None
    with database.read() as session:
        agreement = session.get_one(ConsentAgreement, done.confirmation_agreement_id)
        assert json.loads(agreement.evidence or "{}")["short_text"] == GERMAN_TEXT


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"email": "not an address"}, 400, "invalid_email"),
        ({}, 400, "invalid_email"),
        ({"email": "x@example.com", "first_name": "a" * 101}, 400, "invalid_name"),
        ({"email": 5}, 400, "invalid_input"),
    ],
)
def test_bad_json_gets_a_clear_error(
    hub: TestClient, database: Database, body: dict[str, object], status: int, code: str
) -> None:
    guid = make_newsletter(database)
    answer = hub.post(f"/subscribe/{guid}", json=body)
    assert answer.status_code == status
    assert answer.json()["code"] == code


def test_unknown_newsletters_bad_bodies_and_media_types_are_refused(
    hub: TestClient, database: Database
) -> None:
    guid = make_newsletter(database)
    unknown = hub.post("/subscribe/7d3f5a52-0000-4000-8000-000000000000", json={"email": "a@b.co"})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_newsletter")
    broken = hub.post(
        f"/subscribe/{guid}", content=b"{", headers={"content-type": "application/json"}
    )
    assert (broken.status_code, broken.json()["code"]) == (400, "invalid_json")
    xml = hub.post(f"/subscribe/{guid}", content=b"<a/>", headers={"content-type": "text/xml"})
    assert (xml.status_code, xml.json()["code"]) == (415, "unsupported_media_type")
    assert hub.get("/subscribe/not-a-guid").status_code == 404


def test_a_form_post_without_the_forms_token_changes_nothing(
    hub: TestClient, database: Database, smtp: SmtpServer
) -> None:
    guid = make_newsletter(database)
    refused = hub.post(f"/subscribe/{guid}", data={"email": "eve@example.com"})
    assert refused.status_code == 400
    assert "out of date" in refused.text
    forged = hub.post(f"/subscribe/{guid}", data={"email": "eve@example.com", "token": "1.ab"})
    assert forged.status_code == 400
    assert subscriber(database, "eve@example.com") is None
    assert smtp.received == []


def test_without_double_opt_in_the_form_subscribes_at_once(
    hub: TestClient, database: Database, smtp: SmtpServer
) -> None:
    guid = make_newsletter(database, double_opt_in=False)
    answer = hub.post(
        f"/subscribe/{guid}", data={"email": "dan@example.com", "token": form_token(hub, guid)}
    )
    assert "You are subscribed" in answer.text
    done = subscriber(database, "dan@example.com")
    assert done is not None
    assert done.status == "subscribed"
    assert smtp.received == []


@pytest.mark.parametrize("double_opt_in", [False, True])
def test_two_subscriptions_of_a_new_address_at_once_answer_as_one_after_the_other(
    database: Database, settings: Settings, double_opt_in: bool
) -> None:
    guid = make_newsletter(database, double_opt_in=double_opt_in)
    signer = signing.link_signer(settings)

    def subscribe(session: Session) -> optin.Subscription:
        newsletter = optin.public_newsletter(session, guid)
        return optin.subscribe(
            session, newsletter, "New@example.com", "New", None, signer=signer, languages=[]
        )

    first, second = overlapping(database, subscribe)

    # No 500 (IntegrityError): both get the public answer, and one confirmation email is made.
    assert second.error is None, second.error
    status = "pending_confirmation" if double_opt_in else "subscribed"
    assert (first.value.status, second.value.status) == (status, status)
    assert (first.value.confirmation is not None) is double_opt_in
    assert second.value.confirmation is None
    with database.read() as session:
        rows = session.scalars(select(Subscriber.status)).all()
    assert rows == ["unconfirmed" if double_opt_in else "subscribed"]


def test_a_tampered_or_expired_link_confirms_nothing(
    hub: TestClient, database: Database, smtp: SmtpServer, hub_settings: Settings
) -> None:
    guid = make_newsletter(database)
    hub.post(f"/subscribe/{guid}", json={"email": "fay@example.com"})
    link = confirm_link(smtp.messages_to("fay@example.com")[0])
    revision = re.search(r"revision=(\d+)", link).group(1)  # type: ignore[union-attr]
    tampered = hub.get(link.replace(f"revision={revision}", f"revision={int(revision) - 1}"))
    assert tampered.status_code == 400
    other = hub.get(link.replace("fay%40", "fax%40").replace("fay@", "fax@"))
    assert other.status_code == 400
    sent = int(re.search(r"sent=(\d+)", link).group(1))  # type: ignore[union-attr]
    hours = hub_settings.unconfirmed_subscriber_hours
    old = optin.ConfirmLink(
        guid, "fay@example.com", "2", "en", str(sent - int(hours * 3600) - 60), None
    )
    signer = signing.link_signer(hub_settings)
    digest = signer.sign_parts(Purpose.CONFIRM, guid, *old.parts())
    expired = hub.get(re.sub(r"sent=\d+&hash=\w+", f"sent={old.sent}&hash={digest}", link))
    assert expired.status_code == 410
    pending = subscriber(database, "fay@example.com")
    assert pending is not None
    assert pending.status == "unconfirmed"


def test_unconfirmed_subscriptions_expire(database: Database, hub_settings: Settings) -> None:
    make_newsletter(database)
    with database.write() as session:
        old = service.add_subscriber(session, NEWS, "old@example.com", confirmed=False)
        came_back = service.add_subscriber(session, NEWS, "back@example.com")
        service.unsubscribe(session, came_back)
        service.add_subscriber(session, NEWS, "back@example.com", confirmed=False)
        service.add_subscriber(session, NEWS, "new@example.com", confirmed=False)
        long_ago = utcnow() - timedelta(hours=hub_settings.unconfirmed_subscriber_hours + 1)
        session.execute(
            update(Subscriber)
            .where(Subscriber.email.in_(["old@example.com", "back@example.com"]))
            .values(created_at=long_ago, confirmation_sent_at=long_ago)
        )
        assert old.status == "unconfirmed"
    assert optin.expire_job(database, hub_settings.unconfirmed_subscriber_hours) == 2
    assert subscriber(database, "old@example.com") is None
    back = subscriber(database, "back@example.com")
    assert back is not None
    assert back.status == "unsubscribed"
    kept = subscriber(database, "new@example.com")
    assert kept is not None
    assert kept.status == "unconfirmed"


def test_the_hub_runs_the_expiry_job(
    database: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_newsletter(database)
    with database.write() as session:
        service.add_subscriber(session, NEWS, "old@example.com", confirmed=False)
        long_ago = utcnow() - timedelta(hours=settings.unconfirmed_subscriber_hours + 1)
        session.execute(update(Subscriber).values(created_at=long_ago))
    monkeypatch.setattr(app_module, "EXPIRE_UNCONFIRMED_INTERVAL", 0.05)
    with TestClient(create_app(settings)):
        deadline = time.monotonic() + 10
        while subscriber(database, "old@example.com") is not None:
            assert time.monotonic() < deadline, "the job did not expire the subscription"
            time.sleep(0.05)


def test_the_agreement_names_the_revision_the_email_showed(
    hub: TestClient, database: Database, smtp: SmtpServer
) -> None:
    guid = make_newsletter(database)
    hub.post(f"/subscribe/{guid}", json={"email": "gus@example.com"})
    with database.write() as session:  # the text changes before the link is followed
        consents.set_text(
            session, CONSENT, language="en", short_text="New text.", full_text="<p>New.</p>"
        )
    hub.get(confirm_link(smtp.messages_to("gus@example.com")[0]))
    done = subscriber(database, "gus@example.com")
    assert done is not None
    with database.read() as session:
        agreement = session.get_one(ConsentAgreement, done.confirmation_agreement_id)
        assert session.get_one(ConsentRevision, agreement.revision_id).number == 2  # not 3
        assert json.loads(agreement.evidence or "{}")["short_text"] == SHORT_TEXT
