"""The running hub's components, wired once at start-up and reachable from every request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

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
