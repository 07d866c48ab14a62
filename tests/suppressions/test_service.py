"""The suppression list's reading and manual additions, and the refused feedback's counts, on
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from contacthub.email import service as email
from contacthub.errors import Conflict, InvalidInput, NotFound
from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent, Delivery, FeedbackRejection, Suppression
from contacthub.storage.types import utcnow
from contacthub.suppressions import rejections
from contacthub.suppressions import service as suppressions
from tests.races import overlapping


def suppress_many(database: Database) -> None:
    with database.write() as session:
        for number in range(7):
            suppressions.suppress(
                session,
                f"Person{number}@Example.com",
                reason="hard_bounce" if number % 2 else "complaint",
                source="imap",
                evidence=f"5.1.1 user unknown {number}",
            )
        suppressions.suppress(
            session, "under_score@example.org", reason="soft_bounces", source="ses"
        )
        suppressions.add_manual(
            session, "100%@example.org", evidence="  Asked by phone  ", source="admin", actor="ada"
        )


def test_listing_is_newest_first_paged_without_gaps_or_repeats(database: Database) -> None:
    suppress_many(database)
    seen: list[str] = []
    before = None
    with database.read() as session:
        while True:
            page = suppressions.list_suppressions(session, before=before, limit=4)
            seen += [row.suppression.email for row in page.rows]
            if page.next_before is None:
                break
            before = page.next_before
    assert seen[:2] == ["100%@example.org", "under_score@example.org"]
    assert seen[2:] == [f"person{n}@example.com" for n in reversed(range(7))]


def test_search_takes_a_part_of_the_address_literally(database: Database) -> None:
    suppress_many(database)
    with database.read() as session:

        def found(search: str, reason: str | None = None) -> list[str]:
            page = suppressions.list_suppressions(session, search=search, reason=reason)
            return [row.suppression.email for row in page.rows]

        assert found("PERSON3") == ["person3@example.com"]
        # % and _ match themselves, not any text or any character.
        assert found("%") == ["100%@example.org"]
        assert found("r_s") == ["under_score@example.org"]
        assert found("example.com", reason="complaint") == [
            f"person{n}@example.com" for n in (6, 4, 2, 0)
        ]
        assert suppressions.count_suppressions(session, search="example.com") == 7
        assert suppressions.counts_by_reason(session) == {
            "hard_bounce": 3,
            "complaint": 4,
            "soft_bounces": 1,
            "manual": 1,
        }
        with pytest.raises(InvalidInput) as refused:
            found("", reason="bounced")
        assert refused.value.code == "invalid_reason"


def test_a_manual_suppression_keeps_its_note_and_is_audited(database: Database) -> None:
    with database.write() as session:
        row = suppressions.add_manual(
            session, " Ada@Example.com ", evidence=" By letter ", source="cli", actor="cli"
        )
        assert (row.email, row.reason, row.source, row.evidence, row.created_by) == (
            "ada@example.com",
            "manual",
            "cli",
            "By letter",
            "cli",
        )
        with pytest.raises(Conflict) as again:
            suppressions.add_manual(
                session, "ADA@example.com", evidence="again", source="api", actor="bob"
            )
        assert again.value.code == "already_suppressed"
        assert "manual, since" in again.value.message
        assert session.get(Suppression, row.id).evidence == "By letter"  # type: ignore[union-attr]
        actions = session.scalars(select(AuditEvent.action)).all()
        assert actions == ["suppression.added"]
        with pytest.raises(InvalidInput) as too_long:
            suppressions.add_manual(
                session, "bo@example.com", evidence="x" * 2001, source="cli", actor="cli"
            )
        assert too_long.value.code == "evidence_too_long"
        with pytest.raises(InvalidInput) as invalid:
            suppressions.add_manual(session, "not an address", evidence="", source="cli", actor="c")
        assert invalid.value.field == "email"


def test_a_suppression_names_the_issue_of_its_delivery(database: Database) -> None:
    with database.write() as session:
        email.create_newsletter(session, "News", "Us", "us@example.com", "https://example.com")
        subscriber = email.add_subscriber(session, "News", "ann@example.com")
        issue = email.create_issue(session, "News", "Spring", "<p>Hi</p>")
        delivery = Delivery(
            issue_id=issue.id, subscriber_id=subscriber.id, email=subscriber.email, status="sent"
        )
        session.add(delivery)
        session.flush()
        suppressions.suppress(
            session, "ann@example.com", reason="hard_bounce", source="smtp", delivery_id=delivery.id
        )
        guid = issue.guid
    with database.read() as session:
        found = suppressions.get_suppression(session, "Ann@example.com")
        assert (found.issue_guid, found.issue_subject) == (guid, "Spring")
        assert suppressions.suppression_of(session, "nobody@example.com") is None
        with pytest.raises(NotFound):
            suppressions.get_suppression(session, "nobody@example.com")


def test_rejections_are_counted_by_source_reason_and_age(database: Database) -> None:
    now = utcnow()
    ages = {
        ("ses", "bad_signature"): [timedelta(hours=1), timedelta(days=2), timedelta(days=30)],
        ("imap", "unknown_delivery"): [timedelta(minutes=5)],
        ("mailgun", "stale_timestamp"): [timedelta(days=8)],
    }
    with database.write() as session:
        for (source, reason), offsets in ages.items():
            for offset in offsets:
                session.add(
                    FeedbackRejection(
                        source=source, reason=reason, detail="d", created_at=now - offset
                    )
                )
    with database.read() as session:
        counted = {
            (c.source, c.reason): (c.last_day, c.last_week, c.total)
            for c in rejections.rejection_counts(session, now=now)
        }
        assert counted == {
            ("ses", "bad_signature"): (1, 2, 3),
            ("imap", "unknown_delivery"): (1, 1, 1),
            ("mailgun", "stale_timestamp"): (0, 0, 1),
        }
        first = rejections.latest_rejections(session, limit=3)
        assert len(first.rejections) == 3
        assert first.next_before is not None
        rest = rejections.latest_rejections(session, before=first.next_before, limit=3)
        assert (len(rest.rejections), rest.next_before) == (2, None)
        ses = rejections.latest_rejections(session, source="ses")
        assert {r.source for r in ses.rejections} == {"ses"}


def test_two_manual_adds_of_one_address_at_once_answer_as_one_after_the_other(
    database: Database,
) -> None:
    def add(session: Session) -> str:
        return suppressions.add_manual(
            session, "Anna@example.com", evidence="asked", source="api", actor="ada"
        ).email

    first, second = overlapping(database, add)

    assert first.value == "anna@example.com"
    # Not a 500 (IntegrityError): the answer of a second add after the first one.
    assert isinstance(second.error, Conflict), second.error
    assert second.error.code == "already_suppressed"
    with database.read() as session:
        assert session.scalars(select(Suppression.email)).all() == ["anna@example.com"]
        added = select(AuditEvent).where(AuditEvent.action == "suppression.added")
        assert len(session.scalars(added).all()) == 1
