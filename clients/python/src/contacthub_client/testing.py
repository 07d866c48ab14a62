"""Stand-ins for `Client` and `AsyncClient` in an application's own unit tests: they record what
the application tracked, with no hub, no thread and no network.

    from contacthub_client.testing import RecordingClient

    def signup(hub: contacthub_client.Tracker, email: str) -> None: ...  # the app's code

    def test_signup_is_tracked() -> None:
        hub = RecordingClient()
        signup(hub, email="a@example.com")          # the application's code under test
        [form] = hub.of_type("datainput")
        assert form.fields == {"ContactEmail": "a@example.com"}

Every activity gets a messageId and an `Accepted` result at once, except a custom type missing
from `known_types` (when given), which is refused as the hub refuses it (400
`unknown_activity_type`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from contacthub_client import _core
from contacthub_client._async import AsyncClient, AsyncDelivery
from contacthub_client._core import Accepted, ClientClosed, HubError, Refused, Result
from contacthub_client._protocols import AsyncTracker, Tracker
from contacthub_client._sync import Client, Delivery
from contacthub_client._types import ConsentTexts

BUILT_IN_TYPES = frozenset({"pagevisit", "click", "datainput"})


@dataclass(frozen=True)
class TrackedActivity:
    """One activity the application tracked, and the result it was given."""

    contact: str
    #: The activity exactly as the client would send it (with its messageId).
    body: dict[str, Any]
    result: Result

    @property
    def type(self) -> str:
        kind: str = self.body["type"]
        return kind

    @property
    def message_id(self) -> str:
        message_id: str = self.body["messageId"]
        return message_id

    @property
    def value(self) -> str | None:
        return self.body.get("value")

    @property
    def url(self) -> str | None:
        return self.body.get("url")

    @property
    def fields(self) -> dict[str, str]:
        fields: dict[str, str] = self.body.get("contactFields", {})
        return fields


@dataclass
class Recording:
    """What a recording client holds; shared by the sync and async stand-ins."""

    known_types: frozenset[str] | None = None
    consent_texts: dict[str, ConsentTexts] = field(default_factory=dict)
    contacts: list[str] = field(default_factory=list)
    activities: list[TrackedActivity] = field(default_factory=list)
    #: The latest agreement of each (contact, consent); True agreed, False revoked.
    agreements: dict[tuple[str, str], bool] = field(default_factory=dict)
    closed: bool = False

    def create_contact(self) -> str:
        self._check_open()
        contact = str(uuid.uuid4())
        self.contacts.append(contact)
        return contact

    def texts(self, consent: str) -> ConsentTexts:
        self._check_open()
        try:
            return self.consent_texts[consent]
        except KeyError:
            raise HubError(404, "unknown_consent", f"No consent {consent!r}.") from None

    def set_agreement(self, contact: str, consent: str, agree: bool) -> bool:
        self._check_open()
        self.agreements[(str(uuid.UUID(contact)), consent)] = agree
        return agree

    def is_agreed(self, contact: str, consent: str) -> bool:
        self._check_open()
        return self.agreements.get((str(uuid.UUID(contact)), consent), False)

    def track(self, contact: str, body: dict[str, Any]) -> Result:
        self._check_open()
        kind = body["type"].lower()
        result: Result = Accepted(body["messageId"], truncated=_core.cut(body))
        if self.known_types is not None and kind not in BUILT_IN_TYPES | self.known_types:
            result = Refused(
                body["messageId"], 400, "unknown_activity_type", f"No activity type {kind!r}."
            )
        self.activities.append(TrackedActivity(str(uuid.UUID(contact)), body, result))
        return result

    def of_type(self, type: str) -> list[TrackedActivity]:
        """The activities of one type, in the order tracked."""
        return [a for a in self.activities if a.type.lower() == type.lower()]

    def of_contact(self, contact: str) -> list[TrackedActivity]:
        """The activities of one contact, in the order tracked."""
        return [a for a in self.activities if a.contact == str(uuid.UUID(contact))]

    def _check_open(self) -> None:
        if self.closed:
            raise ClientClosed("the client is closed")


def _lower(types: Iterable[str] | None) -> frozenset[str] | None:
    return None if types is None else frozenset(t.lower() for t in types)


class _Recorder:
    """What both stand-ins share: the recording and the questions a test asks of it.

    `known_types`: the custom activity types the hub would know (None: every type);
    `consent_texts`: what `consent_texts(name)` answers, by consent name (others: 404).
    """

    def __init__(
        self,
        *,
        known_types: Iterable[str] | None = None,
        consent_texts: Mapping[str, ConsentTexts] | None = None,
    ) -> None:
        self.recording = Recording(_lower(known_types), dict(consent_texts or {}))

    @property
    def activities(self) -> list[TrackedActivity]:
        """Every activity tracked, in order."""
        return self.recording.activities

    def of_type(self, type: str) -> list[TrackedActivity]:
        """The activities of one type, in the order tracked."""
        return self.recording.of_type(type)

    def of_contact(self, contact: str) -> list[TrackedActivity]:
        """The activities of one contact, in the order tracked."""
        return self.recording.of_contact(contact)


class RecordingClient(_Recorder):
    """A `Client` stand-in that records what was tracked (see the module's docstring)."""

    def create_contact(self) -> str:
        return self.recording.create_contact()

    def consent_texts(self, consent: str, language: str | None = None) -> ConsentTexts:
        return self.recording.texts(consent)

    def agree(self, contact: str, consent: str) -> bool:
        return self.recording.set_agreement(contact, consent, True)

    def revoke(self, contact: str, consent: str) -> bool:
        return self.recording.set_agreement(contact, consent, False)

    def is_agreed(self, contact: str, consent: str) -> bool:
        return self.recording.is_agreed(contact, consent)

    def page_visit(
        self, contact: str, url: str, title: str | None = None, referrer: str | None = None
    ) -> Delivery:
        return self._track(contact, _core.page_visit_body(url, title, referrer))

    def click(self, contact: str, element: str) -> Delivery:
        return self._track(contact, _core.click_body(element))

    def data_input(
        self, contact: str, value: str, fields: Mapping[str, str] | None = None
    ) -> Delivery:
        return self._track(contact, _core.data_input_body(value, fields))

    def custom(self, contact: str, type: str, value: str | None = None) -> Delivery:
        return self._track(contact, _core.custom_body(type, value))

    def _track(self, contact: str, body: dict[str, Any]) -> Delivery:
        delivery = Delivery(body["messageId"])
        delivery._set(self.recording.track(contact, body))
        return delivery

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self, timeout: float | None = None) -> list[Refused]:
        self.recording.closed = True
        return []

    def __enter__(self) -> RecordingClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncRecordingClient(_Recorder):
    """An `AsyncClient` stand-in that records what was tracked (see `RecordingClient`)."""

    async def create_contact(self) -> str:
        return self.recording.create_contact()

    async def consent_texts(self, consent: str, language: str | None = None) -> ConsentTexts:
        return self.recording.texts(consent)

    async def agree(self, contact: str, consent: str) -> bool:
        return self.recording.set_agreement(contact, consent, True)

    async def revoke(self, contact: str, consent: str) -> bool:
        return self.recording.set_agreement(contact, consent, False)

    async def is_agreed(self, contact: str, consent: str) -> bool:
        return self.recording.is_agreed(contact, consent)

    async def page_visit(
        self, contact: str, url: str, title: str | None = None, referrer: str | None = None
    ) -> AsyncDelivery:
        return self._track(contact, _core.page_visit_body(url, title, referrer))

    async def click(self, contact: str, element: str) -> AsyncDelivery:
        return self._track(contact, _core.click_body(element))

    async def data_input(
        self, contact: str, value: str, fields: Mapping[str, str] | None = None
    ) -> AsyncDelivery:
        return self._track(contact, _core.data_input_body(value, fields))

    async def custom(self, contact: str, type: str, value: str | None = None) -> AsyncDelivery:
        return self._track(contact, _core.custom_body(type, value))

    def _track(self, contact: str, body: dict[str, Any]) -> AsyncDelivery:
        delivery = AsyncDelivery(body["messageId"])
        delivery._set(self.recording.track(contact, body))
        return delivery

    async def flush(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        return True

    async def aclose(self, timeout: float | None = None) -> list[Refused]:  # noqa: ASYNC109
        self.recording.closed = True
        return []

    async def __aenter__(self) -> AsyncRecordingClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _conforms(
    sync: tuple[Client, RecordingClient], asynchronous: tuple[AsyncClient, AsyncRecordingClient]
) -> tuple[list[Tracker], list[AsyncTracker]]:
    """Never called: mypy checks here that the stand-ins fit the clients' protocols."""
    return list(sync), list(asynchronous)
