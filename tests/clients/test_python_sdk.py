"""The Python SDK (clients/python) against a real hub process (`contacthub serve`).

Everything goes over HTTP to the hub started by tests/servers.py; what the hub stored is read
from its database. The requests the SDK sends are captured on their way out (a transport that
records, then sends for real) and checked against the tracking API's OpenAPI document.

The hub runs on a SQLite file only: the SDK is a client of the HTTP API, which behaves the same
on either store, and the hub's own tests run everything on PostgreSQL too.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import contacthub_client
import httpx
import pytest
from contacthub_client import (
    Accepted,
    AsyncClient,
    Client,
    ConsentTexts,
    HubError,
    Refused,
)
from sqlalchemy import select

import contacthub
from contacthub.storage.database import Database
from contacthub.storage.models import Channel, IngestMessageId
from contacthub.tracking import openapi
from tests import factories
from tests.clients.support import assert_valid_activities_bodies
from tests.factories import TrackingSetup
from tests.servers import HubServer, start_hub
from tests.tracking.support import activities_of, titles_of

REPO = Path(__file__).resolve().parents[2]
WAIT = 30.0  # the longest a result may take; against a running hub they take milliseconds
CONSENT = "TrackingConsent"
API = "/Kentico.Tracking"


@pytest.fixture
def database_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh migrated SQLite database (instead of the SQLite-and-PostgreSQL parametrisation)."""
    path = tmp_path / "hub.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def setup(database: Database) -> TrackingSetup:
    """A channel "Mobile app" with an enabled tracking key."""
    return factories.tracking_channel(database)


def endpoint(server: HubServer) -> str:
    """The tracking API's base URL, as an application configures the SDK with it."""
    return f"{server.base_url}{API}"


class Recorder(httpx.BaseTransport):
    """Records every POST /activities body, then sends the request to the hub for real."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.bodies: list[dict[str, Any]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/activities"):
            self.bodies.append(json.loads(request.content))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class AsyncRecorder(httpx.AsyncBaseTransport):
    """Recorder for the AsyncClient."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.bodies: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/activities"):
            self.bodies.append(json.loads(await request.aread()))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class KillAfterCommit(Recorder):
    """Once armed, lets the next POST /activities reach the hub and commit, then kills the hub
    and loses the answer: the client sees a broken connection for a request that was stored,
    the case a messageId exists for."""

    def __init__(self) -> None:
        super().__init__()
        self.kill: Callable[[], None] | None = None
        self.killed = threading.Event()
        self.lost: dict[str, Any] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if self.kill is not None and response.status_code == 207:
            response.read()
            self.kill()
            self.kill = None
            self.lost = self.bodies[-1]
            self.killed.set()
            raise httpx.ReadError("the hub died before its answer arrived")
        return response


@pytest.fixture
def gated(database: Database, setup: TrackingSetup) -> TrackingSetup:
    """The channel logs only contacts who agreed to TrackingConsent; a custom type exists."""
    factories.consent(database, CONSENT, "en", "<p>May we?</p>", "<p>We record ...</p>")
    factories.require_consent(database, setup.channel_name, CONSENT)
    factories.activity_type(database, "loan_calculator", "Loan calculator")
    return setup


def test_the_sdk_is_versioned_with_the_hub() -> None:
    project = tomllib.loads((REPO / "clients/python/pyproject.toml").read_text())["project"]
    assert contacthub_client.__version__ == project["version"] == contacthub.__version__
    assert openapi.document()["info"]["version"] == contacthub_client.__version__


