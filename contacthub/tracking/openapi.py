"""The OpenAPI 3.1 document of the tracking API, served at /Kentico.Tracking/openapi.json.

Written out by hand: the API is small and fixed by the seed, and the case-insensitive property
names and per-activity failures are easier to state plainly than to derive.
"""

from __future__ import annotations

from typing import Any

from contacthub import __version__
from contacthub.activities.rules import MAX_MESSAGE_ID_LENGTH, MAX_URL_LENGTH, MAX_VALUE_LENGTH
from contacthub.contacts.fields import CONTACT_FIELDS

_GUID = {"type": "string", "format": "uuid"}
_ERROR = {
    "type": "object",
    "required": ["error", "code"],
    "properties": {"error": {"type": "string"}, "code": {"type": "string"}},
}


_ERROR_DESCRIPTIONS = {
    400: "Invalid input: a malformed GUID, parameter or body (not JSON, not UTF-8, nested too "
    "deeply, NUL characters, a property of the wrong type or too long).",
    401: "No API key, or one that is unknown, disabled, revoked or expired.",
    403: "The key is not a tracking key, the body names another channel, or the channel "
    "logs only contacts who agreed to its required consent.",
    404: "Not found.",
    413: "The body is over the size limit.",
    415: "The body is not declared as JSON (Content-Type: application/json or +json).",
    409: "A request with this Idempotency-Key is still running: retry later.",
    422: "This Idempotency-Key was sent with another request.",
    503: "The hub is busy or its store is unavailable: retry later.",
}


def _errors(*statuses: int) -> dict[str, Any]:
    return {
        str(status): {
            "description": _ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for status in statuses
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_PATH_PARAMS = [
    {"name": "guid", "in": "path", "required": True, "schema": _GUID},
    {"name": "consent", "in": "path", "required": True, "schema": {"type": "string"}},
]

_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "description": "Optional: a retry with the same key and request within the dedupe window "
    "gets the first answer again and changes nothing.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
}

_AGREED = {
    "type": "object",
    "required": ["agreed", "isAgreed"],
    "properties": {"agreed": {"type": "boolean"}, "isAgreed": {"type": "boolean"}},
}


def document() -> dict[str, Any]:
    """The whole document."""
    contact_fields = {
        field.wire_name: {"type": "string", "maxLength": field.max_length}
        for field in CONTACT_FIELDS
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "contacthub headless tracking API",
            "version": __version__,
            "description": "Property names in request bodies match case-insensitively.",
        },
        "servers": [{"url": "/Kentico.Tracking"}],
        "security": [{"bearer": []}],
        "paths": {
            "/consents/{consent}": {
                "get": {
                    "summary": "A consent's texts in a language (default language otherwise)",
                    "parameters": [
                        _PATH_PARAMS[1],
                        {"name": "languageName", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["shortText", "fullText"],
                                "properties": {
                                    "shortText": {"type": "string"},
                                    "fullText": {"type": "string"},
                                },
                            },
                            "The texts (HTML)",
                        ),
                        **_errors(400, 401, 403, 404),
                    },
                }
            },
            "/contacts": {
                "post": {
                    "summary": "Create an anonymous contact",
                    "parameters": [_IDEMPOTENCY_KEY],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["contact"],
                                "properties": {"contact": _GUID},
                            },
                            "The new contact's GUID",
                        ),
                        **_errors(400, 401, 403, 409, 422),
                    },
                }
            },
            "/contacts/{guid}/consents/{consent}": {
                "get": {
                    "summary": "Whether the contact currently agrees to the consent",
                    "parameters": _PATH_PARAMS,
                    "responses": {
                        "200": _json(_AGREED, "Agreement"),
                        **_errors(400, 401, 403, 404),
                    },
                },
                "post": {
                    "summary": "Agree to (true) or revoke (false) the consent",
                    "parameters": [*_PATH_PARAMS, _IDEMPOTENCY_KEY],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["agree"],
                                    "properties": {"agree": {"type": "boolean"}},
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json(_AGREED, "Recorded"),
                        **_errors(400, 401, 403, 404, 409, 413, 415, 422),
                    },
                },
            },
            "/{guid}/consents/{consent}": {
                "get": {
                    "summary": "The same check at the URI of the seed's example (no contacts/)",
                    "parameters": _PATH_PARAMS,
                    "responses": {
                        "200": _json(_AGREED, "Agreement"),
                        **_errors(400, 401, 403, 404),
                    },
                }
            },
            "/activities": {
                "post": {
                    "summary": "Log activities of a contact on the key's channel",
                    "parameters": [_IDEMPOTENCY_KEY],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ActivitiesRequest"}
                            }
                        },
                    },
                    "responses": {
                        "207": _json(
                            {"$ref": "#/components/schemas/ActivitiesResult"},
                            "One result per activity, in order",
                        ),
                        **_errors(400, 401, 403, 404, 409, 413, 415, 422, 503),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": _ERROR,
                "ActivitiesRequest": {
                    "type": "object",
                    "required": ["channel", "contact", "activities"],
                    "properties": {
                        "channel": _GUID,
                        "contact": _GUID,
                        "activities": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"$ref": "#/components/schemas/Activity"},
                        },
                    },
                },
                "Activity": {
                    "type": "object",
                    "required": ["type"],
                    "properties": {
                        "type": {
                            "type": "string",
                            "description": "pagevisit, click, datainput or a custom type",
                        },
                        "value": {
                            "type": "string",
                            "maxLength": MAX_VALUE_LENGTH,
                            "description": "A longer value is stored cut to the limit; its "
                            'result then says "truncated": ["value"].',
                        },
                        "url": {"type": "string", "maxLength": MAX_URL_LENGTH},
                        "referrer": {"type": "string", "maxLength": MAX_URL_LENGTH},
                        "contactFields": {"type": "object", "properties": contact_fields},
                        "messageId": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_MESSAGE_ID_LENGTH,
                            "description": "A client-chosen id, unique per channel: a retry "
                            "within the dedupe window is answered as the first time and "
                            "stores nothing.",
                        },
                    },
                },
                "ActivitiesResult": {
                    "type": "object",
                    "required": ["results"],
                    "properties": {
                        "results": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["status"],
                                "properties": {
                                    "status": {"type": "integer"},
                                    "error": {"type": "string"},
                                    "code": {"type": "string"},
                                    "contact": _GUID,
                                    "truncated": {"type": "array", "items": {"type": "string"}},
                                },
                            },
                        }
                    },
                },
            },
        },
    }
