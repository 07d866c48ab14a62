"""Issue statistics from bounce reports and webhooks: delivered, bounced (hard, soft),
complaints, and copies skipped for a suppression; on SQLite and PostgreSQL, through the service,
the management API, the CLI and the admin page.

The feedback processor is tested on its own; here its rows (delivery_events) are written
directly, as it stores them.
"""

from __future__ import annotations

import uuid
from itertools import count
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from contacthub.email import service, stats
from contacthub.storage.database import Database
from contacthub.storage.models import Delivery, DeliveryEvent, EmailIssue
from contacthub.users import service as users
from tests.admin.conftest import EMAIL, PASSWORD, sign_in
from tests.cli.conftest import cli_on
from tests.email.tracking_support import ANNA, BOB, NEWSLETTER, sent_issue

EVE = "eve@example.com"
FRANK = "frank@example.com"
GINA = "gina@example.com"
HUGO = "hugo@example.com"
EVENT_IDS = count(1)


def _issue(session: Session, guid: str) -> EmailIssue:
    return session.scalars(select(EmailIssue).where(EmailIssue.guid == uuid.UUID(guid))).one()


def add_delivery(database: Database, guid: str, email: str, status: str, error: str | None) -> None:
    with database.write() as session:
        subscriber = service.add_subscriber(session, NEWSLETTER, email)
        session.add(
            Delivery(
                issue_id=_issue(session, guid).id,
                subscriber_id=subscriber.id,
                email=email,
                status=status,
                error=error,
            )
        )


def event(database: Database, guid: str, email: str, kind: str, source: str = "imap") -> None:
    with database.write() as session:
        issue = _issue(session, guid)
        delivery = session.scalars(
            select(Delivery).where(Delivery.issue_id == issue.id, Delivery.email == email)
        ).one()
        session.add(
            DeliveryEvent(
                delivery_id=delivery.id,
                issue_id=issue.id,
                email=email,
                kind=kind,
                status_code="5.1.1" if kind == "hard_bounce" else "4.2.2",
                diagnostic="",
                source=source,
                event_id=f"event-{next(EVENT_IDS)}",
            )
        )


@pytest.fixture
def issue(database: Database) -> str:
    """Sent to ANNA, BOB, EVE, FRANK, GINA; HUGO and another skipped (one for a suppression)."""
    sent = sent_issue(database)
    for email in (EVE, FRANK, GINA):
        add_delivery(database, sent.guid, email, "sent", None)
    add_delivery(database, sent.guid, HUGO, "skipped", "suppressed: hard_bounce")
    add_delivery(database, sent.guid, "left@example.com", "skipped", "left the group")
    # ANNA: hard bounce (reported twice, by two sources). BOB: soft, then hard: hard only.
    event(database, sent.guid, ANNA, "hard_bounce")
    event(database, sent.guid, ANNA, "hard_bounce", source="ses")
    event(database, sent.guid, BOB, "soft_bounce")
    event(database, sent.guid, BOB, "hard_bounce")
    # EVE: two soft bounces: one bounced copy. FRANK: a complaint (twice) and a delivery.
    event(database, sent.guid, EVE, "soft_bounce")
    event(database, sent.guid, EVE, "soft_bounce")
    event(database, sent.guid, FRANK, "delivered")
    event(database, sent.guid, FRANK, "complaint")
    event(database, sent.guid, FRANK, "complaint", source="ses")
    return sent.guid


EXPECTED = {
    "sent": 5,
    "delivered": 2,  # FRANK and GINA
    "bounced_hard": 2,  # ANNA, BOB
    "bounced_soft": 1,  # EVE
    "complaints": 1,  # FRANK, once
    "skipped_suppressed": 1,  # HUGO
    "bounce_rate": 3 / 5,
    "complaint_rate": 1 / 5,
}


def test_each_copy_counts_once(database: Database, issue: str) -> None:
    with database.read() as session:
        figures = stats.issue_stats(session, issue).as_dict()
    assert {name: figures[name] for name in EXPECTED} == EXPECTED
    assert figures["deliveries"]["skipped"] == 2


def test_an_issue_without_feedback_has_everything_sent_delivered(database: Database) -> None:
    sent = sent_issue(database)
    with database.read() as session:
        figures = stats.issue_stats(session, sent.guid)
    assert (figures.delivered, figures.bounced, figures.deliverability.complaints) == (2, 0, 0)
    assert figures.bounce_rate == 0.0


def test_the_api_cli_and_admin_show_them(
    database: Database,
    database_url: str,
    issue: str,
    client: TestClient,
    tmp_path: Path,
) -> None:
    with database.write() as session:
        user = users.create_user(session, EMAIL, PASSWORD)
        token = users.create_token(session, user, "tests").plaintext
    answer = client.get(
        f"/api/issues/{issue}/stats", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert {name: answer[name] for name in EXPECTED} == EXPECTED

    cli = cli_on(database_url, tmp_path, COLUMNS="200")
    shown = cli.json("issue", "stats", issue)
    assert {name: shown[name] for name in EXPECTED} == EXPECTED
    table = cli.ok("issue", "stats", issue)
    assert "bounced (hard)" in table
    assert "skipped (suppressed)" in table

    sign_in(client)
    page = client.get(f"/admin/issues/{issue}/stats")
    assert page.status_code == 200
    cards = page.text.split('id="deliverability"', 1)[1].split('<div class="grid two">', 1)[0]
    assert 'Delivered</div><div class="value">2</div>' in cards
    assert "2 hard, 1 soft" in cards
    assert 'Complaints</div><div class="value">1</div>' in cards
    assert 'Skipped: suppressed</div><div class="value">1</div>' in cards
