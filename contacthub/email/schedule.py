"""Scheduled sends: a draft issue sent at a chosen time, once, whichever hub process fires it.

States of an issue (`EmailIssue.status`) added here:
- `scheduled`: a draft with `scheduled_at` (UTC) and `scheduled_by` (who scheduled it, the
  audit log's actor). It may be rescheduled (`schedule_issue` again) or cancelled (back to
  `draft`) until it fires. It keeps its audience rules: its group cannot be deleted meanwhile
  (groups count it as unsent), nor changed (cancel, change, schedule again).
- `schedule_missed`: its time passed by more than `settings.schedule_grace` seconds before any
  hub process looked (the hub was down). It is not sent late on its own: someone confirms it
  (`confirm_schedule`, "send now"), reschedules it or cancels it.

Firing (`claim_due`, run by every hub process every `schedule_interval` seconds,
`app.keep_schedules_firing`): one transaction marks the overdue schedules `schedule_missed` and
moves the due ones from `scheduled` to `sending` with conditional UPDATEs (`WHERE status =
'scheduled'`). On PostgreSQL a second process's UPDATE waits for the first's row locks and then
finds the status changed; SQLite runs one write transaction at a time. So each schedule is
claimed by exactly one process, on any number of machines. The claiming process then runs the
send as `contacthub issue send` does (`sending.send_issue`: resumable, at most once per
subscriber), with the actor `schedule (<scheduled_by>)` in the audit log's `issue.send_started`.
If that process dies mid-send the issue stays `sending`, as any interrupted run: "Resume
sending" continues it.

Confirming a missed schedule claims it the same way (`schedule_missed` → `sending`) and records
`issue.schedule_confirmed` with the confirmer as actor; the send it starts records nothing more
(the confirmation is its record).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, update
from sqlalchemy.orm import Session

from contacthub.audit import service as audit
from contacthub.email import background, repository, service
from contacthub.email.background import SendRegistry, SendRun
from contacthub.errors import Conflict, InvalidInput
from contacthub.hub import Hub
from contacthub.storage.database import Database
from contacthub.storage.models import EmailIssue
from contacthub.storage.types import utcnow

logger = logging.getLogger(__name__)

DRAFT = "draft"
SCHEDULED = "scheduled"
SCHEDULE_MISSED = "schedule_missed"
SENDING = "sending"
# How far ahead a send may be scheduled: further is surely a typo in the year.
MAX_AHEAD = timedelta(days=366 * 2)
MAX_ACTOR = 254


def scheduler_actor(scheduled_by: str | None) -> str:
    """The audit log's actor of a send the scheduler starts: `schedule (<who scheduled it>)`."""
    who = (scheduled_by or "unknown")[: MAX_ACTOR - len("schedule ()")]
    return f"schedule ({who})"


# -- times ---------------------------------------------------------------------------------------