def test_the_sync_client_against_a_real_hub(
    hub: HubServer, database: Database, gated: TrackingSetup
) -> None:
    recorder = Recorder()
    sdk = Client(
        endpoint(hub), gated.key, gated.channel_guid, flush_interval=0.05, transport=recorder
    )
    with sdk:
        contact = sdk.create_contact()
        assert sdk.consent_texts(CONSENT, "en") == ConsentTexts(
            "<p>May we?</p>", "<p>We record ...</p>"
        )
        with pytest.raises(HubError) as unknown:
            sdk.consent_texts("NoSuchConsent")
        assert not sdk.is_agreed(contact, CONSENT)
        too_early = sdk.click(contact, "Before agreeing").result(WAIT)
        assert sdk.agree(contact, CONSENT)
        assert sdk.is_agreed(contact, CONSENT)

        deliveries = [
            sdk.page_visit(contact, "https://example.com/", title="Home", referrer="https://r/"),
            sdk.page_visit(contact, "https://example.com/long", title="t" * 300),
            sdk.click(contact, "Buy"),
            sdk.data_input(contact, "Signup", {"ContactEmail": "ann@example.com"}),
            sdk.data_input(contact, "Other", {"ContactEmail": "bob@example.com"}),
            sdk.custom(contact, "loan_calculator", "5000"),
            sdk.custom(contact, "no_such_type", "1"),
        ]
        assert sdk.flush(WAIT)
        assert not sdk.revoke(contact, CONSENT)
        after_revoking = sdk.click(contact, "After revoking").result(WAIT)

    assert (unknown.value.status, unknown.value.code) == (404, "unknown_consent")
    assert isinstance(too_early, Refused)
    assert (too_early.status, too_early.code) == (403, "consent_required")
    assert isinstance(after_revoking, Refused)
    assert after_revoking.code == "consent_required"

    home, long, buy, signup, other, loan, unknown_type = (d.result(0) for d in deliveries)
    assert home == Accepted(home.message_id)
    assert long == Accepted(long.message_id, truncated=("value",))
    assert buy == Accepted(buy.message_id)
    assert signup == Accepted(signup.message_id)
    # A different email never overwrites the contact's: the hub's email rule moved it.
    assert isinstance(other, Accepted)
    assert other.contact is not None
    assert other.contact != contact
    assert loan == Accepted(loan.message_id)
    assert isinstance(unknown_type, Refused)
    assert (unknown_type.status, unknown_type.code) == (400, "unknown_activity_type")

    assert titles_of(database, contact) == [
        "Page visit 'Home'",
        f"Page visit '{'t' * 250}'",
        "Clicked 'Buy'",
        "Data input 'Signup'",
        "Loan calculator '5000'",
    ]
    assert titles_of(database, other.contact) == ["Data input 'Other'"]
    assert_valid_activities_bodies(recorder.bodies)


def test_the_async_client_against_a_real_hub(
    hub: HubServer, database: Database, gated: TrackingSetup
) -> None:
    recorder = AsyncRecorder()

    async def scenario() -> tuple[str, list[contacthub_client.Result]]:
        async with AsyncClient(
            endpoint(hub), gated.key, gated.channel_guid, flush_interval=0.05, transport=recorder
        ) as sdk:
            contact = await sdk.create_contact()
            assert (await sdk.consent_texts(CONSENT)).short_text == "<p>May we?</p>"
            assert await sdk.agree(contact, CONSENT)
            assert await sdk.is_agreed(contact, CONSENT)
            deliveries = [
                await sdk.page_visit(contact, "https://example.com/", title="Home"),
                await sdk.click(contact, "Buy"),
                await sdk.data_input(contact, "Signup", {"ContactFirstName": "Ann"}),
                await sdk.custom(contact, "loan_calculator"),
                await sdk.custom(contact, "no_such_type"),
            ]
            assert await sdk.flush(WAIT)
            results = [await d.result(0) for d in deliveries]
            assert not await sdk.revoke(contact, CONSENT)
            return contact, results

    contact, results = asyncio.run(asyncio.wait_for(scenario(), 60))

    assert [r.ok for r in results] == [True, True, True, True, False]
    assert isinstance(results[-1], Refused)
    assert results[-1].code == "unknown_activity_type"
    assert titles_of(database, contact) == [
        "Page visit 'Home'",
        "Clicked 'Buy'",
        "Data input 'Signup'",
        "Loan calculator",
    ]
    assert_valid_activities_bodies(recorder.bodies)


