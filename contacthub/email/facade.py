"""The website-side facade (seed 003, option 2): the email handlers served by the website itself.

A headless website mounts this ASGI app (or runs it alone with `contacthub facade`) so that the
vendor's handler URLs in sent emails work on the website's own domain, without routing them to
the hub. Each handler is a thin shell: it reads the link's parameters and forwards them, with
its visitor's user agent, address and method, to the hub's headless email API under an `email`
API key, then answers as the hub's own handlers do:

- Track.ashx: always the transparent pixel, never cached, whatever the hub answered;
- Redirect.ashx: 303 to the URL the hub answers (the link's own target); its errors as pages;
- GetEmailBrowserContent.ashx: the HTML the hub answers;
- the unsubscribe page: GET asks the hub whom the link names and shows the confirmation; a POST
  with `List-Unsubscribe=One-Click` (RFC 8058, or the page's form) unsubscribes.

The API key stays on the website's server: emails carry only signed links.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from contacthub.email.compose import BROWSER_VIEW_PATH, CLICK_PATH, OPEN_PATH, UNSUBSCRIBE_PATH
from contacthub.email.hashing import Purpose
from contacthub.email.pages import (
    MAX_UNSUBSCRIBE_BODY,
    TrackingParams,
    browser_view_response,
    is_one_click,
    message_page,
    parse_networks,
    pixel_response,
    redirect_response,
    request_client_ip,
    unsubscribe_page,
)
from contacthub.errors import PayloadTooLarge
from contacthub.http import read_body
from contacthub.identifiers import base_url

logger = logging.getLogger(__name__)

TITLES = {
    400: "This link is incomplete",
    403: "This link is not valid",
    404: "Not found",
    413: "Too large",
}


class HubAnswer(Exception):
    """The hub answered with an error, or not at all (then `status` is 502)."""

    def __init__(self, status: int, message: str, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code

    def page(self) -> Response:
        if self.status in TITLES:
            return message_page(self.status, TITLES[self.status], self.message)
        # The hub's own trouble is not the visitor's business; they may retry.
        return message_page(502, "Please try again", "The page could not be loaded just now.")


def create_facade_app(
    hub_url: str,
    api_key: str,
    *,
    trusted_proxies: Sequence[str] = (),
    timeout: float = 10.0,
    transport: httpx2.AsyncBaseTransport | None = None,
) -> Starlette:
    """An ASGI app serving the email handlers by calling the hub at `hub_url` with `api_key`.

    `trusted_proxies`: addresses or CIDR ranges of the website's own reverse proxies, whose
    `X-Forwarded-For` gives the visitor's address. Raises InvalidInput (`invalid_hub_url`) when
    `hub_url` is not an absolute http(s) URL.
    """
    hub_url = base_url(hub_url, "hub URL", code="invalid_hub_url", field="hub")
    trusted = parse_networks(trusted_proxies)
    client: httpx2.AsyncClient | None = None

    def hub_client() -> httpx2.AsyncClient:
        # Made on first use: a facade mounted in another app never sees its own lifespan.
        nonlocal client
        if client is None:
            client = httpx2.AsyncClient(
                base_url=hub_url,
                timeout=timeout,
                headers={"Authorization": f"Bearer {api_key}"},
                transport=transport,
            )
        return client

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal client
        try:
            yield
        finally:
            if client is not None:
                await client.aclose()
                client = None

    async def call(method: str, path: str, **kwargs: Any) -> httpx2.Response:
        try:
            answer = await hub_client().request(method, path, **kwargs)
        except httpx2.HTTPError as error:
            logger.warning("email facade: the hub did not answer %s %s: %s", method, path, error)
            raise HubAnswer(502, "The hub did not answer.") from None
        if answer.status_code >= 400:
            message, code = _error_of(answer)
            if answer.status_code == 401 or code == "wrong_access":
                # The facade's own key is wrong: the operator must hear of it, not the visitor.
                logger.error("email facade: the hub refused the API key: %s", message)
                raise HubAnswer(502, "The hub refused the facade's API key.", code)
            raise HubAnswer(answer.status_code, message, code)
        return answer

    def hit_body(request: Request, purpose: Purpose, guid_name: str) -> dict[str, str | None]:
        params = TrackingParams(request.scope["query_string"])
        return {
            guid_name: params.guid(purpose),
            "email": params.email(purpose),
            "hash": params.hash,
            "userAgent": request.headers.get("user-agent"),
            "ip": request_client_ip(request.scope, trusted),
            "method": request.method,
        }

    def link_params(request: Request, purpose: Purpose) -> dict[str, str]:
        params = TrackingParams(request.scope["query_string"])
        found = {"issueGuid": params.guid(purpose), "email": params.email(purpose)}
        found["hash"] = params.hash
        return {name: value for name, value in found.items() if value is not None}

    async def open_pixel(request: Request) -> Response:
        """Track.ashx: forward the open; always answer the pixel."""
        try:
            await call(
                "POST", "/v1/emails/opens", json=hit_body(request, Purpose.OPEN, "issueGuid")
            )
        except HubAnswer:
            pass  # a bad link or a hub away: the pixel is answered all the same
        except Exception:
            logger.exception("email facade: forwarding an open failed")
        return pixel_response()

    async def click_redirect(request: Request) -> Response:
        """Redirect.ashx: forward the click; 303 to the target the hub answers."""
        try:
            answer = await call(
                "POST", "/v1/emails/clicks", json=hit_body(request, Purpose.CLICK, "linkGuid")
            )
            url = answer.json().get("url")
        except HubAnswer as error:
            return error.page()
        except ValueError:
            return HubAnswer(502, "The hub answered nonsense.").page()
        if not isinstance(url, str) or not url:
            return HubAnswer(502, "The hub answered no URL.").page()
        return redirect_response(url)

    async def browser_view(request: Request) -> Response:
        """GetEmailBrowserContent.ashx: the HTML the hub renders for this recipient."""
        try:
            answer = await call(
                "GET",
                "/v1/emails/browserviews",
                params=link_params(request, Purpose.BROWSER_VIEW),
            )
        except HubAnswer as error:
            return error.page()
        return browser_view_response(answer.text)

    async def unsubscribe(request: Request) -> Response:
        """The unsubscribe page: GET asks, a one-click POST unsubscribes."""
        params = link_params(request, Purpose.UNSUBSCRIBE)
        try:
            if request.method == "POST":
                try:
                    body = await read_body(request, MAX_UNSUBSCRIBE_BODY)
                except PayloadTooLarge:
                    raise HubAnswer(413, "The form is too large.") from None
                if not is_one_click(body, request.headers.get("content-type", "")):
                    raise HubAnswer(
                        400,
                        "Nothing was changed: to unsubscribe, use the button on the "
                        "unsubscribe page.",
                    )
                answer = await call("POST", "/v1/emails/unsubscribes", json=params)
            else:
                answer = await call("GET", "/v1/emails/unsubscribes", params=params)
            found = answer.json()
            email, newsletter = str(found["email"]), str(found["newsletter"])
            unsubscribed = bool(found["unsubscribed"])
        except HubAnswer as error:
            return error.page()
        except (ValueError, KeyError, TypeError):
            return HubAnswer(502, "The hub answered nonsense.").page()
        return unsubscribe_page(
            email=email,
            newsletter=newsletter,
            unsubscribed=unsubscribed,
            done=request.method == "POST",
        )

    routes = [
        Route(OPEN_PATH, open_pixel, methods=["GET"]),
        Route(CLICK_PATH, click_redirect, methods=["GET"]),
        Route(BROWSER_VIEW_PATH, browser_view, methods=["GET"]),
        Route(UNSUBSCRIBE_PATH, unsubscribe, methods=["GET", "POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def _error_of(answer: httpx2.Response) -> tuple[str, str]:
    """The message and code of the hub's JSON error body."""
    try:
        body = answer.json()
        message, code = body.get("error"), body.get("code")
    except (ValueError, AttributeError):
        message, code = None, None
    return (
        message if isinstance(message, str) else f"The hub answered {answer.status_code}.",
        code if isinstance(code, str) else "",
    )
