"""The public email handlers, served by the hub itself (the gateway set-up of seed 003).

Same URLs and parameters as the vendor's handlers, so emails stay valid whichever host serves
them; parameter names in any case:

- `GET /CMSModules/Newsletters/CMSPages/Track.ashx?issueguid=&recipient=&hash=` (also `email=`)
  logs an open and always answers a transparent 1x1 GIF, never cached, whatever the input or
  whatever fails behind it (listmonk's rule: a broken image in an email helps nobody).
- `GET /CMSModules/Newsletters/CMSPages/Redirect.ashx?linkguid=&email=&hash=` logs a click and
  answers 303 See Other to the link's own target, personalised; 404 for an unknown link.
- `GET /CMSPages/Newsletters/GetEmailBrowserContent.ashx?issueguid=&email=&hash=` (also
  `recipientEmail=`) answers the issue's HTML as the recipient got it; 403 on a bad hash.
- `/contacthub/unsubscribe?issueguid=&email=&hash=`: GET shows a confirmation page and changes
  nothing (scanners follow GETs); a POST whose body holds `List-Unsubscribe=One-Click` (RFC 8058,
  and our own form) unsubscribes, authenticated by the signed link alone.

Errors are small HTML pages: people, not programs, follow these links.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from contacthub.email import tracking
from contacthub.email.compose import BROWSER_VIEW_PATH, CLICK_PATH, OPEN_PATH, UNSUBSCRIBE_PATH
from contacthub.email.hashing import Purpose
from contacthub.email.machine import HitKind, IPNetwork
from contacthub.email.pages import (
    MAX_UNSUBSCRIBE_BODY,
    PIXEL_GIF,
    PIXEL_HEADERS,
    REDIRECT_HEADERS,
    TrackingParams,
    browser_view_response,
    is_one_click,
    location,
    message_page,
    parse_networks,
    request_client_ip,
    unsubscribe_page,
)
from contacthub.errors import HubError, InvalidInput
from contacthub.http import HotEndpoint, header, read_body
from contacthub.hub import Hub, hub_of
from contacthub.settings import Settings
from contacthub.storage.types import utcnow

logger = logging.getLogger(__name__)

ERROR_TITLES = {
    400: "This link is incomplete",
    403: "This link is not valid",
    404: "Not found",
    410: "This link has expired",
    413: "Too large",
    503: "Please try again",
}


def error_page(error: HubError) -> Response:
    """A domain error as a small page with its status."""
    title = ERROR_TITLES.get(error.status_code, "Something went wrong")
    return message_page(error.status_code, title, error.message)


class _HitEndpoint(HotEndpoint):
    """A tracking link's hit, as a bare ASGI app (`HotEndpoint`)."""

    def __init__(self, trusted_proxies: tuple[IPNetwork, ...]) -> None:
        self.trusted_proxies = trusted_proxies

    def visitor(self, scope: Scope) -> tracking.Visitor:
        """Who sent the request: user agent, address (see `trusted_proxies`), method, time."""
        return tracking.Visitor(
            user_agent=header(scope, b"user-agent"),
            ip=request_client_ip(scope, self.trusted_proxies),
            method=scope["method"],
            at=utcnow(),
        )


class OpenPixel(_HitEndpoint):
    """Track.ashx: log the open; answer the transparent pixel whatever happens."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            hub: Hub = scope["app"].state.hub
            params = TrackingParams(scope["query_string"])
            job = tracking.hit_job(
                HitKind.OPEN,
                params.guid(Purpose.OPEN),
                params.email(Purpose.OPEN),
                params.hash,
                self.visitor(scope),
            )
            # Answered after the commit (5 s at most): the hits of a busy moment wait for the
            # writer instead of piling up in memory, and an answered hit is a stored one.
            await hub.email_writer.submit(job)
        except HubError:
            pass  # a malformed link, or the hub is overloaded: the pixel is still answered
        except Exception:
            logger.exception("open pixel: logging the open failed")
        await send({"type": "http.response.start", "status": 200, "headers": PIXEL_HEADERS})
        await send({"type": "http.response.body", "body": PIXEL_GIF})


class ClickRedirect(_HitEndpoint):
    """Redirect.ashx: log the click; 303 to the link's own target."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub: Hub = scope["app"].state.hub
        params = TrackingParams(scope["query_string"])
        try:
            job = tracking.hit_job(
                HitKind.CLICK,
                params.guid(Purpose.CLICK),
                params.email(Purpose.CLICK),
                params.hash,
                self.visitor(scope),
            )
            outcome = await hub.email_writer.submit(job)
            if outcome.error is not None:
                raise outcome.error
        except HubError as error:
            await error_page(error)(scope, receive, send)
            return
        assert outcome.target_url is not None, "a known link always has its target"
        headers = [(b"location", location(outcome.target_url)), *REDIRECT_HEADERS]
        await send({"type": "http.response.start", "status": 303, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


async def browser_view(request: Request) -> Response:
    """GetEmailBrowserContent.ashx: the issue as the recipient got it."""
    hub = hub_of(request)
    link = signed_link(request, Purpose.BROWSER_VIEW)
    try:
        html = await hub.read(lambda session: tracking.browser_view(session, hub.link_signer, link))
    except HubError as error:
        return error_page(error)
    return browser_view_response(html)


async def unsubscribe(request: Request) -> Response:
    """The unsubscribe page: GET asks (changes nothing), POST one-click unsubscribes."""
    hub = hub_of(request)
    link = signed_link(request, Purpose.UNSUBSCRIBE)
    try:
        if request.method == "POST":
            body = await read_body(request, MAX_UNSUBSCRIBE_BODY)
            if not is_one_click(body, request.headers.get("content-type", "")):
                raise InvalidInput(
                    "Nothing was changed: to unsubscribe, use the button on the unsubscribe page.",
                    code="not_one_click",
                )

            def work(session: Session) -> tracking.Subscription:
                return tracking.unsubscribe(session, hub.link_signer, link)

            done = await hub.write(work)
            return unsubscribe_page(
                email=done.email, newsletter=done.newsletter, unsubscribed=True, done=True
            )
        found = await hub.read(
            lambda session: tracking.subscription(session, hub.link_signer, link)
        )
    except HubError as error:
        return error_page(error)
    return unsubscribe_page(
        email=found.email, newsletter=found.newsletter, unsubscribed=found.unsubscribed
    )


def signed_link(request: Request, purpose: Purpose) -> tracking.SignedLink:
    """The issue GUID, address and hash of a request's query string."""
    params = TrackingParams(request.scope["query_string"])
    return tracking.SignedLink(params.guid(purpose), params.email(purpose), params.hash)


def email_routes(settings: Settings) -> list[Route]:
    """The public email handlers at the vendor's paths (and the unsubscribe page)."""
    trusted = parse_networks(settings.trusted_proxies)
    return [
        # GET routes answer HEAD too; a HEAD hit is classified as a machine's.
        Route(OPEN_PATH, OpenPixel(trusted), methods=["GET"]),
        Route(CLICK_PATH, ClickRedirect(trusted), methods=["GET"]),
        Route(BROWSER_VIEW_PATH, browser_view, methods=["GET"]),
        Route(UNSUBSCRIBE_PATH, unsubscribe, methods=["GET", "POST"]),
    ]
