"""What the sync and async clients share: results, errors, options, request bodies, and how an
answer of the hub is read (retry, accept, refuse). No I/O here.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

from contacthub_client._version import __version__

logger = logging.getLogger("contacthub_client")

#: The hub's limit of activities in one POST /activities (its `max_activities_per_request`).
HUB_MAX_BATCH: Final = 1000

#: The hub stores at most this many characters of an activity's `value` (its OpenAPI document's
#: maxLength); the client cuts a longer one itself, as the hub would (see `cut`).
MAX_VALUE_LENGTH: Final = 250

#: Statuses worth sending again: the hub is busy, restarting or unreachable behind a proxy
#: (5xx, incl. 503 overloaded/shutting_down/unavailable), rate limits (429), a request with the
#: same Idempotency-Key still running (409), a request cut off by a timeout (408).
RETRYABLE_STATUSES: Final = frozenset({408, 409, 429})

#: Codes of the results the client makes itself: the hub never answered (status 0), or its 207
#: could not be read (status 207, `invalid_answer`).
NOT_SENT: Final = "not_sent"
RETRIES_EXHAUSTED: Final = "retries_exhausted"
INVALID_ANSWER: Final = "invalid_answer"
SEND_FAILED: Final = "send_failed"


@dataclass(frozen=True)
class Accepted:
    """The hub stored the activity (its 202 result): committed, not merely queued."""

    message_id: str
    #: Set when a data input went to another contact (the hub's email rule).
    contact: str | None = None
    #: The properties the hub cut to their limit (today only "value").
    truncated: tuple[str, ...] = ()
    status: int = 202

    @property
    def ok(self) -> bool:
        return True


@dataclass(frozen=True)
class Refused:
    """The activity was refused by the hub, or never confirmed; it is not sent again.

    `status` is the hub's (400 for this activity alone, or the whole request's 401/403/404…),
    or 0 when the hub never answered (`code` is then `not_sent`, `retries_exhausted` or
    `send_failed`; if an answer was lost on its way, the hub may hold the activity all the
    same).
    """

    message_id: str
    status: int
    code: str
    error: str

    @property
    def ok(self) -> bool:
        return False


Result = Accepted | Refused
ResultCallback = Callable[[Result], None]


class ContactHubError(Exception):
    """Base of the errors this library raises."""


class HubError(ContactHubError):
    """The hub answered a direct call (not a queued activity) with an error."""

    def __init__(self, status: int, code: str, error: str) -> None:
        super().__init__(f"{status} {code}: {error}")
        self.status = status
        self.code = code
        self.error = error


class HubUnreachable(ContactHubError):
    """A direct call got no answer worth keeping before its retries ran out."""


class QueueFull(ContactHubError):
    """The queue stayed full for `block_timeout` seconds: this activity was not queued."""


class ClientClosed(ContactHubError):
    """The client was closed: it takes no more activities."""


@dataclass(frozen=True)
class Options:
    """The tuning shared by Client and AsyncClient (see their docstrings)."""

    max_batch: int = 100
    flush_interval: float = 1.0
    max_queue: int = 10_000
    block_timeout: float = 1.0
    timeout: float = 10.0
    retry_for: float = 300.0
    backoff_base: float = 0.2
    backoff_max: float = 10.0
    shutdown_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_batch <= HUB_MAX_BATCH:
            raise ValueError(f"max_batch must be 1 to {HUB_MAX_BATCH}, not {self.max_batch}")
        if self.max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        for name in ("flush_interval", "block_timeout", "timeout", "retry_for", "shutdown_timeout"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} may not be negative")
        if self.backoff_base <= 0 or self.backoff_max < self.backoff_base:
            raise ValueError("need 0 < backoff_base <= backoff_max")


@dataclass
class Item:
    """One queued activity: its body (with messageId) and where its result goes."""

    contact: str
    body: dict[str, Any]
    settle: Callable[[Result], None]
    #: Properties the client cut to their limit before sending (reported in `Accepted`).
    truncated: tuple[str, ...] = ()

    @property
    def message_id(self) -> str:
        message_id: str = self.body["messageId"]
        return message_id


def new_message_id() -> str:
    """A fresh messageId: 32 hex digits, well under the hub's 100 characters."""
    return uuid.uuid4().hex


def activity(type_: str, **properties: Any) -> dict[str, Any]:
    """An activity body as the API spells it; properties that are None are left out."""
    body: dict[str, Any] = {"type": type_}
    body.update({name: value for name, value in properties.items() if value is not None})
    body["messageId"] = new_message_id()
    return body


def cut(body: dict[str, Any]) -> tuple[str, ...]:
    """Cut a `value` over MAX_VALUE_LENGTH characters, as the hub does on receipt (it stores
    the first 250 and answers `truncated`), so that every body sent stays within the API's
    OpenAPI document; answers the properties cut."""
    value = body.get("value")
    if isinstance(value, str) and len(value) > MAX_VALUE_LENGTH:
        body["value"] = value[:MAX_VALUE_LENGTH]
        return ("value",)
    return ()


