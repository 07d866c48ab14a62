"""What the public email handlers answer, shared by the hub (gateway) and the website facade.

The open pixel, the small HTML pages (errors, unsubscribe), the parameters as emails carry them
(names in any case, several aliases), and the client's address behind trusted proxies.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, quote, unquote_plus

import jinja2
from starlette.responses import HTMLResponse, RedirectResponse, Response

from contacthub.email.compose import ROUTES
from contacthub.email.hashing import Purpose
from contacthub.email.machine import IPNetwork

# A transparent 1x1 GIF (43 bytes): the smallest image every mail client displays.
PIXEL_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
    b"!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)

# Every hit must reach the handler: no browser, proxy or CDN may answer from a cache.
NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0, private",
    "Pragma": "no-cache",
    "Expires": "Thu, 01 Jan 1970 00:00:00 GMT",
}
# Pages whose URL carries a recipient's signed link: not cached, not indexed, and the URL is
# not sent on as a Referer by the links the page holds.
PRIVATE_PAGE = {
    **NO_CACHE,
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}
# An email shown as a page (the admin's preview, the browser view) may do what mail clients let
# it do: style itself inline, load remote images, stylesheets and fonts. It runs nothing, embeds
# nothing (frames, objects), submits nothing and connects nowhere; the sandbox also stops it
# moving the page elsewhere on its own (<meta http-equiv="refresh">).
EMAIL_CONTENT_POLICY = (
    "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline' https: http:; "
    "font-src https: http: data:; script-src 'none'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'"
)
# The browser view is a page of its own, framed by nobody; a link the reader clicks still goes
# where it points, and one with target="_blank" opens a normal, unsandboxed tab.
BROWSER_VIEW_HEADERS = {
    **PRIVATE_PAGE,
    "Content-Security-Policy": (
        f"{EMAIL_CONTENT_POLICY}; frame-ancestors 'none'; "
        "sandbox allow-popups allow-popups-to-escape-sandbox"
    ),
    "X-Frame-Options": "DENY",
}

ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"
MAX_UNSUBSCRIBE_BODY = 16_384
MAX_QUERY_VALUE = 2_000


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]


# The pixel's answer, encoded once: the hub's hot path sends it as raw ASGI messages.
PIXEL_HEADERS = _raw(
    {"Content-Type": "image/gif", "Content-Length": str(len(PIXEL_GIF)), **NO_CACHE}
)
REDIRECT_HEADERS = _raw({"Content-Length": "0", **NO_CACHE, "Referrer-Policy": "no-referrer"})
# What Starlette's RedirectResponse leaves unquoted in a Location header.
_LOCATION_SAFE = ":/%#?=@[]!$&'()*+,;"


def location(url: str) -> bytes:
    """A target URL as a Location header value: ASCII, anything else percent-encoded."""
    return quote(url, safe=_LOCATION_SAFE).encode("ascii")


def pixel_response() -> Response:
    """The open pixel: always the same transparent GIF, never cached."""
    return Response(PIXEL_GIF, 200, NO_CACHE, "image/gif")


def redirect_response(url: str) -> Response:
    """303 See Other to a link's target (what the vendor answers), never cached."""
    return RedirectResponse(url, 303, {**NO_CACHE, "Referrer-Policy": "no-referrer"})


def browser_view_response(html: str) -> Response:
    """An issue's HTML as a page."""
    return HTMLResponse(html, 200, BROWSER_VIEW_HEADERS)


# -- parameters ----------------------------------------------------------------------------------