def test_close_sends_what_is_queued(
    hub: HubServer, database: Database, setup: TrackingSetup
) -> None:
    # A long interval and no flush: only closing sends them.
    sdk = Client(endpoint(hub), setup.key, setup.channel_guid, flush_interval=3600)
    contacts = [sdk.create_contact() for _ in range(3)]
    deliveries = [sdk.click(contact, f"c{n}") for n in range(4) for contact in contacts]
    assert not any(d.done() for d in deliveries)

    assert sdk.close() == []

    assert all(d.result(0).ok for d in deliveries)
    for contact in contacts:
        assert titles_of(database, contact) == [f"Clicked 'c{n}'" for n in range(4)]

    async def scenario() -> list[contacthub_client.AsyncDelivery]:
        client = AsyncClient(endpoint(hub), setup.key, setup.channel_guid, flush_interval=3600)
        queued = [await client.click(contacts[0], "async") for _ in range(3)]
        assert await client.aclose() == []
        return queued

    assert all(d.done() for d in asyncio.run(scenario()))
    assert len(activities_of(database, contacts[0])) == 7


EXITING_APP = """
import sys
from contacthub_client import Client

endpoint, key, channel, contact = sys.argv[1:]
hub = Client(endpoint, key, channel, flush_interval=3600)
for n in range(5):
    hub.click(contact, f"exit-{n}")
# No close(): the interpreter's exit sends what is queued.
"""


def test_what_is_queued_is_sent_when_the_interpreter_exits(
    hub: HubServer, database: Database, setup: TrackingSetup
) -> None:
    contact = factories.contact(database)
    app = [sys.executable, "-c", EXITING_APP, endpoint(hub), setup.key, setup.channel_guid]

    finished = subprocess.run([*app, contact], capture_output=True, timeout=60, check=False)

    assert finished.returncode == 0, finished.stderr.decode()
    assert titles_of(database, contact) == [f"Clicked 'exit-{n}'" for n in range(5)]


def stored_message_ids(database: Database, channel_guid: str) -> list[str]:
    with database.read() as session:
        return list(
            session.scalars(
                select(IngestMessageId.message_id)
                .join(Channel, Channel.id == IngestMessageId.channel_id)
                .where(Channel.guid == uuid.UUID(channel_guid))
            )
        )


RESTART_TOTAL = 400
# Quick to notice the hub is back, so that the restarts take seconds.
RESTART_OPTIONS: dict[str, Any] = {
    "max_batch": 20,
    "flush_interval": 0.01,
    "timeout": 2.0,
    "backoff_base": 0.05,
    "backoff_max": 0.3,
    "shutdown_timeout": WAIT,
}


class AsyncKillAfterCommit(AsyncRecorder):
    """KillAfterCommit for the AsyncClient."""

    def __init__(self) -> None:
        super().__init__()
        self.kill: Callable[[], None] | None = None
        self.killed = threading.Event()
        self.lost: dict[str, Any] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if self.kill is not None and response.status_code == 207:
            await response.aread()
            self.kill()
            self.kill = None
            self.lost = self.bodies[-1]
            self.killed.set()
            raise httpx.ReadError("the hub died before its answer arrived")
        return response


