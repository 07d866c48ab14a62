"""The feedback processor: bounces, complaints and deliveries, from DSNs and provider webhooks.

Every source (the IMAP poller, the SMTP listener, the provider webhooks) turns what it received
into `FeedbackEvent`s and hands them, in batches, to `record_feedback`, which in one transaction:

1. finds the delivery of each event: by its verified VERP token (`delivery_id`), else by the
   original Message-ID `<issue guid>.<delivery id>@…`, accepted only when the guid is the
   delivery's issue's and the reported recipient is the delivery's address. An event whose
   delivery cannot be found is rejected (`unknown_delivery`), counted and listed, never dropped
   silently;
2. stores each event once: `(source, event_id)` is unique, so a replayed DSN or webhook is
   counted as a duplicate and changes nothing (INSERT … ON CONFLICT DO NOTHING, which also holds
   when two processes record the same report at the same time);
3. suppresses addresses: at once after a hard bounce or a complaint; after a soft bounce when
   the address soft-bounced on `soft_bounce_limit` distinct deliveries within
   `soft_bounce_window_days`. `delivered` events are stored only.

A token names the delivery with the hub's signature, so its delivery is trusted even when the
reported recipient differs (a forwarding address reports where it forwarded to); the address
suppressed is always the delivery's own. Everything is set-based (a few queries per batch,
whatever its size): the processor handles thousands of reports a second (bench/bounces.py).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import distinct, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from contacthub.events import changes
from contacthub.settings import Settings
from contacthub.storage.models import (
    Delivery,
    DeliveryEvent,
    EmailIssue,
    FeedbackRejection,
    Suppression,
)
from contacthub.storage.types import utcnow
from contacthub.suppressions.service import COMPLAINT, HARD_BOUNCE, MAX_EVIDENCE, SOFT_BOUNCES

log = logging.getLogger(__name__)
T = TypeVar("T")

HARD = "hard_bounce"
SOFT = "soft_bounce"
COMPLAINED = "complaint"
DELIVERED = "delivered"
KINDS = (HARD, SOFT, COMPLAINED, DELIVERED)
SOURCES = ("imap", "smtp", "ses", "sendgrid", "postmark", "mailgun")
MAX_EVENT_ID = 200
MAX_DIAGNOSTIC = 2000
MAX_DETAIL = 2000
_CHUNK = 500  # parameters per IN (...) query: well within every database's limit
_MESSAGE_ID = re.compile(
    r"<?\s*([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(\d{1,19})@"
)


@dataclass(frozen=True, slots=True)
class FeedbackEvent:
    """One thing a report says happened to one delivery."""

    kind: str  # hard_bounce | soft_bounce | complaint | delivered
    source: str  # imap | smtp | ses | sendgrid | postmark | mailgun
    # The provider's event/message id, or the DSN's Message-ID (else a SHA-256 of the raw
    # report); longer ids are replaced by their SHA-256.
    event_id: str
    delivery_id: int | None  # from a verified token (VERP address or header); None if not known
    email: str | None  # the failed recipient as reported
    status_code: str | None = None  # enhanced status code, "5.1.1"
    diagnostic: str | None = None  # the remote server's text, cut to 2,000 chars
    occurred_at: datetime | None = None
    message_id: str | None = None  # original Message-ID, a fallback to find the delivery


@dataclass(slots=True)
class FeedbackReport:
    """What one call of `record_feedback` (or a whole poll) did."""

    recorded: int = 0
    duplicates: int = 0
    rejected: int = 0
    suppressed: int = 0

    def add(self, other: FeedbackReport) -> None:
        """Count another report's figures into this one."""
        self.recorded += other.recorded
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.suppressed += other.suppressed

    def as_dict(self) -> dict[str, int]:
        """The figures by name (the CLI's --json output)."""
        return {
            "recorded": self.recorded,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "suppressed": self.suppressed,
        }


@dataclass(frozen=True, slots=True)
class _Target:
    delivery_id: int
    issue_id: int
    issue_guid: str
    email: str


def reject(session: Session, source: str, reason: str, detail: str) -> None:
    """Record a report (or part of one) that was refused or could not be used, and log it.

    `reason` is a short code (bad_signature, malformed, unknown_delivery, not_a_bounce, …);
    the rejections are counted and listed in the admin, so nothing is dropped silently.
    """
    detail = detail[:MAX_DETAIL]
    session.add(FeedbackRejection(source=source[:20], reason=reason[:50], detail=detail))
    session.flush()
    log.warning("feedback from %s rejected (%s): %s", source, reason, detail[:200])


def record_feedback(
    session: Session, events: Sequence[FeedbackEvent], *, settings: Settings
) -> FeedbackReport:
    """Store the events, suppress the addresses they condemn; the caller commits."""
    report = FeedbackReport()
    if not events:
        return report
    for event in events:
        _check(event)
    targets = _targets(session, events)
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for event in events:
        target = _resolve(event, targets)
        if target is None:
            report.rejected += 1
            reject(session, event.source, "unknown_delivery", _describe(event))
            continue
        key = (event.source, _event_id(event.event_id))
        if key in seen:
            report.duplicates += 1
            continue
        seen.add(key)
        rows.append(
            {
                "delivery_id": target.delivery_id,
                "issue_id": target.issue_id,
                "email": target.email,
                "kind": event.kind,
                "status_code": (event.status_code or None) and event.status_code[:20],
                "diagnostic": (event.diagnostic or None) and event.diagnostic[:MAX_DIAGNOSTIC],
                "source": event.source,
                "event_id": key[1],
                "occurred_at": event.occurred_at,
                "created_at": utcnow(),
            }
        )
    if not rows:
        return report
    inserted = _insert_new(session, rows)
    report.recorded = len(inserted)
    report.duplicates += len(rows) - len(inserted)
    new_rows = [row for row in rows if (row["source"], row["event_id"]) in inserted]
    report.suppressed = _suppress(session, new_rows, settings)
    changes.email_feedback(session, new_rows)  # email.bounced / email.complained webhooks
    return report


