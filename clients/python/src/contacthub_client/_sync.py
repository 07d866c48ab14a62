"""The synchronous client: direct calls in the caller's thread, activities sent by a background
thread."""

from __future__ import annotations

import atexit
import threading
import time
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


class Delivery:
    """The handle of one tracked activity: its messageId, and its result once settled."""

    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        self._result: Result | None = None
        self._event = threading.Event()
        self._lock = threading.Lock()

    def done(self) -> bool:
        """Whether the result is known."""
        return self._event.is_set()

    def result(self, timeout: float | None = None) -> Result:
        """Wait for the result: `Accepted` or `Refused`. TimeoutError if not settled in time."""
        if not self._event.wait(timeout):
            raise TimeoutError(f"activity {self.message_id} not settled in {timeout} s")
        assert self._result is not None
        return self._result

    def _set(self, result: Result) -> bool:
        """Settle once; answers whether this call did (a late second result is ignored)."""
        with self._lock:
            if self._result is not None:
                return False
            self._result = result
        self._event.set()
        return True


class Client:
    """A client of the hub's tracking API for server-side code (services, workers).

    `endpoint` is the tracking API's base URL (`https://hub.example.com/Kentico.Tracking`),
    `api_key` a tracking key of the channel whose tracking identifier (GUID) is `channel`.

    Direct calls (`create_contact`, `agree`, ...) return the hub's answer or raise `HubError`.
    Activity calls (`page_visit`, `click`, `data_input`, `custom`) queue the activity with a
    fresh `messageId` and return a `Delivery` at once; a background thread sends the queue, one
    request per contact with at most `max_batch` activities, every `flush_interval` seconds or
    as soon as a contact has a full batch, retrying what is retryable for up to `retry_for`
    seconds with exponential backoff and jitter.

    At most `max_queue` activities wait for their result; an activity call on a full queue
    blocks up to `block_timeout` seconds for room, then raises `QueueFull`. `close()` (also run
    at interpreter exit, and by `with`) sends what is queued within `shutdown_timeout` seconds
    and returns (and logs) what could not be sent.
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
        transport: httpx.BaseTransport | None = None,
        flush_at_exit: bool = True,
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
        self._http = httpx.Client(
            base_url=endpoint.rstrip("/"),
            headers=_core.tracking_headers(api_key),
            timeout=timeout,
            transport=transport,
        )
        self._cond = threading.Condition()
        self._queue: list[Item] = []
        self._per_contact: dict[str, int] = {}
        self._oldest: float | None = None  # when the oldest queued activity was queued
        self._open: dict[str, Delivery] = {}  # every activity not settled yet, by messageId
        self._flush_requested = False
        self._closing = False
        self._deadline: float | None = None  # once closing: give up sending at this time
        self._worker: threading.Thread | None = None
        self._flush_at_exit = flush_at_exit
        if flush_at_exit:
            atexit.register(self.close)

    # -- direct calls ------------------------------------------------------------------------

    def create_contact(self) -> str:
        """A new anonymous contact's GUID (POST /contacts)."""
        answer = self._call("POST", "/contacts")
        contact: str = answer["contact"]
        return contact

    def consent_texts(self, consent: str, language: str | None = None) -> ConsentTexts:
        """A consent's texts in a language (the consent's default one when it has none)."""
        params = {"languageName": language} if language else None
        answer = self._call("GET", f"/consents/{quote(consent, safe='')}", params=params)
        return ConsentTexts(answer["shortText"], answer["fullText"])

    def agree(self, contact: str, consent: str) -> bool:
        """Record the contact's agreement to the consent; answers whether it now agrees."""
        return self._consent(contact, consent, True)

    def revoke(self, contact: str, consent: str) -> bool:
        """Record that the contact revokes the consent; answers whether it still agrees."""
        return self._consent(contact, consent, False)

    def is_agreed(self, contact: str, consent: str) -> bool:
        """Whether the contact currently agrees to the consent."""
        answer = self._call("GET", _consent_path(contact, consent))
        return bool(answer["isAgreed"])

    def _consent(self, contact: str, consent: str, agree: bool) -> bool:
        answer = self._call("POST", _consent_path(contact, consent), json={"agree": agree})
        return bool(answer["isAgreed"])

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        # A POST carries an Idempotency-Key, so that a retry after a lost answer is answered as
        # the first call instead of creating a second contact or consent event.
        headers = _core.idempotency_key() if method == "POST" else None
        give_up_at = time.monotonic() + self.options.retry_for
        attempt = 0
        while True:
            attempt += 1
            failure: httpx.Response | Exception
            try:
                response = self._http.request(
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
            if time.monotonic() + delay > give_up_at:
                raise HubUnreachable(_core.describe(failure))
            time.sleep(delay)

    # -- activities ----------------------------------------------------------------------------

    def page_visit(
        self, contact: str, url: str, title: str | None = None, referrer: str | None = None
    ) -> Delivery:
        """Queue a page visit (`pagevisit`) of `url`."""
        return self._track(contact, _core.page_visit_body(url, title, referrer))

    def click(self, contact: str, element: str) -> Delivery:
        """Queue a click on `element`."""
        return self._track(contact, _core.click_body(element))

    def data_input(
        self, contact: str, value: str, fields: Mapping[str, str] | None = None
    ) -> Delivery:
        """Queue a data input (e.g. a form named `value`) that sets the contact's `fields`."""
        return self._track(contact, _core.data_input_body(value, fields))

    def custom(self, contact: str, type: str, value: str | None = None) -> Delivery:
        """Queue an activity of a custom type (its code name on the hub)."""
        return self._track(contact, _core.custom_body(type, value))

    def _track(self, contact: str, body: dict[str, Any]) -> Delivery:
        contact = str(uuid.UUID(contact))
        delivery = Delivery(body["messageId"])
        item = Item(contact, body, partial(self._settle, delivery), _core.cut(body))
        with self._cond:
            if self._closing:
                raise ClientClosed("the client is closed")
            if len(self._open) >= self.options.max_queue:
                self._wait_for_room()
            self._open[delivery.message_id] = delivery
            self._queue.append(item)
            count = self._per_contact[contact] = self._per_contact.get(contact, 0) + 1
            if self._oldest is None:
                self._oldest = time.monotonic()
                self._cond.notify_all()
            elif count >= self.options.max_batch:
                self._cond.notify_all()
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._run, name="contacthub-client", daemon=True
                )
                self._worker.start()
        return delivery

    def _wait_for_room(self) -> None:
        """Block (holding the condition) up to block_timeout for the queue to have room."""
        give_up_at = time.monotonic() + self.options.block_timeout
        while len(self._open) >= self.options.max_queue:
            remaining = give_up_at - time.monotonic()
            if remaining <= 0 or self._closing:
                raise QueueFull(
                    f"{len(self._open)} activities wait to be sent (max_queue); "
                    f"none settled within {self.options.block_timeout} s"
                )
            self._cond.wait(remaining)

    def _settle(self, delivery: Delivery, result: Result) -> None:
        if not delivery._set(result):
            return
        with self._cond:
            self._open.pop(delivery.message_id, None)
            self._cond.notify_all()
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

    # -- the background thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._ready():
                    self._cond.wait(self._until_due())
                if not self._queue:
                    return  # closing, and nothing left
                taken, self._queue = self._queue, []
                self._per_contact.clear()
                self._oldest = None
                self._flush_requested = False
            for batch in _core.batches(taken, self.options.max_batch):
                try:
                    self._send(batch)
                except Exception as error:  # the thread must go on, and settle every item
                    logger.exception("contacthub_client: sending failed")
                    _give_up(batch, SEND_FAILED, f"{type(error).__name__}: {error}")

    def _ready(self) -> bool:
        if self._closing or (self._flush_requested and self._queue):
            return True
        if self._oldest is None:
            return False
        due = time.monotonic() - self._oldest >= self.options.flush_interval
        return due or max(self._per_contact.values()) >= self.options.max_batch

    def _until_due(self) -> float | None:
        if self._oldest is None:
            return None
        return max(0.0, self._oldest + self.options.flush_interval - time.monotonic())

    def _send(self, batch: list[Item]) -> None:
        body = _core.request_body(self.channel, batch)
        give_up_at = time.monotonic() + self.options.retry_for
        attempt = 0
        while True:
            attempt += 1
            timeout = self._time_left(self.options.timeout)
            if timeout <= 0:
                return _give_up(batch, NOT_SENT, "the client closed before it was sent")
            failure: httpx.Response | Exception
            try:
                response = self._http.post("/activities", json=body, timeout=timeout)
            except httpx.TransportError as error:
                failure = error
            else:
                if not _core.is_retryable(response.status_code):
                    if halves := _core.halves(response, batch):
                        for half in halves:
                            self._send(half)
                        return None
                    for item, result in zip(batch, _core.results_of(response, batch), strict=True):
                        item.settle(result)
                    return None
                failure = response
            why = _core.describe(failure)
            delay = _core.backoff(attempt, self.options.backoff_base, self.options.backoff_max)
            if time.monotonic() + delay > give_up_at:
                return _give_up(batch, RETRIES_EXHAUSTED, why)
            logger.info(
                "contacthub_client: %d activities not sent (%s); retry %d in %.2f s",
                len(batch),
                why,
                attempt,
                delay,
            )
            if not self._sleep(delay):
                return _give_up(batch, NOT_SENT, f"the client closed while retrying ({why})")

    def _time_left(self, wanted: float) -> float:
        with self._cond:
            if self._deadline is None:
                return wanted
            return min(wanted, self._deadline - time.monotonic())

    def _sleep(self, seconds: float) -> bool:
        """Wait before a retry; False when closing leaves no time for it."""
        wake_at = time.monotonic() + seconds
        with self._cond:
            while (now := time.monotonic()) < wake_at:
                if self._deadline is not None and wake_at >= self._deadline:
                    return False
                self._cond.wait(wake_at - now)
        return True

    # -- flush and close -----------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Send what is queued now and wait until all of it is settled (accepted or refused);
        answers False if `timeout` seconds passed first."""
        with self._cond:
            waiting = list(self._open.values())
            self._flush_requested = bool(self._queue)
            self._cond.notify_all()
        give_up_at = None if timeout is None else time.monotonic() + timeout
        for delivery in waiting:
            left = None if give_up_at is None else max(0.0, give_up_at - time.monotonic())
            if not delivery._event.wait(left):
                return False
        return True

    def close(self, timeout: float | None = None) -> list[Refused]:
        """Send what is queued (within `timeout`, by default `shutdown_timeout` seconds), stop
        the background thread and the HTTP client. Answers the activities that could not be
        sent (also logged); each of their Deliveries is settled `Refused` with status 0."""
        timeout = self.options.shutdown_timeout if timeout is None else timeout
        with self._cond:
            if self._closing and self._deadline is not None:
                return []
            self._closing = True
            self._deadline = time.monotonic() + timeout
            waiting = list(self._open.values())
            self._cond.notify_all()
        if self._flush_at_exit:
            atexit.unregister(self.close)
        if self._worker is not None and self._worker is not threading.current_thread():
            # A request in flight may outlast the deadline by its own timeout's rounding.
            self._worker.join(timeout + 1.0)
        with self._cond:
            left = list(self._open.values())
        for delivery in left:
            self._settle(delivery, Refused(delivery.message_id, 0, NOT_SENT, "client closed"))
        self._http.close()
        unsent = [
            result
            for delivery in waiting
            if isinstance(result := delivery.result(0), Refused) and result.status == 0
        ]
        _core.report_unsent(unsent)
        return unsent

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _consent_path(contact: str, consent: str) -> str:
    return f"/contacts/{uuid.UUID(contact)}/consents/{quote(consent, safe='')}"


def _give_up(batch: list[Item], code: str, why: str) -> None:
    for item in batch:
        item.settle(Refused(item.message_id, 0, code, why))
