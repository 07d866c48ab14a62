"""Sending an issue in the background, for the admin UI and the management API.

A request that sends an issue checks that the issue exists, starts `sending.send_issue` in a
worker thread (which records `issue.send_started` in the audit log as it starts) and answers at
once; the issue's page (and
`GET /api/issues/{guid}`) shows the progress from the deliveries table, which the run updates
chunk by chunk. Sending is what `contacthub issue send` does (same function, same guarantees:
resumable, at most once), through the SMTP server of the settings.

Each hub process keeps a `SendRegistry` of its runs (in the app's state). It refuses a second
run of an issue while one runs in the same process (Conflict `issue_sending`). Runs in two
processes at once are not refused, and need not be: `send_issue` claims each delivery for one
run only, so nobody gets the issue twice.

The hub's retry job (`retry_due`, every `retry_interval` seconds) resumes the issues being sent
that have deferred messages due for their next try, as runs of the same registry: their page
shows the progress, and nobody clicking "Resume sending" meanwhile starts a second run. Every
hub process runs the job; each delivery is claimed by one run, so two processes are safe.

`SendRegistry.stop_all` asks the runs to stop after the message each is sending and waits for
them: what was sent is recorded, the rest goes back to pending, and sending the issue again
resumes. Threads are not daemons, so a process that exits without calling it waits for its runs.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from starlette.requests import Request

from contacthub.email import repository, sending, service
from contacthub.email.sending import SendReport
from contacthub.errors import Conflict
from contacthub.hub import Hub
from contacthub.identifiers import parse_guid
from contacthub.settings import Settings
from contacthub.storage.types import utcnow

logger = logging.getLogger(__name__)
STATE_ATTRIBUTE = "email_sends"
RETRY_ACTOR = "the hub (deferred messages due)"  # who the issue page says started a retry run


class StopSending(Exception):
    """Raised from the progress callback to end a run after its current message."""


@dataclass(slots=True)
class SendRun:
    """One background run of `send_issue` for one issue: who started it and how it went."""

    issue_guid: uuid.UUID
    started_by: str
    started_at: datetime = field(default_factory=utcnow)
    handled: int = 0  # messages this run has handled (sent, deferred or failed)
    to_send: int = 0  # messages this run set out to handle
    finished_at: datetime | None = None
    report: SendReport | None = None
    error: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.finished_at is None

    @property
    def stopped_reason(self) -> str | None:
        """Why the run ended before sending everything, if it did."""
        if self.error is not None:
            return self.error
        return self.report.stopped if self.report is not None else None

    def progress(self, handled: int, to_send: int) -> None:
        """`send_issue`'s progress callback; raises StopSending when asked to stop."""
        self.handled, self.to_send = handled, to_send
        if self.stop.is_set():
            raise StopSending


Work = Callable[[SendRun], SendReport]


class SendRegistry:
    """The send runs of one hub process: at most one running per issue; the last one kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[uuid.UUID, SendRun] = {}

    def get(self, issue_guid: uuid.UUID) -> SendRun | None:
        """The issue's running run, or its last finished one, if this process had any."""
        with self._lock:
            return self._runs.get(issue_guid)

    def begin(self, issue_guid: uuid.UUID, actor: str) -> SendRun:
        """Reserve the issue for a new run; Conflict while another runs."""
        with self._lock:
            current = self._runs.get(issue_guid)
            if current is not None and current.running:
                raise Conflict(
                    "This issue is being sent right now; wait for that run to finish.",
                    code="issue_sending",
                )
            run = SendRun(issue_guid, actor)
            self._runs[issue_guid] = run
            return run

    def launch(self, run: SendRun, work: Work) -> None:
        """Run `work` for a reserved run in a thread of its own."""
        run.thread = threading.Thread(
            target=self._run, args=(run, work), name=f"send-{run.issue_guid}", daemon=False
        )
        run.thread.start()

    def run_here(self, run: SendRun, work: Work) -> None:
        """Run `work` for a reserved run in the calling thread (the hub's jobs)."""
        self._run(run, work)

    @staticmethod
    def _run(run: SendRun, work: Work) -> None:
        try:
            run.report = work(run)
        except StopSending:
            run.error = "stopped because the hub is shutting down; send again to resume"
        except Exception as error:
            # A thread's exception would otherwise be lost: log it, and show it on the page.
            logger.exception("Sending issue %s failed", run.issue_guid)
            run.error = f"sending failed: {type(error).__name__}: {error}"
        finally:
            run.finished_at = utcnow()

    def running(self) -> list[SendRun]:
        """The runs still running."""
        with self._lock:
            return [run for run in self._runs.values() if run.running]

    def stop_all(self, timeout: float = 30.0) -> bool:
        """Ask every run to stop after its current message; wait up to `timeout` seconds.

        True when every run has stopped.
        """
        runs = self.running()
        for run in runs:
            run.stop.set()
        deadline = time.monotonic() + timeout
        for run in runs:
            if run.thread is not None:
                run.thread.join(max(0.0, deadline - time.monotonic()))
        return not any(run.running for run in runs)


