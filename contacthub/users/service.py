"""Admin users, their sign-in, their browser sessions and their management API tokens.

Passwords are hashed with argon2id (argon2-cffi's defaults). Session and API tokens are random
256-bit secrets, so, like channel API keys, only their SHA-256 is stored.

Sign-in is refused for `LOCK_DURATION` after `MAX_FAILED_SIGN_INS` wrong passwords in a row, and
an unknown address costs the same argon2 verification as a known one, so that timing does not
tell which addresses have accounts.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from contacthub.audit import service as audit
from contacthub.channels.service import hash_key
from contacthub.email.service import normalise_email
from contacthub.errors import Conflict, InvalidInput, NotFound, Unauthorized
from contacthub.storage.models import AdminSession, AdminToken, AdminUser
from contacthub.storage.types import utcnow

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
MAX_FAILED_SIGN_INS = 5
LOCK_DURATION = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(hours=12)
TOKEN_PREFIX = "cht_"  # noqa: S105 - a public prefix, not a secret

_hasher = PasswordHasher()
# Verified against when the address is unknown, so that both cases take as long.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session just started: the cookie value exists only here."""

    record: AdminSession
    token: str


@dataclass(frozen=True, slots=True)
class NewToken:
    """A management API token just created: shown once, stored as its hash."""

    record: AdminToken
    plaintext: str


def _check_password(password: str) -> str:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            f"A password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters.",
            code="invalid_password",
            field="password",
        )
    return password


def _clean_name(name: str) -> str:
    name = name.strip()
    if len(name) > 100:
        raise InvalidInput("A name has at most 100 characters.", code="invalid_name", field="name")
    return name


def create_user(
    session: Session, email: str, password: str, name: str = "", *, actor: str | None = None
) -> AdminUser:
    """Create an admin user who can sign in with this address and password.

    Changes are recorded in the audit log when the caller names an `actor` (every entry point
    does: a user's address, or `cli`); test factories pass none.
    """
    address = normalise_email(email, field="email")
    _check_password(password)
    if session.scalar(select(AdminUser.id).where(AdminUser.email == address)) is not None:
        raise Conflict(f"A user {address} already exists.", code="user_exists", field="email")
    user = AdminUser(
        email=address,
        name=_clean_name(name),
        password_hash=_hasher.hash(password),
        enabled=True,
        failed_sign_ins=0,
    )
    session.add(user)
    session.flush()
    if actor is not None:
        audit.record(session, actor, "user.created", user.email)
    return user


def list_users(session: Session) -> Sequence[AdminUser]:
    """Every admin user, by address."""
    return session.scalars(select(AdminUser).order_by(AdminUser.email)).all()


def get_user(session: Session, user_id: int) -> AdminUser:
    """One admin user by id."""
    user = session.get(AdminUser, user_id)
    if user is None:
        raise NotFound(f"No user with id {user_id}.", code="unknown_user")
    return user


def get_user_by_email(session: Session, email: str) -> AdminUser:
    """One admin user by address."""
    user = session.scalar(select(AdminUser).where(AdminUser.email == email.strip().lower()))
    if user is None:
        raise NotFound(f"No user {email}.", code="unknown_user")
    return user


def set_password(
    session: Session, user: AdminUser, password: str, *, actor: str | None = None
) -> AdminUser:
    """Set a new password; signs the user out everywhere and lifts a lock."""
    user.password_hash = _hasher.hash(_check_password(password))
    user.failed_sign_ins = 0
    user.locked_until = None
    session.execute(delete(AdminSession).where(AdminSession.user_id == user.id))
    session.flush()
    if actor is not None:
        audit.record(session, actor, "user.password_set", user.email)
    return user


def set_enabled(
    session: Session,
    user: AdminUser,
    enabled: bool,
    *,
    acting: AdminUser | None,
    actor: str | None = None,
) -> AdminUser:
    """Disable a user (signed out at once, tokens refused) or enable them again.

    `acting` is the user doing it (None from the command line): nobody disables themselves.
    """
    if not enabled and acting is not None and user.id == acting.id:
        raise InvalidInput("You cannot disable yourself.", code="cannot_disable_self")
    if not enabled and _enabled_count(session) <= 1 and user.enabled:
        raise InvalidInput("The last enabled user cannot be disabled.", code="last_user")
    user.enabled = enabled
    if not enabled:
        session.execute(delete(AdminSession).where(AdminSession.user_id == user.id))
    session.flush()
    if actor is not None:
        audit.record(session, actor, "user.enabled" if enabled else "user.disabled", user.email)
    return user


def _enabled_count(session: Session) -> int:
    return session.scalar(select(func.count()).where(AdminUser.enabled.is_(True))) or 0


