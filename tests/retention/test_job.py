"""The retention job on both databases: what each kind deletes and keeps, in batches, with the
dashboard's totals unchanged."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from contacthub.analytics import dashboard, rollups
from contacthub.audit import service as audit
from contacthub.errors import Conflict
from contacthub.retention import job, policies
from contacthub.settings import Settings
from contacthub.storage import leases, partitions
from contacthub.storage.database import Database
from contacthub.storage.models import (
    Activity,
    AuditEvent,
    Contact,
    ContactGroup,
    EmailClick,
    EmailOpen,
    GroupMember,
    IdempotencyKey,
    IngestMessageId,
    OutboxEvent,
    RetentionRun,
    WebhookDelivery,
    WebhookEndpoint,
)
from contacthub.storage.types import utcnow
from tests.analytics import support
from tests.analytics.support import Act
from tests.retention.support import audit_log_undeletable, deletes_counted

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
OLD = datetime(2025, 1, 10, 9, tzinfo=UTC)
BATCH = 100


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,  # type: ignore[arg-type]
        secret_key="test-secret",  # type: ignore[arg-type]
        retention_batch_size=BATCH,
    )


def _policy(database: Database, kind: str, days: int, activity_type: str = "") -> None:
    with database.write() as session:
        policies.set_policy(session, kind, days, activity_type=activity_type, actor="tests")


def _count(database: Database, column: object, *where: object) -> int:
    with database.read() as session:
        return session.scalar(select(func.count(column)).where(*where)) or 0  # type: ignore[arg-type]


def _totals(database: Database) -> dashboard.Totals:
    """The dashboard's tiles over the whole test period."""
    with database.read() as session:
        board = dashboard.dashboard(session, date(2025, 1, 1), date(2025, 12, 31))
        return board.totals


def _run(database: Database, settings: Settings) -> tuple[RetentionRun, list[tuple[str, int]]]:
    batches: list[tuple[str, int]] = []
    run = job.run(
        database, settings, "tests", now=NOW, observe=lambda k, n, s: batches.append((k, n))
    )
    return run, batches


def test_activities_go_in_batches_and_the_dashboard_totals_stay(
    database: Database, settings: Settings
) -> None:
    web = support.channel(database, "Web")
    anna = support.contact_id(database, email="anna@example.com")
    # 1,050 old page visits over 35 days, and 20 old quiz answers among them: counted.
    old = [
        Act(OLD + timedelta(days=n % 35, seconds=n), "pagevisit", web, url=f"https://x/{n % 7}")
        for n in range(1_050)
    ]
    quiz = [Act(OLD + timedelta(days=n), "quiz", web, value="a") for n in range(20)]
    support.add(database, anna, *old[:500], *quiz, *old[500:])
    rollups.refresh(database)
    # Old activities stored after the rollups counted: not counted yet, so they stay.
    late = [Act(OLD + timedelta(days=40), "pagevisit", web, url="https://x/late") for _ in range(7)]
    support.add(database, anna, *late)
    recent = [Act(NOW - timedelta(days=2), "pagevisit", web, url="https://x/new") for _ in range(5)]
    support.add(database, anna, *recent)
    start, end = "2024-12-01", "2026-06-30"
    before = support.counts(database, start, end)
    board_before = _totals(database)
    tops_before = support.tops(database, "page", start, end)

    _policy(database, policies.ACTIVITIES, 30)
    _policy(database, policies.ACTIVITIES, 3_650, "quiz")
    with deletes_counted(database, "activities") as statements:
        run, batches = _run(database, settings)

    assert run.error is None
    assert job.deleted_counts(run) == {"activities": 1_050}
    # Batches of at most BATCH rows, one DELETE each, and a last one that found nothing.
    activity_batches = [n for kind, n in batches if kind == "activities"]
    assert activity_batches == [BATCH] * 10 + [50, 0] + [0]  # the quiz pass found nothing
    assert statements == [BATCH] * 10 + [50]
    with database.read() as session:
        left = session.execute(select(Activity.type, func.count()).group_by(Activity.type)).all()
    assert dict(left) == {"quiz": 20, "pagevisit": 12}  # the late and the recent ones
    # The dashboard counts as before, and keeps counting the rows not yet rolled up.
    assert support.counts(database, start, end) == before
    assert support.tops(database, "page", start, end) == tops_before
    assert _totals(database) == board_before
    assert board_before.activities == 1_050 + 20 + 7
    rollups.refresh(database)
    assert support.counts(database, start, end) == before


