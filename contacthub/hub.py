"""The running hub's components, wired once at start-up and reachable from every request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio
import anyio.to_thread
from sqlalchemy.orm import Session
from starlette.requests import Request

from contacthub.activities.ingest import IngestJob, IngestOutcome
from contacthub.email.hashing import LinkSigner
from contacthub.email.writer import HitWriter
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.groupcommit import GroupCommitWriter

T = TypeVar("T")


@dataclass(slots=True)
class Hub:
    """Settings, the store, the writers and the link signer of one running hub process."""

    settings: Settings
    database: Database
    activity_writer: GroupCommitWriter[IngestJob, IngestOutcome]
    # Email opens and clicks: a writer of their own, so that neither stream waits on the other.
    email_writer: HitWriter
    link_signer: LinkSigner
    # Made on first use, inside the running event loop (see `password_checks`).
    _password_checks: anyio.CapacityLimiter | None = None

    def password_checks(self) -> anyio.CapacityLimiter:
        """How many password checks this process runs at once: one.

        An argon2 check takes ~160 ms of CPU over several threads and 64 MiB of memory, on
        purpose. Sixteen at once took the whole core from ingest (77 requests/s instead of
        ~4,500) and a gigabyte of memory; one at a time, sign-ins queue on the event loop
        (without holding a worker thread) and ingest keeps most of the core.
        """
        if self._password_checks is None:
            self._password_checks = anyio.CapacityLimiter(1)
        return self._password_checks

    async def read(self, work: Callable[[Session], T]) -> T:
        """Run `work` in a read-only unit of work, off the event loop."""
        return await anyio.to_thread.run_sync(self._read, work)

    async def write(self, work: Callable[[Session], T]) -> T:
        """Run `work` in a unit of work that commits, off the event loop."""
        return await anyio.to_thread.run_sync(self._write, work)

    def _read(self, work: Callable[[Session], T]) -> T:
        with self.database.read() as session:
            return work(session)

    def _write(self, work: Callable[[Session], T]) -> T:
        with self.database.write() as session:
            return work(session)


def hub_of(request: Request) -> Hub:
    """The hub serving this request."""
    hub: Hub = request.app.state.hub
    return hub
