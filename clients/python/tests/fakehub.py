"""A scripted hub behind httpx.MockTransport, for the SDK's hub-free unit tests.

MockTransport is httpx's own seam for a transport; the SDK is exercised whole (queue, thread or
task, retries, result reading) and only the network is replaced. The tests against a real hub
process are in the repository's tests/clients.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

ENDPOINT = "http://hub.test/Kentico.Tracking"
KEY = "chk_test"
CHANNEL = "252f464a-f043-424f-bf4d-f41ce6725852"
ALICE = "909943bc-fb27-4a5f-8e32-200c6dc07d79"
BOB = "3b1f0c0e-8d0e-4b8c-9a55-6f8f1c1c2a10"

# An answer to one request: a Response, or an exception the transport raises.
Answer = httpx.Response | Exception
Script = Callable[[httpx.Request, dict[str, Any]], Answer]


def accept_all(request: httpx.Request, body: dict[str, Any]) -> Answer:
    """What the hub answers a good POST /activities: 202 for each activity."""
    return httpx.Response(207, json={"results": [{"status": 202}] * len(body["activities"])})


@dataclass
class FakeHub:
    """Answers requests with `script` (by default: every activity accepted) and records them.

    `answers` are used first, one per request, then `script` for the rest.
    """

    script: Script = accept_all
    answers: list[Answer] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    #: When cleared, requests wait until it is set (a hub that hangs).
    gate: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.gate.set()

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.gate.wait(10)
        body = json.loads(request.content) if request.content else {}
        self.requests.append(request)
        self.bodies.append(body)
        answer = self.answers.pop(0) if self.answers else self.script(request, body)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def handle_async(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        return self.handle(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    @property
    def async_transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle_async)

    def activity_bodies(self) -> list[dict[str, Any]]:
        return [a for body in self.bodies for a in body.get("activities", [])]


def error(status: int, code: str) -> httpx.Response:
    return httpx.Response(status, json={"error": f"{code} happened", "code": code})
