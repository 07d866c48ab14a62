"""GET /api/audit: the audit log as JSON, paged by keyset."""

from __future__ import annotations

from starlette.testclient import TestClient

from contacthub.audit import service as audit
from contacthub.storage.database import Database

PATH = "/api/audit"


def test_needs_a_token(client: TestClient) -> None:
    answer = client.get(PATH)
    assert answer.status_code == 401
    assert answer.json()["code"] == "missing_api_key"


def test_lists_events_newest_first_with_their_details(
    client: TestClient, database: Database, api_headers: dict[str, str]
) -> None:
    with database.write() as session:
        audit.record(session, "cli", "channel.created", "Web shop")
        audit.record(session, "ada@example.com", "key.created", "chk_abc", {"channel": "Web shop"})
    answer = client.get(PATH, headers=api_headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["next_before"] is None
    newest, oldest = body["events"]
    assert newest["actor"] == "ada@example.com"
    assert newest["action"] == "key.created"
    assert newest["subject"] == "chk_abc"
    assert newest["details"] == {"channel": "Web shop"}
    assert newest["created_at"].endswith("Z")
    assert oldest["details"] is None
    assert newest["id"] > oldest["id"]
    assert set(newest) == {"id", "created_at", "actor", "action", "subject", "details"}


def test_paging_has_no_gaps_or_duplicates(
    client: TestClient, database: Database, api_headers: dict[str, str]
) -> None:
    with database.write() as session:
        ids = [audit.record(session, "cli", "user.created", f"u{n}").id for n in range(23)]
    seen: list[int] = []
    params: dict[str, int] = {"limit": 10}
    sizes = []
    while True:
        body = client.get(PATH, headers=api_headers, params=params).json()
        seen += [event["id"] for event in body["events"]]
        sizes.append(len(body["events"]))
        if body["next_before"] is None:
            break
        params = {"limit": 10, "before": body["next_before"]}
    assert seen == list(reversed(ids))
    assert sizes == [10, 10, 3]


def test_bad_parameters(client: TestClient, api_headers: dict[str, str]) -> None:
    for params, field in (({"before": "abc"}, "before"), ({"limit": "0"}, "limit")):
        answer = client.get(PATH, headers=api_headers, params=params)
        assert answer.status_code == 400
        body = answer.json()
        assert (body["code"], body["field"]) == ("invalid_parameter", field)


def test_described_in_the_openapi_document(client: TestClient) -> None:
    document = client.get("/api/openapi.json").json()
    operation = document["paths"]["/api/audit"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"before", "limit"}
