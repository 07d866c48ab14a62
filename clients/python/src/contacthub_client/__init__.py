"""A client of contacthub's tracking API for server-side Python: contacts, consents, and
activities sent in the background in batches, retried, each with a typed result.

    from contacthub_client import Client

    with Client("https://hub.example.com/Kentico.Tracking", api_key, channel_guid) as hub:
        contact = hub.create_contact()
        hub.agree(contact, "TrackingConsent")
        hub.page_visit(contact, "https://example.com/pricing", title="Pricing")
"""

from contacthub_client._async import AsyncClient, AsyncDelivery
from contacthub_client._core import (
    HUB_MAX_BATCH,
    Accepted,
    ClientClosed,
    ContactHubError,
    HubError,
    HubUnreachable,
    QueueFull,
    Refused,
    Result,
    ResultCallback,
)
from contacthub_client._protocols import AsyncTracker, Tracker
from contacthub_client._sync import Client, Delivery
from contacthub_client._types import ConsentTexts
from contacthub_client._version import __version__

__all__ = [
    "HUB_MAX_BATCH",
    "Accepted",
    "AsyncClient",
    "AsyncDelivery",
    "AsyncTracker",
    "Client",
    "ClientClosed",
    "ConsentTexts",
    "ContactHubError",
    "Delivery",
    "HubError",
    "HubUnreachable",
    "QueueFull",
    "Refused",
    "Result",
    "ResultCallback",
    "Tracker",
    "__version__",
]
