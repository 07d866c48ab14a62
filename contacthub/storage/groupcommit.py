"""Group commit: many concurrent requests, one transaction, each answered after the commit.

A commit costs a disk flush (SQLite) or a round trip and WAL flush (PostgreSQL), so committing
each request alone caps the hub at a few thousand requests per second. Requests hand their job
to the writer and wait; the writer takes every job waiting (up to `max_batch`), runs the batch
function on them in one transaction in a thread of its own, commits, and only then answers
them. While one batch commits, the next requests pile up and form the next batch, so batches
grow with the load.

The jobs are collected on the event loop, not in a thread-safe queue: a request costs a list
append and a future, and the event loop and the writer's thread meet once per batch, not once
per request. Crossing threads per request (lock, wake-up, GIL hand-off) cost more CPU than the
insert it carried.

On PostgreSQL several batches may be in flight at once (`concurrent_batches`), each in its own
connection: while one waits for its commit to reach the disk, the next is already being written.
SQLite has one writer at a time, so there one batch follows the other.

A batch that fails as a whole is retried job by job, each in its own transaction, so that one
poisonous job fails alone. A job is never answered before the transaction holding it committed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from sqlalchemy.orm import Session

from contacthub.errors import Unavailable
from contacthub.storage.database import Database

logger = logging.getLogger(__name__)

Job = TypeVar("Job")
Outcome = TypeVar("Outcome")

BatchFunction = Callable[[Session, Sequence[Job]], Sequence[Outcome]]


class GroupCommitWriter(Generic[Job, Outcome]):
    """Runs `process_batch(session, jobs)` on batches of submitted jobs, one commit each.

    Start and stop it on the event loop whose requests submit to it (the app's lifespan).
    """

    def __init__(
        self,
        database: Database,
        process_batch: BatchFunction[Job, Outcome],
        *,
        max_batch: int = 512,
        max_queue: int = 20_000,
        concurrent_batches: int | None = None,
        name: str = "group-commit",
    ) -> None:
        self._database = database
        self._process_batch = process_batch
        self._max_batch = max_batch
        self._max_queue = max_queue
        self.name = name
        self._waiting: list[tuple[Job, asyncio.Future[Outcome]]] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        if concurrent_batches is None:
            concurrent_batches = 1 if database.is_sqlite else 4
        self._concurrent_batches = concurrent_batches
        self._in_flight: set[asyncio.Task[None]] = set()
        self._threads = ThreadPoolExecutor(max_workers=concurrent_batches, thread_name_prefix=name)
        self._accepting = False
        self.batches_committed = 0
        self.jobs_committed = 0
        self._counting = threading.Lock()  # batches commit in several threads on PostgreSQL

    def start(self) -> None:
        """Start taking jobs (call from the event loop that will submit them)."""
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)
        self._accepting = True

    async def stop(self) -> None:
        """Refuse new jobs, commit and answer the waiting ones, and stop."""
        if not self._accepting or self._task is None or self._wake is None:
            return
        self._accepting = False
        self._wake.set()
        await self._task
        self._threads.shutdown(wait=True)
        logger.info(
            "%s: %d jobs committed in %d batches",
            self.name,
            self.jobs_committed,
            self.batches_committed,
        )

    async def submit(self, job: Job) -> Outcome:
        """Hand over a job and wait until the transaction that holds it has committed."""
        if not self._accepting or self._wake is None:
            raise Unavailable("The hub is shutting down; retry.", code="shutting_down")
        if len(self._waiting) >= self._max_queue:
            raise Unavailable("The hub is overloaded; retry.", code="overloaded")
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((job, future))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(self._concurrent_batches)
        while self._accepting or self._waiting:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                await slots.acquire()
                # Taken only once a slot is free: the batch holds everything that waited.
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                task = loop.create_task(self._commit_and_answer(batch))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
                task.add_done_callback(lambda _: slots.release())
        if self._in_flight:
            await asyncio.wait(self._in_flight)

    async def _commit_and_answer(self, batch: list[tuple[Job, asyncio.Future[Outcome]]]) -> None:
        jobs = [job for job, _ in batch]
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(self._threads, self._commit, jobs)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # the client went away; its job is stored all the same
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    def _commit(self, jobs: list[Job]) -> list[Outcome | Unavailable]:
        """In the writer's thread: the batch in one transaction, or, failing that, one by one."""
        try:
            outcomes: list[Outcome | Unavailable] = list(self._run_in_transaction(jobs))
        except Exception:
            if len(jobs) == 1:
                logger.exception("%s: job failed", self.name)
                return [Unavailable("The hub could not store this request; retry.")]
            logger.warning("%s: batch of %d failed; retrying one by one", self.name, len(jobs))
            return [result for job in jobs for result in self._commit([job])]
        with self._counting:
            self.batches_committed += 1
            self.jobs_committed += len(jobs)
        return outcomes

    def _run_in_transaction(self, jobs: list[Job]) -> Sequence[Outcome]:
        with self._database.write() as session:
            outcomes = self._process_batch(session, jobs)
            # Inside the transaction: a wrong answer rolls it back before the one-by-one retry.
            if len(outcomes) != len(jobs):
                raise RuntimeError("batch function must return one outcome per job")
        return outcomes
