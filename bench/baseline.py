"""The bare Starlette baseline the hub is measured against.

It does what any ASGI endpoint must do and nothing the hub adds: route the request, read the
whole body, answer a constant JSON document. Its answer has the shape of the hub's (207 with one
202 result per activity of the benchmark body) so both send about the same bytes back.

Run by `bench/tracking.py` as `uvicorn baseline:app --app-dir bench`.
"""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# Ten results: the benchmark body carries ten activities.
ANSWER = json.dumps({"results": [{"status": 202}] * 10}, separators=(",", ":")).encode()


async def activities(request: Request) -> Response:
    """Read the body (as the hub must) and answer the constant 207."""
    await request.body()
    return Response(ANSWER, status_code=207, media_type="application/json")


async def health(request: Request) -> Response:
    """Readiness probe, so the harness waits on the same path for every server."""
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(
    routes=[
        Route("/Kentico.Tracking/activities", activities, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
    ]
)