def _check(event: FeedbackEvent) -> None:
    # Programming errors of a source, not bad input: the sources build events themselves.
    if event.kind not in KINDS:
        raise ValueError(f"unknown feedback kind {event.kind!r}")
    if not event.source or len(event.source) > 20:
        raise ValueError(f"bad feedback source {event.source!r}")
    if not event.event_id:
        raise ValueError("a feedback event needs an event_id")


def _event_id(event_id: str) -> str:
    if len(event_id) <= MAX_EVENT_ID:
        return event_id
    return "sha256:" + hashlib.sha256(event_id.encode("utf-8", "replace")).hexdigest()


def _message_reference(message_id: str | None) -> tuple[str, int] | None:
    if not message_id:
        return None
    match = _MESSAGE_ID.search(message_id.lower())
    return (match.group(1), int(match.group(2))) if match else None


def _chunks(values: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _targets(session: Session, events: Sequence[FeedbackEvent]) -> dict[int, _Target]:
    """The deliveries the events may name, with their issue's guid, in a query per 500."""
    wanted: set[int] = set()
    for event in events:
        if event.delivery_id is not None:
            wanted.add(event.delivery_id)
        else:
            reference = _message_reference(event.message_id)
            if reference is not None:
                wanted.add(reference[1])
    targets: dict[int, _Target] = {}
    for chunk in _chunks(sorted(wanted)):
        query = (
            select(Delivery.id, Delivery.issue_id, EmailIssue.guid, Delivery.email)
            .join(EmailIssue, EmailIssue.id == Delivery.issue_id)
            .where(Delivery.id.in_(chunk))
        )
        for delivery_id, issue_id, guid, email in session.execute(query):
            targets[delivery_id] = _Target(delivery_id, issue_id, str(guid), email.lower())
    return targets


def _resolve(event: FeedbackEvent, targets: dict[int, _Target]) -> _Target | None:
    if event.delivery_id is not None:
        return targets.get(event.delivery_id)
    reference = _message_reference(event.message_id)
    if reference is None:
        return None
    target = targets.get(reference[1])
    if target is None or target.issue_guid != reference[0]:
        return None
    # The Message-ID is no secret (every recipient sees their own): it only counts for the
    # recipient it was sent to.
    if not event.email or event.email.strip().lower() != target.email:
        return None
    return target


def _describe(event: FeedbackEvent) -> str:
    return (
        f"{event.kind} for {event.email or 'an unknown recipient'}"
        f" (event {event.event_id[:200]}, delivery {event.delivery_id},"
        f" message {event.message_id or '-'}): no such delivery of this hub"
    )


def _insert_ignoring_conflicts(session: Session, table: Any, index: list[str]) -> Any:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing(index_elements=index)


def _insert_new(session: Session, rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """Insert the events not stored yet; the (source, event_id) of those inserted."""
    table = DeliveryEvent.__table__
    statement = _insert_ignoring_conflicts(session, table, ["source", "event_id"]).returning(
        table.c.source, table.c.event_id
    )
    result = session.execute(statement, rows)
    return {(source, event_id) for source, event_id in result}


def _evidence(row: dict[str, Any]) -> str:
    parts = [row["status_code"] or "", row["diagnostic"] or ""]
    evidence = " ".join(part for part in parts if part) or row["kind"].replace("_", " ")
    return evidence[:MAX_EVIDENCE]


def _suppress(session: Session, rows: list[dict[str, Any]], settings: Settings) -> int:
    """Suppress the addresses the new events condemn; how many new suppressions."""
    wanted: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["kind"] in (HARD, COMPLAINED):
            wanted.setdefault(row["email"], row)
    soft = {row["email"]: row for row in rows if row["kind"] == SOFT}
    soft_emails = [email for email in soft if email not in wanted]
    if soft_emails:
        since = utcnow() - timedelta(days=settings.soft_bounce_window_days)
        for chunk in _chunks(soft_emails):
            query = (
                select(DeliveryEvent.email, func.count(distinct(DeliveryEvent.delivery_id)))
                .where(
                    DeliveryEvent.email.in_(chunk),
                    DeliveryEvent.kind == SOFT,
                    DeliveryEvent.created_at >= since,
                )
                .group_by(DeliveryEvent.email)
            )
            for email, count in session.execute(query):
                if count >= settings.soft_bounce_limit:
                    wanted[email] = soft[email]
    if not wanted:
        return 0
    reasons = {HARD: HARD_BOUNCE, COMPLAINED: COMPLAINT, SOFT: SOFT_BOUNCES}
    now = utcnow()
    suppressions = [
        {
            "email": email,
            "reason": reasons[row["kind"]],
            "evidence": _evidence(row),
            "source": row["source"],
            "delivery_id": row["delivery_id"],
            "created_by": None,
            "created_at": now,
        }
        for email, row in wanted.items()
    ]
    table = Suppression.__table__
    # The first suppression of an address is kept (a manual one, an earlier bounce).
    statement = _insert_ignoring_conflicts(session, table, ["email"]).returning(table.c.email)
    return len(list(session.execute(statement, suppressions)))
