"""The shared HTTP layer: `HotPaths` serves hot endpoints ahead of the route table."""

from __future__ import annotations

from typing import cast

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contacthub.http import HotEndpoint, hot_paths


class Answer(HotEndpoint):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse(f"hot {scope['method']}")(scope, receive, send)


class MarkRouted:
    """The mount's middleware: marks every answer that went through the route table."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], (b"x-routed", b"yes")]
            await send(message)

        await self.app(scope, receive, marked)


def app() -> Starlette:
    routes = [
        Mount(
            "/api",
            routes=[
                Route("/hot", Answer(), methods=["POST"]),
                Route("/cold", lambda request: PlainTextResponse("cold"), methods=["POST"]),
            ],
            middleware=[Middleware(MarkRouted)],
        ),
        Route("/pixel", Answer(), methods=["GET"]),
    ]
    return Starlette(routes=routes, middleware=[hot_paths(routes)])


def test_hot_endpoints_are_found_under_their_mounts_with_every_method_of_their_route() -> None:
    endpoints = cast("dict[tuple[str, str], ASGIApp]", hot_paths(app().routes).kwargs["endpoints"])

    assert sorted(endpoints) == [
        ("GET", "/pixel"),
        ("HEAD", "/pixel"),
        ("POST", "/api/hot"),
    ]


def test_a_hot_endpoint_skips_the_route_table_unless_the_request_has_an_origin() -> None:
    client = TestClient(app())

    hot = client.post("/api/hot")
    with_origin = client.post("/api/hot", headers={"Origin": "https://app.example.com"})
    cold = client.post("/api/cold")
    wrong_method = client.get("/api/hot")

    assert (hot.text, "x-routed" in hot.headers) == ("hot POST", False)
    assert (with_origin.text, with_origin.headers["x-routed"]) == ("hot POST", "yes")
    assert (cold.text, cold.headers["x-routed"]) == ("cold", "yes")
    assert wrong_method.status_code == 405  # the route table's answer
    assert client.head("/pixel").status_code == 200
