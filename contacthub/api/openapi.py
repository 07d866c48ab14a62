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
from contacthub.api.routing import Operation

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


def _error_responses(operation: Operation) -> dict[str, Any]:
    statuses = ["401", "404"]
    if operation.body is not None or operation.query:
        statuses.insert(0, "400")
    if operation.method != "GET":
        statuses.append("409")
    return {
        status: {
            "description": "Error",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for status in statuses
    }


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
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PATH_PARAMETER.findall(operation.path)
        ]
        for query in operation.query:
            schema: dict[str, Any] = {"type": query.type}
            if query.format:
                schema["format"] = query.format
            parameters.append(
                {
                    "name": query.name,
                    "in": "query",
                    "description": query.description,
                    "schema": schema,
                }
            )
        if parameters:
            entry["parameters"] = parameters
        if operation.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schema_of[id(operation.body)]}},
            }
        success: dict[str, Any] = {"description": "Success"}
        if operation.response is not None:
            success["content"] = {"application/json": {"schema": schema_of[id(operation.response)]}}
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