def page_visit_body(url: str, title: str | None, referrer: str | None) -> dict[str, Any]:
    return activity("pagevisit", url=url, value=title, referrer=referrer)


def click_body(element: str) -> dict[str, Any]:
    return activity("click", value=element)


def data_input_body(value: str, fields: Mapping[str, str] | None) -> dict[str, Any]:
    return activity("datainput", value=value, contactFields=dict(fields) if fields else None)


def custom_body(type_: str, value: str | None) -> dict[str, Any]:
    return activity(type_, value=value)


def batches(items: Iterable[Item], max_batch: int) -> list[list[Item]]:
    """One list per contact (the API takes one contact per request), in the order queued,
    cut into requests of at most max_batch activities."""
    by_contact: dict[str, list[Item]] = {}
    for item in items:
        by_contact.setdefault(item.contact, []).append(item)
    return [
        group[start : start + max_batch]
        for group in by_contact.values()
        for start in range(0, len(group), max_batch)
    ]


def halves(response: httpx.Response, batch: list[Item]) -> list[list[Item]] | None:
    """The two halves to send instead, when the hub found a request of several activities too
    large (413: over its body size or its activities per request, which may be set below
    max_batch); None otherwise."""
    if response.status_code != 413 or len(batch) < 2:
        return None
    middle = len(batch) // 2
    return [batch[:middle], batch[middle:]]


def request_body(channel: str, batch: list[Item]) -> dict[str, Any]:
    return {"channel": channel, "contact": batch[0].contact, "activities": [i.body for i in batch]}


def backoff(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, ...): exponential, capped, with
    "equal jitter" so that many clients coming back after an outage do not all retry at once."""
    ceiling = min(cap, base * 2.0 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not security


def is_retryable(status: int) -> bool:
    return status >= 500 or status in RETRYABLE_STATUSES


def error_of(response: httpx.Response) -> tuple[str, str]:
    """The hub's (code, error) of an error answer; something readable for any other body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        return body["code"], str(body.get("error", ""))
    return f"http_{response.status_code}", response.text[:200] or response.reason_phrase


def results_of(response: httpx.Response, batch: list[Item]) -> list[Result]:
    """Read a whole answer to POST /activities into one result per activity.

    A 207 gives each activity its own result; any other final answer (401, 403, 404, 413…)
    refuses the whole request with the hub's code. Call only for answers not to be retried.
    """
    if response.status_code != 207:
        code, error = error_of(response)
        return [Refused(i.message_id, response.status_code, code, error) for i in batch]
    try:
        answers = response.json()["results"]
    except (ValueError, KeyError, TypeError):
        answers = None
    if not isinstance(answers, list) or len(answers) != len(batch):
        error = f"the hub's 207 answer does not hold {len(batch)} results: {response.text[:200]}"
        return [Refused(i.message_id, 207, INVALID_ANSWER, error) for i in batch]
    return [_result_of(item, answer) for item, answer in zip(batch, answers, strict=True)]


def _result_of(item: Item, answer: Any) -> Result:
    status = answer.get("status") if isinstance(answer, dict) else None
    if not isinstance(status, int):
        return Refused(item.message_id, 207, INVALID_ANSWER, f"unreadable result {answer!r}")
    if 200 <= status < 300:
        contact = answer.get("contact")
        truncated = dict.fromkeys(item.truncated)
        truncated.update(dict.fromkeys(str(name) for name in answer.get("truncated") or ()))
        return Accepted(
            item.message_id,
            contact=contact if isinstance(contact, str) else None,
            truncated=tuple(truncated),
            status=status,
        )
    return Refused(
        item.message_id, status, str(answer.get("code", "")), str(answer.get("error", ""))
    )


def describe(failure: httpx.Response | Exception) -> str:
    """One line on why an attempt failed, for logs and for the final Refused result."""
    if isinstance(failure, httpx.Response):
        code, error = error_of(failure)
        return f"{failure.status_code} {code}: {error}"
    return f"{type(failure).__name__}: {failure}"


def report_unsent(unsent: list[Refused]) -> None:
    if unsent:
        logger.error(
            "contacthub_client: %d activities could not be sent (message ids: %s)",
            len(unsent),
            ", ".join(r.message_id for r in unsent[:20]) + (" ..." if len(unsent) > 20 else ""),
        )


def tracking_headers(api_key: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {api_key}",
        "User-Agent": f"contacthub-client-python/{__version__}",
    }


def idempotency_key() -> dict[str, str]:
    """A fresh Idempotency-Key for one direct call: its retries are answered as the first."""
    return {"Idempotency-Key": uuid.uuid4().hex}
