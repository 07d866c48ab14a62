"""`/api/users` and `/api/tokens`: admin users and their management API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from sqlalchemy.orm import Session

from contacthub.api.routing import ApiCall, ApiRouter, documented
from contacthub.identifiers import whole_number
from contacthub.storage.models import AdminToken, AdminUser
from contacthub.users import service as users

router = ApiRouter("Users")


class UserOut(msgspec.Struct):
    id: int
    email: str
    name: str
    enabled: bool
    locked_until: datetime | None
    last_sign_in_at: datetime | None
    created_at: datetime


PASSWORD = documented(minLength=users.MIN_PASSWORD_LENGTH, maxLength=users.MAX_PASSWORD_LENGTH)


class UserIn(msgspec.Struct, forbid_unknown_fields=True):
    email: str
    password: Annotated[str, PASSWORD]
    name: str = ""


class UserChange(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool | None = None
    password: Annotated[str, PASSWORD] | None = None


class TokenOut(msgspec.Struct):
    id: int
    user: str
    name: str
    prefix: str
    status: str
    expires_at: datetime | None
    created_at: datetime


class NewTokenOut(TokenOut):
    token: str


class TokenIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str = ""
    expires_at: datetime | None = None


def user_out(user: AdminUser) -> UserOut:
    return UserOut(
        user.id,
        user.email,
        user.name,
        user.enabled,
        user.locked_until,
        user.last_sign_in_at,
        user.created_at,
    )


def token_out(token: AdminToken, email: str) -> TokenOut:
    return TokenOut(
        token.id,
        email,
        token.name,
        token.prefix,
        users.token_status(token),
        token.expires_at,
        token.created_at,
    )


def _user_id(call: ApiCall) -> int:
    text = call.path("user_id")
    return whole_number(text) or 0


@router.get("/api/users", response=list[UserOut])
async def list_users(call: ApiCall) -> list[UserOut]:
    """List the admin users."""
    return await call.hub.read(lambda s: [user_out(u) for u in users.list_users(s)])


@router.post("/api/users", body=UserIn, response=UserOut, status=201)
async def create_user(call: ApiCall, body: UserIn) -> UserOut:
    """Create an admin user who can sign in to the admin UI."""

    def work(session: Session) -> UserOut:
        user = users.create_user(session, body.email, body.password, body.name, actor=call.actor)
        return user_out(user)

    return await call.hub.write(work)


@router.patch("/api/users/{user_id}", body=UserChange, response=UserOut)
async def change_user(call: ApiCall, body: UserChange) -> UserOut:
    """Enable or disable a user, or set a new password (which signs them out everywhere)."""

    def work(session: Session) -> UserOut:
        user = users.get_user(session, _user_id(call))
        acting = users.get_user(session, call.caller.user_id)
        if body.password is not None:
            users.set_password(session, user, body.password, actor=call.actor)
        if body.enabled is not None:
            users.set_enabled(session, user, body.enabled, acting=acting, actor=call.actor)
        return user_out(user)

    return await call.hub.write(work)


@router.get("/api/tokens", response=list[TokenOut])
async def list_tokens(call: ApiCall) -> list[TokenOut]:
    """List every management API token (never the token itself)."""

    def work(session: Session) -> list[TokenOut]:
        emails = {u.id: u.email for u in users.list_users(session)}
        return [token_out(t, emails[t.user_id]) for t in users.list_tokens(session)]

    return await call.hub.read(work)


@router.post("/api/tokens", body=TokenIn, response=NewTokenOut, status=201)
async def create_token(call: ApiCall, body: TokenIn) -> NewTokenOut:
    """Create a token acting as the caller; the answer is the only time it is shown."""

    def work(session: Session) -> NewTokenOut:
        user = users.get_user(session, call.caller.user_id)
        new = users.create_token(session, user, body.name, body.expires_at, actor=call.actor)
        out = token_out(new.record, user.email)
        return NewTokenOut(**msgspec.structs.asdict(out), token=new.plaintext)

    return await call.hub.write(work)


@router.post("/api/tokens/{token_id}/revoke", response=TokenOut)
async def revoke_token(call: ApiCall) -> TokenOut:
    """Revoke a token for good."""

    def work(session: Session) -> TokenOut:
        text = call.path("token_id")
        token = users.revoke_token(session, whole_number(text) or 0, actor=call.actor)
        return token_out(token, users.get_user(session, token.user_id).email)

    return await call.hub.write(work)
