"""Users & tokens pages: admin users, their passwords, and management API tokens.

A new token's plaintext exists only in the answer to the POST that created it: the page is
rendered there and then (no redirect), and nothing stores it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy.orm import Session
from starlette.responses import Response
from starlette.routing import Route

from contacthub.admin.web import SIGN_IN_PATH, Admin, form_errors, page, user_of
from contacthub.errors import HubError, InvalidInput
from contacthub.identifiers import whole_number
from contacthub.storage.models import AdminToken, AdminUser
from contacthub.storage.types import utcnow
from contacthub.users import service as users


@dataclass(frozen=True, slots=True)
class UserRow:
    """A user as the pages show them."""

    id: int
    email: str
    name: str
    status: str
    status_kind: str
    last_sign_in_at: datetime | None
    created_at: datetime
    is_you: bool


@dataclass(frozen=True, slots=True)
class TokenRow:
    """A token as the pages show it (never its secret)."""

    id: int
    name: str
    user: str
    prefix: str
    status: str
    expires_at: datetime | None
    created_at: datetime


_STATUS_KINDS = {"active": "ok", "expired": "warn", "revoked": "danger"}


def _user_row(user: AdminUser, you: int, now: datetime) -> UserRow:
    if not user.enabled:
        status, kind = "disabled", "danger"
    elif user.locked_until is not None and user.locked_until > now:
        status, kind = f"locked until {user.locked_until:%Y-%m-%d %H:%M} UTC", "warn"
    else:
        status, kind = "enabled", "ok"
    return UserRow(
        user.id,
        user.email,
        user.name,
        status,
        kind,
        user.last_sign_in_at,
        user.created_at,
        user.id == you,
    )


def _token_row(token: AdminToken, email: str, now: datetime) -> TokenRow:
    return TokenRow(
        token.id,
        token.name,
        email,
        token.prefix,
        users.token_status(token, now),
        token.expires_at,
        token.created_at,
    )


def _id(admin: Admin, name: str) -> int:
    """A numeric path parameter; 0 (which no row has) when it is not a sane number."""
    text = str(admin.request.path_params[name])
    return whole_number(text) or 0


async def _users_page(admin: Admin, status: int = 200, **forms: Any) -> Response:
    """The Users & tokens page; `forms` refill a refused form or carry a new token."""

    def work(session: Session) -> tuple[list[UserRow], list[TokenRow]]:
        now = utcnow()
        everyone = users.list_users(session)
        emails = {user.id: user.email for user in everyone}
        return (
            [_user_row(user, admin.signed_in.user_id, now) for user in everyone],
            [_token_row(t, emails[t.user_id], now) for t in users.list_tokens(session)],
        )

    user_rows, token_rows = await admin.hub.read(work)
    context: dict[str, Any] = {
        "user_values": {},
        "user_errors": {},
        "token_values": {},
        "token_errors": {},
        "users_error": None,
        "new_token": None,
        **forms,
    }
    return admin.render(
        "users/list.html",
        status,
        users=user_rows,
        tokens=token_rows,
        status_kinds=_STATUS_KINDS,
        min_password=users.MIN_PASSWORD_LENGTH,
        **context,
    )


async def user_list(admin: Admin) -> Response:
    """The admin users and every management API token."""
    return await _users_page(admin)


async def user_create(admin: Admin) -> Response:
    """Create an admin user."""
    values = {"email": admin.field("email"), "name": admin.field("name")}
    password = admin.form.get("password") if admin.form is not None else None

    def work(session: Session) -> str:
        user = users.create_user(
            session,
            values["email"],
            password if isinstance(password, str) else "",
            values["name"],
            actor=admin.actor,
        )
        return user.email

    try:
        email = await admin.hub.write(work)
    except HubError as error:
        return await _users_page(admin, 400, user_values=values, user_errors=form_errors(error))
    return admin.redirect("/admin/users", flash=f"User {email} created: they can sign in now.")


async def user_detail(admin: Admin) -> Response:
    """One user: details, a new password, enable or disable, their tokens."""
    return await _user_page(admin, _id(admin, "user_id"))


async def _user_page(
    admin: Admin, user_id: int, status: int = 200, errors: dict[str, str] | None = None
) -> Response:
    def work(session: Session) -> tuple[UserRow, list[TokenRow]]:
        now = utcnow()
        user = users.get_user(session, user_id)
        return (
            _user_row(user, admin.signed_in.user_id, now),
            [_token_row(t, user.email, now) for t in users.list_tokens(session, user)],
        )

    user, tokens = await admin.hub.read(work)
    return admin.render(
        "users/detail.html",
        status,
        user=user,
        tokens=tokens,
        status_kinds=_STATUS_KINDS,
        errors=errors or {},
        min_password=users.MIN_PASSWORD_LENGTH,
    )


async def user_set_password(admin: Admin) -> Response:
    """Set a user's password: signs them out everywhere and lifts a lock-out."""
    user_id = _id(admin, "user_id")
    password = admin.form.get("password") if admin.form is not None else None

    def work(session: Session) -> str:
        user = users.get_user(session, user_id)
        users.set_password(
            session, user, password if isinstance(password, str) else "", actor=admin.actor
        )
        return user.email

    try:
        email = await admin.hub.write(work)
    except HubError as error:
        if error.status_code == 404:
            raise
        return await _user_page(admin, user_id, 400, form_errors(error))
    if user_id == admin.signed_in.user_id:
        # Setting a password ends every session of the user, this one included.
        return admin.redirect(SIGN_IN_PATH, flash="Your password was set: sign in with it.")
    return admin.redirect(
        f"/admin/users/{user_id}", flash=f"New password set for {email}; they were signed out."
    )


