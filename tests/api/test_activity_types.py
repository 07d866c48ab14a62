"""`/api/activity-types`: the built-in types, and custom ones to create, enable, disable."""

from __future__ import annotations

from starlette.testclient import TestClient

from contacthub.activities import service as activity_types
from contacthub.storage.database import Database
from tests import factories
from tests.admin.reading import audit_actions

BUILT_IN = ["pagevisit", "click", "datainput", "emailopen", "emailclick"]


def test_every_endpoint_needs_a_token(client: TestClient, database: Database) -> None:
    factories.activity_type(database, "quiz", "Quiz")
    for method, path in [
        ("GET", "/api/activity-types"),
        ("POST", "/api/activity-types"),
        ("POST", "/api/activity-types/quiz/enable"),
        ("POST", "/api/activity-types/quiz/disable"),
    ]:
        answer = client.request(method, path, headers={"Authorization": "Bearer cht_nope"})
        assert answer.status_code == 401, path
        assert answer.json()["code"] == "invalid_token"
    with database.read() as session:
        assert activity_types.get_type(session, "quiz").enabled


def test_list_built_in_then_custom_types(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    factories.activity_type(database, "quiz", "Quiz", enabled=False)
    listed = client.get("/api/activity-types", headers=api_headers).json()
    assert [t["code_name"] for t in listed] == [*BUILT_IN, "quiz"]
    assert listed[0] == {
        "code_name": "pagevisit",
        "display_name": "Page visit",
        "enabled": True,
        "built_in": True,
        "created_at": None,
    }
    quiz = listed[-1]
    assert (quiz["display_name"], quiz["enabled"], quiz["built_in"]) == ("Quiz", False, False)
    assert quiz["created_at"] is not None


def test_create_a_custom_type(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    answer = client.post(
        "/api/activity-types",
        json={"code_name": "quizanswer", "display_name": "Quiz answer"},
        headers=api_headers,
    )
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert (created["code_name"], created["enabled"], created["built_in"]) == (
        "quizanswer",
        True,
        False,
    )
    disabled = client.post(
        "/api/activity-types",
        json={"code_name": "poll", "display_name": "Poll", "enabled": False},
        headers=api_headers,
    )
    assert disabled.json()["enabled"] is False
    assert ("api@example.com", "activity_type.created", "quizanswer") in audit_actions(database)


def test_bad_input_names_the_field(client: TestClient, api_headers: dict[str, str]) -> None:
    client.post(
        "/api/activity-types", json={"code_name": "quiz", "display_name": "Q"}, headers=api_headers
    )
    cases = [
        ({"code_name": "has space", "display_name": "X"}, 400, "invalid_code_name", "code_name"),
        ({"code_name": "Click", "display_name": "X"}, 409, "built_in_type", "code_name"),
        ({"code_name": "QUIZ", "display_name": "X"}, 409, "type_exists", "code_name"),
        ({"code_name": "poll", "display_name": " "}, 400, "invalid_name", "display_name"),
        ({"code_name": "poll"}, 400, "invalid_body", None),
        ({"code_name": "poll", "display_name": "P", "x": 1}, 400, "invalid_body", None),
        (
            {"code_name": "poll", "display_name": "P", "enabled": "yes"},
            400,
            "invalid_body",
            "enabled",
        ),
    ]
    for body, status, code, field in cases:
        answer = client.post("/api/activity-types", json=body, headers=api_headers)
        assert answer.status_code == status, body
        assert answer.json()["code"] == code, (body, answer.json())
        assert answer.json().get("field") == field, (body, answer.json())
    listed = client.get("/api/activity-types", headers=api_headers).json()
    assert [t["code_name"] for t in listed if not t["built_in"]] == ["quiz"]


def test_disable_and_enable(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    factories.activity_type(database, "quiz", "Quiz")
    answer = client.post("/api/activity-types/quiz/disable", headers=api_headers)
    assert answer.status_code == 200
    assert answer.json()["enabled"] is False
    with database.read() as session:
        assert not activity_types.get_type(session, "quiz").enabled
    answer = client.post("/api/activity-types/quiz/enable", headers=api_headers)
    assert answer.json()["enabled"] is True
    actions = [a[1] for a in audit_actions(database)]
    assert actions == ["activity_type.disabled", "activity_type.enabled"]


def test_built_in_and_unknown_types_cannot_be_switched(
    client: TestClient, api_headers: dict[str, str]
) -> None:
    refused = client.post("/api/activity-types/click/disable", headers=api_headers)
    assert refused.status_code == 409
    assert refused.json()["code"] == "built_in_type"
    missing = client.post("/api/activity-types/nope/enable", headers=api_headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "unknown_activity_type"
    # NUL is refused wherever it comes in (tests/api/test_hostile_input.py).
    refused = client.post("/api/activity-types/bad%00name/enable", headers=api_headers)
    assert refused.status_code == 400
    assert refused.json()["code"] == "nul_character"
