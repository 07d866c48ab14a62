"""What every admin page shares: sign-in check, CSRF, security headers, templates, forms.

Every admin route is made with `page(handler)`. The wrapper, not the handler, checks that the
browser is signed in (else it redirects to the sign-in page), checks the CSRF token of every
request that is not a GET, and adds the security headers: no handler can forget them.

Handlers get an `Admin`: the request, the hub, the signed-in user and the submitted form. They
stay thin: read the form, call a service in a unit of work, render or redirect.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

import jinja2
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from contacthub.errors import HubError, PayloadTooLarge
from contacthub.http import refuse_nul_in_url
from contacthub.hub import Hub, hub_of
from contacthub.identifiers import MAX_BIG_ID, refuse_nul, whole_number
from contacthub.storage.models import AdminUser
from contacthub.users import service as users

SESSION_COOKIE = "contacthub_session"
FLASH_COOKIE = "contacthub_flash"
SIGN_IN_PATH = "/admin/sign-in"
HOME_PATH = "/admin/"
CSRF_FIELD = "csrf_token"
MAX_FORM_FIELDS = 1_000
MAX_FORM_PART_BYTES = 1_024 * 1_024
# An uploaded file (a subscriber CSV) on a page made with `page(handler, files=1)`.
MAX_UPLOAD_BYTES = 20 * 1_024 * 1_024

# 'self' only: no inline script or style, so injected markup cannot run or restyle anything.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}

templates = jinja2.Environment(
    loader=jinja2.PackageLoader("contacthub.admin", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _format_datetime(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def _format_number(value: int | float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if isinstance(value, int) or value.is_integer() else f"{value:,.1f}"


def _format_percent(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value * 100:.1f} %"


def is_web_url(url: str | None) -> bool:
    """Whether a URL from the public may be a link: only http and https.

    The raw text is tested, not a parsed form: browsers ignore leading spaces and control
    characters before a scheme, so ` javascript:` must not pass as a relative link.
    """
    return url is not None and url[:8].lower().startswith(("http://", "https://"))


def url_parts(url: str) -> tuple[str, str]:
    """A URL from the public as (path, site), for showing it path first: on one site, pages
    differ by their path and query, which a host-first cut would hide. The path keeps its query
    and fragment and is "/" when empty; the site is the host (with the scheme when not http or
    https). A URL without a host, or that does not parse, is all path and no site.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, ""
    if not parts.netloc:
        return url, ""
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    if parts.fragment:
        path += f"#{parts.fragment}"
    site = parts.netloc if is_web_url(url) else f"{parts.scheme}://{parts.netloc}"
    return path, site


templates.filters["datetime"] = _format_datetime
templates.filters["url_parts"] = url_parts
templates.filters["number"] = _format_number
templates.filters["percent"] = _format_percent
templates.tests["web_url"] = is_web_url
templates.globals["query"] = lambda params: urlencode(
    {k: v for k, v in params.items() if v not in (None, "")}
)


@dataclass(slots=True)
class SignedIn:
    """The signed-in user and their session, as read at the start of the request."""

    user_id: int
    email: str
    name: str
    csrf_token: str


@dataclass(slots=True)
class Admin:
    """One admin request: what a page handler needs."""

    request: Request
    hub: Hub
    signed_in: SignedIn
    form: FormData | None = None

    @property
    def actor(self) -> str:
        """Who the audit log names for what this request does."""
        return self.signed_in.email

    def field(self, name: str) -> str:
        """A submitted form field, stripped; empty when absent."""
        value = self.form.get(name) if self.form is not None else None
        return value.strip() if isinstance(value, str) else ""

    def fields(self, name: str) -> list[str]:
        """Every value of a repeated form field (checkboxes, multi-selects)."""
        if self.form is None:
            return []
        return [v.strip() for v in self.form.getlist(name) if isinstance(v, str)]

    def param(self, name: str, default: str = "") -> str:
        """A query parameter, stripped."""
        return self.request.query_params.get(name, default).strip()

    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        """An HTML page from `templates/`, with the layout's context."""
        flash = self.request.cookies.get(FLASH_COOKIE)
        html = templates.get_template(template).render(
            admin=self.signed_in,
            path=self.request.url.path,
            flash=unquote(flash)[:300] if flash else None,
            **context,
        )
        response = HTMLResponse(html, status)
        if FLASH_COOKIE in self.request.cookies:
            response.delete_cookie(FLASH_COOKIE, path="/admin")
        return response

    def redirect(self, path: str, flash: str | None = None) -> Response:
        """See other (303) after a change: post/redirect/get, with a message for the next page."""
        response = RedirectResponse(safe_next(path), status_code=303)
        if flash:
            # Cookie values are text: the page escapes it when it shows it.
            response.set_cookie(
                FLASH_COOKIE,
                quote(flash),
                max_age=60,
                path="/admin",
                httponly=True,
                samesite="lax",
                secure=secure_cookies(self.request),
            )
        return response


Handler = Callable[[Admin], Awaitable[Response]]


def safe_next(target: str | None) -> str:
    """`target` if it is a path inside the admin, else the dashboard: no open redirects."""
    if not target or "\\" in target or any(ord(c) < 32 for c in target):
        return HOME_PATH
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/admin"):
        return HOME_PATH
    if target.startswith("//"):
        return HOME_PATH
    return target


