"""Recording and reading audit events.

Events are written in the same unit of work as the change they record, so that a change is
never kept without its record (nor the other way round).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from contacthub.storage.models import AuditEvent

CLI_ACTOR = "cli"
PAGE_SIZE = 50


def record(
    session: Session,
    actor: str,
    action: str,
    subject: str = "",
    details: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Record that `actor` (a user's address, or `cli`) did `action` to `subject`."""
    event = AuditEvent(
        actor=actor[:254],
        action=action,
        subject=subject[:200],
        details=json.dumps(details, default=str, sort_keys=True) if details else None,
    )
    session.add(event)
    session.flush()
    return event


def latest(
    session: Session, *, before_id: int | None = None, limit: int = PAGE_SIZE
) -> Sequence[AuditEvent]:
    """The latest events, newest first; `before_id` pages back (keyset)."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return session.scalars(query).all()
