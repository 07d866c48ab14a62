"""The webhook receiver of `bench/tracking.py --webhook`: answers every call 204 at once.

A bare ASGI app (no framework), so that it costs the machine as little as a receiver can; it
reads the whole body, as any receiver must. Run as `uvicorn webhook_receiver:app --app-dir
bench`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]


async def app(
    scope: Scope,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    status = 204 if scope["method"] == "POST" else 200
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b""})