async def _set_enabled(admin: Admin, enabled: bool) -> Response:
    user_id = _id(admin, "user_id")

    def work(session: Session) -> str:
        user = users.get_user(session, user_id)
        users.set_enabled(session, user, enabled, acting=user_of(session, admin), actor=admin.actor)
        return user.email

    try:
        email = await admin.hub.write(work)
    except HubError as error:
        if error.status_code == 404:
            raise
        return await _users_page(admin, 400, users_error=error.message)
    message = (
        f"{email} is enabled: they can sign in again."
        if enabled
        else f"{email} is disabled: signed out, their tokens refused."
    )
    return admin.redirect("/admin/users", flash=message)


async def user_disable(admin: Admin) -> Response:
    """Disable a user: signed out at once, their tokens refused."""
    return await _set_enabled(admin, False)


async def user_enable(admin: Admin) -> Response:
    """Enable a disabled user again."""
    return await _set_enabled(admin, True)


def _expiry(text: str) -> datetime | None:
    """The form's expiry day as the moment the token stops working: 00:00 UTC that day."""
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            "The expiry is a date: YYYY-MM-DD.", code="invalid_expiry", field="expires_at"
        ) from None
    return datetime.combine(day, time.min, tzinfo=UTC)


async def token_create(admin: Admin) -> Response:
    """Create a token acting as the signed-in user; its secret is shown in this answer only."""
    # `token_name`, not `name`: the new-user form on the same page has a `name` field.
    values = {"token_name": admin.field("token_name"), "expires_at": admin.field("expires_at")}

    def work(session: Session) -> tuple[str, str]:
        new = users.create_token(
            session,
            user_of(session, admin),
            values["token_name"],
            _expiry(values["expires_at"]),
            actor=admin.actor,
        )
        return new.plaintext, new.record.name

    try:
        plaintext, name = await admin.hub.write(work)
    except HubError as error:
        errors = {
            "token_name" if field == "name" else field: message
            for field, message in form_errors(error).items()
        }
        return await _users_page(admin, 400, token_values=values, token_errors=errors)
    return await _users_page(admin, 200, new_token={"name": name, "plaintext": plaintext})


async def token_revoke(admin: Admin) -> Response:
    """Revoke a token for good."""
    token_id = _id(admin, "token_id")

    def work(session: Session) -> str:
        return users.revoke_token(session, token_id, actor=admin.actor).prefix

    prefix = await admin.hub.write(work)
    return admin.redirect("/admin/users", flash=f"Token {prefix}… is revoked.")


routes = [
    Route("/admin/users", page(user_list), methods=["GET"]),
    Route("/admin/users", page(user_create), methods=["POST"]),
    Route("/admin/users/{user_id}", page(user_detail), methods=["GET"]),
    Route("/admin/users/{user_id}/password", page(user_set_password), methods=["POST"]),
    Route("/admin/users/{user_id}/disable", page(user_disable), methods=["POST"]),
    Route("/admin/users/{user_id}/enable", page(user_enable), methods=["POST"]),
    Route("/admin/tokens", page(token_create), methods=["POST"]),
    Route("/admin/tokens/{token_id}/revoke", page(token_revoke), methods=["POST"]),
]
