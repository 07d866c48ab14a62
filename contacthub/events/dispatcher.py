"""The webhook dispatcher: the job that turns outbox events into signed HTTP calls.

One hub process at a time runs it (the lease "webhooks", storage/leases.py); every
`webhook_dispatch_interval` seconds, for as long as there is work:

1. Fan-out: undispatched outbox events, oldest first, become one `webhook_deliveries` row per
   enabled endpoint that wants them (`Subscription.wants_payload`), and are marked dispatched,
   in one short transaction per batch.
2. Delivery: each enabled endpoint's pending deliveries are grouped into lanes, one per contact.
   A lane is sent in event order, one call after the other, and stops at its first failure or
   at a delivery not due yet; a contact's delivery is never sent while an earlier event of the
   same contact to the same endpoint is undelivered (pending or dead). Lanes (contacts) go out
   concurrently, up to `LANES` calls at once. Events without a contact have no order to keep:
   each is a lane of its own.
3. Outcomes are written in small transactions (a few hundred at most, every `FLUSH_SECONDS`),
   never while a call is in flight, so that ingest (SQLite has one writer) never waits for the
   network. A 2xx answer delivers; anything else (another status, a timeout, a refused
   connection) counts a try and backs off: the next try is due after a random delay between 0
   and min(`webhook_retry_max_delay`, `webhook_retry_delay` × 2^(tries − 1)) ("full jitter");
   after `webhook_max_attempts` tries the delivery is dead until an operator retries or replays.

Delivery is at least once: a call answered 2xx whose outcome was not yet written when the
process died is sent again, with the same `webhook-id` (the event's GUID); receivers dedupe by it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx2
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from contacthub.events import signing
from contacthub.events.outbox import ACTIVITY_STORED, subscriptions
from contacthub.settings import Settings
from contacthub.storage import leases
from contacthub.storage.database import Database, insert_or_ignore
from contacthub.storage.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from contacthub.storage.types import utcnow

logger = logging.getLogger(__name__)

LEASE = "webhooks"
PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
STATES = (PENDING, DELIVERED, DEAD)
# Outbox events fanned out per transaction, and transactions per round.
FAN_OUT_BATCH = 500
FAN_OUT_BATCHES_PER_ROUND = 2
# Pending deliveries of one endpoint looked at per round (oldest events first), and calls one
# lane (contact) makes per round at most. While more deliveries wait than a round sends, no
# more events are fanned out: the outbox holds them as well, for less.
WINDOW = 500
LANE_MAX = 100
# Calls in flight at once (lanes sent concurrently).
LANES = 16
# Outcomes are written at least this often, and at most this many per transaction: few
# write transactions, because each one may make ingest's writer wait (SQLite's busy handler
# sleeps in steps of up to 100 ms) and the dispatcher, unlike ingest, is in no hurry.
FLUSH_SECONDS = 0.25
FLUSH_BATCH = 500
# A round stops starting calls after this long, so that its pause (below) comes often.
ROUND_SECONDS = 0.25
# While events keep arriving (ingest is busy), the dispatcher works this share of the time and
# pauses the rest: ingest keeps the core and the store's writer, the backlog waits. Once events
# stop arriving, it sends at full speed.
BUSY_SHARE = 0.1
MAX_PAUSE = 5.0
# What is kept of an answer or an error, for the admin.
ERROR_CHARS = 500
USER_AGENT = "contacthub-webhooks/1"


def lease_seconds(settings: Settings) -> float:
    """How long the dispatcher's lease lasts without renewal: long enough to outlive a call
    that times out, short enough for another process to take over soon after a crash."""
    return max(5.0, 3 * settings.webhook_timeout + 10 * settings.webhook_dispatch_interval)


def pause_after(took: float) -> float:
    """Seconds to pause after a round that took `took` seconds while ingest is busy."""
    return min(took * (1 - BUSY_SHARE) / BUSY_SHARE, MAX_PAUSE)


def backoff(
    attempts: int, delay: float, max_delay: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait after the `attempts`-th failed try: full jitter of the capped
    exponential, uniform in [0, min(max_delay, delay × 2^(attempts − 1))]."""
    ceiling = min(max_delay, delay * 2 ** min(max(attempts - 1, 0), 62))
    return (rng or random).uniform(0.0, ceiling)


