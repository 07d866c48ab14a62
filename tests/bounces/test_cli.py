"""`contacthub bounces poll` and `contacthub bounces serve`, run as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from contacthub.storage.database import Database
from contacthub.storage.models import DeliveryEvent
from tests.bounces.imap_server import PASSWORD, USER, ImapServer, imap_server
from tests.bounces.support import BOUNCE_DOMAIN, sent_issues
from tests.bounces.test_dsn import fixture
from tests.cli.conftest import Cli, cli_on
from tests.servers import contacthub_command, free_port

ANNA = "anna@example.org"


@pytest.fixture(scope="module")
def server() -> Iterator[ImapServer]:
    with imap_server() as running:
        yield running


def _cli(database_url: str, tmp_path: Path, **env: str) -> Cli:
    return cli_on(database_url, tmp_path, CONTACTHUB_SECRET_KEY="test-secret", **env)


def test_poll_reads_the_mailbox_and_prints_its_report(
    database: Database, database_url: str, tmp_path: Path, server: ImapServer
) -> None:
    server.empty("INBOX")
    (sent,) = sent_issues(database, [ANNA])
    server.deliver(fixture("postfix_hard.eml", sent.deliveries[ANNA]))
    cli = _cli(
        database_url,
        tmp_path,
        CONTACTHUB_BOUNCE_IMAP_HOST="127.0.0.1",
        CONTACTHUB_BOUNCE_IMAP_PORT=str(server.port),
        CONTACTHUB_BOUNCE_IMAP_TLS="none",
        CONTACTHUB_BOUNCE_IMAP_USERNAME=USER,
        CONTACTHUB_BOUNCE_IMAP_PASSWORD=PASSWORD,
    )
    assert cli.json("bounces", "poll") == {
        "messages": 1,
        "recorded": 1,
        "duplicates": 0,
        "rejected": 0,
        "suppressed": 1,
    }
    assert "messages" in cli.ok("bounces", "poll")
    assert server.messages("INBOX") == []


def test_poll_without_a_mailbox_says_what_to_set(database_url: str, tmp_path: Path) -> None:
    result = _cli(database_url, tmp_path)("bounces", "poll", "--json")
    assert result.exit_code == 1
    error = json.loads(result.stderr)
    assert error["code"] == "bounce_mailbox_not_configured"
    assert "CONTACTHUB_BOUNCE_IMAP_HOST" in error["error"]


def test_serve_records_what_it_receives_and_stops_on_sigterm(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    (sent,) = sent_issues(database, [ANNA])
    port = free_port()
    env = {
        **os.environ,
        **_cli(database_url, tmp_path, CONTACTHUB_BOUNCE_DOMAIN=BOUNCE_DOMAIN).env,
    }
    process = subprocess.Popen(
        [str(contacthub_command()), "bounces", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline, "the listener did not start"
                time.sleep(0.1)
        with smtplib.SMTP("127.0.0.1", port) as client:
            raw = fixture("postfix_hard.eml", sent.deliveries[ANNA])
            client.sendmail("", [sent.return_path(ANNA)], raw)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert b"Receiving bounces for bounces.example.com" in output
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(DeliveryEvent)) == 1
