"""Domain errors.

Services raise these; they know nothing of HTTP beyond the status each error maps to. One
handler per entry point renders them: JSON for the APIs, an exit code for the CLI.
"""

from __future__ import annotations


def with_article(noun: str) -> str:
    """`noun` after "A" or "An", for the start of a message: "An activity type", "A consent".

    By the first letter, which is right for every noun the hub's messages name ("a user" and
    "a URL" would need more, and no message names them so).
    """
    return ("An " if noun[:1].lower() in "aeio" else "A ") + noun


class HubError(Exception):
    """An expected failure that a client can act on."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        # The input field at fault, when there is one: forms show the message next to it.
        self.field = field

    def as_dict(self) -> dict[str, str]:
        """The JSON error body every API answers with."""
        body = {"error": self.message, "code": self.code}
        if self.field is not None:
            body["field"] = self.field
        return body


class InvalidInput(HubError):
    """The input is malformed or breaks a rule (400)."""

    status_code = 400
    code = "invalid_input"


class Unauthorized(HubError):
    """No valid credentials (401)."""

    status_code = 401
    code = "unauthorized"


class Forbidden(HubError):
    """Valid credentials that may not do this (403)."""

    status_code = 403
    code = "forbidden"


class NotFound(HubError):
    """The named thing does not exist (404)."""

    status_code = 404
    code = "not_found"


class Conflict(HubError):
    """The change clashes with what is stored (409)."""

    status_code = 409
    code = "conflict"


class PayloadTooLarge(HubError):
    """The request body or one of its arrays is over the limit (413)."""

    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(HubError):
    """The body is not in a format the endpoint reads (415)."""

    status_code = 415
    code = "unsupported_media_type"


class Unavailable(HubError):
    """The hub cannot take the request now; retrying later may work (503)."""

    status_code = 503
    code = "unavailable"


class TooManyRequests(HubError):
    """The client has made too many attempts of this kind; it may try again later (429)."""

    status_code = 429
    code = "too_many_requests"