class TrackingParams:
    """The query parameters of a tracking URL, names matched case-insensitively.

    The first occurrence of a name wins. `+` has turned into a space in an address whose link
    was not percent-encoded; an address has no spaces, so they are turned back.
    """

    def __init__(self, query_string: bytes | str) -> None:
        text = query_string.decode("latin-1") if isinstance(query_string, bytes) else query_string
        self.values: dict[str, str] = {}
        # What parse_qsl does, at half the cost on this hot path: most parts need no decoding.
        for part in text.split("&"):
            name, _, value = part.partition("=")
            if "%" in name or "+" in name:
                name = unquote_plus(name)
            if "%" in value or "+" in value:
                value = unquote_plus(value)
            self.values.setdefault(name.lower(), value[:MAX_QUERY_VALUE])

    def guid(self, purpose: Purpose) -> str | None:
        """The GUID parameter of this kind of link (`issueguid` or `linkguid`), as given."""
        return self.values.get(ROUTES[purpose].guid_param)

    def email(self, purpose: Purpose) -> str | None:
        """The address, under any of the names this kind of link is known to carry."""
        for name in ROUTES[purpose].email_params:
            value = self.values.get(name)
            if value is not None:
                return value.strip().replace(" ", "+")
        return None

    @property
    def hash(self) -> str | None:
        return self.values.get("hash")


# -- client address ------------------------------------------------------------------------------


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Addresses or CIDR ranges, e.g. `10.0.0.0/8`; ValueError on a bad one."""
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values)


def _in_networks(address: str, networks: Sequence[IPNetwork]) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in networks)


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[IPNetwork]
) -> str | None:
    """The client's address: the peer's, unless the peer is a trusted proxy.

    Behind trusted proxies, `X-Forwarded-For` is read from the right (each proxy appends the
    address it saw), skipping trusted hops: the first address not trusted is the client. Any
    address left of it could be forged by the client, so it is never used.
    """
    if not trusted or peer is None or not forwarded_for or not _in_networks(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _in_networks(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer
    return hops[0] if hops else peer


def request_client_ip(scope: Mapping[str, Any], trusted: Sequence[IPNetwork]) -> str | None:
    """`client_ip` for an ASGI request scope."""
    client = scope.get("client")
    peer = client[0] if client else None
    if not trusted:
        return peer
    forwarded = [v for k, v in scope.get("headers", ()) if k == b"x-forwarded-for"]
    # Several X-Forwarded-For headers are one list, in order.
    joined = ",".join(value.decode("latin-1") for value in forwarded)
    return client_ip(peer, joined or None, trusted)


# -- pages ---------------------------------------------------------------------------------------


@cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("contacthub.email", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def render(template: str, **context: Any) -> str:
    """One of the small pages under `contacthub/email/templates`, autoescaped."""
    return _templates().get_template(template).render(**context)


def message_page(status: int, title: str, message: str) -> Response:
    """A small page saying what went wrong (or right), with its status."""
    body = render("message.html", title=title, message=message)
    return HTMLResponse(body, status, PRIVATE_PAGE)


def unsubscribe_page(
    *, status: int = 200, email: str, newsletter: str, unsubscribed: bool, done: bool = False
) -> Response:
    """The unsubscribe confirmation (a form that POSTs back to the same URL) or its result."""
    body = render(
        "unsubscribe.html",
        email=email,
        newsletter=newsletter,
        unsubscribed=unsubscribed,
        done=done,
        field=ONE_CLICK_FIELD,
        value=ONE_CLICK_VALUE,
    )
    return HTMLResponse(body, status, PRIVATE_PAGE)


def is_one_click(body: bytes, content_type: str) -> bool:
    """True when a POST body carries `List-Unsubscribe=One-Click` (RFC 8058, or our form).

    RFC 8058 allows `application/x-www-form-urlencoded` and `multipart/form-data`; a body sent
    with neither is read as the former, since the field is what counts.
    """
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type == "multipart/form-data":
        return _multipart_has_one_click(body, content_type)
    text = body.decode("utf-8", "replace")
    return any(
        name.strip() == ONE_CLICK_FIELD and value.strip() == ONE_CLICK_VALUE
        for name, value in parse_qsl(text, keep_blank_values=True)
    )


def _multipart_has_one_click(body: bytes, content_type: str) -> bool:
    from email.parser import BytesParser
    from email.policy import HTTP

    # The stdlib's MIME parser reads multipart/form-data well enough for one small field.
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        return False
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if (
            name == ONE_CLICK_FIELD
            and isinstance(payload, bytes)
            and payload.decode("utf-8", "replace").strip() == ONE_CLICK_VALUE
        ):
            return True
    return False
