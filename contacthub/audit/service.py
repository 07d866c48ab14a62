"""Recording and reading audit events.

Events are written in the same unit of work as the change they record, so that a change is
never kept without its record (nor the other way round). They are written by the service
function that makes the change, when its caller names an `actor`: every entry point does (the
signed-in user, the API token's user, or `cli`), so an action is recorded once, with the same
details, whichever entry point asked for it.

`ACTIONS` is every action the log knows; docs/admin.md lists them (a test keeps both in step),
and `record` refuses any other, so that no action goes unlisted.
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

ACTIONS = frozenset(
    {
        "user.signed_in",
        "user.locked",
        "user.created",
        "user.password_set",
        "user.enabled",
        "user.disabled",
        "token.created",
        "token.revoked",
        "channel.created",
        "channel.consent_gate_set",
        "key.created",
        "key.enabled",
        "key.disabled",
        "key.revoked",
        "cors.origin_added",
        "cors.origin_removed",
        "consent.created",
        "consent.text_set",
        "consent.default_language_set",
        "activity_type.created",
        "activity_type.enabled",
        "activity_type.disabled",
        "contact.exported",
        "contact.list_exported",
        "contact.erased",
        "newsletter.created",
        "subscriber.added",
        "subscriber.unsubscribed",
        "subscriber.imported",
        "issue.created",
        "issue.group_set",
        "issue.send_started",
        "issue.scheduled",
        "issue.schedule_cancelled",
        "issue.schedule_confirmed",
        "issue.test_sent",
        "demo.created",
        "group.created",
        "group.updated",
        "group.deleted",
        "group.members_added",
        "group.members_removed",
        "group.rebuilt",
        "group.exported",
        "suppression.added",
        "suppression.lifted",
        "issue.engagement_exported",
        "newsletter.updated",
        "suppression.list_exported",
        "webhook.retried",
        "webhook.replayed",
    }
)


def record(
    session: Session,
    actor: str,
    action: str,
    subject: str = "",
    details: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Record that `actor` (a user's address, or `cli`) did `action` to `subject`."""
    if action not in ACTIONS:
        # A programming error: an action must be listed (and documented) before it is recorded.
        raise ValueError(f"Unknown audit action {action!r}: add it to audit.service.ACTIONS.")
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
