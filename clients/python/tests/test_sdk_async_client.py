"""The AsyncClient without a hub: the same behaviour as Client, in one asyncio loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from contacthub_client import Accepted, AsyncClient, ClientClosed, HubError, QueueFull, Refused
from fakehub import ALICE, BOB, CHANNEL, ENDPOINT, KEY, FakeHub, error

WAIT = 10.0


def client(hub: FakeHub, **options: Any) -> AsyncClient:
    options = {"flush_interval": 60.0, "backoff_base": 0.001, "backoff_max": 0.01, **options}
    return AsyncClient(ENDPOINT, KEY, CHANNEL, transport=hub.async_transport, **options)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_one_request_per_contact_cut_at_max_batch(hub: FakeHub) -> None:
    async def scenario() -> None:
        async with client(hub, max_batch=2) as sdk:
            deliveries = [
                await sdk.page_visit(ALICE, "https://example.com/", title="Home"),
                await sdk.click(BOB, "Buy"),
                await sdk.data_input(ALICE, "Signup", {"ContactFirstName": "Ann"}),
                await sdk.custom(ALICE, "loan", "5"),
            ]
            assert await sdk.flush(WAIT)
            assert [await d.result(0) for d in deliveries] == [
                Accepted(d.message_id) for d in deliveries
            ]

    run(scenario)
    assert [(b["contact"], len(b["activities"])) for b in hub.bodies] == [
        (ALICE, 2),
        (ALICE, 1),
        (BOB, 1),
    ]
    assert [a["type"] for a in hub.activity_bodies()] == [
        "pagevisit",
        "datainput",
        "loan",
        "click",
    ]


def test_a_full_batch_and_the_interval_both_send(hub: FakeHub) -> None:
    async def scenario() -> None:
        async with client(hub, max_batch=2, flush_interval=60.0) as sdk:
            full = [await sdk.click(ALICE, "a"), await sdk.click(ALICE, "b")]
            assert all([(await d.result(WAIT)).ok for d in full])
        async with client(hub, flush_interval=0.05) as sdk:
            assert (await (await sdk.click(ALICE, "c")).result(WAIT)).ok

    run(scenario)
    assert len(hub.requests) == 2


def test_retries_then_per_item_results(hub: FakeHub) -> None:
    hub.answers.extend(
        [
            httpx.ConnectError("down"),
            error(503, "overloaded"),
            httpx.Response(
                207,
                json={"results": [{"status": 202}, {"status": 400, "error": "e", "code": "c"}]},
            ),
        ]
    )

    async def scenario() -> None:
        async with client(hub) as sdk:
            ok, bad = await sdk.click(ALICE, "a"), await sdk.custom(ALICE, "nope")
            await sdk.flush(WAIT)
            assert await ok.result(0) == Accepted(ok.message_id)
            assert await bad.result(0) == Refused(bad.message_id, 400, "c", "e")

    run(scenario)
    assert len(hub.bodies) == 3
    assert hub.bodies[0] == hub.bodies[1] == hub.bodies[2]


def test_whole_request_errors_are_not_retried(hub: FakeHub) -> None:
    hub.answers.append(error(403, "consent_required"))

    async def scenario() -> None:
        async with client(hub) as sdk:
            delivery = await sdk.click(ALICE, "a")
            await sdk.flush(WAIT)
            assert await delivery.result(0) == Refused(
                delivery.message_id, 403, "consent_required", "consent_required happened"
            )

    run(scenario)
    assert len(hub.requests) == 1


def test_a_full_queue_blocks_then_refuses_the_call(hub: FakeHub) -> None:
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return await hub.handle_async(request)

    async def scenario() -> None:
        sdk = AsyncClient(
            ENDPOINT,
            KEY,
            CHANNEL,
            transport=httpx.MockTransport(slow),
            max_queue=2,
            max_batch=1,
            block_timeout=0.05,
        )
        first, second = await sdk.click(ALICE, "a"), await sdk.click(ALICE, "b")
        with pytest.raises(QueueFull):
            await sdk.click(ALICE, "c")
        release.set()
        assert (await first.result(WAIT)).ok
        assert (await second.result(WAIT)).ok
        assert (await (await sdk.click(ALICE, "d")).result(WAIT)).ok
        assert await sdk.aclose() == []

    run(scenario)


def test_aclose_sends_what_is_queued_and_reports_what_it_could_not(
    hub: FakeHub, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        sdk = client(hub)
        sent = await sdk.click(ALICE, "a")
        assert await sdk.aclose() == []
        assert (await sent.result(0)).ok
        with pytest.raises(ClientClosed):
            await sdk.click(ALICE, "b")

        hub.script = lambda request, body: httpx.ConnectError("the hub is down")
        down = client(hub, backoff_base=0.01, backoff_max=0.02, shutdown_timeout=0.2)
        lost = [await down.click(ALICE, "c"), await down.click(BOB, "d")]
        with caplog.at_level(logging.ERROR, logger="contacthub_client"):
            unsent = await down.aclose()
        assert sorted(r.message_id for r in unsent) == sorted(d.message_id for d in lost)
        assert {(r.status, r.code) for r in unsent} == {(0, "not_sent")}
        assert all(d.done() for d in lost)

    run(scenario)
    assert "2 activities could not be sent" in caplog.text


def test_direct_calls(hub: FakeHub) -> None:
    def direct(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        if request.url.path.endswith("/contacts"):
            return httpx.Response(200, json={"contact": ALICE})
        if "/consents/" in request.url.path and request.method == "GET":
            if request.url.path.startswith("/Kentico.Tracking/consents/"):
                return error(404, "unknown_consent")
            return httpx.Response(200, json={"agreed": False, "isAgreed": False})
        return httpx.Response(200, json={"agreed": body["agree"], "isAgreed": body["agree"]})

    hub.script = direct
    hub.answers.append(error(503, "shutting_down"))

    async def scenario() -> None:
        async with client(hub) as sdk:
            assert await sdk.create_contact() == ALICE
            assert await sdk.agree(ALICE, "C") is True
            assert await sdk.revoke(ALICE, "C") is False
            assert await sdk.is_agreed(ALICE, "C") is False
            with pytest.raises(HubError, match="unknown_consent"):
                await sdk.consent_texts("C")

    run(scenario)
    first, retry = hub.requests[:2]
    assert first.headers["idempotency-key"] == retry.headers["idempotency-key"]


def test_a_request_the_hub_finds_too_large_is_split(hub: FakeHub) -> None:
    def limited(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        if len(body["activities"]) > 1:
            return error(413, "body_too_large")
        return httpx.Response(207, json={"results": [{"status": 202}]})

    hub.script = limited

    async def scenario() -> None:
        async with client(hub) as sdk:
            deliveries = [await sdk.click(ALICE, f"e{n}") for n in range(3)]
            await sdk.flush(WAIT)
            assert [(await d.result(0)).ok for d in deliveries] == [True] * 3

    run(scenario)
    assert [b["activities"][0]["value"] for b in hub.bodies if len(b["activities"]) == 1] == [
        "e0",
        "e1",
        "e2",
    ]
