"""Signing in and out of the admin.

The sign-in form is protected against login CSRF by its `Origin` (as every admin form) and a
double-submit token bound to the secret key: a random cookie, and the form's token made from it
with an HMAC. Signing in starts a server-side session (`users.service`); the cookie
holds its random token, HttpOnly and SameSite=Lax (and Secure over HTTPS).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time
from datetime import timedelta
from urllib.parse import unquote

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from contacthub.admin.web import (
    CSRF_FIELD,
    FLASH_COOKIE,
    SESSION_COOKIE,
    SIGN_IN_PATH,
    Admin,
    error_page,
    page,
    read_form,
    safe_next,
    same_origin,
    secure_cookies,
    templates,
    with_security_headers,
)
from contacthub.errors import HubError
from contacthub.hub import hub_of
from contacthub.identifiers import whole_number
from contacthub.users import service as users

SIGN_IN_CSRF_COOKIE = "contacthub_sign_in"
# A browser that signed in to an account before is not held by that account's lock-out.
DEVICE_COOKIE = "contacthub_device"
DEVICE_COOKIE_LIFETIME = timedelta(days=365)
SIGN_IN_FORM_LIFETIME = timedelta(hours=2)


def _form_token(secret: bytes, nonce: str) -> str:
    return hmac.new(secret, f"sign-in form\0{nonce}".encode(), hashlib.sha256).hexdigest()


def _form_valid(secret: bytes, nonce: str, presented: str) -> bool:
    """The form repeats the token made from its cookie with the secret key, in time.

    The cookie alone proves nothing (a neighbouring site may be able to set it); without the
    secret key nobody can make the token that goes with a cookie of their choosing.
    """
    issued = whole_number(nonce.partition(".")[0], maximum=10**12)
    # A minute's grace: the page may come from a machine whose clock is a little ahead.
    age = time.time() - issued if issued is not None else -1e9
    if not -60 <= age <= SIGN_IN_FORM_LIFETIME.total_seconds():
        return False
    return hmac.compare_digest(_form_token(secret, nonce).encode(), presented.encode())


def _secret(request: Request) -> bytes:
    return hub_of(request).settings.secret_key.get_secret_value().encode()


def _sign_in_page(
    request: Request,
    next_path: str,
    email: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    """The sign-in form, with a new CSRF cookie and the token bound to it."""
    nonce = f"{int(time.time())}.{secrets.token_urlsafe(16)}"
    flash = request.cookies.get(FLASH_COOKIE)
    html = templates.get_template("sign_in.html").render(
        admin=None,
        path=request.url.path,
        flash=unquote(flash) if flash else None,
        csrf_token=_form_token(_secret(request), nonce),
        next=next_path,
        email=email,
        error=error,
    )
    response = HTMLResponse(html, status_code)
    response.set_cookie(
        SIGN_IN_CSRF_COOKIE,
        nonce,
        max_age=int(SIGN_IN_FORM_LIFETIME.total_seconds()),
        path=SIGN_IN_PATH,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
    )
    if flash is not None:
        response.delete_cookie(FLASH_COOKIE, path="/admin")
    return with_security_headers(response)


async def sign_in_form(request: Request) -> Response:
    """The sign-in page."""
    return _sign_in_page(request, safe_next(request.query_params.get("next")))


async def sign_in(request: Request) -> Response:
    """Check the credentials; on success start a session and go where the user was going."""
    try:
        form = await read_form(request)
    except HubError as error:
        return error_page(request, 400, error.message)
    email = str(form.get("email") or "").strip()
    password = str(form.get("password") or "")
    next_path = safe_next(str(form.get("next") or ""))
    nonce = request.cookies.get(SIGN_IN_CSRF_COOKIE, "")
    presented = str(form.get(CSRF_FIELD) or "")
    if not same_origin(request) or not _form_valid(_secret(request), nonce, presented):
        return _sign_in_page(
            request, next_path, email, "The sign-in form expired. Please try again.", 403
        )
    hub = hub_of(request)
    attempt = users.SignInAttempt(
        email,
        password,
        client=request.client.host if request.client else "unknown",
        device=request.cookies.get(DEVICE_COOKIE, "")[:200],
    )
    limits = users.SignInLimits(
        hub.settings.sign_in_max_failures_per_client,
        timedelta(seconds=hub.settings.sign_in_client_window),
    )
    # In a worker thread, so the password check does not hold up the event loop; one at a time
    # (hub.password_checks), so that a burst of sign-ins cannot starve everything else.
    outcome = await anyio.to_thread.run_sync(
        functools.partial(
            users.sign_in, hub.database, attempt, secret=_secret(request), limits=limits
        ),
        limiter=hub.password_checks(),
    )
    if isinstance(outcome, HubError):
        return _sign_in_page(request, next_path, email, outcome.message, outcome.status_code)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        outcome.session.token,
        max_age=int(users.SESSION_LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
    )
    response.set_cookie(
        DEVICE_COOKIE,
        outcome.device,
        max_age=int(DEVICE_COOKIE_LIFETIME.total_seconds()),
        path=SIGN_IN_PATH,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
    )
    response.delete_cookie(SIGN_IN_CSRF_COOKIE, path=SIGN_IN_PATH)
    return with_security_headers(response)


async def sign_out(admin: Admin) -> Response:
    """End the session: its cookie is worthless from now on."""
    token = admin.request.cookies.get(SESSION_COOKIE, "")
    await admin.hub.write(lambda session: users.end_session(session, token))
    response = admin.redirect(SIGN_IN_PATH, "You are signed out.")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def home(request: Request) -> Response:
    """`/` leads to the dashboard (which asks to sign in first)."""
    return RedirectResponse("/admin/", status_code=303)


routes = [
    Route(SIGN_IN_PATH, sign_in_form, methods=["GET"]),
    Route(SIGN_IN_PATH, sign_in, methods=["POST"]),
    Route("/admin/sign-out", page(sign_out), methods=["POST"]),
    Route("/", home, methods=["GET"]),
]
