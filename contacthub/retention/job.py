"""The retention job: delete what is older than its retention period (`retention.policies`).

Every hub process runs `run_if_due` every minute (`LOOK_INTERVAL`); the first to find no run
started within the last `retention_interval` seconds runs the job, under the job lease `retention`
(`storage.leases`) so that two processes (or a `contacthub retention run`) never run it at
once. A run may also be started by hand (admin, API, CLI: `run`).

Each kind of data has one function here (`delete_activities`, `delete_email_hits`,
`delete_anonymous_contacts`, `delete_outbox`, `delete_audit_log`). Each deletes in batches of
`retention_batch_size` rows, one short transaction per batch, so that no write lock (SQLite's
one writer, PostgreSQL's row locks) is held for long and ingest keeps flowing between batches.
The tables written at ingest speed carry no index on their time: ids follow time, so the
cutoff becomes an id bound found by a binary search on the primary key, and each batch walks
the primary key from where the previous one stopped.

Activities are deleted only once the dashboard's rollups have counted them (ids up to
`rollups.counted_up_to`): the rollups keep the counts per day, channel and type and the top
pages and clicks, so the dashboard's totals do not change when the rows go. Anonymous contacts
deleted are taken out of the dashboard's new contacts in the batch that deletes them
(`rollups.forget_contacts`): those count the contacts that exist.

Each run is recorded in `retention_runs` (counts per kind, start and end, the error) and in the
audit log (`retention.run`). An error stops the run: it is logged, recorded as the run's
error, and shown until a later run succeeds (admin page and dashboard in red, `failing` in the
API, exit status 1 of the CLI).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from time import monotonic
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, func, or_, select, text, update
from sqlalchemy import table as sql_table
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import InstrumentedAttribute, Session

from contacthub.activities.log import first_id_at_or_after
from contacthub.analytics import rollups
from contacthub.audit import service as audit
from contacthub.errors import Conflict
from contacthub.idempotency import forget_expired
from contacthub.retention import policies
from contacthub.settings import Settings
from contacthub.storage import leases, partitions
from contacthub.storage.database import Database
from contacthub.storage.models import (
    Activity,
    AuditEvent,
    ConsentAgreement,
    Contact,
    EmailClick,
    EmailOpen,
    GroupMember,
    GroupPendingContact,
    OutboxEvent,
    RetentionPolicy,
    RetentionRun,
    Subscriber,
    WebhookDelivery,
)
from contacthub.storage.types import utcnow

logger = logging.getLogger(__name__)

LEASE = "retention"
# How long the lease lasts; every batch renews it, so only a batch stuck this long loses it.
LEASE_SECONDS = 300.0
# Who the audit log names for the runs the hub starts on its own.
SCHEDULE_ACTOR = "the hub (retention schedule)"
RUNS_SHOWN = 20
# How often each hub process looks whether a run is due (a cheap query), so that runs start
# within this long of being due rather than up to a whole interval late.
LOOK_INTERVAL = 60.0
MAX_ERROR = 2_000
DELIVERED = "delivered"
STOPPED = "The process running it stopped before the run finished."

# Told of every batch: the kind, the rows it deleted, the seconds its transaction took.
BatchObserver = Callable[[str, int, float], None]
# One batch: (session, last id examined before) -> (rows deleted, last id examined or None).
Step = Callable[[Session, int], tuple[int, "int | None"]]


class LeaseLost(RuntimeError):
    """Another process took the retention lease while this run held it."""


@dataclass
class Batches:
    """How a run deletes: `size` rows per transaction, renewing the lease in each, counting
    what each kind deleted (`deleted`, kept by a failed run too)."""

    database: Database
    size: int
    now: datetime
    observe: BatchObserver | None = None
    deleted: Counter[str] = field(default_factory=Counter)
    partitions_dropped: int = 0

    def walk(self, kind: str, step: Step) -> int:
        """Delete a batch at a time (`step`, each in its own transaction) until a batch finds
        nothing left; `step` is given the last id the previous batch examined (0 at first)
        and answers the rows it deleted and the last id it examined (None: nothing left)."""
        total = 0
        after: int | None = 0
        while after is not None:
            started = monotonic()
            with self.database.write() as session:
                if not leases.take(session, LEASE, LEASE_SECONDS):
                    raise LeaseLost("another hub process took the retention lease; run stopped")
                rows, after = step(session, after)
            self.deleted[kind] += rows
            total += rows
            if self.observe is not None:
                self.observe(kind, rows, monotonic() - started)
        return total

    def by_id(
        self,
        kind: str,
        id_column: InstrumentedAttribute[int],
        where: Sequence[ColumnElement[bool]],
    ) -> int:
        """Delete the rows `where` selects, a batch at a time in id order: each batch reads
        the next `size` ids after the last batch's and deletes that range (the same test
        again, so that nothing outside it goes)."""
        table = id_column.class_

        def step(session: Session, after: int) -> tuple[int, int | None]:
            ids = session.scalars(
                select(id_column)
                .where(id_column > after, *where)
                .order_by(id_column)
                .limit(self.size)
            ).all()
            if not ids:
                return 0, None
            deleted = _deleted(
                session, delete(table).where(id_column >= ids[0], id_column <= ids[-1], *where)
            )
            return deleted, ids[-1]

        return self.walk(kind, step)

    def drop_partitions(self, kind: str, table: str, cutoff: datetime) -> None:
        """PostgreSQL: drop the partitions of `table` wholly older than `cutoff` at once,
        counting their rows as deleted; the batches then delete the rest row by row. When a
        lock is busy (a long query on the table), nothing is dropped and the batches do it
        all: dropping waits for no one."""
        if self.database.is_sqlite:
            return
        try:
            with self.database.write() as session:
                if not leases.take(session, LEASE, LEASE_SECONDS):
                    raise LeaseLost("another hub process took the retention lease; run stopped")
                if not partitions.is_partitioned(session, table):
                    return
                session.execute(text(f"SET LOCAL lock_timeout = '{partitions.LOCK_TIMEOUT}'"))
                doomed = [
                    p.name
                    for p in partitions.partitions(session, table)
                    if p.upper is not None and p.upper <= cutoff
                ]
                rows = sum(
                    session.scalar(select(func.count()).select_from(sql_table(name))) or 0
                    for name in doomed
                )
                dropped = partitions.drop_before(session, table, cutoff)
        except OperationalError:
            logger.warning("Old partitions of %s are busy; their rows go one by one.", table)
            return
        self.deleted[kind] += rows
        self.partitions_dropped += dropped


def _deleted(session: Session, statement: Any) -> int:
    result = session.execute(statement.execution_options(synchronize_session=False))
    return max(int(getattr(result, "rowcount", 0) or 0), 0)


def first_id_from(session: Session, id_column: InstrumentedAttribute[int], moment: datetime) -> int:
    """The first id of the table whose row was created at or after `moment` (one past the
    last id if none was), assuming ids follow time: a binary search on the primary key, one
    row read per step. Every id below it was created before `moment`."""
    created_at = id_column.class_.created_at
    lowest = session.scalar(select(func.min(id_column)))
    if lowest is None:
        return 1
    low, high = lowest, (session.scalar(select(func.max(id_column))) or lowest) + 1
    while low < high:
        middle = (low + high) // 2
        found = session.execute(
            select(id_column, created_at).where(id_column >= middle).order_by(id_column).limit(1)
        ).first()
        if found is None or found[1] >= moment:
            high = middle
        else:
            low = min(found[0] + 1, high)
    return int(low)


# -- one function per kind ----------------------------------------------------------------------


def delete_activities(batches: Batches, activity_policies: Sequence[RetentionPolicy]) -> int:
    """Activities older than their type's period (or the default period, `''`, for every type
    without one of its own), among those the rollups have counted.

    On PostgreSQL, when every type has a period (a default is set), the monthly partitions
    wholly older than the longest period and wholly counted by the rollups are dropped first.
    """
    own_types = [p.activity_type for p in activity_policies if p.activity_type]
    if any(not p.activity_type for p in activity_policies):
        longest = max(p.days for p in activity_policies)
        with batches.database.read() as session:
            counted = rollups.counted_up_to(session)
            first_uncounted = session.scalar(
                select(Activity.created_at)
                .where(Activity.id > counted)
                .order_by(Activity.id)
                .limit(1)
            )
        cutoff = batches.now - timedelta(days=longest)
        if first_uncounted is not None:
            # A day's margin: ids follow time only as closely as concurrent writers allow.
            cutoff = min(cutoff, first_uncounted - timedelta(days=1))
        batches.drop_partitions(policies.ACTIVITIES, "activities", cutoff)
    total = 0
    for policy in activity_policies:
        cutoff = batches.now - timedelta(days=policy.days)
        with batches.database.read() as session:
            # Ids follow time; and only what the rollups counted may go (they never uncount).
            bound = min(first_id_at_or_after(session, cutoff), rollups.counted_up_to(session) + 1)
        if policy.activity_type:
            of_type = [Activity.type == policy.activity_type]
        else:
            of_type = [Activity.type.not_in(own_types)] if own_types else []
        total += batches.by_id(
            policies.ACTIVITIES,
            Activity.id,
            [Activity.id < bound, Activity.created_at < cutoff, *of_type],
        )
    return total


def delete_email_hits(batches: Batches, days: int) -> int:
    """Open pixel hits and link clicks older than the period (on PostgreSQL, their monthly
    partitions wholly older than it are dropped first)."""
    cutoff = batches.now - timedelta(days=days)
    total = 0
    for id_column in (EmailOpen.id, EmailClick.id):
        table = id_column.class_
        batches.drop_partitions(policies.EMAIL_HITS, table.__tablename__, cutoff)
        with batches.database.read() as session:
            bound = first_id_from(session, id_column, cutoff)
        total += batches.by_id(
            policies.EMAIL_HITS, id_column, [id_column < bound, table.created_at < cutoff]
        )
    return total


def _is_empty(name: str) -> ColumnElement[bool]:
    column = getattr(Contact, name)
    if name == "birthday":
        return column.is_(None)  # type: ignore[no-any-return]
    return or_(column.is_(None), column == "")


def anonymous_before(cutoff: datetime) -> list[ColumnElement[bool]]:
    """SQL: the contact is anonymous (see `retention.policies`) and created and last changed
    before `cutoff`."""
    return [
        Contact.created_at < cutoff,
        Contact.updated_at < cutoff,
        *(_is_empty(name) for name in policies.ANONYMOUS_FIELDS),
        ~exists().where(Activity.contact_id == Contact.id),
        ~exists().where(Subscriber.contact_id == Contact.id),
        ~exists().where(ConsentAgreement.contact_id == Contact.id),
        ~exists().where(GroupMember.contact_id == Contact.id),
    ]


def delete_anonymous_contacts(batches: Batches, days: int) -> int:
    """Anonymous contacts created and last changed before the period.

    Each batch first locks the candidates (PostgreSQL: FOR UPDATE, which waits for an ingest
    batch holding one FOR KEY SHARE and keeps later ones out), then deletes those still
    anonymous, tested again in a new statement that sees what such a batch committed: a
    contact that has just had an activity stored stays. Their group membership history goes
    with them (ON DELETE CASCADE), and their place in the dynamic groups' queue.
    """
    cutoff = batches.now - timedelta(days=days)
    anonymous = anonymous_before(cutoff)

    def step(session: Session, after: int) -> tuple[int, int | None]:
        ids = session.scalars(
            select(Contact.id)
            .where(Contact.id > after, *anonymous)
            .order_by(Contact.id)
            .limit(batches.size)
            .with_for_update()
        ).all()
        if not ids:
            return 0, None
        deleted = session.execute(
            delete(Contact)
            .where(Contact.id.in_(ids), *anonymous)
            .returning(Contact.id, Contact.created_at)
            .execution_options(synchronize_session=False)
        ).all()
        gone = [contact_id for contact_id, _ in deleted]
        if gone:
            session.execute(
                delete(GroupPendingContact).where(GroupPendingContact.contact_id.in_(gone))
            )
            # The dashboard's new contacts count only contacts that still exist.
            rollups.forget_contacts(session, deleted)
        return len(gone), ids[-1]

    return batches.walk(policies.ANONYMOUS_CONTACTS, step)


def delete_outbox(batches: Batches, days: int) -> int:
    """Webhook events dispatched and created before the period whose every delivery was
    delivered, with their deliveries. An event with a pending or dead delivery stays (it may
    still be sent, retried or replayed); so do events not dispatched yet."""
    cutoff = batches.now - timedelta(days=days)
    done = [
        OutboxEvent.dispatched_at.is_not(None),
        OutboxEvent.created_at < cutoff,
        ~exists().where(
            WebhookDelivery.event_id == OutboxEvent.id, WebhookDelivery.state != DELIVERED
        ),
    ]

    def step(session: Session, after: int) -> tuple[int, int | None]:
        ids = session.scalars(
            select(OutboxEvent.id)
            .where(OutboxEvent.id > after, *done)
            .order_by(OutboxEvent.id)
            .limit(batches.size)
            .with_for_update()
        ).all()
        if not ids:
            return 0, None
        _deleted(
            session,
            delete(WebhookDelivery).where(
                WebhookDelivery.event_id.in_(ids), WebhookDelivery.state == DELIVERED
            ),
        )
        return _deleted(session, delete(OutboxEvent).where(OutboxEvent.id.in_(ids), *done)), ids[-1]

    return batches.walk(policies.OUTBOX, step)


def delete_audit_log(batches: Batches, days: int) -> int:
    """Audit log entries older than the period (this run's own entry is written after)."""
    cutoff = batches.now - timedelta(days=days)
    with batches.database.read() as session:
        bound = first_id_from(session, AuditEvent.id, cutoff)
    return batches.by_id(
        policies.AUDIT_LOG, AuditEvent.id, [AuditEvent.id < bound, AuditEvent.created_at < cutoff]
    )


# -- runs ---------------------------------------------------------------------------------------


def _delete_all(batches: Batches, kept: Sequence[RetentionPolicy]) -> None:
    """Every kind with a policy, in this order: activities first, so that a contact whose last
    activities went may be found anonymous in the same run."""
    periods = {p.kind: p.days for p in kept if p.kind != policies.ACTIVITIES}
    activity_policies = [p for p in kept if p.kind == policies.ACTIVITIES]
    if activity_policies:
        delete_activities(batches, activity_policies)
    if policies.EMAIL_HITS in periods:
        delete_email_hits(batches, periods[policies.EMAIL_HITS])
    if policies.ANONYMOUS_CONTACTS in periods:
        delete_anonymous_contacts(batches, periods[policies.ANONYMOUS_CONTACTS])
    if policies.OUTBOX in periods:
        delete_outbox(batches, periods[policies.OUTBOX])
    if policies.AUDIT_LOG in periods:
        delete_audit_log(batches, periods[policies.AUDIT_LOG])


def run(
    database: Database,
    settings: Settings,
    actor: str,
    *,
    now: datetime | None = None,
    observe: BatchObserver | None = None,
) -> RetentionRun:
    """Run the retention job once, now; the run as recorded (detached).

    Conflict (409 `retention_running`) when another process is running it. An error during
    the run is caught, logged and recorded as the run's `error`; what was deleted before it
    stays deleted and counted.
    """
    with database.write() as session:
        if not leases.take(session, LEASE, LEASE_SECONDS):
            raise Conflict(
                "The retention job is running in another hub process; try again once it has "
                "finished.",
                code="retention_running",
            )
        # Holding the lease, no other run can be going on: one left unfinished was stopped
        # with its process (killed, machine down) and is recorded as such.
        session.execute(
            update(RetentionRun)
            .where(RetentionRun.finished_at.is_(None))
            .values(finished_at=utcnow(), error=STOPPED)
        )
        record = RetentionRun(actor=actor[:254], started_at=utcnow())
        session.add(record)
        session.flush()
        run_id = record.id
    started = monotonic()
    batches = Batches(database, settings.retention_batch_size, now or utcnow(), observe)
    error: str | None = None
    try:
        with database.read() as session:
            kept = policies.list_policies(session)
            session.expunge_all()
        _delete_all(batches, kept)
    except Exception as exc:
        error = describe(exc)
        logger.exception("The retention job failed (run %s); the next run tries again.", run_id)
    seconds = round(monotonic() - started, 3)
    deleted = {kind: batches.deleted[kind] for kind in policies.KINDS if kind in batches.deleted}
    with database.write() as session:
        record = session.get_one(RetentionRun, run_id)
        record.finished_at = utcnow()
        record.deleted = json.dumps(deleted)
        record.partitions_dropped = batches.partitions_dropped
        record.error = error
        details: dict[str, Any] = {"deleted": deleted, "seconds": seconds}
        if batches.partitions_dropped:
            details["partitions_dropped"] = batches.partitions_dropped
        if error is not None:
            details["error"] = error
        audit.record(session, actor, "retention.run", str(run_id), details)
        leases.release(session, LEASE)
        session.flush()
        session.expunge(record)
    return record


def describe(error: BaseException) -> str:
    """An error as a run records it: its type and the database's own message (without the
    statement and its parameters, which SQLAlchemy's message adds)."""
    message = str(getattr(error, "orig", None) or error).strip().splitlines()
    return f"{type(error).__name__}: {message[0] if message else ''}"[:MAX_ERROR]


def run_if_due(database: Database, settings: Settings) -> RetentionRun | None:
    """The scheduled run: only when some policy is set and no run (by any process, or by
    hand) started within the last `retention_interval` seconds; None when it did not run
    (not due, or running elsewhere).

    Whether a run is due or not, the message ids and idempotency keys older than
    `ingest_dedupe_days` are forgotten first: at each look (every minute), so each delete is
    a minute's worth of rows, and without any policy too.
    """
    with database.write() as session:
        forget_expired(session, utcnow(), days=settings.ingest_dedupe_days)
    with database.read() as session:
        if not session.scalar(select(exists().select_from(RetentionPolicy))):
            return None
        last = session.scalar(select(func.max(RetentionRun.started_at)))
    if last is not None and last > utcnow() - timedelta(seconds=settings.retention_interval):
        return None
    try:
        return run(database, settings, SCHEDULE_ACTOR)
    except Conflict:
        return None


# -- reading runs -------------------------------------------------------------------------------


def last_runs(session: Session, limit: int = RUNS_SHOWN) -> list[RetentionRun]:
    """The latest runs, newest first."""
    return list(
        session.scalars(select(RetentionRun).order_by(RetentionRun.id.desc()).limit(limit)).all()
    )


def is_failing(session: Session) -> bool:
    """Whether the latest finished run failed (shown until a run succeeds)."""
    error = session.execute(
        select(RetentionRun.error)
        .where(RetentionRun.finished_at.is_not(None))
        .order_by(RetentionRun.id.desc())
        .limit(1)
    ).first()
    return error is not None and error[0] is not None


def deleted_counts(record: RetentionRun) -> dict[str, int]:
    """What a run deleted, per kind."""
    counts: dict[str, int] = json.loads(record.deleted or "{}")
    return counts


def seconds_taken(record: RetentionRun) -> float | None:
    """How long a run took (None while it runs)."""
    if record.finished_at is None:
        return None
    return round((record.finished_at - record.started_at).total_seconds(), 3)