def parse_time(text: str, *, field: str = "at") -> datetime:
    """An ISO 8601 date and time with its UTC offset (`2026-12-24T09:00:00+01:00`, or `Z`),
    as UTC. A time without an offset is refused: it would be read in some server's zone."""
    cleaned = text.strip()
    try:
        parsed = datetime.fromisoformat(cleaned)
    except ValueError:
        raise InvalidInput(
            f"{cleaned!r} is not an ISO 8601 date and time, e.g. 2026-12-24T09:00:00+01:00.",
            code="invalid_time",
            field=field,
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InvalidInput(
            f"{cleaned!r} has no UTC offset: add one, e.g. {cleaned}+01:00 or {cleaned}Z.",
            code="invalid_time",
            field=field,
        )
    return parsed.astimezone(UTC)


def local_time(text: str, zone: str, *, field: str = "at") -> datetime:
    """A wall-clock time without offset (an HTML `datetime-local` value, `2026-12-24T09:00`)
    in the IANA time zone `zone` (`Europe/Paris`; empty: UTC), as UTC.

    A time that a daylight-saving change skips or repeats is read with the offset in force
    before the change (Python's `fold=0`)."""
    cleaned = text.strip()
    try:
        parsed = datetime.fromisoformat(cleaned)
    except ValueError:
        parsed = None
    if not cleaned or parsed is None or parsed.tzinfo is not None:
        raise InvalidInput(
            "Choose a date and a time, e.g. 2026-12-24 09:00.", code="invalid_time", field=field
        )
    try:
        where = ZoneInfo(zone.strip() or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"{zone!r} is not a known time zone.", code="invalid_time_zone", field=field
        ) from None
    return parsed.replace(tzinfo=where).astimezone(UTC)


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


# -- scheduling, by people -----------------------------------------------------------------------


def schedule_issue(
    session: Session,
    issue: EmailIssue,
    at: datetime,
    *,
    actor: str,
    now: datetime | None = None,
) -> EmailIssue:
    """Schedule a draft (or reschedule a scheduled or missed issue) to be sent at `at`.

    `at` must be in the future (at most two years ahead). Conflict `issue_not_draft` once its
    sending has started; Conflict `group_deleted` for an issue whose group is gone.
    """
    issue = repository.lock_issue(session, issue.id)
    service.refuse_if_group_deleted(issue)
    if issue.status not in (DRAFT, SCHEDULED, SCHEDULE_MISSED):
        raise Conflict(
            f"Only a draft can be scheduled: this issue is {issue.status}.",
            code="issue_not_draft",
            field="at",
        )
    now = now or utcnow()
    if at.tzinfo is None:
        raise InvalidInput("The time needs a UTC offset.", code="invalid_time", field="at")
    if at <= now:
        raise InvalidInput(
            f"{_utc_text(at)} has passed: choose a time in the future (it is now "
            f"{now.strftime('%Y-%m-%d %H:%M')} UTC).",
            code="time_in_past",
            field="at",
        )
    if at > now + MAX_AHEAD:
        raise InvalidInput(
            "A send can be scheduled at most two years ahead.", code="time_too_far", field="at"
        )
    previous = issue.scheduled_at if issue.status != DRAFT else None
    issue.status = SCHEDULED
    issue.scheduled_at = at
    issue.scheduled_by = actor[:MAX_ACTOR]
    session.flush()
    details = {"at": _utc_text(at)}
    if previous is not None:
        details["previous"] = _utc_text(previous)
    audit.record(session, actor, "issue.scheduled", str(issue.guid), details)
    return issue


def cancel_schedule(session: Session, issue: EmailIssue, *, actor: str) -> EmailIssue:
    """Take a scheduled (or missed) issue back to draft. Conflict `not_scheduled` otherwise
    (too late once it fired: it is sending)."""
    issue = repository.lock_issue(session, issue.id)
    if issue.status not in (SCHEDULED, SCHEDULE_MISSED):
        raise Conflict(f"This issue is not scheduled (it is {issue.status}).", code="not_scheduled")
    at = issue.scheduled_at
    issue.status = DRAFT
    issue.scheduled_at = None
    issue.scheduled_by = None
    session.flush()
    details = {"at": _utc_text(at)} if at is not None else None
    audit.record(session, actor, "issue.schedule_cancelled", str(issue.guid), details)
    return issue


def confirm_schedule(session: Session, issue: EmailIssue, *, actor: str) -> EmailIssue:
    """Claim a missed schedule for sending now (`schedule_missed` → `sending`, conditional, so
    two confirmations cannot both send it). The caller then runs the send, without an actor:
    `issue.schedule_confirmed` is its record. Conflict `schedule_not_missed` otherwise."""
    service.refuse_if_group_deleted(issue)
    claimed = session.execute(
        update(EmailIssue)
        .where(EmailIssue.id == issue.id, EmailIssue.status == SCHEDULE_MISSED)
        .values(status=SENDING)
        .returning(EmailIssue.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    session.refresh(issue)
    if claimed is None:
        raise Conflict(
            f"Only a missed schedule waits for confirmation: this issue is {issue.status}.",
            code="schedule_not_missed",
        )
    details = {"at": _utc_text(issue.scheduled_at)} if issue.scheduled_at is not None else None
    audit.record(session, actor, "issue.schedule_confirmed", str(issue.guid), details)
    return issue


# -- firing, by the hub ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fired:
    """A schedule this process claimed: it must now send the issue as `actor`."""

    issue_guid: uuid.UUID
    scheduled_at: datetime
    actor: str


@dataclass(frozen=True, slots=True)
class Claims:
    """What one look at the schedules did."""

    fired: Sequence[Fired]
    missed: Sequence[uuid.UUID]


def claim_due(session: Session, *, grace: float, now: datetime | None = None) -> Claims:
    """Mark the schedules missed by more than `grace` seconds `schedule_missed`, and claim the
    due ones (`scheduled` → `sending`); the caller commits, then sends the claimed ones."""
    now = now or utcnow()
    oldest = now - timedelta(seconds=grace)
    waiting = EmailIssue.status == SCHEDULED
    missed = session.execute(
        update(EmailIssue)
        .where(waiting, EmailIssue.scheduled_at < oldest)
        .values(status=SCHEDULE_MISSED)
        .returning(EmailIssue.guid)
        .execution_options(synchronize_session=False)
    ).scalars()
    missed_guids = list(missed)
    due = session.execute(
        update(EmailIssue)
        .where(and_(waiting, EmailIssue.scheduled_at <= now, EmailIssue.scheduled_at >= oldest))
        .values(status=SENDING)
        .returning(EmailIssue.guid, EmailIssue.scheduled_at, EmailIssue.scheduled_by)
        .execution_options(synchronize_session=False)
    ).all()
    # `at` is never NULL here (the WHERE compared it); the test keeps the type checker sure.
    fired = [Fired(guid, at, scheduler_actor(by)) for guid, at, by in due if at is not None]
    return Claims(fired, missed_guids)


Start = Callable[[Fired], None]


def fire_due(
    database: Database, *, grace: float, start: Start, now: datetime | None = None
) -> Claims:
    """One run of the hub's schedule job: claim (one committed transaction), then `start` the
    send of each claimed issue. A start that fails is logged; the issue stays `sending`, and
    "Resume sending" continues it."""
    with database.write() as session:
        claims = claim_due(session, grace=grace, now=now)
    for guid in claims.missed:
        logger.warning(
            "The scheduled send of issue %s was missed by more than %g s (was the hub down?): "
            "it waits for someone to confirm, reschedule or cancel it.",
            guid,
            grace,
        )
    for fired in claims.fired:
        logger.info("Sending scheduled issue %s as %s", fired.issue_guid, fired.actor)
        try:
            start(fired)
        except Exception:
            logger.exception("Starting the scheduled send of issue %s failed", fired.issue_guid)
    return claims


# -- sending in the hub's background -------------------------------------------------------------


def background_start(hub: Hub, registry: SendRegistry) -> Start:
    """How the hub's job sends a claimed schedule: a run in this process's send registry (the
    issue page shows its progress; the hub's shutdown stops it after its current message)."""

    def start(fired: Fired) -> None:
        run = registry.begin(fired.issue_guid, fired.actor)
        registry.launch(run, background.send_work(hub, fired.issue_guid, actor=fired.actor))

    return start


def start_confirmed_send(hub: Hub, registry: SendRegistry, guid: uuid.UUID, actor: str) -> SendRun:
    """Send an issue whose missed schedule `actor` just confirmed (`confirm_schedule`), in the
    background; the run records no `issue.send_started` (the confirmation is its record)."""
    run = registry.begin(guid, actor)
    registry.launch(run, background.send_work(hub, guid))
    return run
