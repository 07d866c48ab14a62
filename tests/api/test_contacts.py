"""`/api/contacts`: search, a contact, its activities, export and erasure."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from starlette.testclient import TestClient

from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent
from tests import factories
from tests.contacts.support import CONSENT, contact_id, scenario, track
from tests.email.tracking_support import ANNA
from tests.tracking.support import post_activities

ACTOR = "api@example.com"


def assert_error(answer: Any, status: int, code: str, field: str | None = None) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert body["code"] == code, body
    assert body.get("field") == field, body
    assert body["error"]
    message: str = body["error"]
    return message


def audit_actions(database: Database) -> list[tuple[str, str, str, str | None]]:
    with database.read() as session:
        rows = session.execute(
            select(
                AuditEvent.actor, AuditEvent.action, AuditEvent.subject, AuditEvent.details
            ).order_by(AuditEvent.id)
        ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def test_every_endpoint_needs_a_token(client: TestClient, database: Database) -> None:
    guid = factories.contact(database)
    calls = [
        ("GET", "/api/contacts"),
        ("GET", f"/api/contacts/{guid}"),
        ("GET", f"/api/contacts/{guid}/activities"),
        ("GET", f"/api/contacts/{guid}/export"),
        ("DELETE", f"/api/contacts/{guid}"),
    ]
    for method, path in calls:
        assert_error(client.request(method, path), 401, "missing_api_key")
        bad = client.request(method, path, headers={"Authorization": "Bearer cht_x"})
        assert_error(bad, 401, "invalid_token")
    assert contact_id(database, guid) is not None
    assert audit_actions(database) == []


def test_search_sort_and_page(
    client: TestClient, database: Database, api_headers: dict[str, str]
) -> None:
    ada = factories.contact_with(database, email="Ada@Example.com", first_name="Ada")
    grace = factories.contact_with(database, email="grace@example.com", last_name="Hopper")
    anonymous = factories.contact(database)

    answer = client.get("/api/contacts", headers=api_headers)
    assert answer.status_code == 200
    body = answer.json()
    assert [c["guid"] for c in body["contacts"]] == [anonymous, grace, ada]
    assert body["total"] == 3
    assert body["next_after"] is None
    assert body["contacts"][2] == {
        "guid": ada,
        "email": "Ada@Example.com",
        "first_name": "Ada",
        "last_name": None,
        "company_name": None,
        "created_at": body["contacts"][2]["created_at"],
        "job_title": None,
        "city": None,
        "country": None,
        "last_activity_at": None,
    }

    found = client.get("/api/contacts", params={"q": "ada"}, headers=api_headers).json()
    assert ([c["guid"] for c in found["contacts"]], found["total"]) == ([ada], 1)

    pages = []
    params: dict[str, Any] = {"sort": "email", "limit": 1}
    while True:
        page = client.get("/api/contacts", params=params, headers=api_headers).json()
        pages += [c["guid"] for c in page["contacts"]]
        if page["next_after"] is None:
            break
        params["after"] = page["next_after"]
    assert pages == [ada, grace, anonymous]


def test_bad_list_parameters_are_400_naming_the_parameter(
    client: TestClient, database: Database, api_headers: dict[str, str]
) -> None:
    def get(**params: Any) -> Any:
        return client.get("/api/contacts", params=params, headers=api_headers)

    assert_error(get(sort="name"), 400, "invalid_sort", "sort")
    assert_error(get(limit="0"), 400, "invalid_parameter", "limit")
    assert_error(get(limit="201"), 400, "invalid_parameter", "limit")
    assert_error(get(limit="ten"), 400, "invalid_parameter", "limit")
    assert_error(get(after="nope"), 400, "invalid_cursor", "after")
    assert_error(get(q="x" * 255), 400, "invalid_query", "q")


def test_a_contact_with_consents_and_email_engagement(
    client: TestClient, database: Database, api_headers: dict[str, str]
) -> None:
    world = scenario(client, database)
    answer = client.get(f"/api/contacts/{world.anna}", headers=api_headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["guid"] == world.anna
    assert body["fields"]["ContactEmail"] == ANNA
    assert body["fields"]["ContactBirthday"] == "1990-05-31"
    [consent] = body["consents"]
    assert consent["consent"] == CONSENT
    assert (consent["agreed"], consent["agreed_revision"], consent["current_revision"]) == (
        True,
        2,
        2,
    )
    assert [(e["agreed"], e["revision"], e["channel"]) for e in consent["history"]] == [
        (True, 2, "Mobile app"),
        (False, 2, "Mobile app"),
        (True, 1, "Mobile app"),
    ]
    [subscription] = body["subscriptions"]
    assert (subscription["newsletter"], subscription["status"]) == ("Weekly", "subscribed")
    [issue] = body["email_issues"]
    assert issue["issue"] == world.sent.guid
    assert issue["delivery_status"] == "sent"
    assert (issue["human_opens"], issue["machine_opens"]) == (1, 1)
    assert (issue["human_clicks"], issue["machine_clicks"]) == (1, 0)
    # Any spelling of the GUID; unknown and malformed ones are 404.
    spelled = client.get(f"/api/contacts/{uuid.UUID(world.anna).hex}", headers=api_headers)
    assert spelled.json()["guid"] == world.anna
    for guid in (str(uuid.uuid4()), "not-a-guid"):
        answer = client.get(f"/api/contacts/{guid}", headers=api_headers)
        assert_error(answer, 404, "unknown_contact")


def test_activities_page_back_with_before(
    client: TestClient, database: Database, api_headers: dict[str, str]
) -> None:
    world = scenario(client, database)
    track(client, world.setup, world.anna, *({"type": "click", "value": f"n{n}"} for n in range(4)))
    url = f"/api/contacts/{world.anna}/activities"
    first = client.get(url, params={"limit": 3}, headers=api_headers).json()
    assert [a["value"] for a in first["activities"]] == ["n3", "n2", "n1"]
    assert first["activities"][0]["channel"] == "Mobile app"
    rest = client.get(
        url, params={"limit": 100, "before": first["next_before"]}, headers=api_headers
    ).json()
    assert [(a["type"], a["channel"]) for a in rest["activities"]] == [
        ("click", "Mobile app"),
        ("emailclick", "Email"),
        ("emailopen", "Email"),
        ("datainput", "Mobile app"),
        ("click", "Mobile app"),
        ("pagevisit", "Mobile app"),
    ]
    assert rest["next_before"] is None
    assert_error(
        client.get(url, params={"before": "x"}, headers=api_headers),
        400,
        "invalid_cursor",
        "before",
    )
    assert_error(
        client.get(url, params={"limit": "500"}, headers=api_headers),
        400,
        "invalid_parameter",
        "limit",
    )


def test_export_answers_everything_and_is_audited(
    client: TestClient, database: Database, api_headers: dict[str, str]
) -> None:
    world = scenario(client, database)
    answer = client.get(f"/api/contacts/{world.anna}/export", headers=api_headers)
    assert answer.status_code == 200
    data = answer.json()
    assert data["contact"]["guid"] == world.anna
    assert len(data["activities"]) == 5
    assert len(data["consent_agreements"]) == 3
    assert len(data["email_opens"]) == 2
    assert audit_actions(database)[-1] == (ACTOR, "contact.exported", world.anna, None)


def test_delete_erases_the_contact_for_good(
    client: TestClient, database: Database, api_headers: dict[str, str]
) -> None:
    world = scenario(client, database)
    answer = client.delete(f"/api/contacts/{world.anna}", headers=api_headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "erased": world.anna,
        "activities": 5,
        "consent_agreements": 3,
        "subscriptions": 1,
        "deliveries": 1,
        "email_opens": 2,
        "email_clicks": 1,
    }
    assert audit_actions(database)[-1] == (ACTOR, "contact.erased", world.anna, None)
    assert_error(
        client.get(f"/api/contacts/{world.anna}", headers=api_headers), 404, "unknown_contact"
    )
    assert_error(
        client.delete(f"/api/contacts/{world.anna}", headers=api_headers), 404, "unknown_contact"
    )
    tracked = post_activities(client, world.setup, world.anna, [{"type": "click", "value": "x"}])
    assert tracked.status_code == 404
    assert tracked.json()["code"] == "unknown_contact"
    # Bob is still there.
    assert client.get(f"/api/contacts/{world.bob}", headers=api_headers).status_code == 200


def test_the_openapi_document_describes_the_contacts_endpoints(client: TestClient) -> None:
    document = client.get("/api/openapi.json").json()
    paths = document["paths"]
    assert set(paths["/api/contacts"]) == {"get"}
    assert set(paths["/api/contacts/{guid}"]) == {"get", "delete"}
    assert set(paths["/api/contacts/{guid}/activities"]) == {"get"}
    assert set(paths["/api/contacts/{guid}/export"]) == {"get"}
    parameters = {p["name"] for p in paths["/api/contacts"]["get"]["parameters"]}
    assert parameters == {
        "q",
        "sort",
        "after",
        "limit",
        "format",
        "group",
        "consent",
        "newsletter",
        "country",
        "active_within",
        "inactive_for",
    }
    assert paths["/api/contacts/{guid}"]["delete"]["summary"].startswith("Erase a contact")