def test_each_type_keeps_its_own_period(database: Database, settings: Settings) -> None:
    web = support.channel(database, "Web")
    anna = support.contact_id(database, email="anna@example.com")
    support.add(
        database,
        anna,
        Act(NOW - timedelta(days=100), "pagevisit", web),
        Act(NOW - timedelta(days=100), "click", web, value="buy"),
        Act(NOW - timedelta(days=100), "quiz", web),
        Act(NOW - timedelta(days=10), "pagevisit", web),
        Act(NOW - timedelta(days=10), "click", web, value="buy"),
    )
    rollups.refresh(database)
    # Clicks 7 days, page visits 200: no default, so quiz answers are kept forever.
    _policy(database, policies.ACTIVITIES, 7, "click")
    _policy(database, policies.ACTIVITIES, 200, "pagevisit")
    run, _ = _run(database, settings)
    assert job.deleted_counts(run) == {"activities": 2}
    with database.read() as session:
        left = session.execute(select(Activity.type, Activity.created_at)).all()
    assert sorted(t for t, _ in left) == ["pagevisit", "pagevisit", "quiz"]


def test_email_hits_older_than_the_period_go(database: Database, settings: Settings) -> None:
    support.email_issue(
        database,
        "Spring",
        sent_at=OLD,
        recipients=["a@example.com", "b@example.com"],
        opened=["a@example.com", "b@example.com"],
        clicked=["a@example.com"],
    )
    with database.write() as session:
        session.execute(update(EmailOpen).values(created_at=OLD))
        session.execute(update(EmailClick).values(created_at=OLD))
    support.email_issue(
        database, "Summer", sent_at=NOW, recipients=["a@example.com"], opened=["a@example.com"]
    )
    with database.write() as session:
        session.execute(update(EmailOpen).where(EmailOpen.id == 3).values(created_at=NOW))
    _policy(database, policies.EMAIL_HITS, 90)
    run, _ = _run(database, settings)
    assert job.deleted_counts(run) == {"email_hits": 3}
    assert _count(database, EmailOpen.id) == 1
    assert _count(database, EmailClick.id) == 0


def _aged(database: Database, contact: int, moment: datetime) -> None:
    with database.write() as session:
        session.execute(
            update(Contact)
            .where(Contact.id == contact)
            .values(created_at=moment, updated_at=moment)
        )


def test_only_old_anonymous_contacts_without_anything_go(
    database: Database, settings: Settings
) -> None:
    web = support.channel(database, "Web")
    gone = [support.contact_id(database) for _ in range(250)]
    recent = support.contact_id(database)
    named = support.contact_id(database, first_name="Ada")
    with_email = support.contact_id(database, email="bob@example.com")
    active = support.contact_id(database)
    member = support.contact_id(database)
    for contact in [*gone, named, with_email, active, member]:
        _aged(database, contact, OLD)
    _aged(database, recent, NOW - timedelta(days=3))
    support.add(database, active, Act(OLD, "pagevisit", web))
    with database.write() as session:
        group = ContactGroup(name="Hand-picked", kind="static")
        session.add(group)
        session.flush()
        session.add(GroupMember(group_id=group.id, contact_id=member))
    _policy(database, policies.ANONYMOUS_CONTACTS, 30)
    run, batches = _run(database, settings)
    assert job.deleted_counts(run) == {"anonymous_contacts": 250}
    assert [n for _, n in batches] == [100, 100, 50, 0]
    with database.read() as session:
        left = set(session.scalars(select(Contact.id)))
    assert left == {recent, named, with_email, active, member}


