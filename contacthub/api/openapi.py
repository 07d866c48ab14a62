"""The OpenAPI 3.1 document of the management API, served at /api/openapi.json.

Built from the operations the routers declare: paths, methods, summaries (the handlers'
docstrings), query parameters, and request and response schemas from the msgspec Structs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec

from contacthub import __version__
from contacthub.api.routing import CODE_NAME, LANGUAGE, Operation, QueryParam
from contacthub.retention.policies import KINDS

_ERROR = {
    "type": "object",
    "required": ["error", "code"],
    "properties": {
        "error": {"type": "string", "description": "What is wrong, for people."},
        "code": {"type": "string", "description": "What is wrong, for programs."},
        "field": {"type": "string", "description": "The property at fault, if one is."},
    },
}
_PATH_PARAMETER = re.compile(r"\{(\w+)(?::\w+)?\}")
# Database ids: anything else in their place is simply not found (404).
_ID = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
# What each path parameter holds, by name: the same in every path that has it.
_PATH_SCHEMAS: dict[str, dict[str, Any]] = {
    "user_id": _ID,
    "token_id": _ID,
    "key_id": _ID,
    "origin_id": _ID,
    "number": _ID,
    # Deliveries are BigInteger rows.
    "delivery_id": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
    "guid": {"type": "string", "format": "uuid"},
    "code": {"type": "string", **(CODE_NAME.extra_json_schema or {})},
    "language": {"type": "string", **(LANGUAGE.extra_json_schema or {})},
    "name": {"type": "string", "minLength": 1},
    "email": {"type": "string", "minLength": 1},
    "kind": {"type": "string", "enum": list(KINDS)},
    "activity_type": {"type": "string", **(CODE_NAME.extra_json_schema or {})},
}


def _error_responses(operation: Operation) -> dict[str, Any]:
    statuses = ["401", "404"]
    if (
        operation.body is not None
        or operation.raw_body is not None
        or operation.query
        or _PATH_PARAMETER.search(operation.path)
    ):
        statuses.insert(0, "400")
    if operation.method != "GET":
        statuses.append("409")
    if operation.body is not None or operation.raw_body is not None:
        statuses.append("415")
    return {
        status: {
            "description": _ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for status in statuses
    }


_ERROR_DESCRIPTIONS = {
    "400": "Invalid input: a malformed parameter or body, or one the rules refuse; `field` "
    "names the parameter or property at fault where one is.",
    "401": "No admin token, or one that is unknown, revoked, expired or of a disabled user.",
    "404": "Not found.",
    "409": "Conflicts with what is stored (a name taken, an action not possible now).",
    "415": "The body is not of the declared Content-Type.",
}


def _query_schema(query: QueryParam) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": query.type}
    if query.format:
        schema["format"] = query.format
    if query.minimum is not None:
        schema["minimum"] = query.minimum
    if query.maximum is not None:
        schema["maximum"] = query.maximum
    if query.enum is not None:
        schema["enum"] = list(query.enum)
    return schema


def document(operations: Iterable[Operation]) -> dict[str, Any]:
    """The whole document."""
    operations = list(operations)
    types: list[Any] = []
    for operation in operations:
        if operation.body is not None:
            types.append(operation.body)
        if operation.response is not None:
            types.append(operation.response)
    schemas, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    schema_of = dict(zip(map(id, types), schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        path = _PATH_PARAMETER.sub(r"{\1}", operation.path)
        entry: dict[str, Any] = {
            "tags": [operation.tag],
            "summary": operation.summary,
            "description": operation.description,
            "operationId": operation.handler.__name__,
            "security": [{"adminToken": []}],
        }
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": _PATH_SCHEMAS[name]}
            for name in _PATH_PARAMETER.findall(operation.path)
        ]
        for query in operation.query:
            parameters.append(
                {
                    "name": query.name,
                    "in": "query",
                    "description": query.description,
                    "schema": _query_schema(query),
                    # Every query parameter may be sent empty: empty means not given.
                    "allowEmptyValue": True,
                }
            )
        if parameters:
            entry["parameters"] = parameters
        if operation.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schema_of[id(operation.body)]}},
            }
        elif operation.raw_body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {operation.raw_body: {"schema": {"type": "string"}}},
            }
        success: dict[str, Any] = {"description": "Success"}
        if operation.response is not None:
            success["content"] = {"application/json": {"schema": schema_of[id(operation.response)]}}
        if operation.raw_response is not None:
            success.setdefault("content", {})[operation.raw_response] = {
                "schema": {"type": "string"}
            }
        entry["responses"] = {str(operation.status): success, **_error_responses(operation)}
        paths.setdefault(path, {})[operation.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "contacthub management API",
            "version": __version__,
            "description": "Everything the admin UI and the command line can do. Authenticate "
            "with an admin token: `Authorization: Bearer cht_…` (create one with "
            "`contacthub token create` or on the Users page).",
        },
        "paths": paths,
        "components": {
            "schemas": {**components, "Error": _ERROR},
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
        },
    }
