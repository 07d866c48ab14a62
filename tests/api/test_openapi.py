"""What both OpenAPI documents promise about errors and limits (schemathesis checks the rest:
tests/api/test_schemathesis.py)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from contacthub.identifiers import MAX_BIG_ID, MAX_ID

METHODS = ("get", "post", "put", "patch", "delete")


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, entry)
        for path, item in document["paths"].items()
        for method, entry in item.items()
        if method in METHODS
    ]


def test_the_management_api_documents_400_and_415(client: TestClient) -> None:
    document = client.get("/api/openapi.json").json()
    for method, path, entry in operations(document):
        responses = entry["responses"]
        if "requestBody" in entry:
            assert {"400", "415"} <= set(responses), (method, path)
        if entry.get("parameters") or "requestBody" in entry:
            assert "400" in responses, (method, path)
        for status, response in responses.items():
            if status >= "400":
                assert response["description"] != "Error", (method, path, status)
    importing = document["paths"]["/api/newsletters/{name}/subscribers/import"]["post"]
    assert list(importing["requestBody"]["content"]) == ["text/csv"]


def test_the_management_api_states_its_limits(client: TestClient) -> None:
    document = client.get("/api/openapi.json").json()
    limits = cursors = 0
    for method, path, entry in operations(document):
        for parameter in entry.get("parameters", []):
            schema = parameter["schema"]
            if parameter["in"] == "query":
                assert parameter["allowEmptyValue"] is True, (method, path)
            if parameter["name"] == "limit":
                limits += 1
                assert schema["type"] == "integer"
                assert schema["minimum"] == 1, (method, path)
                assert schema["maximum"] >= 100, (method, path)
            elif parameter["name"] in ("before", "after") and schema["type"] == "integer":
                cursors += 1
                assert schema["minimum"] in (0, 1), (method, path)
                assert schema["maximum"] in (MAX_ID, MAX_BIG_ID), (method, path)
            elif parameter["name"].endswith("_id"):
                # Deliveries are BigInteger rows; every other id is an Integer.
                top = MAX_BIG_ID if parameter["name"] == "delivery_id" else MAX_ID
                assert schema == {"type": "integer", "minimum": 1, "maximum": top}
            elif parameter["name"] == "guid":
                assert schema == {"type": "string", "format": "uuid"}
    assert (limits, cursors) == (11, 10)
    contacts = document["paths"]["/api/contacts"]["get"]["parameters"]
    sort = next(p for p in contacts if p["name"] == "sort")
    assert "-created" in sort["schema"]["enum"]
    schemas = document["components"]["schemas"]
    assert schemas["UserIn"]["properties"]["password"]["minLength"] == 12
    assert schemas["KeyIn"]["properties"]["access"]["enum"] == ["tracking", "email"]
    assert "pattern" in schemas["ActivityTypeIn"]["properties"]["code_name"]


def test_the_tracking_api_describes_its_errors(client: TestClient) -> None:
    document = client.get("/Kentico.Tracking/openapi.json").json()
    for method, path, entry in operations(document):
        for status, response in entry["responses"].items():
            if status >= "400":
                assert response["description"] != "Error", (method, path, status)
        if entry.get("parameters") or "requestBody" in entry:
            assert "400" in entry["responses"], (method, path)
        if "requestBody" in entry:
            assert "415" in entry["responses"], (method, path)


@pytest.mark.parametrize(
    "body",
    [b'{"name": "\xff"}', b'{"name": "' + b"\xc3" + b'"}', b"\xff\xfe{}"],
    ids=["invalid-byte", "truncated-sequence", "utf16-bom"],
)
def test_a_body_that_is_not_utf8_is_a_400(
    client: TestClient, api_headers: dict[str, str], body: bytes
) -> None:
    headers = {**api_headers, "Content-Type": "application/json"}
    answer = client.post("/api/channels", content=body, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "invalid_json"