def public_origin(request: Request) -> str:
    """The origin browsers reach this hub at: the `public_url` setting, else the request's.

    Behind a TLS proxy the request's scheme is the proxy's `X-Forwarded-Proto`, believed only
    from `trusted_proxies` (uvicorn's `forwarded_allow_ips`, see contacthub/serving.py).
    """
    configured = hub_of(request).settings.public_url
    return configured or f"{request.url.scheme}://{request.url.netloc}"


def secure_cookies(request: Request) -> bool:
    """Whether cookies get `Secure`: the hub is reached over https."""
    return public_origin(request).startswith("https://")


def same_origin(request: Request) -> bool:
    """A browser's Origin (or Referer) header, when it sends one, must be this site."""
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if not claimed or claimed == "null":
        return claimed is None
    parts = urlsplit(claimed)
    return f"{parts.scheme}://{parts.netloc}" == public_origin(request)


def with_security_headers(response: Response) -> Response:
    """The admin's security headers on any response."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def error_page(request: Request, status_code: int, message: str) -> Response:
    """A plain error page in the admin's look (no navigation: the user may be signed out)."""
    html = templates.get_template("error.html").render(
        status_code=status_code, message=message, admin=None, path=request.url.path, flash=None
    )
    return with_security_headers(HTMLResponse(html, status_code))


async def read_form(request: Request, *, max_files: int = 0) -> FormData:
    """The submitted form, within limits (python-multipart refuses what is over them).

    `max_files` uploaded files are allowed, each of at most `MAX_UPLOAD_BYTES`.
    """
    limit = MAX_UPLOAD_BYTES * max_files + MAX_FORM_PART_BYTES
    declared = request.headers.get("content-length", "")
    declared_size = whole_number(declared, maximum=MAX_BIG_ID)
    if max_files and declared_size is not None and declared_size > limit:
        raise PayloadTooLarge(
            f"The upload is over {MAX_UPLOAD_BYTES // (1_024 * 1_024)} MiB.",
            code="upload_too_large",
        )
    try:
        form = await request.form(
            max_files=max_files, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FORM_PART_BYTES
        )
    except Exception as error:  # Starlette raises its HTTPException or multipart's own errors
        raise HubError(f"The form could not be read: {error}", code="invalid_form") from None
    # Every form, the sign-in form too, is read here: the one place to refuse NUL characters.
    for name, value in form.multi_items():
        refuse_nul(name, "A form field name")
        refuse_nul(value if isinstance(value, str) else value.filename or "", name)
    # Files are not bounded by the parser (it spools them to disk): check what arrived.
    if any(isinstance(v, UploadFile) and (v.size or 0) > MAX_UPLOAD_BYTES for v in form.values()):
        await form.close()
        raise PayloadTooLarge(
            f"The upload is over {MAX_UPLOAD_BYTES // (1_024 * 1_024)} MiB.",
            code="upload_too_large",
        )
    return form


def csrf_valid(form: FormData, expected: str) -> bool:
    """The form carries this session's CSRF token (compared in constant time)."""
    presented = form.get(CSRF_FIELD)
    return isinstance(presented, str) and hmac.compare_digest(presented.encode(), expected.encode())


def page(handler: Handler, *, files: int = 0) -> Callable[[Request], Awaitable[Response]]:
    """An admin route: signed in, CSRF-checked on every change, with the security headers.

    `files`: how many uploaded files its forms may carry (none by default).
    """

    async def endpoint(request: Request) -> Response:
        hub = hub_of(request)
        signed_in = await _signed_in(hub, request.cookies.get(SESSION_COOKIE))
        if signed_in is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            location = f"{SIGN_IN_PATH}?{urlencode({'next': target})}"
            return with_security_headers(RedirectResponse(location, status_code=303))
        admin = Admin(request, hub, signed_in)
        try:
            refuse_nul_in_url(request)
        except HubError as error:
            return error_page(request, error.status_code, error.message)
        if request.method not in ("GET", "HEAD"):
            try:
                admin.form = await read_form(request, max_files=files)
            except HubError as error:
                return error_page(request, error.status_code, error.message)
            if not same_origin(request) or not csrf_valid(admin.form, signed_in.csrf_token):
                return error_page(
                    request,
                    403,
                    "This form has expired or did not come from this site. Go back, reload "
                    "the page and try again.",
                )
        try:
            response = await handler(admin)
        except HubError as error:
            response = admin.render(
                "error.html",
                error.status_code,
                status_code=error.status_code,
                message=error.message,
            )
        return with_security_headers(response)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


async def _signed_in(hub: Hub, token: str | None) -> SignedIn | None:
    if not token or len(token) > 200:
        return None

    def lookup(session: Any) -> SignedIn | None:
        found = users.session_of(session, token)
        if found is None:
            return None
        record, user = found
        return SignedIn(user.id, user.email, user.name, record.csrf_token)

    return await hub.read(lookup)


def user_of(session: Any, admin: Admin) -> AdminUser:
    """The signed-in user's row, in this unit of work."""
    return users.get_user(session, admin.signed_in.user_id)


def form_errors(error: HubError) -> dict[str, str]:
    """A domain error as the `errors` a form template shows (`_form` for the form as a whole)."""
    return {error.field or "_form": error.message}
