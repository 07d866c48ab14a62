"""Admin users, their sign-in, their browser sessions and their management API tokens.

Passwords are hashed with argon2id (argon2-cffi's defaults). Session and API tokens are random
256-bit secrets, so, like channel API keys, only their SHA-256 is stored.

Sign-in is refused for `LOCK_DURATION` after `MAX_FAILED_SIGN_INS` wrong passwords in a row
(except to a browser that signed in to the account before: its device cookie), and to a client
address after too many failures (`SignInLimits`). An unknown address gets the same answer after
the same argon2 verification as a known one, locked or not, so that neither tells which
addresses have accounts. See `sign_in`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
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
from contacthub.errors import (
    Conflict,
    HubError,
    InvalidInput,
    NotFound,
    TooManyRequests,
    Unauthorized,
)
from contacthub.storage.database import Database
from contacthub.storage.models import AdminSession, AdminToken, AdminUser
from contacthub.storage.types import utcnow
from contacthub.users import repository

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
MAX_FAILED_SIGN_INS = 5
LOCK_DURATION = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(hours=12)
TOKEN_PREFIX = "cht_"  # noqa: S105 - a public prefix, not a secret
# Every refusal about the account says the same, locked or not, known or not.
REFUSED_MESSAGE = (
    f"Wrong email address or password. After {MAX_FAILED_SIGN_INS} wrong passwords in a row, "
    f"an account is locked for {LOCK_DURATION.seconds // 60} minutes."
)

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


@dataclass(frozen=True, slots=True)
class SignInLimits:
    """The per-client-address limit: at most `max_failures` failed sign-ins in a `window`."""

    max_failures: int = 10
    window: timedelta = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class SignInAttempt:
    """What a browser presents to sign in, and where from.

    `client` is the client's address: the key of the per-address limit, and the actor the
    audit log names for a lock-out (nobody is signed in yet). `device` is the browser's device
    cookie, if it has one (`device_token`).
    """

    email: str
    password: str
    client: str
    device: str = ""


@dataclass(frozen=True, slots=True)
class SignInSuccess:
    """A sign-in that succeeded: the user, their new session, and the browser's device cookie."""

    user: AdminUser
    session: NewSession
    device: str


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    """What a sign-in checks the password against, as read before the check (no write lock)."""

    user_id: int | None
    password_hash: str
    known_device: bool


@dataclass(frozen=True, slots=True)
class CheckedPassword:
    """The outcome of the argon2 check; `new_hash` if the stored hash needs new parameters."""

    check: PasswordCheck
    right: bool
    new_hash: str | None = None


def sign_in(
    database: Database,
    attempt: SignInAttempt,
    *,
    secret: bytes,
    limits: SignInLimits = SignInLimits(),
    now: datetime | None = None,
) -> SignInSuccess | HubError:
    """Sign in, or say why not; in two short units of work around the password check.

    The argon2 check (tens of milliseconds, on purpose) runs outside any transaction: on SQLite
    a write transaction holds the database's one write lock, and ingest would wait for every
    sign-in. Only the outcome is written, under a lock on the user's row, and the lock-out is
    checked again there, so that parallel wrong passwords are all counted and a right password
    checked while the account is (or becomes) locked does not sign in.

    Every refusal about the account (unknown address, wrong password, locked, disabled) is the
    same `invalid_credentials` after the same argon2 work, so that neither the answer nor its
    time tells which addresses have accounts. A client address over its limit gets
    `too_many_sign_ins` (429) without a check. Refusals are returned, not raised, so that the
    unit of work commits the failure it counted.
    """
    with database.read() as session:
        check = look_up(session, attempt, secret=secret, limits=limits, now=now or utcnow())
    if isinstance(check, HubError):
        return check
    checked = check_password(check, attempt.password)
    with database.write() as session:
        return record_sign_in(
            session, checked, attempt, secret=secret, limits=limits, now=now or utcnow()
        )


