"""`contacthub user …` and `contacthub token …`: admin users and management API tokens."""

from __future__ import annotations

import sys
from typing import Any

import typer

from contacthub.audit.service import CLI_ACTOR
from contacthub.channels.service import parse_expiry
from contacthub.cli.output import JsonOption, emit, unit_of_work
from contacthub.storage.models import AdminToken, AdminUser
from contacthub.users import service as users

user_app = typer.Typer(help="Admin users, who sign in to the admin UI.")
token_app = typer.Typer(help="Management API tokens (shown once, stored hashed).")


def user_record(user: AdminUser) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "enabled": user.enabled,
        "locked_until": user.locked_until,
        "last_sign_in_at": user.last_sign_in_at,
        "created_at": user.created_at,
    }


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


PasswordStdinOption = typer.Option(
    False, "--password-stdin", help="Read the password from the first line of standard input."
)


@user_app.command("create")
def user_create(
    email: str,
    name: str = typer.Option("", help="The name shown in the admin."),
    password_stdin: bool = PasswordStdinOption,
    as_json: bool = JsonOption,
) -> None:
    """Create an admin user; asks for the password (at least 12 characters) twice."""
    password = _password(password_stdin)
    with unit_of_work() as session:
        user = users.create_user(session, email, password, name, actor=CLI_ACTOR)
        record = user_record(user)
    emit(record, as_json, "User")


@user_app.command("list")
def user_list(as_json: bool = JsonOption) -> None:
    """List the admin users."""
    with unit_of_work(write=False) as session:
        rows = [user_record(u) for u in users.list_users(session)]
    emit(rows, as_json, "Users")


@user_app.command("set-password")
def user_set_password(
    email: str, password_stdin: bool = PasswordStdinOption, as_json: bool = JsonOption
) -> None:
    """Set a user's password; signs them out everywhere and lifts a lock-out."""
    password = _password(password_stdin)
    with unit_of_work() as session:
        user = users.get_user_by_email(session, email)
        users.set_password(session, user, password, actor=CLI_ACTOR)
        record = user_record(user)
    emit(record, as_json, "User")


def _set_enabled(email: str, enabled: bool, as_json: bool) -> None:
    with unit_of_work() as session:
        user = users.get_user_by_email(session, email)
        users.set_enabled(session, user, enabled, acting=None, actor=CLI_ACTOR)
        record = user_record(user)
    emit(record, as_json, "User")


@user_app.command("disable")
def user_disable(email: str, as_json: bool = JsonOption) -> None:
    """Disable a user: signed out at once, their tokens refused."""
    _set_enabled(email, False, as_json)


@user_app.command("enable")
def user_enable(email: str, as_json: bool = JsonOption) -> None:
    """Enable a disabled user again."""
    _set_enabled(email, True, as_json)


def token_record(token: AdminToken, email: str) -> dict[str, Any]:
    return {
        "id": token.id,
        "user": email,
        "name": token.name,
        "prefix": token.prefix,
        "status": users.token_status(token),
        "expires_at": token.expires_at,
        "created_at": token.created_at,
    }


@token_app.command("create")
def token_create(
    user: str = typer.Option(..., "--user", help="The address of the user the token acts as."),
    name: str = typer.Option("", help="What the token is for."),
    expires: str | None = typer.Option(None, help="Expiry, ISO date or time (UTC if no zone)."),
    as_json: bool = JsonOption,
) -> None:
    """Create a management API token; it is printed once and stored only as a hash."""
    with unit_of_work() as session:
        owner = users.get_user_by_email(session, user)
        new = users.create_token(session, owner, name, parse_expiry(expires), actor=CLI_ACTOR)
        record = {**token_record(new.record, owner.email), "token": new.plaintext}
    emit(record, as_json, "Token (shown once)")


@token_app.command("list")
def token_list(as_json: bool = JsonOption) -> None:
    """List the management API tokens (never the tokens themselves)."""
    with unit_of_work(write=False) as session:
        emails = {u.id: u.email for u in users.list_users(session)}
        rows = [token_record(t, emails[t.user_id]) for t in users.list_tokens(session)]
    emit(rows, as_json, "Tokens")


@token_app.command("revoke")
def token_revoke(token_id: int, as_json: bool = JsonOption) -> None:
    """Revoke a token for good."""
    with unit_of_work() as session:
        token = users.revoke_token(session, token_id, actor=CLI_ACTOR)
        record = token_record(token, users.get_user(session, token.user_id).email)
    emit(record, as_json, "Token")
