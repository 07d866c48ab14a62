"""Group commit: many concurrent requests, one transaction, each answered after the commit.

A commit costs a disk flush (SQLite) or a round trip and WAL flush (PostgreSQL), so committing
each request alone caps the hub at a few thousand requests per second. The writer runs in one
thread of its own: it takes every job that is waiting (up to `max_batch`), hands them to the
batch function in a single transaction, commits, and only then wakes the waiting requests. While
it commits, the next jobs pile up and form the next batch, so batches grow with the load.

A batch that fails as a whole is retried job by job, each in its own transaction, so that one
poisonous job fails alone. A job is never answered before the transaction holding it committed.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy.orm import Session

from contacthub.errors import Unavailable
from contacthub.storage.database import Database

logger = logging.getLogger(__name__)

Job = TypeVar("Job")
Outcome = TypeVar("Outcome")

BatchFunction = Callable[[Session, Sequence[Job]], Sequence[Outcome]]


@dataclass(slots=True)
class _Pending(Generic[Job, Outcome]):
    job: Job
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Outcome] = field(init=False)

    def __post_init__(self) -> None:
        self.future = self.loop.create_future()


_STOP = object()


class GroupCommitWriter(Generic[Job, Outcome]):
    """Runs `process_batch(session, jobs)` on batches of submitted jobs, one commit each."""

    def __init__(
        self,
        database: Database,
        process_batch: BatchFunction[Job, Outcome],
        *,
        max_batch: int = 512,
        max_queue: int = 20_000,
        name: str = "group-commit",
    ) -> None:
        self._database = database
        self._process_batch = process_batch
        self._max_batch = max_batch
        self._queue: queue.Queue[_Pending[Job, Outcome] | object] = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._accepting = False
        self.batches_committed = 0
        self.jobs_committed = 0

    def start(self) -> None:
        """Start the writer thread."""
        self._accepting = True
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Refuse new jobs, finish the queued ones, and stop the thread."""
        if not self._accepting:
            return
        self._accepting = False
        self._queue.put(_STOP)
        self._thread.join(timeout)
        logger.info(
            "%s: %d jobs committed in %d batches",
            self._thread.name,
            self.jobs_committed,
            self.batches_committed,
        )

    async def submit(self, job: Job) -> Outcome:
        """Queue a job and wait until the transaction that holds it has committed."""
        if not self._accepting:
            raise Unavailable("The hub is shutting down; retry.", code="shutting_down")
        pending: _Pending[Job, Outcome] = _Pending(job, asyncio.get_running_loop())
        try:
            self._queue.put_nowait(pending)
        except queue.Full:
            raise Unavailable("The hub is overloaded; retry.", code="overloaded") from None
        return await pending.future

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            batch: list[_Pending[Job, Outcome]] = [first]  # type: ignore[list-item]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)  # type: ignore[arg-type]
            self._commit(batch)
        self._refuse_leftovers()

    def _refuse_leftovers(self) -> None:
        # A submit that passed the `_accepting` check as stop() ran may have queued its job
        # behind the stop marker: answer it rather than leave it waiting forever.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Pending):
                _fail(item, Unavailable("The hub is shutting down; retry.", code="shutting_down"))

    def _commit(self, batch: list[_Pending[Job, Outcome]]) -> None:
        try:
            outcomes = self._run_in_transaction([p.job for p in batch])
        except Exception:
            if len(batch) == 1:
                logger.exception("group commit: job failed")
                _fail(batch[0], Unavailable("The hub could not store this request; retry."))
                return
            logger.warning("group commit: batch of %d failed; retrying one by one", len(batch))
            for pending in batch:
                self._commit([pending])
            return
        self.batches_committed += 1
        self.jobs_committed += len(batch)
        _resolve(batch, outcomes)

    def _run_in_transaction(self, jobs: list[Job]) -> Sequence[Outcome]:
        with self._database.write() as session:
            outcomes = self._process_batch(session, jobs)
            # Inside the transaction: a wrong answer rolls it back before the one-by-one retry.
            if len(outcomes) != len(jobs):
                raise RuntimeError("batch function must return one outcome per job")
        return outcomes


def _resolve(batch: list[_Pending[Job, Outcome]], outcomes: Sequence[Outcome]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Outcome], Outcome]]] = {}
    for pending, outcome in zip(batch, outcomes, strict=True):
        by_loop.setdefault(pending.loop, []).append((pending.future, outcome))
    for loop, results in by_loop.items():
        # One wake-up per event loop per batch, not one per request.
        loop.call_soon_threadsafe(_set_results, results)


def _set_results(results: list[tuple[asyncio.Future[Outcome], Outcome]]) -> None:
    for future, outcome in results:
        if not future.done():
            future.set_result(outcome)


def _fail(pending: _Pending[Job, Outcome], error: Exception) -> None:
    def set_error() -> None:
        if not pending.future.done():
            pending.future.set_exception(error)

    pending.loop.call_soon_threadsafe(set_error)
