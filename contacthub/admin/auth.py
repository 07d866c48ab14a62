"""Signing in and out of the admin.

The sign-in form is protected against login CSRF by a double-submit token: a random cookie
that the form must repeat. Signing in starts a server-side session (`users.service`); the cookie
holds its random token, HttpOnly and SameSite=Lax (and Secure over HTTPS).
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import unquote

from sqlalchemy.orm import Session
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
    secure_cookies,
    templates,
    with_security_headers,
)
from contacthub.audit import service as audit
from contacthub.errors import HubError
from contacthub.hub import hub_of
from contacthub.users import service as users

SIGN_IN_CSRF_COOKIE = "contacthub_sign_in"


def _sign_in_page(
    request: Request,
    csrf: str,
    next_path: str,
    email: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    flash = request.cookies.get(FLASH_COOKIE)
    html = templates.get_template("sign_in.html").render(
        admin=None,
        path=request.url.path,
        flash=unquote(flash) if flash else None,
        csrf_token=csrf,
        next=next_path,
        email=email,
        error=error,
    )
    response = HTMLResponse(html, status_code)
    response.set_cookie(
        SIGN_IN_CSRF_COOKIE,
        csrf,
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
    csrf = secrets.token_urlsafe(32)
    return _sign_in_page(request, csrf, safe_next(request.query_params.get("next")))


async def sign_in(request: Request) -> Response:
    """Check the credentials; on success start a session and go where the user was going."""
    try:
        form = await read_form(request)
    except HubError as error:
        return error_page(request, 400, error.message)
    email = str(form.get("email") or "").strip()
    password = str(form.get("password") or "")
    next_path = safe_next(str(form.get("next") or ""))
    expected = request.cookies.get(SIGN_IN_CSRF_COOKIE, "")
    presented = str(form.get(CSRF_FIELD) or "")
    if not expected or not hmac.compare_digest(expected.encode(), presented.encode()):
        return _sign_in_page(
            request,
            secrets.token_urlsafe(32),
            next_path,
            email,
            "The sign-in form expired. Please try again.",
            403,
        )
    hub = hub_of(request)

    def check(session: Session) -> str | HubError:
        user = users.sign_in(session, email, password)
        if isinstance(user, HubError):
            return user
        audit.record(session, user.email, "user.signed_in")
        return users.start_session(session, user).token

    token = await hub.write(check)
    if isinstance(token, HubError):
        return _sign_in_page(
            request, secrets.token_urlsafe(32), next_path, email, token.message, 401
        )
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(users.SESSION_LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
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
