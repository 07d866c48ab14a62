"""Issue statistics: every figure exact, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from contacthub.email import service, stats, tracking
from contacthub.email.hashing import LinkSigner, Purpose
from contacthub.email.machine import HitKind
from contacthub.errors import InvalidInput, NotFound
from contacthub.storage.database import Database
from contacthub.storage.models import Delivery, EmailIssue
from contacthub.storage.types import utcnow
from tests.email.tracking_support import (
    ANNA,
    BLOG,
    BOB,
    CAROL,
    NEWSLETTER,
    SALE,
    SentIssue,
    sent_issue,
)

SIGNER = LinkSigner(["test-secret"])
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
EVE = "eve@example.com"
FRANK = "frank@example.com"
DAVE = "dave@example.com"


def add_recipient(database: Database, sent: SentIssue, email: str, status: str) -> None:
    with database.write() as session:
        subscriber = service.add_subscriber(session, NEWSLETTER, email)
        issue = session.scalars(
            select(EmailIssue).where(EmailIssue.guid == uuid.UUID(sent.guid))
        ).one()
        session.add(
            Delivery(
                issue_id=issue.id,
                subscriber_id=subscriber.id,
                email=email,
                status=status,
                attempts=1,
                sent_at=utcnow() - timedelta(hours=1) if status == "sent" else None,
                error="550 No such user" if status == "failed" else None,
            )
        )


def hit(
    database: Database,
    kind: HitKind,
    guid: str,
    email: str,
    *,
    user_agent: str = BROWSER,
    method: str = "GET",
    signed: bool = True,
    times: int = 1,
) -> None:
    """Log `times` hits, each in a batch of its own, through the email writer's batch function."""
    purpose = Purpose.OPEN if kind is HitKind.OPEN else Purpose.CLICK
    hash = SIGNER.sign(purpose, guid, email) if signed else "0" * 64
    for _ in range(times):
        visitor = tracking.Visitor(user_agent, "198.51.100.7", method, utcnow())
        job = tracking.hit_job(kind, guid, email, hash, visitor)
        with database.write() as session:
            (outcome,) = tracking.process_hits(session, SIGNER, [job])
        assert outcome.error is None


def figures(database: Database, guid: str) -> dict[str, object]:
    with database.read() as session:
        return stats.issue_stats(session, guid).as_dict()


@pytest.fixture
def sent(database: Database) -> SentIssue:
    sent = sent_issue(database)  # ANNA and BOB sent; CAROL subscribed, no delivery
    add_recipient(database, sent, EVE, "sent")
    add_recipient(database, sent, FRANK, "sent")
    add_recipient(database, sent, DAVE, "failed")
    return sent


def test_every_figure_is_exact(database: Database, sent: SentIssue) -> None:
    hit(database, HitKind.OPEN, sent.guid, ANNA, times=2)
    hit(database, HitKind.OPEN, sent.guid, ANNA, user_agent=GMAIL)  # machine
    hit(database, HitKind.OPEN, sent.guid, CAROL, method="HEAD")  # machine
    hit(database, HitKind.OPEN, sent.guid, EVE)
    hit(database, HitKind.CLICK, sent.links[SALE], ANNA, times=2)
    hit(database, HitKind.CLICK, sent.links[BLOG], ANNA)
    hit(database, HitKind.CLICK, sent.links[BLOG], BOB)  # Bob's images were blocked
    hit(database, HitKind.CLICK, sent.honeypot, BOB)  # his mail gateway's scanner
    # Nothing of these counts: bad hashes.
    hit(database, HitKind.OPEN, sent.guid, FRANK, signed=False, times=3)
    hit(database, HitKind.CLICK, sent.links[SALE], FRANK, signed=False)
    with database.write() as session:
        link = tracking.SignedLink(sent.guid, BOB, SIGNER.sign(Purpose.UNSUBSCRIBE, sent.guid, BOB))
        tracking.unsubscribe(session, SIGNER, link)

    result = figures(database, sent.guid)

    assert result["sent"] == 4
    assert result["failed"] == 1
    assert result["deliveries"] == {
        "pending": 0,
        "sending": 0,
        "sent": 4,
        "deferred": 0,
        "failed": 1,
        "skipped": 0,
    }
    # Opens: pixel hits plus one implied open per clicker the pixel never saw (Bob).
    assert result["opens"] == {
        "human": {"total": 4, "unique": 3},  # Anna x2, Eve, Bob's click
        "machine": {"total": 3, "unique": 3},  # Gmail (Anna), HEAD (Carol), honeypot (Bob)
        "all": {"total": 6, "unique": 4},  # 5 pixel hits + Bob's click; Anna once
    }
    assert result["clicks"] == {
        "human": {"total": 4, "unique": 2},
        "machine": {"total": 1, "unique": 1},
        "all": {"total": 5, "unique": 2},
    }
    links = {link["target_url"]: link["clicks"] for link in result["links"]}  # type: ignore[attr-defined]
    assert links[SALE] == {
        "human": {"total": 2, "unique": 1},
        "machine": {"total": 0, "unique": 0},
        "all": {"total": 2, "unique": 1},
    }
    assert links[BLOG]["human"] == {"total": 2, "unique": 2}
    assert links["https://www.example.com/"] == {
        "human": {"total": 0, "unique": 0},
        "machine": {"total": 1, "unique": 1},
        "all": {"total": 1, "unique": 1},
    }
    assert [link["hidden"] for link in result["links"]] == [False, False, True]  # type: ignore[attr-defined]
    assert result["unsubscribes"] == 1
    assert result["open_rate"] == 3 / 4
    assert result["click_through_rate"] == 2 / 4
    assert result["click_to_open_rate"] == 2 / 3


def test_repeated_hits_never_raise_unique_figures(database: Database, sent: SentIssue) -> None:
    hit(database, HitKind.OPEN, sent.guid, ANNA, times=5)
    hit(database, HitKind.CLICK, sent.links[SALE], ANNA, times=4)
    result = figures(database, sent.guid)
    assert result["opens"]["human"] == {"total": 5, "unique": 1}  # type: ignore[index]
    assert result["clicks"]["human"] == {"total": 4, "unique": 1}  # type: ignore[index]
    assert result["click_through_rate"] == 1 / 4


def test_a_click_without_any_open_counts_one_open(database: Database, sent: SentIssue) -> None:
    hit(database, HitKind.CLICK, sent.links[SALE], ANNA, times=3)
    opens = figures(database, sent.guid)["opens"]
    assert opens["human"] == {"total": 1, "unique": 1}  # type: ignore[index]


def test_an_issue_nobody_got_has_no_rates(database: Database) -> None:
    with database.write() as session:
        service.create_newsletter(session, "Empty", "T", "t@example.com", "https://e.example")
        issue = service.create_issue(session, "Empty", "Draft", "<p>Hi</p>")
        guid = str(issue.guid)
    result = figures(database, guid)
    assert result["sent"] == 0
    assert result["open_rate"] is None
    assert result["click_through_rate"] is None
    assert result["click_to_open_rate"] is None
    assert result["opens"]["all"] == {"total": 0, "unique": 0}  # type: ignore[index]


def test_unknown_and_malformed_issues(database: Database) -> None:
    with database.read() as session:
        with pytest.raises(NotFound) as unknown:
            stats.issue_stats(session, "1eb1cb43-8820-4eda-866b-140c62ed7f69")
        assert unknown.value.code == "unknown_issue"
        with pytest.raises(InvalidInput):
            stats.issue_stats(session, "not-a-guid")
