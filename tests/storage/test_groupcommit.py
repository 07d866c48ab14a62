"""GroupCommitWriter on a real database: batches, answers only after commit, failures, shutdown.

The batch function inserts one activity type per job (code name = the job), so what a job did is
visible from any other connection exactly when its transaction has committed. A "gate" job makes
the writer wait inside a batch, which lets a test line jobs up behind it deterministically.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TypeVar

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from contacthub.errors import Unavailable
from contacthub.storage.database import Database
from contacthub.storage.groupcommit import GroupCommitWriter
from contacthub.storage.models import ActivityType

WAIT = 10.0  # seconds; only reached when something is broken
T = TypeVar("T")


class Recorder:
    """The batch function: records each batch; holds the writer inside a batch on request."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.holding = threading.Event()  # the writer is inside the held batch
        self.release = threading.Event()
        self.hold_on: str | None = None

    def __call__(self, session: Session, jobs: Sequence[str]) -> list[int]:
        self.batches.append(list(jobs))
        types = [ActivityType(code_name=job, display_name=job) for job in jobs]
        session.add_all(types)
        session.flush()  # the rows exist in the transaction, not yet committed
        if self.hold_on in jobs:
            self.holding.set()
            assert self.release.wait(WAIT), "test never released the writer"
        return [t.id for t in types]


@asynccontextmanager
async def running_writer(
    database: Database, recorder: Recorder, **options: int
) -> AsyncIterator[GroupCommitWriter[str, int]]:
    writer: GroupCommitWriter[str, int] = GroupCommitWriter(database, recorder, **options)
    writer.start()
    try:
        yield writer
    finally:
        recorder.release.set()
        await writer.stop()


def stored(database_url: str) -> set[str]:
    """The code names committed, read through a connection of its own."""
    other = Database(database_url)
    try:
        with other.read() as session:
            return set(session.scalars(select(ActivityType.code_name)))
    finally:
        other.dispose()


def run(test: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(test(), 60))


async def hold_writer(writer: GroupCommitWriter[str, int], recorder: Recorder) -> asyncio.Task[int]:
    """Submit the gate job and return once the writer is held inside its batch."""
    recorder.hold_on = "gate"
    gate = asyncio.create_task(writer.submit("gate"))
    assert await asyncio.to_thread(recorder.holding.wait, WAIT)
    return gate


async def queued(
    writer: GroupCommitWriter[str, int], jobs: Sequence[str]
) -> list[asyncio.Task[int]]:
    """Submit jobs as concurrent requests; return once each sits in the queue."""
    tasks = [asyncio.create_task(writer.submit(job)) for job in jobs]
    await asyncio.sleep(0)  # each task runs up to its wait for the commit
    return tasks


def test_concurrent_jobs_share_transactions(database: Database, database_url: str) -> None:
    recorder = Recorder()
    jobs = [f"job{i}" for i in range(300)]

    async def scenario() -> list[int]:
        async with running_writer(database, recorder) as writer:
            answers = await asyncio.gather(*(writer.submit(job) for job in jobs))
            assert writer.batches_committed == len(recorder.batches)
            assert writer.batches_committed < len(jobs)
            return answers

    ids = run(scenario)
    assert len(set(ids)) == len(jobs)
    assert stored(database_url) == set(jobs)
    assert sorted(job for batch in recorder.batches for job in batch) == sorted(jobs)


def test_waiting_jobs_form_one_batch_up_to_max_batch(database: Database) -> None:
    recorder = Recorder()

    async def scenario() -> GroupCommitWriter[str, int]:
        async with running_writer(database, recorder, max_batch=20) as writer:
            gate = await hold_writer(writer, recorder)
            tasks = await queued(writer, [f"job{i}" for i in range(50)])
            recorder.release.set()
            await asyncio.gather(gate, *tasks)
            return writer

    writer = run(scenario)
    # The gate alone, then the 50 waiting jobs in batches of at most 20.
    assert [len(batch) for batch in recorder.batches] == [1, 20, 20, 10]
    assert writer.batches_committed == 4


def test_each_answer_comes_after_its_commit(database: Database, database_url: str) -> None:
    recorder = Recorder()
    jobs = [f"job{i}" for i in range(20)]

    async def scenario() -> None:
        async with running_writer(database, recorder) as writer:
            gate = await hold_writer(writer, recorder)
            # Inside the held batch the gate's row is flushed, not committed: no answer yet.
            await asyncio.sleep(0.2)
            assert not gate.done()
            assert stored(database_url) == set()
            tasks = await queued(writer, jobs)
            recorder.release.set()
            await gate
            assert "gate" in stored(database_url)
            for answer in asyncio.as_completed(tasks):
                row_id = await answer
                # Whenever an answer arrives, its row is already visible to everyone.
                with database.read() as session:
                    assert session.get(ActivityType, row_id) is not None
                assert row_id in ids_committed(database_url)

    run(scenario)
    assert stored(database_url) == {"gate", *jobs}


