"""GET /api/activities: the activity log as JSON, filtered and paged by keyset."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from contacthub.storage.database import Database
from contacthub.storage.models import Activity
from tests import factories
from tests.activities.support import insert, minutes, new_channel, new_contact, row

PATH = "/api/activities"


def get(client: TestClient, headers: dict[str, str], **params: Any) -> Any:
    answer = client.get(PATH, headers=headers, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_needs_a_token(client: TestClient) -> None:
    answer = client.get(PATH)
    assert answer.status_code == 401
    assert answer.json()["code"] == "missing_api_key"
    wrong = client.get(PATH, headers={"Authorization": "Bearer cht_wrong"})
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "invalid_token"


def test_an_activity_tracked_by_the_tracking_api_is_listed(
    client: TestClient, database: Database, api_headers: dict[str, str]
) -> None:
    setup = factories.tracking_channel(database, "Web site")
    contact = client.post("/Kentico.Tracking/contacts", headers=setup.headers).json()["contact"]
    body = {
        "channel": setup.channel_guid,
        "contact": contact,
        "activities": [
            {"type": "pagevisit", "url": "https://example.com/pricing", "value": "Pricing"},
            {"type": "click", "value": "Buy now", "referrer": "https://example.com/"},
        ],
    }
    tracked = client.post("/Kentico.Tracking/activities", headers=setup.headers, json=body)
    assert tracked.status_code == 207, tracked.text

    answer = get(client, api_headers)
    assert answer["next_before"] is None
    assert answer["next_after"] is None
    assert answer["searched_to"] is None
    click, visit = answer["activities"]
    assert visit["type"] == "pagevisit"
    assert visit["channel"] == "Web site"
    assert visit["contact"] == contact
    assert visit["title"] == "Page visit 'Pricing'"
    assert visit["url"] == "https://example.com/pricing"
    assert click["value"] == "Buy now"
    assert click["referrer"] == "https://example.com/"
    assert click["id"] > visit["id"]
    assert set(click) == {
        "id",
        "created_at",
        "type",
        "channel",
        "channel_id",
        "contact",
        "title",
        "value",
        "url",
        "referrer",
    }


def test_filters(client: TestClient, database: Database, api_headers: dict[str, str]) -> None:
    web_id, web_guid = new_channel(database, "Web")
    alice_id, alice = new_contact(database)
    bob_id, _ = new_contact(database)
    ids = insert(
        database,
        [
            row(alice_id, minutes(1), channel_id=web_id, url="https://a.example/Pricing"),
            row(bob_id, minutes(2), channel_id=None, type="emailopen", url=None),
            row(bob_id, minutes(60 * 24), channel_id=web_id, type="click", value="Go"),
        ],
    )

    def ids_for(**params: str) -> list[int]:
        return [a["id"] for a in get(client, api_headers, **params)["activities"]]

    assert ids_for(channel="Web") == [ids[2], ids[0]]
    assert ids_for(channel=str(web_id)) == [ids[2], ids[0]]
    assert ids_for(channel=web_guid) == [ids[2], ids[0]]
    assert ids_for(channel="email") == [ids[1]]
    assert ids_for(type="CLICK") == [ids[2]]
    assert ids_for(contact=alice) == [ids[0]]
    assert ids_for(url="pricing") == [ids[0]]
    assert ids_for(start="2025-03-02") == [ids[2]]
    assert ids_for(end="2025-03-01") == [ids[1], ids[0]]
    assert ids_for(channel="Web", end="2025-03-01") == [ids[0]]
    email = get(client, api_headers, channel="email")["activities"][0]
    assert email["channel"] is None
    assert email["channel_id"] is None


def test_paging_has_no_gaps_or_duplicates(
    client: TestClient, database: Database, api_headers: dict[str, str]
) -> None:
    contact_id, _ = new_contact(database)
    ids = insert(database, [row(contact_id, minutes(i)) for i in range(25)])
    answer = get(client, api_headers, limit=10)
    pages = [answer]
    while answer["next_before"] is not None:
        answer = get(client, api_headers, limit=10, before=answer["next_before"])
        pages.append(answer)
    seen = [a["id"] for page in pages for a in page["activities"]]
    assert seen == list(reversed(ids))
    assert [len(p["activities"]) for p in pages] == [10, 10, 5]
    # And back up.
    back = get(client, api_headers, limit=10, after=pages[2]["next_after"])
    assert back == pages[1]


def test_a_fruitless_search_says_how_far_it_got(
    client: TestClient, database: Database, api_headers: dict[str, str]
) -> None:
    contact_id, _ = new_contact(database)
    insert(database, [row(contact_id, minutes(0), type="click")])
    with database.write() as session:
        session.add(
            Activity(
                id=300_000,
                contact_id=contact_id,
                type="pagevisit",
                title="Page visit",
                created_at=minutes(5),
            )
        )
    answer = get(client, api_headers, type="click")
    assert answer["activities"] == []
    assert answer["next_before"] == 300_001 - 200_000
    assert answer["searched_to"] == "2025-03-01T00:05:00Z"
    more = get(client, api_headers, type="click", before=answer["next_before"])
    assert len(more["activities"]) == 1
    assert more["next_before"] is None
    assert more["searched_to"] is None


@pytest.mark.parametrize(
    ("params", "status", "code", "field"),
    [
        ({"contact": "nope"}, 400, "invalid_contact", "contact"),
        ({"contact": "06b035b8-6658-4a1b-b1de-5994e4975fb1"}, 400, "unknown_contact", "contact"),
        ({"channel": "Nope"}, 400, "unknown_channel", "channel"),
        ({"type": "purchase"}, 400, "unknown_activity_type", "type"),
        ({"start": "01/03/2025"}, 400, "invalid_date", "start"),
        ({"start": "2025-03-02", "end": "2025-03-01"}, 400, "invalid_date_range", "end"),
        ({"url": "x" * 2001}, 400, "invalid_url_filter", "url"),
        ({"before": "-1"}, 400, "invalid_parameter", "before"),
        ({"after": "x"}, 400, "invalid_parameter", "after"),
        ({"before": "5", "after": "3"}, 400, "invalid_parameter", "after"),
        ({"limit": "0"}, 400, "invalid_parameter", "limit"),
        ({"limit": "501"}, 400, "invalid_parameter", "limit"),
    ],
)
def test_bad_parameters(
    client: TestClient,
    database: Database,
    api_headers: dict[str, str],
    params: dict[str, str],
    status: int,
    code: str,
    field: str,
) -> None:
    contact_id, _ = new_contact(database)
    insert(database, [row(contact_id, minutes(0))])
    answer = client.get(PATH, headers=api_headers, params=params)
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert (body["code"], body["field"]) == (code, field)
    assert body["error"]


def test_described_in_the_openapi_document(client: TestClient) -> None:
    document = client.get("/api/openapi.json").json()
    operation = document["paths"]["/api/activities"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert names >= {"channel", "type", "contact", "url", "start", "end", "before", "limit"}
    assert operation["summary"] == "List activities, newest first, filtered; paged by keyset."
