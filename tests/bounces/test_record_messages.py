"""Bounce messages through the parser and the processor into the store, on both databases."""

from __future__ import annotations

from sqlalchemy import select

from contacthub.bounces.dsn import record_messages
from contacthub.bounces.processor import FeedbackReport
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.models import DeliveryEvent, FeedbackRejection, Suppression
from tests.bounces.support import SIGNER, sent_issues
from tests.bounces.test_dsn import fixture

ANNA = "anna@example.org"


def test_a_batch_of_messages_is_recorded_rejected_and_deduplicated(
    database: Database, settings: Settings
) -> None:
    (sent,) = sent_issues(database, [ANNA, "bob@example.org"])
    anna = sent.deliveries[ANNA]
    messages = [
        fixture("postfix_hard.eml", anna),
        fixture("postfix_hard.eml", anna),  # the same DSN twice: one event
        fixture("arf_abuse.eml", anna),
        fixture("vacation.eml", anna),
        fixture("postfix_hard.eml", 10**9),  # a delivery this hub never made
        b"",
    ]
    with database.write() as session:
        report = record_messages(session, messages, source="imap", signer=SIGNER, settings=settings)
    assert report == FeedbackReport(recorded=2, duplicates=1, rejected=3, suppressed=1)
    with database.read() as session:
        kinds = session.scalars(select(DeliveryEvent.kind).order_by(DeliveryEvent.id)).all()
        reasons = session.scalars(select(FeedbackRejection.reason)).all()
        suppressed = session.execute(select(Suppression.email, Suppression.reason)).all()
    assert kinds == ["hard_bounce", "complaint"]
    assert sorted(reasons) == ["malformed", "not_a_bounce", "unknown_delivery"]
    assert [tuple(row) for row in suppressed] == [(ANNA, "hard_bounce")]
