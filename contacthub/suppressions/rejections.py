"""Reading the feedback rejections: bounce reports and provider webhook calls that were refused
or could not be used (bad signatures, malformed reports, unknown deliveries).

The feedback processor (bounces/processor.py) and the webhook endpoints write them; this module
counts and lists them for the admin's Deliverability page, `GET /api/feedback-rejections` and
`contacthub suppression rejections`, so that nothing is dropped without a trace anyone can see.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from contacthub.storage.models import FeedbackRejection
from contacthub.storage.types import utcnow

PAGE_SIZE = 50
MAX_PAGE = 500
DAY = timedelta(days=1)
WEEK = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class RejectionCount:
    """How many rejections of one source and reason: in the last 24 hours, 7 days, ever."""

    source: str
    reason: str
    last_day: int
    last_week: int
    total: int


@dataclass(frozen=True, slots=True)
class RejectionPage:
    """Rejections, newest first; `next_before` is the cursor of the next page (None: last)."""

    rejections: list[FeedbackRejection]
    next_before: int | None


def rejection_counts(session: Session, *, now: datetime | None = None) -> list[RejectionCount]:
    """Rejections counted by source and reason, the most frequent first."""
    moment = now or utcnow()
    created = FeedbackRejection.created_at
    total = func.count()
    rows = session.execute(
        select(
            FeedbackRejection.source,
            FeedbackRejection.reason,
            func.coalesce(func.sum(case((created >= moment - DAY, 1), else_=0)), 0),
            func.coalesce(func.sum(case((created >= moment - WEEK, 1), else_=0)), 0),
            total,
        )
        .group_by(FeedbackRejection.source, FeedbackRejection.reason)
        .order_by(total.desc(), FeedbackRejection.source, FeedbackRejection.reason)
    ).all()
    return [
        RejectionCount(source, reason, int(day), int(week), int(count))
        for source, reason, day, week, count in rows
    ]


def latest_rejections(
    session: Session,
    *,
    source: str | None = None,
    before: int | None = None,
    limit: int = PAGE_SIZE,
) -> RejectionPage:
    """The latest rejections (of one `source`, when given), newest first; `before` pages back."""
    query = select(FeedbackRejection).order_by(FeedbackRejection.id.desc()).limit(limit + 1)
    if source:
        query = query.where(FeedbackRejection.source == source)
    if before is not None:
        query = query.where(FeedbackRejection.id < before)
    found = list(session.scalars(query).all())
    page = found[:limit]
    return RejectionPage(page, page[-1].id if len(found) > limit else None)
