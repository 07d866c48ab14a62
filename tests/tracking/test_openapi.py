"""The OpenAPI 3.1 document of the tracking API: served, well-formed, and complete."""

from __future__ import annotations

import re
from typing import Any

from starlette.routing import Route
from starlette.testclient import TestClient

from contacthub.activities.rules import MAX_VALUE_LENGTH
from contacthub.contacts.fields import CONTACT_FIELDS
from contacthub.settings import Settings
from contacthub.tracking import openapi
from contacthub.tracking.endpoints import tracking_routes
from tests.tracking.support import API

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def documented_routes() -> set[tuple[str, str]]:
    """(method, path) of every route the tracking API serves, but the document itself."""
    mount = tracking_routes(Settings(database_url="sqlite:///unused.db"))
    served = set()
    for route in mount.routes:
        assert isinstance(route, Route)
        for method in route.methods or ():
            if method != "HEAD" and route.path != "/openapi.json":
                served.add((method.lower(), route.path))
    return served


def refs_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["$ref"]] if "$ref" in value else []
        return found + [ref for item in value.values() for ref in refs_in(item)]
    if isinstance(value, list):
        return [ref for item in value for ref in refs_in(item)]
    return []


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_the_document_is_served_without_a_key(client: TestClient) -> None:
    answer = client.get(f"{API}/openapi.json")

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == openapi.document()


def test_the_document_looks_like_openapi_3_1() -> None:
    document = openapi.document()

    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"]
    assert document["info"]["version"]
    assert document["servers"] == [{"url": "/Kentico.Tracking"}]
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
    }
    assert document["security"] == [{"bearer": []}]
    for ref in refs_in(document):
        assert isinstance(resolve(document, ref), dict), ref


def test_every_route_is_documented_and_nothing_else() -> None:
    document = openapi.document()
    listed = {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }

    assert listed == documented_routes()


def test_every_operation_declares_its_parameters_and_answers() -> None:
    document = openapi.document()
    for path, item in document["paths"].items():
        in_template = set(re.findall(r"{(\w+)}", path))
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            assert operation["summary"], where
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == in_template, where
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    assert parameter["required"] is True, where
            responses = operation["responses"]
            assert any(status.startswith("2") for status in responses), where
            assert "401" in responses, where  # every operation needs a key
            assert "403" in responses, where  # ... of the tracking access type
            for status, response in responses.items():
                schema = response["content"]["application/json"]["schema"]
                if status.startswith("4") or status.startswith("5"):
                    assert schema == {"$ref": "#/components/schemas/Error"}, where
            if method == "post" and "requestBody" in operation:
                assert "415" in responses, where
                assert "413" in responses, where


def test_documented_limits_are_the_enforced_ones() -> None:
    schemas = openapi.document()["components"]["schemas"]
    activity = schemas["Activity"]["properties"]
    contact_fields = activity["contactFields"]["properties"]

    assert activity["value"]["maxLength"] == MAX_VALUE_LENGTH == 250
    assert set(contact_fields) == {field.wire_name for field in CONTACT_FIELDS}
    for field in CONTACT_FIELDS:
        assert contact_fields[field.wire_name] == {"type": "string", "maxLength": field.max_length}
    assert contact_fields["ContactEmail"]["maxLength"] == 254
    assert contact_fields["ContactMobilePhone"]["maxLength"] == 26
    assert contact_fields["ContactFirstName"]["maxLength"] == 100
