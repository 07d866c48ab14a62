"""The feedback processor on SQLite and PostgreSQL: resolution, replays, suppression rules."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import func, select

from contacthub.bounces.processor import FeedbackEvent, FeedbackReport, record_feedback, reject
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.models import DeliveryEvent, FeedbackRejection, Suppression
from contacthub.suppressions import service as suppressions
from tests.bounces.support import SentIssue, sent_issues

ANNA = "anna@example.com"
BOB = "bob@example.com"


def _bounce(
    sent: SentIssue, recipient: str, kind: str = "hard_bounce", **fields: object
) -> FeedbackEvent:
    values: dict[str, object] = {
        "kind": kind,
        "source": "imap",
        "event_id": f"<dsn-{sent.deliveries[recipient]}-{kind}@mx.example.net>",
        "delivery_id": sent.deliveries[recipient],
        "email": recipient,
        "status_code": "5.1.1" if kind == "hard_bounce" else "4.2.2",
        "diagnostic": "550 5.1.1 <anna@example.com>: Recipient address rejected",
    }
    values.update(fields)
    return FeedbackEvent(**values)  # type: ignore[arg-type]


def _record(db: Database, settings: Settings, *events: FeedbackEvent) -> FeedbackReport:
    with db.write() as session:
        return record_feedback(session, list(events), settings=settings)


def _suppression(db: Database, email: str) -> Any:
    columns = (Suppression.reason, Suppression.source, Suppression.delivery_id)
    more = (Suppression.created_by, Suppression.evidence)
    with db.read() as session:
        query = select(*columns, *more).where(Suppression.email == email)
        return session.execute(query).one_or_none()


def _count(db: Database, model: type) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_a_hard_bounce_is_recorded_and_suppresses_the_address(
    database: Database, settings: Settings
) -> None:
    (sent,) = sent_issues(database, [ANNA, BOB])
    report = _record(database, settings, _bounce(sent, ANNA))
    assert report == FeedbackReport(recorded=1, suppressed=1)
    suppression = _suppression(database, ANNA)
    assert suppression is not None
    assert suppression.reason == "hard_bounce"
    assert suppression.source == "imap"
    assert suppression.delivery_id == sent.deliveries[ANNA]
    assert suppression.created_by is None
    assert suppression.evidence.startswith("5.1.1 550 5.1.1 <anna@example.com>")
    assert _suppression(database, BOB) is None
    with database.read() as session:
        event = session.execute(
            select(DeliveryEvent.kind, DeliveryEvent.email, DeliveryEvent.status_code)
        ).one()
    assert tuple(event) == ("hard_bounce", ANNA, "5.1.1")


def test_a_replayed_event_is_counted_as_a_duplicate_and_changes_nothing(
    database: Database, settings: Settings
) -> None:
    (sent,) = sent_issues(database, [ANNA])
    first = _bounce(sent, ANNA)
    assert _record(database, settings, first).recorded == 1
    report = _record(database, settings, first, first)
    assert report == FeedbackReport(duplicates=2)
    assert _count(database, DeliveryEvent) == 1
    assert _count(database, Suppression) == 1


def test_the_same_event_id_from_another_source_is_another_event(
    database: Database, settings: Settings
) -> None:
    (sent,) = sent_issues(database, [ANNA])
    event = _bounce(sent, ANNA, kind="delivered")
    report = _record(database, settings, event, replace(event, source="smtp"))
    assert report == FeedbackReport(recorded=2)


def test_unknown_and_forged_deliveries_are_rejected_and_counted(
    database: Database, settings: Settings
) -> None:
    (sent,) = sent_issues(database, [ANNA, BOB])
    missing = _bounce(sent, ANNA, delivery_id=10**9, event_id="a")
    no_reference = _bounce(sent, ANNA, delivery_id=None, event_id="b")
    wrong_guid = _bounce(
        sent,
        ANNA,
        delivery_id=None,
        event_id="c",
        message_id=f"<00000000-0000-0000-0000-000000000000.{sent.deliveries[ANNA]}@example.com>",
    )
    # A recipient can see their own Message-ID: it never condemns someone else's address.
    other_recipient = _bounce(
        sent, ANNA, delivery_id=None, event_id="d", message_id=sent.message_id(BOB)
    )
    report = _record(database, settings, missing, no_reference, wrong_guid, other_recipient)
    assert report == FeedbackReport(rejected=4)
    assert _count(database, DeliveryEvent) == 0
    assert _count(database, Suppression) == 0
    with database.read() as session:
        rejections = session.execute(
            select(FeedbackRejection.reason, FeedbackRejection.source, FeedbackRejection.detail)
        ).all()
    assert {r.reason for r in rejections} == {"unknown_delivery"}
    assert {r.source for r in rejections} == {"imap"}
    assert "anna@example.com" in rejections[0].detail


def test_the_message_id_finds_the_delivery_when_the_recipient_matches(
    database: Database, settings: Settings
) -> None:
    (sent,) = sent_issues(database, [ANNA, BOB])
    event = _bounce(
        sent, BOB, delivery_id=None, email="Bob@Example.com", message_id=sent.message_id(BOB)
    )
    assert _record(database, settings, event) == FeedbackReport(recorded=1, suppressed=1)
    suppression = _suppression(database, BOB)
    assert suppression is not None
    assert suppression.delivery_id == sent.deliveries[BOB]


def test_a_token_names_the_delivery_even_when_a_forward_reports_another_recipient(
    database: Database, settings: Settings
) -> None:
    (sent,) = sent_issues(database, [ANNA])
    report = _record(database, settings, _bounce(sent, ANNA, email="anna@forwarded.example"))
    assert report.suppressed == 1
    assert _suppression(database, ANNA) is not None  # the delivery's own address
    assert _suppression(database, "anna@forwarded.example") is None


def test_a_complaint_suppresses_and_a_delivery_is_stored_only(
    database: Database, settings: Settings
) -> None:
    (sent,) = sent_issues(database, [ANNA, BOB])
    report = _record(
        database,
        settings,
        _bounce(sent, ANNA, kind="complaint", status_code=None, diagnostic=None),
        _bounce(sent, BOB, kind="delivered", status_code="2.0.0", diagnostic="250 ok"),
    )
    assert report == FeedbackReport(recorded=2, suppressed=1)
    suppression = _suppression(database, ANNA)
    assert suppression is not None
    assert (suppression.reason, suppression.evidence) == ("complaint", "complaint")
    assert _suppression(database, BOB) is None


def test_soft_bounces_suppress_at_the_limit_of_distinct_deliveries(
    database: Database, settings: Settings
) -> None:
    first, second, third = sent_issues(database, [ANNA], issues=3)
    assert _record(database, settings, _bounce(first, ANNA, kind="soft_bounce")).suppressed == 0
    # A second report about the same delivery (another DSN) does not count twice.
    again = _bounce(first, ANNA, kind="soft_bounce", event_id="another report")
    assert _record(database, settings, again) == FeedbackReport(recorded=1)
    assert _record(database, settings, _bounce(second, ANNA, kind="soft_bounce")).suppressed == 0
    assert _suppression(database, ANNA) is None
    report = _record(database, settings, _bounce(third, ANNA, kind="soft_bounce"))
    assert report == FeedbackReport(recorded=1, suppressed=1)
    suppression = _suppression(database, ANNA)
    assert suppression is not None
    assert suppression.reason == "soft_bounces"
    assert suppression.delivery_id == third.deliveries[ANNA]
    assert suppression.evidence.startswith("4.2.2")


def test_the_soft_bounce_limit_comes_from_the_settings(
    database: Database, settings: Settings
) -> None:
    (sent,) = sent_issues(database, [ANNA])
    strict = settings.model_copy(update={"soft_bounce_limit": 1})
    report = _record(database, strict, _bounce(sent, ANNA, kind="soft_bounce"))
    assert report.suppressed == 1


def test_an_existing_suppression_is_kept(database: Database, settings: Settings) -> None:
    (sent,) = sent_issues(database, [ANNA])
    with database.write() as session:
        suppressions.suppress(session, ANNA, reason="manual", source="admin", actor="ops@x.org")
    report = _record(database, settings, _bounce(sent, ANNA))
    assert report == FeedbackReport(recorded=1, suppressed=0)
    suppression = _suppression(database, ANNA)
    assert suppression is not None
    assert suppression.reason == "manual"


def test_long_event_ids_are_replaced_by_their_hash_consistently(
    database: Database, settings: Settings
) -> None:
    (sent,) = sent_issues(database, [ANNA])
    event = _bounce(sent, ANNA, event_id="x" * 500, diagnostic="y" * 5000)
    assert _record(database, settings, event).recorded == 1
    assert _record(database, settings, event).duplicates == 1
    with database.read() as session:
        stored = session.execute(select(DeliveryEvent.event_id, DeliveryEvent.diagnostic)).one()
    assert stored.event_id.startswith("sha256:")
    assert len(stored.event_id) <= 200
    assert stored.diagnostic is not None
    assert len(stored.diagnostic) == 2000


def test_a_large_batch_is_recorded_in_one_go(database: Database, settings: Settings) -> None:
    # More deliveries than one IN (...) query takes (500): the look-ups go in chunks.
    emails = [f"reader{n}@example.com" for n in range(520)]
    (sent,) = sent_issues(database, emails)
    events = [_bounce(sent, email) for email in emails]
    report = _record(database, settings, *events)
    assert report == FeedbackReport(recorded=520, suppressed=520)


def test_reject_records_the_reason_and_cuts_the_detail(database: Database) -> None:
    with database.write() as session:
        reject(session, "smtp", "malformed", "z" * 3000)
    with database.read() as session:
        rejection = session.execute(
            select(FeedbackRejection.source, FeedbackRejection.reason, FeedbackRejection.detail)
        ).one()
    assert (rejection.source, rejection.reason, len(rejection.detail)) == (
        "smtp",
        "malformed",
        2000,
    )


def test_an_unknown_kind_is_a_programming_error(database: Database, settings: Settings) -> None:
    (sent,) = sent_issues(database, [ANNA])
    with pytest.raises(ValueError, match="unknown feedback kind"):
        _record(database, settings, _bounce(sent, ANNA, kind="bounced"))
