"""CORS origins: the browser origins allowed to call the tracking API, managed in the store.

They add to the `cors_allowed_origins` setting. An origin is what a browser sends in its
`Origin` header: a scheme (http or https), a host and, when it is not the scheme's default, a
port. Origins are stored in that exact form (lower case, no default port, no trailing slash),
so the tracking API can compare them with the header as they are. `*` allows any origin.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from contacthub.audit import service as audit
from contacthub.errors import Conflict, InvalidInput, NotFound
from contacthub.storage.models import CorsOrigin

ANY_ORIGIN = "*"
MAX_ORIGIN = 200
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_ID = 2**31 - 1
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<netloc>[^/?#]*)(?P<rest>.*)")
_PORT = re.compile(r"(?::(\d{1,5}))?")
_HELP = "An origin is a scheme, a host and maybe a port, e.g. https://www.example.com:8443."


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(f"{message} {_HELP}", code="invalid_origin", field="origin")


def _host(text: str) -> str:
    """A host as browsers send it: lower case, IDNA (punycode) for names, IPv6 in brackets."""
    if text.startswith("["):
        address = text[1:-1] if text.endswith("]") else ""
        try:
            return f"[{ipaddress.IPv6Address(address).compressed}]"
        except ValueError:
            raise _invalid(f"{text!r} is not an IPv6 address.") from None
    try:
        ascii_host = text.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise _invalid(f"{text!r} is not a host name.") from None
    if len(ascii_host) > 253 or not all(_LABEL.fullmatch(p) for p in ascii_host.split(".")):
        raise _invalid(f"{text!r} is not a host name.")
    return ascii_host


def normalize_origin(text: str) -> str:
    """An origin as stored and as browsers send it; InvalidInput (field `origin`) otherwise."""
    text = text.strip()
    if text == ANY_ORIGIN:
        return ANY_ORIGIN
    if not text:
        raise _invalid("Enter an origin.")
    if len(text) > MAX_ORIGIN or any(ord(c) < 33 or ord(c) == 127 for c in text):
        raise _invalid("That is not an origin.")
    match = _URL.fullmatch(text)
    scheme = match.group("scheme").lower() if match else ""
    if match is None or scheme not in DEFAULT_PORTS:
        raise _invalid(f"{text!r} does not start with http:// or https://.")
    if match.group("rest") not in ("", "/"):
        raise _invalid(f"{text!r} has a path; an origin ends after the host and port.")
    netloc = match.group("netloc")
    if "@" in netloc:
        raise _invalid(f"{text!r} has a user name; an origin has none.")
    if netloc.startswith("["):
        end = netloc.find("]") + 1
        hostname, port_text = (netloc[:end], netloc[end:]) if end else (netloc, "")
    else:
        hostname, colon, port_text = netloc.partition(":")
        port_text = colon + port_text
    if not hostname:
        raise _invalid(f"{text!r} has no host.")
    port_match = _PORT.fullmatch(port_text)
    port = int(port_match.group(1)) if port_match and port_match.group(1) else None
    if port_match is None or (port is not None and not 0 < port < 65536):
        raise _invalid(f"{text!r} has an invalid host or port.")
    origin = f"{scheme}://{_host(hostname)}"
    if port is not None and port != DEFAULT_PORTS[scheme]:
        origin += f":{port}"
    if len(origin) > MAX_ORIGIN:
        raise _invalid("That origin is too long.")
    return origin


def list_origins(session: Session) -> Sequence[CorsOrigin]:
    """Every origin stored, alphabetically."""
    return session.scalars(select(CorsOrigin).order_by(CorsOrigin.origin)).all()


def allowed_origins(session: Session) -> list[str]:
    """The stored origins as plain strings: what the tracking API's cache loads."""
    return list(session.scalars(select(CorsOrigin.origin).order_by(CorsOrigin.origin)))


def add_origin(session: Session, text: str, *, actor: str | None = None) -> CorsOrigin:
    """Allow an origin (normalised first); Conflict if it is already allowed."""
    origin = normalize_origin(text)
    if session.scalar(select(CorsOrigin).where(CorsOrigin.origin == origin)) is not None:
        raise Conflict(f"{origin} is already allowed.", code="origin_exists", field="origin")
    row = CorsOrigin(origin=origin)
    session.add(row)
    session.flush()
    if actor is not None:
        audit.record(session, actor, "cors.origin_added", origin, {"id": row.id})
    return row


def get_origin(session: Session, origin_id: int) -> CorsOrigin:
    """The stored origin with this id, or NotFound."""
    row = session.get(CorsOrigin, origin_id) if 0 < origin_id <= MAX_ID else None
    if row is None:
        raise NotFound(f"No CORS origin with id {origin_id}.", code="unknown_origin")
    return row


def find_origin(session: Session, text: str) -> CorsOrigin:
    """The stored origin that `text` names (in any spelling that normalises to it)."""
    origin = normalize_origin(text)
    row = session.scalar(select(CorsOrigin).where(CorsOrigin.origin == origin))
    if row is None:
        raise NotFound(f"{origin} is not among the allowed origins.", code="unknown_origin")
    return row


def remove_origin(session: Session, origin_id: int, *, actor: str | None = None) -> CorsOrigin:
    """Stop allowing a stored origin; answers the row removed."""
    row = get_origin(session, origin_id)
    session.delete(row)
    session.flush()
    if actor is not None:
        audit.record(session, actor, "cors.origin_removed", row.origin, {"id": row.id})
    return row