def test_only_delivered_webhook_events_go(database: Database, settings: Settings) -> None:
    with database.write() as session:
        endpoint = WebhookEndpoint(name="CRM", url="https://crm.example.com/", secret="whsec_x")
        session.add(endpoint)
        session.flush()

        def event(created: datetime, dispatched: bool, *states: str) -> int:
            row = OutboxEvent(
                event_id=uuid.uuid4(),
                type="contact.created",
                contact_id=1,
                payload="{}",
                created_at=created,
                dispatched_at=created if dispatched else None,
            )
            session.add(row)
            session.flush()
            for state in states:
                session.add(WebhookDelivery(endpoint_id=endpoint.id, event_id=row.id, state=state))
            return row.id

        delivered = event(OLD, True, "delivered")
        nobody_wanted = event(OLD, True)
        dead = event(OLD, True, "dead")
        pending = event(OLD, True, "pending")
        undispatched = event(OLD, False)
        fresh = event(NOW - timedelta(days=1), True, "delivered")
    _policy(database, policies.OUTBOX, 7)
    run, _ = _run(database, settings)
    assert job.deleted_counts(run) == {"outbox": 2}
    with database.read() as session:
        assert set(session.scalars(select(OutboxEvent.id))) == {dead, pending, undispatched, fresh}
        assert delivered not in set(session.scalars(select(WebhookDelivery.event_id)))
    assert nobody_wanted


def test_old_audit_entries_go_and_the_run_is_recorded(
    database: Database, settings: Settings
) -> None:
    with database.write() as session:
        for n in range(120):
            audit.record(session, "tests", "user.created", f"u{n}@example.com")
        session.flush()
        session.execute(update(AuditEvent).values(created_at=OLD))
        audit.record(session, "tests", "user.created", "recent@example.com")
    _policy(database, policies.AUDIT_LOG, 365)
    run, _ = _run(database, settings)
    assert run.error is None
    assert job.deleted_counts(run) == {"audit_log": 120}
    with database.read() as session:
        entries = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        actions = [(e.action, e.subject) for e in entries]
        last = json.loads(entries[-1].details or "{}")
    assert actions == [
        ("user.created", "recent@example.com"),
        ("retention.policy_set", "audit_log"),
        ("retention.run", str(run.id)),
    ]
    assert last["deleted"] == {"audit_log": 120}
    assert "error" not in last


def test_a_failing_run_is_recorded_and_the_next_one_recovers(
    database: Database, settings: Settings
) -> None:
    web = support.channel(database, "Web")
    anna = support.contact_id(database, email="anna@example.com")
    support.add(database, anna, *[Act(OLD, "pagevisit", web) for _ in range(150)])
    rollups.refresh(database)
    with database.write() as session:
        audit.record(session, "tests", "user.created", "x@example.com")
        session.flush()
        session.execute(update(AuditEvent).values(created_at=OLD))
    _policy(database, policies.ACTIVITIES, 30)
    _policy(database, policies.AUDIT_LOG, 30)
    with audit_log_undeletable(database):
        failed, _ = _run(database, settings)
        with database.read() as session:
            assert job.is_failing(session)
    assert failed.error is not None
    assert "kept by a trigger" in failed.error
    # What went before the error stays gone and counted.
    assert job.deleted_counts(failed) == {"activities": 150}
    assert failed.finished_at is not None
    with database.read() as session:
        entry = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "retention.run")
        ).one()
        assert "kept by a trigger" in json.loads(entry.details or "{}")["error"]
    recovered, _ = _run(database, settings)
    assert recovered.error is None
    with database.read() as session:
        assert not job.is_failing(session)


