"""What both SDKs' tests against a real hub share: the OpenAPI check of what they sent."""

from __future__ import annotations

from typing import Any

import jsonschema_rs

from contacthub.tracking import openapi


def activities_request_validator() -> jsonschema_rs.Validator:
    """A validator of POST /activities bodies: the tracking API's OpenAPI request schema."""
    document = openapi.document()
    body = document["paths"]["/activities"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"]
    # The document is the root, so that its #/components/... references resolve as written.
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **document, "$ref": ref}
    return jsonschema_rs.validator_for(schema, validate_formats=True)


def assert_valid_activities_bodies(bodies: list[dict[str, Any]]) -> None:
    """Every body is valid for POST /activities, and every activity carries a messageId."""
    assert bodies, "no POST /activities was sent"
    validator = activities_request_validator()
    for body in bodies:
        errors = [error.message for error in validator.iter_errors(body)]
        assert errors == [], (errors, body)
        assert all(activity.get("messageId") for activity in body["activities"]), body
