"""contacthub_client.testing: the recording stand-ins an application uses in its own tests."""

from __future__ import annotations

import asyncio
import re

import pytest
from contacthub_client import Accepted, ClientClosed, ConsentTexts, HubError, Refused, Tracker
from contacthub_client.testing import AsyncRecordingClient, RecordingClient


def signup(hub: Tracker, email: str) -> str:
    """A piece of application code, typed as an app would type it (Client in production)."""
    contact = hub.create_contact()
    hub.agree(contact, "TrackingConsent")
    hub.page_visit(contact, "https://example.com/signup", title="Sign up")
    hub.data_input(contact, "Signup", {"ContactEmail": email})
    return contact


def test_the_recording_client_records_what_the_app_tracked() -> None:
    hub = RecordingClient()
    contact = signup(hub, "a@example.com")
    other = hub.create_contact()
    hub.click(other, "Buy")

    [visit, form] = hub.of_contact(contact)
    assert (visit.type, visit.url) == ("pagevisit", "https://example.com/signup")
    assert visit.value == "Sign up"
    assert form.fields == {"ContactEmail": "a@example.com"}
    assert [a.value for a in hub.of_type("click")] == ["Buy"]
    assert hub.is_agreed(contact, "TrackingConsent")
    assert not hub.is_agreed(other, "TrackingConsent")
    assert hub.recording.contacts == [contact, other]
    assert all(re.fullmatch("[0-9a-f]{32}", a.message_id) for a in hub.activities)
    assert all(a.result == Accepted(a.message_id) for a in hub.activities)


def test_unknown_custom_types_are_refused_as_the_hub_refuses_them() -> None:
    hub = RecordingClient(known_types=["Loan_Calculator"])
    contact = hub.create_contact()

    known = hub.custom(contact, "loan_calculator", "5000").result(0)
    unknown = hub.custom(contact, "nope").result(0)

    assert isinstance(known, Accepted)
    assert isinstance(unknown, Refused)
    assert (unknown.status, unknown.code) == (400, "unknown_activity_type")
    assert hub.click(contact, "x").result(0).ok  # built-in types are always known


def test_consent_texts_and_closing() -> None:
    texts = ConsentTexts("<p>s</p>", "<p>f</p>")
    with RecordingClient(consent_texts={"TrackingConsent": texts}) as hub:
        assert hub.consent_texts("TrackingConsent", "en") == texts
        with pytest.raises(HubError, match="unknown_consent"):
            hub.consent_texts("Other")
        assert hub.flush()
    with pytest.raises(ClientClosed):
        hub.create_contact()


def test_the_async_recording_client() -> None:
    async def scenario() -> AsyncRecordingClient:
        async with AsyncRecordingClient() as hub:
            contact = await hub.create_contact()
            assert await hub.agree(contact, "C")
            assert not await hub.revoke(contact, "C")
            delivery = await hub.page_visit(contact, "https://example.com/")
            assert (await delivery.result(0)).ok
            await hub.click(contact, "a")
            await hub.data_input(contact, "f")
            await hub.custom(contact, "t")
            assert await hub.flush()
        return hub

    hub = asyncio.run(scenario())
    assert [a.type for a in hub.activities] == ["pagevisit", "click", "datainput", "t"]