def look_up(
    session: Session,
    attempt: SignInAttempt,
    *,
    secret: bytes,
    limits: SignInLimits,
    now: datetime,
) -> PasswordCheck | HubError:
    """Sign-in's first step (a read): is the client over its limit, whose hash to check."""
    if repository.client_failures(session, client_key(attempt.client), limits.window, now) >= (
        limits.max_failures
    ):
        return _too_many(limits)
    user = repository.user_by_email(session, attempt.email.strip().lower())
    if user is None:
        return PasswordCheck(None, _DUMMY_HASH, known_device=False)
    known = hmac.compare_digest(
        attempt.device.encode(), device_token(secret, user.id, user.password_hash).encode()
    )
    return PasswordCheck(user.id, user.password_hash, known_device=known)


def check_password(check: PasswordCheck, password: str) -> CheckedPassword:
    """Sign-in's second step: the argon2 check, the same work whatever `check` holds."""
    if len(password) > MAX_PASSWORD_LENGTH:
        _verify(_DUMMY_HASH, password[:MAX_PASSWORD_LENGTH])
        return CheckedPassword(check, right=False)
    right = _verify(check.password_hash, password) and check.user_id is not None
    if right and _hasher.check_needs_rehash(check.password_hash):
        return CheckedPassword(check, right=True, new_hash=_hasher.hash(password))
    return CheckedPassword(check, right=right)


def record_sign_in(
    session: Session,
    checked: CheckedPassword,
    attempt: SignInAttempt,
    *,
    secret: bytes,
    limits: SignInLimits,
    now: datetime,
) -> SignInSuccess | HubError:
    """Sign-in's last step (a write): count a failure, or start a session, under row locks.

    Rows are locked in one order (the client's count, then the user), so that two sign-ins
    never wait on each other in a circle.
    """
    refused = Unauthorized(REFUSED_MESSAGE, code="invalid_credentials")
    check = checked.check
    client = client_key(attempt.client)
    if not checked.right:
        repository.count_client_failure(session, client, limits.window, now)
    elif (
        repository.client_failures(session, client, limits.window, now, lock=True)
        >= limits.max_failures
    ):
        return _too_many(limits)
    if check.user_id is None:
        return refused
    user = repository.lock_user(session, check.user_id)
    if user is None or user.password_hash != check.password_hash:
        # Deleted, or given a new password, since the check: what was checked is stale.
        return refused
    locked = user.locked_until is not None and user.locked_until > now
    if not checked.right:
        # Failures while locked are not counted: the lock holds already.
        if not locked:
            user.failed_sign_ins += 1
            if user.failed_sign_ins >= MAX_FAILED_SIGN_INS:
                user.locked_until = now + LOCK_DURATION
                user.failed_sign_ins = 0
                audit.record(
                    session,
                    attempt.client,
                    "user.locked",
                    user.email,
                    {"until": user.locked_until},
                )
        session.flush()
        return refused
    # A browser that signed in to this account before is not held by the lock: an attacker
    # elsewhere can lock out strangers, never the user's own browsers.
    if (locked and not check.known_device) or not user.enabled:
        return refused
    if not locked:
        user.failed_sign_ins = 0
        user.locked_until = None
    user.last_sign_in_at = now
    if checked.new_hash is not None:
        user.password_hash = checked.new_hash
    audit.record(session, user.email, "user.signed_in", details={"client": attempt.client})
    new_session = start_session(session, user, now)
    return SignInSuccess(user, new_session, device_token(secret, user.id, user.password_hash))


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def device_token(secret: bytes, user_id: int, password_hash: str) -> str:
    """The device cookie of a browser that signed in to this user with their current password.

    An HMAC, so nobody can make one without the secret key; over the password hash, so that a
    new password makes every earlier one worthless.
    """
    message = f"sign-in device\0{user_id}\0{password_hash}".encode()
    return f"{user_id}.{hmac.new(secret, message, hashlib.sha256).hexdigest()}"


def client_key(address: str) -> str:
    """What the per-address limit counts under: an IPv6 address's /64, any other as it is.

    One IPv6 subscriber is usually given a whole /64: counting single addresses there would let
    one attacker spread guesses over as many addresses as they like.
    """
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[: repository.CLIENT_LENGTH]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def _too_many(limits: SignInLimits) -> TooManyRequests:
    minutes = max(1, int(limits.window.total_seconds() // 60))
    return TooManyRequests(
        "Too many failed sign-ins from your address. Try again in at most "
        f"{minutes} minute{'s' if minutes > 1 else ''}.",
        code="too_many_sign_ins",
    )


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
