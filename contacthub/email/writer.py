"""The email writer: opens and clicks, committed in groups like activities.

A `GroupCommitWriter` of its own (so that neither stream waits on the other) runs
`tracking.process_hits` on many hits per transaction. Every hit is answered: with its outcome
once committed, or with `Unavailable` when the writer is full, stopping, failing, or has not
committed within `wait_seconds` (the open pixel must answer whatever happens behind it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from sqlalchemy.orm import Session

from contacthub.email import tracking
from contacthub.email.hashing import LinkSigner
from contacthub.errors import Unavailable
from contacthub.storage.database import Database
from contacthub.storage.groupcommit import GroupCommitWriter

logger = logging.getLogger(__name__)


class HitWriter:
    """Logs opens and clicks through group commit; `submit` answers once the hit is stored."""

    def __init__(
        self,
        database: Database,
        signer: LinkSigner,
        *,
        max_batch: int,
        max_queue: int,
        wait_seconds: float = 5.0,
    ) -> None:
        self.signer = signer
        self.wait_seconds = wait_seconds
        self._writer: GroupCommitWriter[tracking.HitJob, tracking.HitOutcome] = GroupCommitWriter(
            database,
            self._process,
            max_batch=max_batch,
            max_queue=max_queue,
            name="email-writer",
        )

    def start(self) -> None:
        """Start taking hits (on the event loop that serves them)."""
        self._writer.start()

    async def stop(self) -> None:
        """Refuse new hits, commit the waiting ones, stop."""
        await self._writer.stop()

    @property
    def hits_committed(self) -> int:
        """Hits committed so far."""
        return self._writer.jobs_committed

    async def submit(self, job: tracking.HitJob) -> tracking.HitOutcome:
        """Hand over a hit and wait until the transaction that holds it has committed."""
        try:
            async with asyncio.timeout(self.wait_seconds):
                return await self._writer.submit(job)
        except TimeoutError:
            logger.warning("email writer: a hit was not committed within %s s", self.wait_seconds)
            raise Unavailable(
                "The hub could not store this hit in time; retry.", code="store_timeout"
            ) from None

    def _process(
        self, session: Session, jobs: Sequence[tracking.HitJob]
    ) -> list[tracking.HitOutcome]:
        return tracking.process_hits(session, self.signer, list(jobs))