def ids_committed(database_url: str) -> set[int]:
    other = Database(database_url)
    try:
        with other.read() as session:
            return set(session.scalars(select(ActivityType.id)))
    finally:
        other.dispose()


def test_a_failing_job_fails_alone(database: Database, database_url: str) -> None:
    with database.write() as session:
        session.add(ActivityType(code_name="taken", display_name="Taken"))
    recorder = Recorder()

    async def scenario() -> list[int | BaseException]:
        async with running_writer(database, recorder) as writer:
            gate = await hold_writer(writer, recorder)
            tasks = await queued(writer, ["a", "taken", "b", "c"])
            recorder.release.set()
            await gate
            return await asyncio.gather(*tasks, return_exceptions=True)

    a, taken, b, c = run(scenario)
    assert isinstance(taken, Unavailable)
    assert taken.status_code == 503
    assert all(isinstance(answer, int) for answer in (a, b, c))
    # The batch of four hit the unique constraint as a whole, then each job went alone.
    assert recorder.batches == [["gate"], ["a", "taken", "b", "c"], ["a"], ["taken"], ["b"], ["c"]]
    assert stored(database_url) == {"taken", "gate", "a", "b", "c"}


def test_a_batch_function_answering_wrongly_commits_nothing(
    database: Database, database_url: str
) -> None:
    def wrong(session: Session, jobs: Sequence[str]) -> list[int]:
        session.add_all(ActivityType(code_name=job, display_name=job) for job in jobs)
        session.flush()
        return []  # not one outcome per job

    async def scenario() -> list[int | BaseException]:
        writer: GroupCommitWriter[str, int] = GroupCommitWriter(database, wrong)
        writer.start()
        try:
            return await asyncio.gather(
                *(writer.submit(job) for job in ("a", "b", "c")), return_exceptions=True
            )
        finally:
            await writer.stop()

    answers = run(scenario)
    assert all(isinstance(answer, Unavailable) for answer in answers)
    assert stored(database_url) == set()


def test_a_full_queue_answers_unavailable(database: Database, database_url: str) -> None:
    recorder = Recorder()

    async def scenario() -> None:
        async with running_writer(database, recorder, max_queue=2) as writer:
            gate = await hold_writer(writer, recorder)
            tasks = await queued(writer, ["a", "b"])  # the queue is now full
            with pytest.raises(Unavailable) as refused:
                await writer.submit("c")
            assert refused.value.status_code == 503
            assert refused.value.code == "overloaded"
            recorder.release.set()
            await asyncio.gather(gate, *tasks)
            # Room again once the writer caught up.
            await writer.submit("d")

    run(scenario)
    assert stored(database_url) == {"gate", "a", "b", "d"}


def test_submit_before_start_or_after_stop_answers_unavailable(database: Database) -> None:
    recorder = Recorder()
    writer: GroupCommitWriter[str, int] = GroupCommitWriter(database, recorder)

    async def submit() -> int:
        return await writer.submit("late")

    async def start_and_stop() -> None:
        writer.start()
        await writer.stop()

    with pytest.raises(Unavailable) as early:
        run(submit)
    assert early.value.status_code == 503
    run(start_and_stop)
    with pytest.raises(Unavailable) as late:
        run(submit)
    assert late.value.status_code == 503
    assert late.value.code == "shutting_down"
    assert recorder.batches == []


def test_stop_drains_the_queued_jobs(database: Database, database_url: str) -> None:
    recorder = Recorder()
    jobs = [f"job{i}" for i in range(30)]

    async def scenario() -> list[int]:
        writer: GroupCommitWriter[str, int] = GroupCommitWriter(database, recorder, max_batch=8)
        writer.start()
        gate = await hold_writer(writer, recorder)
        tasks = await queued(writer, jobs)
        # stop() returns only once the jobs queued before it are committed and answered.
        stopping = asyncio.create_task(writer.stop())
        await asyncio.sleep(0.1)
        assert not stopping.done()
        recorder.release.set()
        await stopping
        await gate
        return await asyncio.gather(*tasks)

    ids = run(scenario)
    assert len(set(ids)) == len(jobs)
    assert stored(database_url) == {"gate", *jobs}
