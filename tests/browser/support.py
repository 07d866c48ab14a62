"""Data for the browser tests, made the way the hub's users make it: through the tracking API of
the running hub (as a website or app does) and through the services (as the CLI does)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx2

from tests.factories import TrackingSetup
from tests.servers import HubServer

TRACKING = "/Kentico.Tracking"
# A person's browser, so that the hub counts opens and clicks as human.
HUMAN_BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)


@dataclass(frozen=True)
class Person:
    """A contact the tests made, with what was posted about them."""

    guid: str
    first_name: str
    last_name: str
    email: str


class Tracker:
    """A client app of one channel, calling the hub's tracking API over real HTTP."""

    def __init__(self, hub: HubServer, setup: TrackingSetup) -> None:
        self.setup = setup
        self.http = httpx2.Client(base_url=hub.base_url + TRACKING, headers=setup.headers)

    def close(self) -> None:
        self.http.close()

    def new_contact(self) -> str:
        """POST /contacts: an anonymous contact's GUID."""
        answer = self.http.post("/contacts")
        assert answer.status_code == 200, answer.text
        guid: str = answer.json()["contact"]
        return guid

    def log(self, contact: str, *activities: dict[str, Any]) -> None:
        """POST /activities; every one of them must be accepted."""
        body = {"channel": self.setup.channel_guid, "contact": contact, "activities": activities}
        answer = self.http.post("/activities", json=body)
        assert answer.status_code == 207, answer.text
        results = answer.json()["results"]
        assert all(result["status"] == 202 for result in results), results

    def person(self, first_name: str, last_name: str, email: str) -> Person:
        """A contact who filled in a form with their name and address."""
        guid = self.new_contact()
        fields = {
            "contactFirstName": first_name,
            "contactLastName": last_name,
            "contactEmail": email,
        }
        self.log(
            guid, {"type": "datainput", "value": "Newsletter sign-up", "contactFields": fields}
        )
        return Person(guid, first_name, last_name, email)


PAGES = [
    ("https://shop.example.com/", "Home"),
    ("https://shop.example.com/pricing", "Pricing"),
    ("https://shop.example.com/products/hub", "Contact hub"),
    ("https://shop.example.com/blog/consent-done-right", "Consent done right"),
]
CLICKS = ["Start free trial", "Download brochure", "Book a demo"]


def browse(tracker: Tracker, contact: str, visits: int, clicks: int) -> None:
    """A visit to the shop: some pages, some clicks (the same contact, one request)."""
    activities: list[dict[str, Any]] = []
    for index in range(visits):
        url, title = PAGES[index % len(PAGES)]
        activities.append({"type": "pagevisit", "url": url, "value": title})
    for index in range(clicks):
        activities.append({"type": "click", "value": CLICKS[index % len(CLICKS)]})
    tracker.log(contact, *activities)