class Stream:
    """A producer's milestones: at each count it waits for the hub to go down or come back, so
    that every phase of the restarts happens while it tracks, however fast this machine is."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.go = {total * k // 6: threading.Event() for k in range(1, 6)}
        self.reached = {n: threading.Event() for n in self.go}
        self.steps = iter(sorted(self.go))
        self.message_ids: list[str] = []
        self.results: list[contacthub_client.Result] = []
        self.unsent: list[Refused] | None = None

    def values(self) -> range:
        return range(self.total)

    def arrive(self, n: int) -> threading.Event | None:
        """The event to wait for before tracking activity n, if n is a milestone."""
        if n not in self.go:
            return None
        self.reached[n].set()
        return self.go[n]

    def next_phase(self) -> None:
        """Wait for the producer to reach its next milestone, then let it go on."""
        n = next(self.steps)
        assert self.reached[n].wait(WAIT)
        self.go[n].set()

    def release(self) -> None:
        for event in self.go.values():
            event.set()


def produce(sdk: Client, contact: str, stream: Stream) -> None:
    deliveries = []
    for n in stream.values():
        if milestone := stream.arrive(n):
            milestone.wait(WAIT)
        deliveries.append(sdk.click(contact, f"step-{n}"))
        time.sleep(0.002)  # a steady stream, not one burst
    stream.unsent = sdk.close()
    stream.message_ids = [d.message_id for d in deliveries]
    stream.results = [d.result(0) for d in deliveries]


async def produce_async(sdk: AsyncClient, contact: str, stream: Stream) -> None:
    deliveries = []
    for n in stream.values():
        if milestone := stream.arrive(n):
            await asyncio.to_thread(milestone.wait, WAIT)
        deliveries.append(await sdk.click(contact, f"step-{n}"))
        await asyncio.sleep(0.002)
    stream.unsent = await sdk.aclose()
    stream.message_ids = [d.message_id for d in deliveries]
    stream.results = [await d.result(0) for d in deliveries]


@pytest.mark.slow
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_nothing_is_lost_or_doubled_when_the_hub_restarts_mid_stream(
    flavour: str, database_url: str, database: Database, setup: TrackingSetup, tmp_path: Path
) -> None:
    """A producer tracks N activities steadily while the hub is stopped (SIGTERM), started
    again, killed (SIGKILL) right after committing a request it had not answered yet, and
    started again, on the same port and database. The SDK retries what was not answered with
    the same messageIds: the hub ends up holding each of the N activities exactly once."""
    log = tmp_path / "hub.log"
    server = start_hub(database_url, log)
    contact = factories.contact(database)
    stream = Stream(RESTART_TOTAL)
    args = (endpoint(server), setup.key, setup.channel_guid)
    transport: KillAfterCommit | AsyncKillAfterCommit
    if flavour == "sync":
        transport = KillAfterCommit()
        sdk = Client(*args, transport=transport, **RESTART_OPTIONS)
        producer = threading.Thread(target=produce, args=(sdk, contact, stream))
    else:
        transport = AsyncKillAfterCommit()

        def run_async_producer() -> None:
            async_sdk = AsyncClient(*args, transport=transport, **RESTART_OPTIONS)
            asyncio.run(produce_async(async_sdk, contact, stream))

        producer = threading.Thread(target=run_async_producer)
    producer.start()
    try:
        stream.next_phase()
        server.stop()  # graceful: requests in flight are finished or answered 503
        stream.next_phase()  # tracked while the hub is down
        server = start_hub(database_url, log, port=server.port)
        stream.next_phase()
        transport.kill = server.kill  # no shutdown at all, and an answer lost after its commit
        assert transport.killed.wait(WAIT)
        stream.next_phase()  # tracked while the hub is down
        server = start_hub(database_url, log, port=server.port)
        stream.next_phase()
        producer.join(2 * WAIT)
        assert not producer.is_alive()
    finally:
        stream.release()
        producer.join(WAIT)
        server.stop()

    assert stream.unsent == []
    assert len(stream.results) == RESTART_TOTAL
    refused = [r for r in stream.results if not isinstance(r, Accepted)]
    assert not refused, refused[:3]
    stored = Counter(a.value for a in activities_of(database, contact))
    assert stored == Counter(f"step-{n}" for n in stream.values())  # each once, none missing
    ids = stored_message_ids(database, setup.channel_guid)
    assert sorted(ids) == sorted(stream.message_ids)
    # The request whose answer was lost had been stored; it was sent again as it was.
    assert transport.lost
    assert transport.bodies.count(transport.lost) >= 2