@dataclass(frozen=True, slots=True)
class Target:
    """Where an endpoint's calls go and what signs them."""

    id: int
    url: str
    secret: str


@dataclass(frozen=True, slots=True)
class Call:
    """One pending delivery, read for sending."""

    delivery_id: int
    endpoint_id: int
    contact_id: int | None
    event_id: int
    attempts: int
    next_attempt_at: datetime
    event_guid: str = ""
    payload: str = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one call got."""

    call: Call
    ok: bool
    at: datetime
    status: int | None
    error: str | None


@dataclass(slots=True)
class Totals:
    """What the dispatcher did since it started (for benchmarks and tests)."""

    fanned_out: int = 0
    calls: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0


def fan_out(session: Session, now: datetime, limit: int = FAN_OUT_BATCH) -> int:
    """Turn up to `limit` undispatched outbox events (oldest first) into deliveries for every
    enabled endpoint that wants them, and mark them dispatched; how many events were taken."""
    events = session.execute(
        select(OutboxEvent.id, OutboxEvent.type, OutboxEvent.contact_id, OutboxEvent.payload)
        .where(OutboxEvent.dispatched_at.is_(None))
        .order_by(OutboxEvent.id)
        .limit(limit)
    ).all()
    if not events:
        return 0
    wanting = subscriptions(session)
    rows: list[dict[str, Any]] = []
    for event in events:
        payload: dict[str, Any] | None = None
        for subscription in wanting:
            if not subscription.wants(event.type):
                continue
            if event.type == ACTIVITY_STORED and (
                subscription.activity_types is not None or subscription.channel_ids is not None
            ):
                payload = payload if payload is not None else json.loads(event.payload)
                if not subscription.wants_payload(event.type, payload):
                    continue
            rows.append(
                {
                    "endpoint_id": subscription.endpoint_id,
                    "event_id": event.id,
                    "contact_id": event.contact_id,
                    "state": PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
            )
    if rows:
        session.execute(
            insert_or_ignore(session, WebhookDelivery, ["endpoint_id", "event_id"]), rows
        )
    session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.id.in_([event.id for event in events]))
        .values(dispatched_at=now)
    )
    return len(events)


def lanes_due(
    session: Session, endpoint_id: int, now: datetime, window: int = WINDOW
) -> tuple[list[list[Call]], bool]:
    """The endpoint's deliveries that may be sent now, as lanes: per contact, in event order,
    from its earliest undelivered event up to the first one not due; contacts with an earlier
    dead delivery are held back until it is retried. Also returns whether more deliveries wait
    than one round sends."""
    # The first LANE_MAX pending deliveries of each contact (a contact held back by a failing
    # or dead delivery cannot fill the window and starve the others), oldest events first.
    place = (
        func.row_number()
        .over(partition_by=WebhookDelivery.contact_id, order_by=WebhookDelivery.event_id)
        .label("place")
    )
    waiting = (
        select(
            WebhookDelivery.id,
            WebhookDelivery.contact_id,
            WebhookDelivery.event_id,
            WebhookDelivery.attempts,
            WebhookDelivery.next_attempt_at,
            place,
        )
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.state == PENDING)
        .subquery()
    )
    pending = session.execute(
        select(
            waiting.c.id,
            waiting.c.contact_id,
            waiting.c.event_id,
            waiting.c.attempts,
            waiting.c.next_attempt_at,
            waiting.c.place,
        )
        .where(waiting.c.place <= LANE_MAX)
        .order_by(waiting.c.event_id)
        .limit(window)
    ).all()
    if not pending:
        return [], False
    # The earliest dead event of each contact: nothing later of that contact may go.
    dead_before: dict[int | None, int] = dict(
        session.execute(
            select(WebhookDelivery.contact_id, func.min(WebhookDelivery.event_id))
            .where(
                WebhookDelivery.endpoint_id == endpoint_id,
                WebhookDelivery.state == DEAD,
                WebhookDelivery.contact_id.is_not(None),
            )
            .group_by(WebhookDelivery.contact_id)
        ).all()
    )
    lanes: dict[object, list[Call]] = {}
    blocked: set[int] = set()
    for row in pending:
        key: object = row.contact_id if row.contact_id is not None else ("event", row.id)
        if row.contact_id is not None:
            if row.contact_id in blocked:
                continue
            first_dead = dead_before.get(row.contact_id)
            if (first_dead is not None and first_dead < row.event_id) or row.next_attempt_at > now:
                blocked.add(row.contact_id)
                continue
        elif row.next_attempt_at > now:
            continue
        lanes.setdefault(key, []).append(
            Call(
                row.id, endpoint_id, row.contact_id, row.event_id, row.attempts, row.next_attempt_at
            )
        )
    # More waits than one round sends: a window full, or a contact with more behind.
    full = len(pending) >= window or any(row.place >= LANE_MAX for row in pending)
    return list(lanes.values()), full


def _with_payloads(session: Session, lanes: list[list[Call]]) -> list[list[Call]]:
    ids = [call.event_id for lane in lanes for call in lane]
    found: dict[int, tuple[str, str]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for event_id, event_guid, payload in session.execute(
            select(OutboxEvent.id, OutboxEvent.event_id, OutboxEvent.payload).where(
                OutboxEvent.id.in_(chunk)
            )
        ).all():
            found[event_id] = (str(event_guid), payload)
    result = []
    for lane in lanes:
        # An event erased meanwhile ends its lane here (its deliveries went with it).
        complete: list[Call] = []
        for call in lane:
            if call.event_id not in found:
                break
            guid, payload = found[call.event_id]
            complete.append(
                Call(
                    call.delivery_id,
                    call.endpoint_id,
                    call.contact_id,
                    call.event_id,
                    call.attempts,
                    call.next_attempt_at,
                    guid,
                    payload,
                )
            )
        if complete:
            result.append(complete)
    return result


class Dispatcher:
    """The dispatcher of one hub process: its HTTP client, its pool of lanes, its lease."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        holder: str = leases.PROCESS,
        rng: random.Random | None = None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.holder = holder
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self.lease_seconds = lease_seconds(settings)
        self.totals = Totals()
        limits = httpx2.Limits(max_connections=LANES, max_keepalive_connections=LANES)
        self._client = httpx2.Client(
            timeout=settings.webhook_timeout,
            follow_redirects=False,
            headers={"user-agent": USER_AGENT},
            # Headers and body go out as two writes: without TCP_NODELAY the body waits for the
            # receiver's delayed ACK of the headers (up to 40 ms per call on Linux).
            transport=httpx2.HTTPTransport(
                limits=limits, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
            ),
        )
        self._pool = ThreadPoolExecutor(max_workers=LANES, thread_name_prefix="webhook-lane")
        self._renewed = 0.0
        self._holding = False
        # The latest outbox event seen, and the most deliveries waiting at one endpoint.
        self._last_event: int | None = None
        self._backlog = False
        self._lock = threading.Lock()

    # -- the job --------------------------------------------------------------------------

    def run(self, stopping: Callable[[], bool] = lambda: False) -> int:
        """One run of the job: while this process holds the lease and there is work, fan out
        new events and send what is due. Returns the number of calls made."""
        with self._lock:
            # A hub without webhooks writes nothing, not even the lease.
            if not self._any_endpoint() or not self._renew():
                return 0
            calls = 0
            while not stopping():
                started = time.monotonic()
                arriving = self._events_arriving()
                fanned = 0 if self._backlog else self._fan_out_round(stopping)
                made = self._deliver_round(stopping)
                calls += made
                if not self._holding or (fanned == 0 and made == 0):
                    break
                if arriving:
                    self._pause(pause_after(time.monotonic() - started), stopping)
            return calls

    def close(self) -> None:
        """Stop: give the lease up (another process may take over at once), close the client."""
        with self._lock:
            self._pool.shutdown(wait=True)
            self._client.close()
            if self._holding:
                try:
                    with self.database.write() as session:
                        leases.release(session, LEASE, self.holder)
                except Exception:
                    logger.exception("Releasing the webhook dispatcher's lease failed.")
                self._holding = False

    # -- steps ----------------------------------------------------------------------------

    def _pause(self, seconds: float, stopping: Callable[[], bool]) -> None:
        until = time.monotonic() + seconds
        while not stopping() and time.monotonic() < until:
            time.sleep(min(0.05, max(until - time.monotonic(), 0.0)))
        if time.monotonic() - self._renewed > self.lease_seconds / 4:
            self._renew()

    def _events_arriving(self) -> bool:
        """Whether events were written since the last look (ingest is busy)."""
        with self.database.read() as session:
            latest = session.scalar(select(func.max(OutboxEvent.id))) or 0
        arriving = self._last_event is not None and latest > self._last_event
        self._last_event = latest
        return arriving

    def _any_endpoint(self) -> bool:
        with self.database.read() as session:
            return (
                session.execute(
                    select(WebhookEndpoint.id).where(WebhookEndpoint.enabled.is_(True)).limit(1)
                ).first()
                is not None
            )

    def _renew(self) -> bool:
        with self.database.write() as session:
            self._holding = leases.take(session, LEASE, self.lease_seconds, self.holder)
        self._renewed = time.monotonic()
        return self._holding

    def _fan_out_round(self, stopping: Callable[[], bool]) -> int:
        taken = 0
        for _ in range(FAN_OUT_BATCHES_PER_ROUND):
            if stopping():
                break
            with self.database.write() as session:
                count = fan_out(session, utcnow())
            taken += count
            self._yield_to_writers()
            if count < FAN_OUT_BATCH:
                break
        self.totals.fanned_out += taken
        return taken

    def _deliver_round(self, stopping: Callable[[], bool]) -> int:
        now = utcnow()
        with self.database.read() as session:
            targets = [
                Target(id, url, secret)
                for id, url, secret in session.execute(
                    select(WebhookEndpoint.id, WebhookEndpoint.url, WebhookEndpoint.secret).where(
                        WebhookEndpoint.enabled.is_(True)
                    )
                ).all()
            ]
            work: list[tuple[Target, list[Call]]] = []
            self._backlog = False
            for target in targets:
                due, full = lanes_due(session, target.id, now)
                self._backlog = self._backlog or full
                work.extend((target, lane) for lane in _with_payloads(session, due))
        if not work:
            return 0
        outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        until = time.monotonic() + ROUND_SECONDS
        futures: list[Future[None]] = [
            self._pool.submit(self._send_lane, target, lane, outcomes, stopping, until)
            for target, lane in work
        ]
        return self._collect(futures, outcomes)

    def _send_lane(
        self,
        target: Target,
        lane: Sequence[Call],
        outcomes: queue.SimpleQueue[Outcome],
        stopping: Callable[[], bool],
        until: float,
    ) -> None:
        for call in lane:
            if stopping() or not self._holding or time.monotonic() > until:
                return
            outcome = self._post(target, call)
            outcomes.put(outcome)
            if not outcome.ok:
                return  # the rest of this contact waits for this one

    def _post(self, target: Target, call: Call) -> Outcome:
        body = call.payload.encode("utf-8")
        headers = signing.headers(target.secret, call.event_guid, body)
        headers["content-type"] = "application/json"
        try:
            with self._client.stream("POST", target.url, content=body, headers=headers) as answer:
                status = answer.status_code
                if 200 <= status < 300:
                    return Outcome(call, True, utcnow(), status, None)
                text = _start_of(answer.iter_bytes())
                return Outcome(call, False, utcnow(), status, f"HTTP {status}: {text}".strip())
        except Exception as error:  # every failure of a call is a failed try, never the job's
            message = f"{type(error).__name__}: {error}".strip().rstrip(":")
            return Outcome(call, False, utcnow(), None, message[:ERROR_CHARS])

    def _collect(self, futures: list[Future[None]], outcomes: queue.SimpleQueue[Outcome]) -> int:
        """Write the lanes' outcomes as they come, in small transactions, until all are done."""
        calls = 0
        batch: list[Outcome] = []
        flushed = time.monotonic()
        while True:
            running = not all(future.done() for future in futures)
            with contextlib.suppress(queue.Empty):
                batch.append(outcomes.get(timeout=FLUSH_SECONDS / 2))
            due = time.monotonic() - flushed >= FLUSH_SECONDS
            if batch and (len(batch) >= FLUSH_BATCH or due or not running):
                calls += len(batch)
                self._write(batch)
                batch = []
                flushed = time.monotonic()
            elif time.monotonic() - self._renewed > self.lease_seconds / 4:
                self._renew()
            if not running and outcomes.empty() and not batch:
                break
        for future in futures:
            future.result()  # a lane's own bug surfaces here, in the job's log
        return calls

    def _write(self, batch: Sequence[Outcome]) -> None:
        settings = self.settings
        delivered: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        health: dict[int, dict[str, Any]] = {}
        for outcome in batch:
            call = outcome.call
            key = {
                "b_id": call.delivery_id,
                "b_attempts": call.attempts,
                "b_due": call.next_attempt_at,
                "v_attempts": call.attempts + 1,
                "v_attempt_at": outcome.at,
                "v_status": outcome.status,
            }
            endpoint = health.setdefault(call.endpoint_id, {})
            if outcome.ok:
                delivered.append({**key, "v_delivered_at": outcome.at})
                endpoint["last_success_at"] = outcome.at
                self.totals.delivered += 1
            else:
                tries = call.attempts + 1
                dead = tries >= settings.webhook_max_attempts
                wait = backoff(
                    tries, settings.webhook_retry_delay, settings.webhook_retry_max_delay, self.rng
                )
                failed.append(
                    {
                        **key,
                        "v_state": DEAD if dead else PENDING,
                        "v_due": outcome.at + timedelta(seconds=wait),
                        "v_error": outcome.error,
                    }
                )
                endpoint["last_failure_at"] = outcome.at
                endpoint["last_error"] = outcome.error
                self.totals.failed += 1
                self.totals.dead += dead
        self.totals.calls += len(batch)
        # Only the try this process made: a delivery replayed or erased meanwhile is left alone.
        same_try = (
            WebhookDelivery.id == bindparam("b_id"),
            WebhookDelivery.state == PENDING,
            WebhookDelivery.attempts == bindparam("b_attempts"),
            WebhookDelivery.next_attempt_at == bindparam("b_due"),
        )
        with self.database.write() as session:
            if delivered:
                session.connection().execute(
                    update(WebhookDelivery)
                    .where(*same_try)
                    .values(
                        state=DELIVERED,
                        attempts=bindparam("v_attempts"),
                        last_attempt_at=bindparam("v_attempt_at"),
                        last_status=bindparam("v_status"),
                        delivered_at=bindparam("v_delivered_at"),
                    ),
                    delivered,
                )
            if failed:
                session.connection().execute(
                    update(WebhookDelivery)
                    .where(*same_try)
                    .values(
                        state=bindparam("v_state"),
                        attempts=bindparam("v_attempts"),
                        next_attempt_at=bindparam("v_due"),
                        last_attempt_at=bindparam("v_attempt_at"),
                        last_status=bindparam("v_status"),
                        last_error=bindparam("v_error"),
                    ),
                    failed,
                )
            for endpoint_id, values in health.items():
                session.execute(
                    update(WebhookEndpoint)
                    .where(WebhookEndpoint.id == endpoint_id)
                    .values(**values)
                )
            self._holding = leases.take(session, LEASE, self.lease_seconds, self.holder)
        self._renewed = time.monotonic()
        self._yield_to_writers()

    def _yield_to_writers(self) -> None:
        # SQLite has one writer: leave the lock to ingest for a moment between two of ours.
        if self.database.is_sqlite:
            time.sleep(0.002)


def _start_of(chunks: Iterable[bytes]) -> str:
    kept = b""
    for chunk in chunks:
        kept += chunk
        if len(kept) >= ERROR_CHARS:
            break
    return kept[:ERROR_CHARS].decode("utf-8", "replace")
