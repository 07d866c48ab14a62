"""The asynchronous client: the same operations as `Client`, for asyncio code (FastAPI,
Starlette, async workers); activities are sent by a background task of the running loop."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Mapping
from functools import partial
from typing import Any
from urllib.parse import quote

import httpx

from contacthub_client import _core
from contacthub_client._core import (
    NOT_SENT,
    RETRIES_EXHAUSTED,
    SEND_FAILED,
    ClientClosed,
    HubError,
    HubUnreachable,
    Item,
    Options,
    QueueFull,
    Refused,
    Result,
    ResultCallback,
    logger,
)
from contacthub_client._types import ConsentTexts


class AsyncDelivery:
    """The handle of one tracked activity: its messageId, and its result once settled."""

    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        self._result: Result | None = None
        self._event = asyncio.Event()

    def done(self) -> bool:
        """Whether the result is known."""
        return self._result is not None

    # A `timeout` argument (not asyncio.timeout) keeps the API parallel to the sync client's.
    async def result(self, timeout: float | None = None) -> Result:  # noqa: ASYNC109
        """Wait for the result: `Accepted` or `Refused`. TimeoutError if not settled in time."""
        if self._result is not None:
            return self._result
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(f"activity {self.message_id} not settled in {timeout} s") from None
        assert self._result is not None
        return self._result

    def _set(self, result: Result) -> bool:
        if self._result is not None:
            return False
        self._result = result
        self._event.set()
        return True


class AsyncClient:
    """`Client` for asyncio: the same options and behaviour, with `await` on every call.

    The background task starts with the first activity, in the running loop; close the client
    with `await client.aclose()` (or `async with`) before the loop ends, e.g. in the
    application's lifespan shutdown. There is no atexit hook: a loop cannot be run at exit.
    """

    def __init__(
        self,
        endpoint: str,
        api_key: str,
        channel: str,
        *,
        max_batch: int = 100,
        flush_interval: float = 1.0,
        max_queue: int = 10_000,
        block_timeout: float = 1.0,
        timeout: float = 10.0,
        retry_for: float = 300.0,
        backoff_base: float = 0.2,
        backoff_max: float = 10.0,
        shutdown_timeout: float = 10.0,
        on_result: ResultCallback | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.options = Options(
            max_batch=max_batch,
            flush_interval=flush_interval,
            max_queue=max_queue,
            block_timeout=block_timeout,
            timeout=timeout,
            retry_for=retry_for,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            shutdown_timeout=shutdown_timeout,
        )
        self.channel = str(uuid.UUID(channel))
        self._on_result = on_result
        self._http = httpx.AsyncClient(
            base_url=endpoint.rstrip("/"),
            headers=_core.tracking_headers(api_key),
            timeout=timeout,
            transport=transport,
        )
        # One loop, one thread: state changes need no lock, only these wake-ups.
        self._wakeup = asyncio.Event()  # for the worker: activities queued, flush, close
        self._room = asyncio.Event()  # for calls waiting on a full queue: something settled
        self._closed = asyncio.Event()  # cuts a retry's backoff short
        self._queue: list[Item] = []
        self._per_contact: dict[str, int] = {}
        self._oldest: float | None = None
        self._open: dict[str, AsyncDelivery] = {}
        self._flush_requested = False
        self._closing = False
        self._deadline: float | None = None
        self._worker: asyncio.Task[None] | None = None

    # -- direct calls ------------------------------------------------------------------------

    async def create_contact(self) -> str:
        """A new anonymous contact's GUID (POST /contacts)."""
        answer = await self._call("POST", "/contacts")
        contact: str = answer["contact"]
        return contact

    async def consent_texts(self, consent: str, language: str | None = None) -> ConsentTexts:
        """A consent's texts in a language (the consent's default one when it has none)."""
        params = {"languageName": language} if language else None
        answer = await self._call("GET", f"/consents/{quote(consent, safe='')}", params=params)
        return ConsentTexts(answer["shortText"], answer["fullText"])

    async def agree(self, contact: str, consent: str) -> bool:
        """Record the contact's agreement to the consent; answers whether it now agrees."""
        return await self._consent(contact, consent, True)

    async def revoke(self, contact: str, consent: str) -> bool:
        """Record that the contact revokes the consent; answers whether it still agrees."""
        return await self._consent(contact, consent, False)

    async def is_agreed(self, contact: str, consent: str) -> bool:
        """Whether the contact currently agrees to the consent."""
        answer = await self._call("GET", _consent_path(contact, consent))
        return bool(answer["isAgreed"])

    async def _consent(self, contact: str, consent: str, agree: bool) -> bool:
        answer = await self._call("POST", _consent_path(contact, consent), json={"agree": agree})
        return bool(answer["isAgreed"])

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        headers = _core.idempotency_key() if method == "POST" else None
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.options.retry_for
        attempt = 0
        while True:
            attempt += 1
            failure: httpx.Response | Exception
            try:
                response = await self._http.request(
                    method, path, json=json, params=params, headers=headers
                )
            except httpx.TransportError as error:
                failure = error
            else:
                if response.is_success:
                    return response.json()
                if not _core.is_retryable(response.status_code):
                    raise HubError(response.status_code, *_core.error_of(response))
                failure = response
            delay = _core.backoff(attempt, self.options.backoff_base, self.options.backoff_max)
            if loop.time() + delay > give_up_at:
                raise HubUnreachable(_core.describe(failure))
            await asyncio.sleep(delay)

    # -- activities ----------------------------------------------------------------------------

    async def page_visit(
        self, contact: str, url: str, title: str | None = None, referrer: str | None = None
    ) -> AsyncDelivery:
        """Queue a page visit (`pagevisit`) of `url`."""
        return await self._track(contact, _core.page_visit_body(url, title, referrer))

    async def click(self, contact: str, element: str) -> AsyncDelivery:
        """Queue a click on `element`."""
        return await self._track(contact, _core.click_body(element))

    async def data_input(
        self, contact: str, value: str, fields: Mapping[str, str] | None = None
    ) -> AsyncDelivery:
        """Queue a data input (e.g. a form named `value`) that sets the contact's `fields`."""
        return await self._track(contact, _core.data_input_body(value, fields))

    async def custom(self, contact: str, type: str, value: str | None = None) -> AsyncDelivery:
        """Queue an activity of a custom type (its code name on the hub)."""
        return await self._track(contact, _core.custom_body(type, value))

    async def _track(self, contact: str, body: dict[str, Any]) -> AsyncDelivery:
        contact = str(uuid.UUID(contact))
        delivery = AsyncDelivery(body["messageId"])
        item = Item(contact, body, partial(self._settle, delivery), _core.cut(body))
        loop = asyncio.get_running_loop()
        if self._closing:
            raise ClientClosed("the client is closed")
        if len(self._open) >= self.options.max_queue:
            await self._wait_for_room()
        self._open[delivery.message_id] = delivery
        self._queue.append(item)
        count = self._per_contact[contact] = self._per_contact.get(contact, 0) + 1
        if self._oldest is None:
            self._oldest = loop.time()
            self._wakeup.set()
        elif count >= self.options.max_batch:
            self._wakeup.set()
        if self._worker is None:
            self._worker = asyncio.create_task(self._run(), name="contacthub-client")
        return delivery

    async def _wait_for_room(self) -> None:
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.options.block_timeout
        while len(self._open) >= self.options.max_queue:
            remaining = give_up_at - loop.time()
            if remaining <= 0 or self._closing:
                raise QueueFull(
                    f"{len(self._open)} activities wait to be sent (max_queue); "
                    f"none settled within {self.options.block_timeout} s"
                )
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), remaining)
        if self._closing:
            raise ClientClosed("the client is closed")

    def _settle(self, delivery: AsyncDelivery, result: Result) -> None:
        if not delivery._set(result):
            return
        self._open.pop(delivery.message_id, None)
        self._room.set()
        if isinstance(result, Refused):
            logger.warning(
                "contacthub_client: activity %s refused: %s %s: %s",
                result.message_id,
                result.status,
                result.code,
                result.error,
            )
        if self._on_result is not None:
            try:
                self._on_result(result)
            except Exception:
                logger.exception("contacthub_client: the on_result callback failed")

    # -- the background task -------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._ready(loop.time()):
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self._until_due(loop.time()))
            if not self._queue:
                return
            taken, self._queue = self._queue, []
            self._per_contact.clear()
            self._oldest = None
            self._flush_requested = False
            for batch in _core.batches(taken, self.options.max_batch):
                try:
                    await self._send(batch)
                except Exception as error:  # the task must go on, and settle every item
                    logger.exception("contacthub_client: sending failed")
                    _give_up(batch, SEND_FAILED, f"{type(error).__name__}: {error}")

    def _ready(self, now: float) -> bool:
        if self._closing or (self._flush_requested and self._queue):
            return True
        if self._oldest is None:
            return False
        due = now - self._oldest >= self.options.flush_interval
        return due or max(self._per_contact.values()) >= self.options.max_batch

    def _until_due(self, now: float) -> float | None:
        if self._oldest is None:
            return None
        return max(0.0, self._oldest + self.options.flush_interval - now)

    async def _send(self, batch: list[Item]) -> None:
        loop = asyncio.get_running_loop()
        body = _core.request_body(self.channel, batch)
        give_up_at = loop.time() + self.options.retry_for
        attempt = 0
        while True:
            attempt += 1
            timeout = self.options.timeout
            if self._deadline is not None:
                timeout = min(timeout, self._deadline - loop.time())
            if timeout <= 0:
                return _give_up(batch, NOT_SENT, "the client closed before it was sent")
            failure: httpx.Response | Exception
            try:
                response = await self._http.post("/activities", json=body, timeout=timeout)
            except httpx.TransportError as error:
                failure = error
            else:
                if not _core.is_retryable(response.status_code):
                    if halves := _core.halves(response, batch):
                        for half in halves:
                            await self._send(half)
                        return None
                    for item, result in zip(batch, _core.results_of(response, batch), strict=True):
                        item.settle(result)
                    return None
                failure = response
            why = _core.describe(failure)
            delay = _core.backoff(attempt, self.options.backoff_base, self.options.backoff_max)
            if loop.time() + delay > give_up_at:
                return _give_up(batch, RETRIES_EXHAUSTED, why)
            logger.info(
                "contacthub_client: %d activities not sent (%s); retry %d in %.2f s",
                len(batch),
                why,
                attempt,
                delay,
            )
            if not await self._sleep(delay):
                return _give_up(batch, NOT_SENT, f"the client closed while retrying ({why})")

    async def _sleep(self, seconds: float) -> bool:
        """Wait before a retry; False when closing leaves no time for it."""
        loop = asyncio.get_running_loop()
        wake_at = loop.time() + seconds
        if self._deadline is None:
            try:
                await asyncio.wait_for(self._closed.wait(), seconds)
            except TimeoutError:
                return True
        # Closing: sleep on only if the retry still fits before the deadline.
        if self._deadline is not None and wake_at >= self._deadline:
            return False
        await asyncio.sleep(max(0.0, wake_at - loop.time()))
        return True

    # -- flush and close -----------------------------------------------------------------------

    async def flush(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Send what is queued now and wait until all of it is settled (accepted or refused);
        answers False if `timeout` seconds passed first."""
        waiting = list(self._open.values())
        self._flush_requested = bool(self._queue)
        self._wakeup.set()
        try:
            await asyncio.wait_for(
                asyncio.gather(*(delivery._event.wait() for delivery in waiting)), timeout
            )
        except TimeoutError:
            return False
        return True

    async def aclose(self, timeout: float | None = None) -> list[Refused]:  # noqa: ASYNC109
        """Send what is queued (within `timeout`, by default `shutdown_timeout` seconds), stop
        the background task and the HTTP client. Answers the activities that could not be
        sent (also logged); each of their deliveries is settled `Refused` with status 0."""
        timeout = self.options.shutdown_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        if self._closing:
            return []
        self._closing = True
        self._deadline = loop.time() + timeout
        waiting = list(self._open.values())
        self._wakeup.set()
        self._closed.set()
        self._room.set()
        if self._worker is not None:
            try:
                # A request in flight may outlast the deadline by its timeout's rounding.
                await asyncio.wait_for(asyncio.shield(self._worker), timeout + 1.0)
            except TimeoutError:
                self._worker.cancel()
        for delivery in list(self._open.values()):
            self._settle(delivery, Refused(delivery.message_id, 0, NOT_SENT, "client closed"))
        await self._http.aclose()
        unsent = [
            result
            for delivery in waiting
            if isinstance(result := delivery._result, Refused) and result.status == 0
        ]
        _core.report_unsent(unsent)
        return unsent

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _consent_path(contact: str, consent: str) -> str:
    return f"/contacts/{uuid.UUID(contact)}/consents/{quote(consent, safe='')}"


def _give_up(batch: list[Item], code: str, why: str) -> None:
    for item in batch:
        item.settle(Refused(item.message_id, 0, code, why))
