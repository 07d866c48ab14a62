"""`/api/groups` and `/api/contacts/{guid}/groups`: groups, members and a contact's groups over
the management API, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy import func, select
from starlette.testclient import TestClient

from contacthub.email import service as email
from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent, ContactGroup
from tests import factories
from tests.api.test_channels import assert_error, audit_actions
from tests.groups.support import FORMULA_GROUP, assert_formula_safe, formula_member

ACTOR = "api@example.com"
EXAMPLE = {"field": "email", "op": "ends_with", "value": "@example.com"}


def people(database: Database) -> dict[str, str]:
    """Three contacts, two of them at example.com: their GUIDs by address."""
    return {
        address: factories.contact_with(database, email=address, first_name=address[:3].title())
        for address in ("ann@example.com", "bob@example.com", "cid@other.org")
    }


def create(client: TestClient, headers: dict[str, str], **body: Any) -> Any:
    answer = client.post("/api/groups", headers=headers, json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def group_count(database: Database) -> int:
    with database.read() as session:
        return session.scalar(select(func.count()).select_from(ContactGroup)) or 0


def test_every_endpoint_needs_a_token(client: TestClient) -> None:
    calls = [
        ("GET", "/api/groups"),
        ("POST", "/api/groups"),
        ("POST", "/api/groups/preview"),
        ("GET", "/api/groups/x"),
        ("PATCH", "/api/groups/x"),
        ("DELETE", "/api/groups/x"),
        ("GET", "/api/groups/x/members"),
        ("POST", "/api/groups/x/members"),
        ("DELETE", "/api/groups/x/members"),
        ("POST", "/api/groups/x/rebuild"),
        ("GET", "/api/contacts/x/groups"),
    ]
    for method, path in calls:
        assert_error(client.request(method, path, json={}), 401, "missing_api_key")


def test_a_dynamic_group_is_created_with_its_members(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    guids = people(database)

    group = create(
        client, api_headers, name="Example people", conditions=EXAMPLE, description="Ours"
    )

    assert group["name"] == "Example people"
    assert group["kind"] == "dynamic"
    assert group["description"] == "Ours"
    assert group["conditions"] == EXAMPLE
    assert group["members"] == 2
    assert client.get("/api/groups/Example people", headers=api_headers).json() == group
    listed = client.get("/api/groups", headers=api_headers).json()
    assert [(g["name"], g["members"]) for g in listed] == [("Example people", 2)]
    page = client.get("/api/groups/Example people/members", headers=api_headers).json()
    assert sorted(m["guid"] for m in page["members"]) == sorted(
        [guids["ann@example.com"], guids["bob@example.com"]]
    )
    assert page["total"] == 2
    assert page["next_after"] is None
    assert audit_actions(database)[-1] == (ACTOR, "group.created", "Example people")


def test_preview_counts_and_saves_nothing(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    people(database)
    answer = client.post("/api/groups/preview", headers=api_headers, json={"conditions": EXAMPLE})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"count": 2}
    everyone = client.post(
        "/api/groups/preview", headers=api_headers, json={"conditions": {"all": []}}
    )
    assert everyone.json() == {"count": 3}
    assert group_count(database) == 0
    assert audit_actions(database) == []


def test_members_are_paged_by_cursor(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    guids = people(database)
    create(client, api_headers, name="Everyone", conditions={"all": []})
    seen: list[str] = []
    after: Any = ""
    for _ in range(3):
        answer = client.get(
            "/api/groups/Everyone/members",
            params={"limit": 1, "after": after},
            headers=api_headers,
        )
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert page["total"] == 3
        seen += [m["guid"] for m in page["members"]]
        after = page["next_after"]
        if after is None:
            break
    assert after is None
    assert sorted(seen) == sorted(guids.values())
    bad = client.get("/api/groups/Everyone/members?limit=0", headers=api_headers)
    assert_error(bad, 400, "invalid_parameter", "limit")
    cursor = client.get("/api/groups/Everyone/members?after=x", headers=api_headers)
    assert_error(cursor, 400, "invalid_cursor", "after")


def test_members_as_csv_are_streamed_and_recorded(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    guids = people(database)
    create(client, api_headers, name="Example people", conditions=EXAMPLE)

    answer = client.get("/api/groups/Example people/members?format=csv", headers=api_headers)

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert sorted((r["guid"], r["email"]) for r in rows) == sorted(
        (guids[a], a) for a in ("ann@example.com", "bob@example.com")
    )
    assert list(rows[0]) == ["guid", "email", "first_name", "last_name", "since"]
    assert audit_actions(database)[-1] == (ACTOR, "group.exported", "Example people")
    by_accept = client.get(
        "/api/groups/Example people/members", headers={**api_headers, "Accept": "text/csv"}
    )
    assert by_accept.text.splitlines()[1:] == answer.text.splitlines()[1:]
    bad = client.get("/api/groups/Example people/members?format=xml", headers=api_headers)
    assert_error(bad, 400, "invalid_parameter", "format")


def test_a_static_group_takes_members_by_guid_or_address(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    guids = people(database)
    group = create(client, api_headers, name="VIP", kind="static")
    assert (group["kind"], group["conditions"], group["members"]) == ("static", None, 0)

    answer = client.post(
        "/api/groups/VIP/members",
        headers=api_headers,
        json={"contacts": [guids["ann@example.com"], "BOB@example.com", "nobody@example.com"]},
    )

    assert answer.status_code == 200, answer.text
    added = answer.json()
    assert (added["added"], added["already_members"], added["members"]) == (2, 0, 2)
    assert [(p["contact"], p["code"]) for p in added["problems"]] == [
        ("nobody@example.com", "unknown_contact")
    ]
    assert audit_actions(database)[-1] == (ACTOR, "group.members_added", "VIP")

    again = client.post(
        "/api/groups/VIP/members",
        headers=api_headers,
        json={"contacts": ["ann@example.com", "not a contact"]},
    ).json()
    assert (again["added"], again["already_members"]) == (0, 1)
    assert [p["code"] for p in again["problems"]] == ["invalid_contact"]

    removed = client.request(
        "DELETE",
        "/api/groups/VIP/members",
        headers=api_headers,
        json={"contacts": ["ann@example.com", "cid@other.org"]},
    )
    assert removed.status_code == 200, removed.text
    assert (removed.json()["removed"], removed.json()["not_members"]) == (1, 1)
    assert removed.json()["members"] == 1
    assert audit_actions(database)[-1] == (ACTOR, "group.members_removed", "VIP")


def test_a_dynamic_group_refuses_members_by_hand(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    people(database)
    create(client, api_headers, name="Example people", conditions=EXAMPLE)
    for method in ("POST", "DELETE"):
        answer = client.request(
            method,
            "/api/groups/Example people/members",
            headers=api_headers,
            json={"contacts": ["cid@other.org"]},
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] == "group_is_dynamic"
    assert client.get("/api/groups/Example people", headers=api_headers).json()["members"] == 2


def test_rename_describe_and_change_conditions(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    guids = people(database)
    create(client, api_headers, name="Example people", conditions=EXAMPLE)
    create(client, api_headers, name="Within", conditions={"group": "Example people"})

    renamed = client.patch(
        "/api/groups/Example people",
        headers=api_headers,
        json={"name": "Examples", "description": "Renamed"},
    )
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["description"]) == ("Examples", "Renamed")
    assert_error(
        client.get("/api/groups/Example people", headers=api_headers), 404, "unknown_group"
    )
    # The group naming it still works after the rename.
    within = client.get("/api/groups/Within", headers=api_headers).json()
    assert within["members"] == 2
    assert within["conditions"] == {"group": "Examples"}

    others = {"field": "email", "op": "ends_with", "value": "@other.org"}
    changed = client.patch("/api/groups/Examples", headers=api_headers, json={"conditions": others})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["conditions"], changed.json()["members"]) == (others, 1)
    history = client.get(f"/api/contacts/{guids['ann@example.com']}/groups", headers=api_headers)
    assert history.status_code == 200, history.text
    # (Within follows through the live job, a moment later: not checked here.)
    assert "Examples" not in [g["group"] for g in history.json()["groups"]]
    events = history.json()["history"]
    assert next((e["group"], e["entered"]) for e in events if e["group"] == "Examples") == (
        "Examples",
        False,
    )
    cid = client.get(f"/api/contacts/{guids['cid@other.org']}/groups", headers=api_headers).json()
    assert "Examples" in [g["group"] for g in cid["groups"]]
    assert cid["history"][0]["entered"] is True
    actions = [a for _, a, _ in audit_actions(database)]
    assert actions.count("group.updated") == 2


def test_rebuild_answers_who_entered_and_left(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    people(database)
    create(client, api_headers, name="Example people", conditions=EXAMPLE)
    answer = client.post("/api/groups/Example people/rebuild", headers=api_headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"entered": 0, "left": 0, "members": 2}
    assert audit_actions(database)[-1] == (ACTOR, "group.rebuilt", "Example people")


def test_delete(client: TestClient, api_headers: dict[str, str], database: Database) -> None:
    create(client, api_headers, name="Old", kind="static")
    answer = client.delete("/api/groups/Old", headers=api_headers)
    assert answer.status_code == 204, answer.text
    assert group_count(database) == 0
    assert audit_actions(database)[-1] == (ACTOR, "group.deleted", "Old")
    assert_error(client.delete("/api/groups/Old", headers=api_headers), 404, "unknown_group")


def test_delete_is_refused_while_another_group_or_an_unsent_issue_uses_it(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    create(client, api_headers, name="Base", conditions={"all": []})
    create(client, api_headers, name="Derived", conditions={"group": "Base"})
    refused = client.delete("/api/groups/Base", headers=api_headers)
    message = assert_error(refused, 409, "group_in_use")
    assert "Derived" in message

    create(client, api_headers, name="Targeted", kind="static")
    with database.write() as session:
        email.create_newsletter(
            session, "Weekly", "The Team", "news@example.com", "https://news.example.com"
        )
        issue = email.create_issue(session, "Weekly", "News", "<p>Hi</p>")
        issue.group_id = session.scalars(
            select(ContactGroup.id).where(ContactGroup.name == "Targeted")
        ).one()
    assert_error(client.delete("/api/groups/Targeted", headers=api_headers), 409, "group_in_use")
    assert group_count(database) == 3


def test_invalid_conditions_are_refused_with_the_path_of_the_fault(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    bad_tree = {"all": [EXAMPLE, {"field": "email", "op": "sounds_like", "value": "x"}]}
    for path, body in (
        ("/api/groups", {"name": "Bad", "conditions": bad_tree}),
        ("/api/groups/preview", {"conditions": bad_tree}),
    ):
        answer = client.post(path, headers=api_headers, json=body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] == "invalid_conditions"
        assert answer.json()["field"].startswith("conditions.all[1]"), answer.json()

    unknown = {
        "unknown_consent": {"consent": "Nope", "state": "agreed"},
        "unknown_group": {"group": "Nope"},
        "unknown_newsletter": {"email": "subscribed", "newsletter": "Nope"},
        "unknown_activity_type": {"activity": "nope"},
    }
    for code, tree in unknown.items():
        answer = client.post(
            "/api/groups", headers=api_headers, json={"name": "Bad", "conditions": {"not": tree}}
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] == code, answer.json()
        assert answer.json()["field"].startswith("conditions.not"), answer.json()
    assert group_count(database) == 0
    assert audit_actions(database) == []


def test_a_cycle_between_groups_is_refused(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    create(client, api_headers, name="A", conditions={"all": []})
    create(client, api_headers, name="B", conditions={"group": "A"})
    answer = client.patch(
        "/api/groups/A", headers=api_headers, json={"conditions": {"any": [{"group": "B"}]}}
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"].startswith("conditions"), answer.json()
    assert "B" in answer.json()["error"]
    assert client.get("/api/groups/A", headers=api_headers).json()["conditions"] == {"all": []}


def test_a_name_taken_is_a_conflict(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    create(client, api_headers, name="VIP", kind="static")
    create(client, api_headers, name="Other", kind="static")
    taken = client.post("/api/groups", headers=api_headers, json={"name": "VIP", "kind": "static"})
    assert taken.status_code == 409, taken.text
    renamed = client.patch("/api/groups/Other", headers=api_headers, json={"name": "VIP"})
    assert renamed.status_code == 409, renamed.text
    assert group_count(database) == 2


def test_bad_bodies_and_unknown_names(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    assert_error(
        client.post("/api/groups", headers=api_headers, json={"name": "X", "colour": "red"}),
        400,
        "invalid_body",
    )
    kind = client.post("/api/groups", headers=api_headers, json={"name": "X", "kind": "fluid"})
    assert kind.status_code == 400, kind.text
    assert kind.json()["field"] == "kind"
    for method, path, body in (
        ("GET", "/api/groups/Nope", None),
        ("PATCH", "/api/groups/Nope", {"description": "x"}),
        ("DELETE", "/api/groups/Nope", None),
        ("GET", "/api/groups/Nope/members", None),
        ("GET", "/api/groups/Nope/members?format=csv", None),
        ("POST", "/api/groups/Nope/members", {"contacts": ["a@example.com"]}),
        ("DELETE", "/api/groups/Nope/members", {"contacts": ["a@example.com"]}),
        ("POST", "/api/groups/Nope/rebuild", None),
    ):
        answer = client.request(method, path, headers=api_headers, json=body)
        assert_error(answer, 404, "unknown_group")
    assert_error(
        client.post("/api/groups/Nope/members", headers=api_headers, json={"contacts": [1]}),
        400,
        "invalid_body",
        "contacts[0]",
    )
    too_many = {"contacts": ["a@example.com"] * 10_001}
    answer = client.post("/api/groups/Nope/members", headers=api_headers, json=too_many)
    assert_error(answer, 400, "invalid_body", "contacts")
    assert_error(
        client.get("/api/contacts/not-a-guid/groups", headers=api_headers), 404, "unknown_contact"
    )
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 0


def test_the_openapi_document_lists_the_group_operations(client: TestClient) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    assert set(paths["/api/groups"]) == {"get", "post"}
    assert set(paths["/api/groups/{name}"]) == {"get", "patch", "delete"}
    assert set(paths["/api/groups/{name}/members"]) == {"get", "post", "delete"}
    assert "/api/groups/preview" in paths
    assert "/api/groups/{name}/rebuild" in paths
    assert "/api/contacts/{guid}/groups" in paths
    members = paths["/api/groups/{name}/members"]["get"]["responses"]["200"]["content"]
    assert set(members) == {"application/json", "text/csv"}


def test_members_csv_is_formula_safe(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    formula_member(database)
    answer = client.get(f"/api/groups/{FORMULA_GROUP}/members?format=csv", headers=api_headers)
    assert answer.status_code == 200, answer.text
    assert_formula_safe(answer.text)
