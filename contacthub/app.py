"""The app factory: every component is created and wired here, and nowhere at import time.

`uvicorn --factory contacthub.app:create_app` (what `contacthub serve` runs) calls it once per
worker process, so each worker has its own engine and its own group-commit writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from contacthub.activities.ingest import process_batch
from contacthub.admin.routes import admin_routes
from contacthub.admin.web import error_page
from contacthub.analytics import rollups
from contacthub.api.routes import api_routes
from contacthub.bounces import imap as bounce_mailbox
from contacthub.bounces.webhooks import endpoints as webhooks
from contacthub.email import background, schedule
from contacthub.email.api import email_api_routes
from contacthub.email.endpoints import email_routes
from contacthub.email.signing import link_signer
from contacthub.email.writer import HitWriter
from contacthub.errors import HubError
from contacthub.events.dispatcher import Dispatcher
from contacthub.groups import membership
from contacthub.http import (
    client_gone_handler,
    hot_paths,
    http_error_handler,
    hub_error_handler,
    json_response,
    server_error_handler,
)
from contacthub.hub import Hub, hub_of
from contacthub.retention import job as retention
from contacthub.settings import DEFAULT_SECRET, Settings
from contacthub.storage import leases, partitions
from contacthub.storage.database import Database
from contacthub.storage.groupcommit import GroupCommitWriter
from contacthub.subscriptions import optin
from contacthub.subscriptions.endpoints import subscription_routes
from contacthub.tracking.endpoints import tracking_routes

logger = logging.getLogger(__name__)
# A periodic job's lease lasts this many of its intervals, plus a margin (`job_lease_seconds`).
JOB_LEASE_RUNS = 3
JOB_LEASE_MARGIN = 5.0
ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


def build_hub(settings: Settings) -> Hub:
    """The components of one hub process."""
    if not settings.is_local and settings.secret_key.get_secret_value() == DEFAULT_SECRET:
        raise RuntimeError(
            "Set CONTACTHUB_SECRET_KEY: the default secret is only for local use on SQLite."
        )
    database = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    writer = GroupCommitWriter(
        database,
        process_batch,
        max_batch=settings.writer_max_batch,
        max_queue=settings.writer_max_queue,
        name="activity-writer",
    )
    signer = link_signer(settings)
    email_writer = HitWriter(
        database,
        signer,
        max_batch=settings.writer_max_batch,
        max_queue=settings.writer_max_queue,
    )
    return Hub(
        settings=settings,
        database=database,
        activity_writer=writer,
        email_writer=email_writer,
        link_signer=signer,
    )


def freeze_startup_objects() -> None:
    """Keep the garbage collector off the objects start-up made (once per process).

    Modules, the ORM's mappings, compiled statements: hundreds of thousands of objects that live
    as long as the process. Left in the collector's generations, every full collection walks
    them all, which costs the hot paths about as much as serving the request; frozen (after one
    collection of start-up's garbage), they are never walked again.
    """
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


async def health(request: Request) -> Response:
    """Liveness and readiness for load balancers: answers 200 when the store answers."""
    hub = hub_of(request)
    await hub.read(lambda session: session.connection().exec_driver_sql("SELECT 1"))
    return json_response({"status": "ok"})


async def run_every(
    interval: float,
    stopping: asyncio.Event,
    job: Callable[[], object],
    failure: str,
    *,
    pause_after: Callable[[float, float], float] | None = None,
) -> None:
    """Run the blocking `job` in a worker thread every `interval` seconds until `stopping` is
    set; a failed run is logged (`failure`) and the next one tries again. With `pause_after`,
    the wait after a run is `pause_after(interval, seconds the run took)`.

    Stopping is a signal, never a cancellation: a cancelled `to_thread.run_sync` returns at
    once while its thread runs on, a connection checked out, into the engine's disposal (the
    connection then goes back to a dead pool and is closed only by the garbage collector). So
    the current run always finishes first, and the caller awaits this coroutine.
    """
    pause = interval
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), pause)
        if stopping.is_set():
            return
        started = time.monotonic()
        try:
            await anyio.to_thread.run_sync(job)
        except Exception:
            logger.exception(failure)
        if pause_after is not None:
            pause = pause_after(interval, time.monotonic() - started)


def job_lease_seconds(interval: float) -> float:
    """How long a periodic job's lease lasts: a few runs, so that the holder renews it at each
    run, and another process takes over soon after the holder stops or dies."""
    return JOB_LEASE_RUNS * interval + JOB_LEASE_MARGIN


def release_job_leases(database: Database) -> None:
    """Give up this process's leases of the periodic jobs (on shutdown), so that another
    process takes them over at its next run rather than once they expire."""
    try:
        with database.write() as session:
            for name in (rollups.LEASE, membership.LEASE):
                leases.release(session, name)
    except Exception:
        # A lease is a hint: unreleased, it expires within `job_lease_seconds`.
        logger.exception("Releasing the periodic jobs' leases failed.")


def keep_rollups_fresh(hub: Hub, stopping: asyncio.Event) -> Coroutine[Any, Any, None]:
    """Count new activities into the dashboard's rollups every `rollup_interval` seconds (in
    one process at a time: the lease "rollups")."""
    lease_seconds = job_lease_seconds(hub.settings.rollup_interval)
    return run_every(
        hub.settings.rollup_interval,
        stopping,
        lambda: rollups.refresh(hub.database, lease_seconds=lease_seconds),
        # The dashboard counts what is not rolled up live: a failed run only costs speed.
        "Counting activities into the rollups failed; retrying later.",
    )


def keep_groups_live(hub: Hub, stopping: asyncio.Event) -> Coroutine[Any, Any, None]:
    """Bring dynamic groups' members up to date every `group_refresh_interval` seconds (less
    often while runs are slow: `membership.pause_after`; in one process at a time: the lease
    "groups")."""
    lease_seconds = job_lease_seconds(hub.settings.group_refresh_interval + membership.MAX_PAUSE)
    return run_every(
        hub.settings.group_refresh_interval,
        stopping,
        lambda: membership.refresh(hub.database, lease_seconds=lease_seconds),
        # The next run takes up what this one could not: nothing is lost, only delayed.
        "Updating the members of dynamic groups failed; retrying later.",
        pause_after=membership.pause_after,
    )


def keep_retrying_deferred(
    hub: Hub, sends: background.SendRegistry, stopping: asyncio.Event
) -> Coroutine[Any, Any, None]:
    """Resume the issues whose deferred messages are due for their next try (temporary SMTP
    failures, backed off), every `background.retry_interval` seconds."""
    return run_every(
        background.retry_interval(hub.settings),
        stopping,
        lambda: background.retry_due(hub, sends, stopping.is_set),
        # Deferred messages wait in the store: the next run sends them.
        "Retrying deferred messages failed; retrying later.",
    )


def keep_schedules_firing(
    hub: Hub, sends: background.SendRegistry, stopping: asyncio.Event
) -> Coroutine[Any, Any, None]:
    """Send the due scheduled issues every `schedule_interval` seconds (each fires in one
    process only: `schedule.claim_due`); mark those missed by more than `schedule_grace`."""
    start = schedule.background_start(hub, sends)
    return run_every(
        hub.settings.schedule_interval,
        stopping,
        lambda: schedule.fire_due(hub.database, grace=hub.settings.schedule_grace, start=start),
        # A schedule not claimed stays `scheduled`: the next run claims (or marks missed) it.
        "Firing scheduled sends failed; retrying later.",
    )


def keep_retention(hub: Hub, stopping: asyncio.Event) -> Coroutine[Any, Any, None]:
    """Delete what is older than its retention period: every process looks every minute (or
    every `retention_interval` seconds if shorter), and one runs the job once
    `retention_interval` has passed since the last run started (retention/job.py)."""
    return run_every(
        min(hub.settings.retention_interval, retention.LOOK_INTERVAL),
        stopping,
        lambda: retention.run_if_due(hub.database, hub.settings),
        # A failed run is recorded and shown (admin, API, CLI); the next run tries again.
        "The retention job failed; retrying later.",
    )


def keep_webhooks_flowing(
    hub: Hub, dispatcher: Dispatcher, stopping: asyncio.Event
) -> Coroutine[Any, Any, None]:
    """Deliver outbox events to the webhook endpoints every `webhook_dispatch_interval`
    seconds (in one process at a time: the lease "webhooks"; events/dispatcher.py)."""
    return run_every(
        hub.settings.webhook_dispatch_interval,
        stopping,
        lambda: dispatcher.run(stopping.is_set),
        # Events and deliveries wait in the store: the next run sends them.
        "Delivering webhooks failed; retrying later.",
    )


# How often unconfirmed double opt-in subscriptions are looked for, to expire them.
EXPIRE_UNCONFIRMED_INTERVAL = 600.0


def expire_unconfirmed(hub: Hub, stopping: asyncio.Event) -> Coroutine[Any, Any, None]:
    """Remove subscriptions left unconfirmed past `unconfirmed_subscriber_hours` (every 10 min)."""
    return run_every(
        EXPIRE_UNCONFIRMED_INTERVAL,
        stopping,
        lambda: optin.expire_job(hub.database, hub.settings.unconfirmed_subscriber_hours),
        # Unconfirmed subscribers are never mailed: a late expiry costs only a little storage.
        "Expiring unconfirmed subscriptions failed; retrying later.",
    )


def keep_bounces_read(hub: Hub, stopping: asyncio.Event) -> Coroutine[Any, Any, None]:
    """Read the bounce mailbox every `bounce_imap_interval` seconds (bounces/imap.py)."""
    return run_every(
        hub.settings.bounce_imap_interval,
        stopping,
        lambda: bounce_mailbox.poll(hub.database, hub.settings, hub.link_signer),
        # Unread messages stay in the mailbox until a poll has recorded them: nothing is lost.
        "Reading the bounce mailbox failed; retrying later.",
    )


async def keep_partitions_ahead(hub: Hub, stopping: asyncio.Event) -> None:
    """PostgreSQL: create the event tables' monthly partitions `partition_months_ahead` months
    ahead, at start and then daily (storage/partitions.py)."""

    def ensure() -> None:
        partitions.ensure_ahead_job(hub.database, hub.settings.partition_months_ahead)

    try:
        await anyio.to_thread.run_sync(ensure)
    except Exception:
        logger.exception("Creating partitions ahead failed; retrying later.")
    # Rows of a month without its partition wait in the default partition, moved out later.
    await run_every(
        partitions.ENSURE_INTERVAL,
        stopping,
        ensure,
        "Creating partitions ahead failed; retrying later.",
    )


def admin_aware(handler: ExceptionHandler) -> ExceptionHandler:
    """Errors under /admin answer an HTML page; everywhere else, `handler`'s JSON."""

    async def handle(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/admin"):
            if isinstance(exc, HTTPException):
                return error_page(request, exc.status_code, str(exc.detail))
            if not isinstance(exc, HubError):
                return error_page(request, 500, "Something went wrong on our side.")
        return await handler(request, exc)

    return handle


def create_app(settings: Settings | None = None) -> Starlette:
    """The whole hub as one ASGI app."""
    hub = build_hub(settings or Settings())
    sends = background.SendRegistry()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hub.activity_writer.start()
        hub.email_writer.start()
        stopping = asyncio.Event()
        dispatcher = Dispatcher(hub.database, hub.settings)
        jobs = [
            asyncio.create_task(keep_rollups_fresh(hub, stopping)),
            asyncio.create_task(keep_groups_live(hub, stopping)),
            asyncio.create_task(keep_retrying_deferred(hub, sends, stopping)),
            asyncio.create_task(keep_schedules_firing(hub, sends, stopping)),
            asyncio.create_task(expire_unconfirmed(hub, stopping)),
            asyncio.create_task(keep_retention(hub, stopping)),
            asyncio.create_task(keep_webhooks_flowing(hub, dispatcher, stopping)),
        ]
        if hub.settings.bounce_imap_host:
            jobs.append(asyncio.create_task(keep_bounces_read(hub, stopping)))
        if not hub.database.is_sqlite:
            jobs.append(asyncio.create_task(keep_partitions_ahead(hub, stopping)))
        freeze_startup_objects()
        try:
            yield
        finally:
            # Each job finishes its current run (see `run_every`) before the store closes.
            stopping.set()
            await asyncio.gather(*jobs)
            await anyio.to_thread.run_sync(release_job_leases, hub.database)
            await anyio.to_thread.run_sync(dispatcher.close)
            # Send runs stop after their current message; the rest stays pending, to resume.
            await anyio.to_thread.run_sync(sends.stop_all)
            # Finish what was accepted before closing the store.
            await hub.activity_writer.stop()
            await hub.email_writer.stop()
            hub.database.dispose()

    # Starlette tries routes in order, a regex each: the hot paths come first (POST
    # /activities, then the open pixel and the click redirect), the rarely used ones last.
    routes: list[BaseRoute] = []
    if hub.settings.enable and hub.settings.enable_tracking:
        routes.append(tracking_routes(hub.settings))
    email = email_routes(hub.settings)
    routes += [*email, *email_api_routes(), Route("/health", health, methods=["GET"])]
    routes += subscription_routes()
    routes += [*api_routes(), *admin_routes()]
    routes += webhooks.webhook_routes()

    app = Starlette(
        routes=routes,
        # POST /activities, the open pixel and the click redirect are answered before the
        # route table (contacthub/http.py `HotPaths`).
        middleware=[hot_paths(routes)],
        lifespan=lifespan,
        exception_handlers={
            HubError: hub_error_handler,
            ClientDisconnect: client_gone_handler,
            HTTPException: admin_aware(http_error_handler),
            Exception: admin_aware(server_error_handler),
        },
    )
    app.state.hub = hub
    setattr(app.state, background.STATE_ATTRIBUTE, sends)
    setattr(app.state, webhooks.STATE_ATTRIBUTE, webhooks.WebhookState.for_settings(hub.settings))
    return app