def registry_of(request: Request) -> SendRegistry:
    """The send registry of the app serving this request (made on first use)."""
    state = request.app.state
    registry = getattr(state, STATE_ATTRIBUTE, None)
    if registry is None:
        # No await since the look-up: nothing else on the event loop can make one meanwhile.
        registry = SendRegistry()
        setattr(state, STATE_ATTRIBUTE, registry)
    assert isinstance(registry, SendRegistry)
    return registry


async def start_send(
    hub: Hub,
    registry: SendRegistry,
    issue_guid: str,
    actor: str,
    *,
    retry_in_doubt: bool = False,
) -> SendRun:
    """Start sending the issue in the background, as `actor` (who the audit log names).

    Conflict (`issue_sending`) while this process sends it already; NotFound for an unknown
    issue. `retry_in_doubt`: also send again the messages a crashed run left in doubt.
    """
    guid = parse_guid(issue_guid.strip(), "Issue")
    # An unknown issue is refused here, in the request, rather than by the run.
    # So is one whose group was deleted (`group_deleted`); the run checks it again, locked.
    await hub.read(
        lambda session: service.refuse_if_group_deleted(service.get_issue(session, guid))
    )
    run = registry.begin(guid, actor)
    registry.launch(run, send_work(hub, guid, actor=actor, retry_in_doubt=retry_in_doubt))
    return run


def send_work(
    hub: Hub,
    guid: uuid.UUID,
    *,
    actor: str | None = None,
    retry_in_doubt: bool = False,
    stopping: Callable[[], bool] | None = None,
) -> Work:
    """A run of `sending.send_with_settings` for the issue, reporting to its `SendRun`: what
    every background send (a request, a fired schedule, the retry job) launches. `actor` is who
    the audit log names (None: nothing recorded); `stopping()` true ends the run after its
    current message, as `SendRun.stop` does."""

    def work(run: SendRun) -> SendReport:
        def progress(handled: int, to_send: int) -> None:
            if stopping is not None and stopping():
                run.stop.set()
            run.progress(handled, to_send)

        return sending.send_with_settings(
            hub.database,
            hub.settings,
            str(guid),
            signer=hub.link_signer,
            progress=progress,
            retry_in_doubt=retry_in_doubt,
            actor=actor,
        )

    return work


def retry_interval(settings: Settings) -> float:
    """Seconds between two runs of the retry job: the first retry delay, at most a minute."""
    return max(1.0, min(settings.send_retry_delay, 60.0))


def retry_due(hub: Hub, registry: SendRegistry, stopping: Callable[[], bool]) -> int:
    """Resume every `sending` issue that has a deferred delivery due (the hub's retry job).

    Runs in the job's thread, one issue after the other; an issue this process is sending
    already is left to that run. `stopping()` true ends the current run after its message
    (the rest is resumed later). Returns the number of issues resumed.
    """
    settings = hub.settings
    with hub.database.read() as session:
        due = repository.issues_with_due_retries(session, utcnow(), settings.send_max_attempts)
    resumed = 0
    for guid in due:
        if stopping():
            break
        try:
            run = registry.begin(guid, RETRY_ACTOR)
        except Conflict:
            continue  # being sent by this process right now

        registry.run_here(run, send_work(hub, guid, stopping=stopping))
        resumed += 1
    return resumed
