"""The app factory: every component is created and wired here, and nowhere at import time.

`uvicorn --factory contacthub.app:create_app` (what `contacthub serve` runs) calls it once per
worker process, so each worker has its own engine and its own group-commit writer.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from contacthub.activities.ingest import process_batch
from contacthub.email.api import email_api_routes
from contacthub.email.endpoints import email_routes, hot_paths
from contacthub.email.signing import link_signer
from contacthub.email.writer import HitWriter
from contacthub.errors import HubError
from contacthub.http import (
    http_error_handler,
    hub_error_handler,
    json_response,
    server_error_handler,
)
from contacthub.hub import Hub, hub_of
from contacthub.settings import DEFAULT_SECRET, Settings
from contacthub.storage.database import Database
from contacthub.storage.groupcommit import GroupCommitWriter
from contacthub.tracking.endpoints import tracking_routes

logger = logging.getLogger(__name__)


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


def create_app(settings: Settings | None = None) -> Starlette:
    """The whole hub as one ASGI app."""
    hub = build_hub(settings or Settings())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hub.activity_writer.start()
        hub.email_writer.start()
        freeze_startup_objects()
        try:
            yield
        finally:
            # Finish what was accepted before closing the store.
            await hub.activity_writer.stop()
            await hub.email_writer.stop()
            hub.database.dispose()

    # Starlette tries routes in order, a regex each: the hot paths come first (POST
    # /activities, then the open pixel and the click redirect), the rarely used ones last.
    routes: list[Route | Mount] = []
    if hub.settings.enable and hub.settings.enable_tracking:
        routes.append(tracking_routes(hub.settings))
    email = email_routes(hub.settings)
    routes += [*email, *email_api_routes(), Route("/health", health, methods=["GET"])]

    app = Starlette(
        routes=routes,
        # The open pixel and the click redirect are answered before the route table.
        middleware=[hot_paths(email)],
        lifespan=lifespan,
        exception_handlers={
            HubError: hub_error_handler,
            HTTPException: http_error_handler,
            Exception: server_error_handler,
        },
    )
    app.state.hub = hub
    return app
