"""Background send runs (`email.background`): one per issue, stoppable, resumable."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from contacthub.email import sending, service, signing
from contacthub.email.background import SendRegistry, SendRun, Work
from contacthub.email.sender import SmtpMailer
from contacthub.email.sending import SendReport
from contacthub.errors import Conflict
from contacthub.settings import Settings
from contacthub.storage.database import Database
from tests.email.smtp_server import HOST, Received, SmtpServer, smtp_server
from tests.email.ui_support import HTML, delivery_states

READERS = ("a@example.com", "b@example.com", "c@example.com")


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


def draft(database: Database) -> str:
    with database.write() as session:
        service.create_newsletter(
            session, "Weekly", "The Team", "news@example.com", "https://news.example.com"
        )
        for email in READERS:
            service.add_subscriber(session, "Weekly", email)
        return str(service.create_issue(session, "Weekly", "Hello", HTML).guid)


def sender(database: Database, settings: Settings, guid: str, port: int) -> Work:
    def work(run: SendRun) -> SendReport:
        with SmtpMailer(HOST, port, timeout=10) as mailer:
            return sending.send_issue(
                database,
                guid,
                mailer,
                signer=signing.link_signer(settings),
                progress=run.progress,
            )

    return work


def test_stop_all_ends_a_run_after_its_current_message_and_sending_again_resumes(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    guid = draft(database)
    registry = SendRegistry()
    gate = threading.Event()

    def hold(_: Received) -> None:
        gate.wait(20)

    smtp.on_message = hold
    run = registry.begin(uuid.UUID(guid), "tester")
    registry.launch(run, sender(database, settings, guid, smtp.port))
    with pytest.raises(Conflict):
        registry.begin(uuid.UUID(guid), "someone else")
    deadline = time.monotonic() + 10
    while not smtp.received and time.monotonic() < deadline:
        time.sleep(0.01)  # the first message is at the server, held
    stopper = threading.Thread(target=registry.stop_all, args=(20.0,))
    stopper.start()
    while not run.stop.is_set():
        time.sleep(0.01)
    gate.set()
    stopper.join(30)

    assert not run.running
    assert run.error is not None
    assert "shutting down" in run.error
    states = delivery_states(database, guid)
    assert sorted(states.values()) == ["pending", "pending", "sent"]
    assert len(smtp.recipients()) == 1

    smtp.on_message = None
    again = registry.begin(uuid.UUID(guid), "tester")
    registry.launch(again, sender(database, settings, guid, smtp.port))
    assert again.thread is not None
    again.thread.join(30)
    assert again.report is not None
    assert again.report.sent == 2
    assert again.report.status == "sent"
    assert sorted(smtp.recipients()) == sorted(READERS)  # nobody got it twice


def test_a_failing_run_is_recorded_not_lost() -> None:
    registry = SendRegistry()
    guid = uuid.uuid4()
    run = registry.begin(guid, "tester")

    def broken(run: SendRun) -> SendReport:
        raise RuntimeError("the store went away")

    registry.launch(run, broken)
    assert run.thread is not None
    run.thread.join(10)
    assert run.error == "sending failed: RuntimeError: the store went away"
    assert run.stopped_reason == run.error
    assert registry.get(guid) is run
    registry.begin(guid, "tester")  # a finished run does not block the next one