def test_a_run_stopped_with_its_process_is_recorded_as_failed(
    database: Database, settings: Settings
) -> None:
    with database.write() as session:
        session.add(RetentionRun(actor="a killed process", started_at=OLD))
    run, _ = _run(database, settings)
    with database.read() as session:
        stopped, latest = session.scalars(select(RetentionRun).order_by(RetentionRun.id)).all()
        assert stopped.error == job.STOPPED
        assert stopped.finished_at is not None
        assert latest.id == run.id
        assert latest.error is None
        assert not job.is_failing(session)


def test_one_process_at_a_time_and_the_schedule(database: Database, settings: Settings) -> None:
    # Without any policy the schedule does not run at all.
    assert job.run_if_due(database, settings) is None
    _policy(database, policies.AUDIT_LOG, 30)
    with database.write() as session:
        assert leases.take(session, job.LEASE, 60, holder="another process")
    with pytest.raises(Conflict):
        job.run(database, settings, "tests")
    assert job.run_if_due(database, settings) is None
    with database.write() as session:
        leases.release(session, job.LEASE, holder="another process")
    first = job.run_if_due(database, settings)
    assert first is not None
    assert first.actor == job.SCHEDULE_ACTOR
    # Within the interval, no process runs it again; a run by hand still may.
    assert job.run_if_due(database, settings) is None
    assert job.run(database, settings, "tests").id == first.id + 1
    with database.read() as session:
        assert [r.id for r in job.last_runs(session)] == [first.id + 1, first.id]
    assert utcnow() - first.started_at < timedelta(minutes=1)


def test_postgresql_drops_whole_old_partitions_and_the_counts_stay(
    database: Database, settings: Settings
) -> None:
    if database.is_sqlite:
        pytest.skip("partitions are PostgreSQL's (SQLite deletes row by row, tested above)")
    now = utcnow()
    web = support.channel(database, "Web")
    anna = support.contact_id(database, email="anna@example.com")
    # Two old months of page visits, counted by the rollups, and a few recent ones.
    old = [
        Act(now - timedelta(days=400 + n % 40, seconds=n), "pagevisit", web, url="https://x/")
        for n in range(300)
    ]
    recent = [Act(now - timedelta(days=1), "pagevisit", web, url="https://x/new")] * 4
    support.add(database, anna, *old, *recent)
    rollups.refresh(database)
    with database.write() as session:
        # The old rows wait in the default partition until their months get partitions.
        assert partitions.ensure_ahead(session, 3)
    start, end = (now - timedelta(days=500)).date().isoformat(), now.date().isoformat()
    before = support.counts(database, start, end)
    _policy(database, policies.ACTIVITIES, 30)

    run = job.run(database, settings, "tests", now=now)

    assert run.error is None
    assert run.partitions_dropped >= 2
    assert job.deleted_counts(run) == {"activities": 300}
    assert _count(database, Activity.id) == 4
    assert support.counts(database, start, end) == before
    with database.read() as session:
        months = [p.upper for p in partitions.partitions(session, "activities") if p.upper]
        assert min(months) > now - timedelta(days=30 + 31)
        [entry] = [e for e in audit.latest(session, limit=5) if e.action == "retention.run"]
        assert json.loads(entry.details or "{}")["partitions_dropped"] == run.partitions_dropped


def test_expired_message_ids_are_forgotten_without_any_policy(
    database: Database, settings: Settings
) -> None:
    old = utcnow() - timedelta(days=settings.ingest_dedupe_days, minutes=1)
    with database.write() as session:
        session.add_all(
            [
                IngestMessageId(channel_id=1, message_id="old", created_at=old),
                IngestMessageId(channel_id=1, message_id="new"),
                IdempotencyKey(
                    channel_id=1, scope="contacts", key="old", request_hash="h", created_at=old
                ),
            ]
        )
    assert job.run_if_due(database, settings) is None  # no policy: no run
    with database.read() as session:
        assert session.scalars(select(IngestMessageId.message_id)).all() == ["new"]
        assert session.scalars(select(IdempotencyKey.key)).all() == []
