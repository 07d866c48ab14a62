"""Exactly once: clients retry at random while the hub is killed (-9) and restarted.

Every activity carries a `messageId` (its value is the same text, so the store shows which id
each row is). Concurrent clients post new activities and, at random, retry earlier ones, alone or
regrouped with others, the way a real client library retries after a timeout; requests cut off
by a kill are retried after the restart. The real server (`contacthub serve`) is killed several
times at a random moment under load. In the end every id that was ever acknowledged with a 202
must be stored exactly once, and no id at all more than once.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest
from sqlalchemy import text

from contacthub.storage.database import Database
from tests import factories
from tests.servers import HubServer, running_hub, start_hub

CONCURRENCY = 16
CONTACTS = 4
KILLS = 2
# Per round: kill once this many requests were answered, load at most this long.
KILL_AFTER_ANSWERED = 120
MAX_ROUND_SECONDS = 8.0
RETRY_SHARE = 0.4  # of the requests, how many retry earlier ids
REQUEST_TIMEOUT = 10.0


@dataclass
class Clients:
    """What the clients sent and saw, across every round."""

    setup: factories.TrackingSetup
    contacts: list[str]
    rng: random.Random
    numbers: itertools.count[int] = field(default_factory=itertools.count)
    # Per contact: every id posted so far (ids are tied to one contact, as a real client's are).
    sent: dict[int, list[str]] = field(default_factory=dict)
    acknowledged: set[str] = field(default_factory=set)
    unanswered: list[tuple[int, list[str]]] = field(default_factory=list)
    retries: int = 0
    other_answers: list[tuple[int, str]] = field(default_factory=list)

    def new_request(self) -> tuple[int, list[str]]:
        contact = self.rng.randrange(len(self.contacts))
        earlier = self.sent.setdefault(contact, [])
        if earlier and self.rng.random() < RETRY_SHARE:
            self.retries += 1
            ids = self.rng.sample(earlier, min(len(earlier), self.rng.randint(1, 3)))
            if self.rng.random() < 0.5:
                ids.append(f"m-{next(self.numbers)}")  # a retry together with a new one
        else:
            ids = [f"m-{next(self.numbers)}" for _ in range(self.rng.randint(1, 4))]
        earlier.extend(i for i in ids if i not in earlier)
        return contact, ids

    def body(self, contact: int, ids: list[str]) -> dict[str, object]:
        activities = [{"type": "click", "value": i, "messageId": i} for i in ids]
        return {
            "channel": self.setup.channel_guid,
            "contact": self.contacts[contact],
            "activities": activities,
        }

    async def post(self, client: httpx2.AsyncClient, contact: int, ids: list[str]) -> bool:
        """Post; False when the connection broke (the hub died): the request stays owed."""
        try:
            response = await client.post(
                "/Kentico.Tracking/activities", json=self.body(contact, ids)
            )
        except httpx2.TransportError:
            self.unanswered.append((contact, ids))
            return False
        results = response.json().get("results") if response.status_code == 207 else None
        if results is not None and all(r == {"status": 202} for r in results):
            self.acknowledged.update(ids)
        else:
            self.other_answers.append((response.status_code, response.text[:200]))
        return True


async def _round(server: HubServer, clients: Clients, *, kill: bool) -> None:
    """Retry what the last kill cut off, then load (and kill, at a random moment)."""
    answered = 0
    enough = asyncio.Event()
    deadline = time.monotonic() + MAX_ROUND_SECONDS
    owed, clients.unanswered = clients.unanswered, []
    stop = False

    limits = httpx2.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx2.AsyncClient(
        base_url=server.base_url,
        headers=clients.setup.headers,
        limits=limits,
        timeout=REQUEST_TIMEOUT,
    ) as client:

        async def client_loop() -> None:
            nonlocal answered
            while not stop and time.monotonic() < deadline:
                contact, ids = owed.pop() if owed else clients.new_request()
                if not await clients.post(client, contact, ids):
                    return
                answered += 1
                if answered >= KILL_AFTER_ANSWERED:
                    enough.set()
                    if not kill:
                        return

        async def killer() -> None:
            nonlocal stop
            try:
                await asyncio.wait_for(enough.wait(), max(deadline - time.monotonic(), 0.1))
            except TimeoutError:
                return
            if kill:
                await asyncio.sleep(clients.rng.uniform(0.0, 0.05))
                server.kill()
            stop = True

        await asyncio.gather(killer(), *(client_loop() for _ in range(CONCURRENCY)))
    clients.unanswered.extend(owed)


async def _settle(server: HubServer, clients: Clients) -> None:
    """After the last restart: retry every request still owed until it is answered."""
    async with httpx2.AsyncClient(
        base_url=server.base_url, headers=clients.setup.headers, timeout=REQUEST_TIMEOUT
    ) as client:
        owed, clients.unanswered = clients.unanswered, []
        for contact, ids in owed:
            assert await clients.post(client, contact, ids), server.log_tail()


def _stored_values(database_url: str) -> Counter[str]:
    database = Database(database_url)
    try:
        with database.read() as session:
            return Counter(session.execute(text("SELECT value FROM activities")).scalars())
    finally:
        database.dispose()


@pytest.mark.slow
def test_every_acknowledged_message_id_is_stored_exactly_once(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    seed = random.randrange(2**32)
    setup = factories.tracking_channel(database)
    clients = Clients(
        setup, [factories.contact(database) for _ in range(CONTACTS)], random.Random(seed)
    )
    database.dispose()
    log = tmp_path / "hub.log"
    started = time.monotonic()

    cut_off = 0
    for _ in range(KILLS):
        server = start_hub(database_url, log)
        try:
            asyncio.run(_round(server, clients, kill=True))
        finally:
            server.kill()
        cut_off += len(clients.unanswered)
    with running_hub(database_url, log) as server:
        asyncio.run(_settle(server, clients))

    stored = _stored_values(database_url)
    sent = {i for ids in clients.sent.values() for i in ids}
    duplicated = {value: n for value, n in stored.items() if n > 1}
    lost = clients.acknowledged - stored.keys()
    print(
        f"seed {seed}: {len(sent)} ids sent, {clients.retries} retrying requests, "
        f"{cut_off} requests cut off by {KILLS} kills and retried, {len(stored)} ids stored, "
        f"{time.monotonic() - started:.1f} s"
    )
    assert cut_off, "the kills must land while requests are in flight"
    assert clients.retries, "some requests must retry earlier ids"
    assert not clients.other_answers, (seed, clients.other_answers[:5])
    assert not duplicated, (seed, sorted(duplicated.items())[:5])
    assert not lost, (seed, sorted(lost)[:5])
    # Everything owed was retried until answered: every id sent is acknowledged and stored.
    assert clients.acknowledged == sent == stored.keys(), seed
