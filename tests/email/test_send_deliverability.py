"""Deliverability in the send path, through a real SMTP server on loopback, on both databases.

Every copy names its delivery (headers; VERP envelope sender with a bounce domain); suppressed
addresses get nothing and the report says why; temporary failures are deferred with backoff and
tried again once due, by a run or the hub's retry job.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from contacthub.app import build_hub, create_app
from contacthub.bounces import verp
from contacthub.email import background, repository, sending, service, signing
from contacthub.email.sending import SendPolicy
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.types import utcnow
from contacthub.suppressions import service as suppressions
from contacthub.users import service as users
from tests.admin.conftest import EMAIL, PASSWORD, sign_in
from tests.cli.conftest import cli_on
from tests.email.smtp_server import SmtpServer, smtp_server
from tests.email.test_sending import (
    add,
    deliveries,
    issue_status,
    make_deferred_due,
    make_issue,
    send,
)
from tests.email.ui_support import smtp_settings, wait_for_run
from tests.servers import free_port

BOUNCES = "bounces.example.com"
REFUSED = "recipient refused: busy@example.com: "


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


def delivery_ids(database: Database, issue: str) -> dict[str, int]:
    with database.read() as session:
        found = service.get_issue(session, issue)
        return {d.email: d.id for d in repository.deliveries_of(session, found.id)}


def suppress(database: Database, email: str, reason: str) -> None:
    with database.write() as session:
        suppressions.suppress(session, email, reason=reason, source="admin", actor="admin@x.org")


# -- headers and envelope -------------------------------------------------------------------------


def test_every_copy_names_its_delivery_in_its_headers_and_its_verp_envelope(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    issue = make_issue(database, ("jane@example.com", "Jane"), ("john@example.com", "John"))
    signer = signing.link_signer(settings)

    report = send(database, settings, issue, smtp.port, policy=SendPolicy(bounce_domain=BOUNCES))

    assert report.sent == 2
    ids = delivery_ids(database, issue)
    assert len(smtp.received) == 2
    for item in smtp.received:
        [recipient] = item.rcpt_tos
        delivery_id = ids[recipient]
        token = verp.delivery_token(signer, delivery_id)
        # The envelope sender is the delivery's own VERP address, and it names the delivery.
        assert item.mail_from == f"bounces+{token}@{BOUNCES}"
        assert item.mail_from == verp.return_path(signer, delivery_id, BOUNCES)
        assert verp.delivery_of_address(signer, item.mail_from) == delivery_id
        message = item.message
        assert message["From"] == "The Team <team@example.com>"
        assert message[verp.HEADER] == token
        assert verp.parse_delivery_token(signer, message[verp.HEADER]) == delivery_id
        assert message["X-SES-MESSAGE-TAGS"] == f"contacthub_delivery={token}"
        assert json.loads(message["X-SMTPAPI"]) == {"unique_args": {"contacthub_delivery": token}}
        assert message["X-PM-Metadata-contacthub-delivery"] == token
        assert json.loads(message["X-Mailgun-Variables"]) == {"contacthub_delivery": token}
        # The JSON headers are written on one line, as the providers' parsers expect.
        raw = item.raw.decode()
        assert f'X-SMTPAPI: {{"unique_args": {{"contacthub_delivery": "{token}"}}}}\r\n' in raw
        assert message["Message-ID"].endswith(f".{delivery_id}@example.com>")
    # Tokens are per delivery: nobody's copy names another's.
    assert len({item.mail_from for item in smtp.received}) == 2


def test_without_a_bounce_domain_the_envelope_sender_is_the_senders_address(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    issue = make_issue(database, ("jane@example.com", "Jane"))

    send(database, settings, issue, smtp.port)

    [item] = smtp.received
    assert item.mail_from == "team@example.com"
    token = item.message[verp.HEADER]
    assert token is not None
    assert (
        verp.parse_delivery_token(signing.link_signer(settings), token)
        == (delivery_ids(database, issue)["jane@example.com"])
    )


# -- suppression ---------------------------------------------------------------------------------


def test_suppressed_addresses_are_never_sent_to_and_the_report_says_why(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    issue = make_issue(
        database,
        ("a@example.com", "A"),
        ("bounced@example.com", "B"),
        ("angry@example.com", "C"),
        ("d@example.com", "D"),
    )
    suppress(database, "Bounced@Example.com", "hard_bounce")
    suppress(database, "angry@example.com", "complaint")

    report = send(database, settings, issue, smtp.port)

    assert (report.sent, report.skipped_suppressed, report.status) == (2, 2, "sent")
    assert report.suppressed_reasons == {"complaint": 1, "hard_bounce": 1}
    assert report.as_dict()["skipped_suppressed"] == 2
    assert sorted(smtp.recipients()) == ["a@example.com", "d@example.com"]
    recorded = deliveries(database, issue)
    assert recorded["bounced@example.com"] == ("skipped", 0, "suppressed: hard_bounce", False)
    assert recorded["angry@example.com"] == ("skipped", 0, "suppressed: complaint", False)
    with database.read() as session:
        issue_id = service.get_issue(session, issue).id
        assert repository.suppressed_counts(session, issue_id) == {
            "complaint": 1,
            "hard_bounce": 1,
        }

    # Sending again counts nobody twice and mails nobody.
    again = send(database, settings, issue, smtp.port)
    assert (again.to_send, again.sent, again.skipped_suppressed) == (0, 0, 0)


def test_suppressed_before_its_turn_is_skipped_and_lifted_before_it_is_sent_again(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    issue = make_issue(database, ("a@example.com", "A"), ("b@example.com", "B"))
    down = send(database, settings, issue, free_port())  # deliveries made, none sent
    assert down.stopped is not None
    suppress(database, "b@example.com", "manual")

    report = send(database, settings, issue, smtp.port)

    assert (report.sent, report.skipped_suppressed, report.suppressed_reasons) == (
        1,
        1,
        {"manual": 1},
    )
    assert deliveries(database, issue)["b@example.com"][:3] == ("skipped", 0, "suppressed: manual")
    assert smtp.recipients() == ["a@example.com"]

    with database.write() as session:
        suppressions.lift(session, "b@example.com", actor="admin@x.org")
    resumed = send(database, settings, issue, smtp.port)

    assert (resumed.to_send, resumed.sent, resumed.skipped_suppressed) == (1, 1, 0)
    assert smtp.recipients() == ["a@example.com", "b@example.com"]
    assert deliveries(database, issue)["b@example.com"][:3] == ("sent", 1, None)


def test_an_address_suppressed_during_a_run_gets_nothing(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    addresses = [f"r{n}@example.com" for n in range(4)]
    issue = make_issue(database, *[(address, None) for address in addresses])

    def bounce_the_last(_: object) -> None:
        if len(smtp.received) == 1:
            suppress(database, addresses[-1], "hard_bounce")

    smtp.on_message = bounce_the_last
    report = send(database, settings, issue, smtp.port, chunk_size=1)

    assert (report.sent, report.skipped_suppressed, report.status) == (3, 1, "sent")
    assert smtp.recipients() == addresses[:3]
    assert deliveries(database, issue)[addresses[-1]][:3] == (
        "skipped",
        0,
        "suppressed: hard_bounce",
    )


def test_a_new_subscriber_already_suppressed_gets_a_skipped_delivery(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    issue = make_issue(database, ("a@example.com", "A"))
    send(database, settings, issue, smtp.port)
    suppress(database, "late@example.com", "soft_bounces")
    add(database, "late@example.com")

    report = send(database, settings, issue, smtp.port)

    assert (report.new_deliveries, report.sent, report.skipped_suppressed) == (1, 0, 1)
    assert report.suppressed_reasons == {"soft_bounces": 1}
    assert deliveries(database, issue)["late@example.com"][0] == "skipped"


# -- temporary failures --------------------------------------------------------------------------


def test_a_temporary_failure_is_deferred_with_backoff_then_sent(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    issue = make_issue(database, ("a@example.com", "A"), ("busy@example.com", "B"))
    smtp.replies["busy@example.com"] = ["451 4.3.0 Try again later", "452 4.2.2 Mailbox full"]
    policy = SendPolicy(max_attempts=5, retry_delay=600)

    before = utcnow()
    first = send(database, settings, issue, smtp.port, policy=policy)

    assert (first.sent, first.deferred, first.status) == (1, 1, "sending")
    [failure] = first.failures
    assert (failure.email, failure.status) == ("busy@example.com", "deferred")
    assert "451" in failure.reason
    # 600 s for the first retry, ±20 % jitter.
    assert failure.next_attempt_at is not None
    delay = (failure.next_attempt_at - before).total_seconds()
    assert 480 <= delay <= 721
    assert first.waiting_deferred == 1
    assert first.next_attempt_at == failure.next_attempt_at
    listed = first.as_dict()["failures"][0]
    assert listed["next_attempt_at"] == failure.next_attempt_at.isoformat()

    make_deferred_due(database, issue)
    before = utcnow()
    second = send(database, settings, issue, smtp.port, policy=policy)
    [failure] = second.failures
    assert failure.next_attempt_at is not None
    # Doubled for the second retry.
    delay = (failure.next_attempt_at - before).total_seconds()
    assert 960 <= delay <= 1441
    assert "452" in failure.reason

    make_deferred_due(database, issue)
    third = send(database, settings, issue, smtp.port, policy=policy)

    assert (third.sent, third.deferred, third.status, third.waiting_deferred) == (1, 0, "sent", 0)
    assert deliveries(database, issue)["busy@example.com"][:3] == ("sent", 3, None)
    assert smtp.recipients() == ["a@example.com", "busy@example.com"]


def test_after_the_last_attempt_a_deferred_delivery_fails_with_the_last_reason(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    issue = make_issue(database, ("busy@example.com", "B"))
    smtp.replies["busy@example.com"] = ["451 4.3.0 First", "451 4.3.0 Second"]
    policy = SendPolicy(max_attempts=2, retry_delay=1)

    send(database, settings, issue, smtp.port, policy=policy)
    make_deferred_due(database, issue)
    last = send(database, settings, issue, smtp.port, policy=policy)

    assert (last.failed, last.status) == (1, "sent")
    assert [f.status for f in last.failures] == ["failed"]
    assert deliveries(database, issue)["busy@example.com"][:3] == (
        "failed",
        2,
        f"{REFUSED}451 4.3.0 Second",
    )

    # Lowering the limit below a deferred delivery's tries fails it at the next run.
    other = make_second_issue(database)
    smtp.replies["busy@example.com"] = ["451 4.3.0 Again", "451 4.3.0 And again"]
    send(database, settings, other, smtp.port, policy=SendPolicy(max_attempts=5))
    lowered = send(database, settings, other, smtp.port, policy=SendPolicy(max_attempts=1))
    assert (lowered.to_send, lowered.status) == (0, "sent")
    assert deliveries(database, other)["busy@example.com"][:3] == (
        "failed",
        1,
        f"{REFUSED}451 4.3.0 Again",
    )


def make_second_issue(database: Database) -> str:
    with database.write() as session:
        return str(service.create_issue(session, "Weekly", "Second", "<p>Hi</p>").guid)


def test_the_hubs_retry_job_resumes_due_deferred_deliveries_once_across_processes(
    database: Database, database_url: str, smtp: SmtpServer
) -> None:
    addresses = [f"r{n}@example.com" for n in range(12)]
    issue = make_issue(database, *[(address, None) for address in addresses])
    settings = smtp_settings(database_url, smtp.port)
    for address in addresses:
        smtp.replies[address] = ["451 4.3.0 Greylisted"]
    first = send(database, settings, issue, smtp.port)
    assert (first.deferred, first.status) == (12, "sending")
    hubs = [build_hub(settings) for _ in range(2)]  # two processes: own engines and registries

    # Not due yet: the job leaves the issue alone.
    assert background.retry_due(hubs[0], background.SendRegistry(), lambda: False) == 0
    make_deferred_due(database, issue)
    resumed: list[int] = []
    jobs = [
        threading.Thread(
            target=lambda hub=hub: resumed.append(
                background.retry_due(hub, background.SendRegistry(), lambda: False)
            )
        )
        for hub in hubs
    ]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(60)
    for hub in hubs:
        hub.database.dispose()

    assert sum(resumed) >= 1
    assert sorted(smtp.recipients()) == sorted(addresses)  # each once, the 451s were refused
    assert issue_status(database, issue) == "sent"
    assert {status for status, *_ in deliveries(database, issue).values()} == {"sent"}


def test_the_retry_job_shows_as_a_run_and_leaves_an_issue_this_process_sends(
    database: Database, database_url: str, smtp: SmtpServer
) -> None:
    issue = make_issue(database, ("busy@example.com", "B"))
    smtp.replies["busy@example.com"] = ["451 4.7.1 Greylisted, come back later"]
    settings = smtp_settings(database_url, smtp.port)
    send(database, settings, issue, smtp.port)
    make_deferred_due(database, issue)
    hub = build_hub(settings)
    registry = background.SendRegistry()
    guid = service_guid(database, issue)

    busy = registry.begin(guid, "someone@example.com")
    assert background.retry_due(hub, registry, lambda: False) == 0
    busy.finished_at = utcnow()

    assert background.retry_due(hub, registry, lambda: False) == 1
    run = registry.get(guid)
    assert run is not None
    assert run.started_by == background.RETRY_ACTOR
    assert run.report is not None
    assert run.report.sent == 1
    assert issue_status(database, issue) == "sent"
    hub.database.dispose()
    assert background.retry_interval(settings) == 60.0
    quick = smtp_settings(database_url, smtp.port).model_copy(update={"send_retry_delay": 0.2})
    assert background.retry_interval(quick) == 1.0


def service_guid(database: Database, issue: str) -> uuid.UUID:
    with database.read() as session:
        return service.get_issue(session, issue).guid


def test_the_next_try_backs_off_exponentially_with_bounded_jitter() -> None:
    policy = SendPolicy(retry_delay=60)
    now = utcnow()
    assert policy.next_attempt_at(1, now, lambda: 0.5) == now + timedelta(seconds=60)
    assert policy.next_attempt_at(3, now, lambda: 0.5) == now + timedelta(seconds=240)
    assert policy.next_attempt_at(1, now, lambda: 0.0) == now + timedelta(seconds=48)
    assert policy.next_attempt_at(1, now, lambda: 1.0) == now + timedelta(seconds=72)
    assert sending.policy_of(Settings(send_max_attempts=7, send_retry_delay=5)).max_attempts == 7


# -- what the management API, the admin and the CLI show -----------------------------------------


def test_the_api_the_admin_page_and_the_cli_say_who_was_skipped_and_who_waits(
    database: Database, database_url: str, smtp: SmtpServer, tmp_path: Path
) -> None:
    issue = make_issue(
        database, ("a@example.com", "A"), ("bounced@example.com", "B"), ("busy@example.com", "C")
    )
    suppress(database, "bounced@example.com", "hard_bounce")
    smtp.replies["busy@example.com"] = ["451 4.3.0 Try again later"]
    with database.write() as session:
        user = users.create_user(session, EMAIL, PASSWORD, "Ada Admin")
        token = users.create_token(session, user, "tests").plaintext
    headers = {"Authorization": f"Bearer {token}"}

    with TestClient(create_app(smtp_settings(database_url, smtp.port))) as client:
        answer = client.post(f"/api/issues/{issue}/send", json={}, headers=headers)
        assert answer.status_code == 202, answer.text
        wait_for_run(client, issue)
        shown = client.get(f"/api/issues/{issue}", headers=headers).json()
        sign_in(client)
        page = client.get(f"/admin/issues/{issue}").text

    assert (shown["status"], shown["deliveries"]["deferred"]) == ("sending", 1)
    assert shown["skipped"] == {"suppressed: hard_bounce": 1}
    assert shown["skipped_suppressed"] == 1
    assert shown["next_attempt_at"] is not None
    run = shown["last_run"]
    assert (run["sent"], run["deferred"], run["skipped_suppressed"]) == (1, 1, 1)
    assert run["suppressed_reasons"] == {"hard_bounce": 1}
    assert "suppressed: hard_bounce: 1" in page
    assert "next try" in page
    assert "the hub tries them again from" in page

    cli = cli_on(
        database_url,
        tmp_path,
        COLUMNS="200",
        CONTACTHUB_SMTP_PORT=str(smtp.port),
        CONTACTHUB_SECRET_KEY="test-secret",
    )
    suppress(database, "a@example.com", "complaint")
    add(database, "a2@example.com")
    suppress(database, "a2@example.com", "complaint")
    report = cli.json("issue", "send", issue)
    assert (report["skipped_suppressed"], report["suppressed_reasons"]) == (1, {"complaint": 1})
    assert (report["waiting_deferred"], report["status"]) == (1, "sending")
    make_deferred_due(database, issue)
    printed = cli.ok("issue", "send", issue)
    assert "skipped suppressed" in printed
    assert smtp.recipients() == ["a@example.com", "busy@example.com"]
    add(database, "a3@example.com")
    suppress(database, "a3@example.com", "manual")
    printed = cli.ok("issue", "send", issue)
    assert "1 (manual 1)" in printed


def test_a_running_hub_retries_due_deferred_deliveries_on_its_own(
    database: Database, database_url: str, smtp: SmtpServer
) -> None:
    issue = make_issue(database, ("a@example.com", "A"), ("busy@example.com", "B"))
    smtp.replies["busy@example.com"] = ["451 4.3.0 Try again later"]
    settings = smtp_settings(database_url, smtp.port).model_copy(update={"send_retry_delay": 0.2})
    report = send(database, settings, issue, smtp.port, policy=sending.policy_of(settings))
    assert (report.deferred, report.status) == (1, "sending")

    with TestClient(create_app(settings)):
        deadline = time.monotonic() + 20
        while issue_status(database, issue) != "sent" and time.monotonic() < deadline:
            time.sleep(0.2)

    assert issue_status(database, issue) == "sent"
    assert deliveries(database, issue)["busy@example.com"][:2] == ("sent", 2)
    assert smtp.recipients() == ["a@example.com", "busy@example.com"]