def sign_in(
    session: Session, email: str, password: str, now: datetime | None = None
) -> AdminUser | Unauthorized:
    """The user these credentials belong to, or why they are refused.

    The refusal is returned, not raised, so that the unit of work commits the failed attempt
    it counted (and the lock it may have set).
    """
    now = now or utcnow()
    refused = Unauthorized("Wrong email address or password.", code="invalid_credentials")
    user = session.scalar(select(AdminUser).where(AdminUser.email == email.strip().lower()))
    if user is None or len(password) > MAX_PASSWORD_LENGTH:
        _verify(_DUMMY_HASH, password[:MAX_PASSWORD_LENGTH])
        return refused
    if user.locked_until is not None and user.locked_until > now:
        return Unauthorized(
            "Too many failed sign-ins: this account is locked for a while. Try again later.",
            code="account_locked",
        )
    if not _verify(user.password_hash, password):
        user.failed_sign_ins += 1
        if user.failed_sign_ins >= MAX_FAILED_SIGN_INS:
            user.locked_until = now + LOCK_DURATION
            user.failed_sign_ins = 0
        session.flush()
        return refused
    if not user.enabled:
        return refused
    user.failed_sign_ins = 0
    user.locked_until = None
    user.last_sign_in_at = now
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    session.flush()
    return user


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def start_session(session: Session, user: AdminUser, now: datetime | None = None) -> NewSession:
    """A new browser session for a user who just signed in."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    record = AdminSession(
        token_hash=hash_key(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + SESSION_LIFETIME,
    )
    session.add(record)
    session.flush()
    return NewSession(record, token)


def session_of(
    session: Session, token: str, now: datetime | None = None
) -> tuple[AdminSession, AdminUser] | None:
    """The live session a cookie names, with its (enabled) user; None if there is none."""
    now = now or utcnow()
    presented = hash_key(token)
    row = session.execute(
        select(AdminSession, AdminUser)
        .join(AdminUser, AdminUser.id == AdminSession.user_id)
        .where(AdminSession.token_hash == presented)
    ).first()
    if row is None:
        return None
    record, user = row
    if (
        not hmac.compare_digest(record.token_hash, presented)
        or record.expires_at <= now
        or not user.enabled
    ):
        return None
    return record, user


def end_session(session: Session, token: str) -> None:
    """Sign out: the session is deleted, so its cookie is worthless."""
    session.execute(delete(AdminSession).where(AdminSession.token_hash == hash_key(token)))


def create_token(
    session: Session,
    user: AdminUser,
    name: str = "",
    expires_at: datetime | None = None,
    *,
    actor: str | None = None,
) -> NewToken:
    """A management API token acting as `user`; the plaintext is in the answer only."""
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidInput(
            "The expiry needs a time zone.", code="invalid_expiry", field="expires_at"
        )
    if expires_at is not None and expires_at <= utcnow():
        # A token that could never be used is a mistake (a wrong year, most likely).
        raise InvalidInput(
            "The expiry must be in the future.", code="invalid_expiry", field="expires_at"
        )
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = AdminToken(
        user_id=user.id,
        name=_clean_name(name),
        prefix=plaintext[: len(TOKEN_PREFIX) + 8],
        token_hash=hash_key(plaintext),
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    if actor is not None:
        audit.record(
            session,
            actor,
            "token.created",
            token.prefix,
            {"id": token.id, "user": user.email, "name": token.name, "expires_at": expires_at},
        )
    return NewToken(token, plaintext)


def list_tokens(session: Session, user: AdminUser | None = None) -> Sequence[AdminToken]:
    """Every management API token (never its plaintext), optionally of one user."""
    query = select(AdminToken).order_by(AdminToken.id)
    if user is not None:
        query = query.where(AdminToken.user_id == user.id)
    return session.scalars(query).all()


def revoke_token(session: Session, token_id: int, *, actor: str | None = None) -> AdminToken:
    """Revoke a management API token for good."""
    token = session.get(AdminToken, token_id)
    if token is None:
        raise NotFound(f"No token with id {token_id}.", code="unknown_token")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    session.flush()
    if actor is not None:
        owner = session.get_one(AdminUser, token.user_id)
        audit.record(
            session, actor, "token.revoked", token.prefix, {"id": token.id, "user": owner.email}
        )
    return token


def token_status(token: AdminToken, now: datetime | None = None) -> str:
    """`active`, `expired` or `revoked`."""
    now = now or utcnow()
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return "active"


def authenticate_token(session: Session, plaintext: str) -> AdminUser:
    """The user a management API token acts as; refuses unknown, expired, revoked tokens."""
    presented = hash_key(plaintext)
    row = session.execute(
        select(AdminToken, AdminUser)
        .join(AdminUser, AdminUser.id == AdminToken.user_id)
        .where(AdminToken.token_hash == presented)
    ).first()
    if row is None or not hmac.compare_digest(row[0].token_hash, presented):
        raise Unauthorized("The admin token is not valid.", code="invalid_token")
    token, user = row
    status = token_status(token)
    if status != "active":
        raise Unauthorized(f"The admin token is {status}.", code=f"token_{status}")
    if not user.enabled:
        raise Unauthorized("The token's user is disabled.", code="user_disabled")
    return user
