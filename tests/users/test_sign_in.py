"""Sign-in under parallel load: no write lock during the password check, lock-outs that hold.

Concurrency here is real (threads on their own connections, against SQLite and PostgreSQL) and
coordinated with events, never with sleeps: the password check of one chosen sign-in is held
open by a hasher that waits for the test, so the test knows for certain that it is in progress.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from starlette.testclient import TestClient

from contacthub.channels import service as channels
from contacthub.errors import HubError
from contacthub.storage.database import Database
from contacthub.storage.models import AdminSession, SignInThrottle
from contacthub.users import service as users
from tests.admin.reading import audit_actions

EMAIL = "ada@example.com"
PASSWORD = "correct horse battery staple"
CLIENT = "198.51.100.7"
SECRET = b"test-secret"
# Waits for something that happens at once when the code is right; only a failing test waits.
PATIENCE = 20
NO_CLIENT_LIMIT = users.SignInLimits(max_failures=1_000)


class HeldHasher(PasswordHasher):
    """argon2-cffi's real hasher, except that checking `held` waits until the test lets it go."""

    def __init__(self, held: str) -> None:
        super().__init__()
        self.held = held
        self.checking = threading.Event()
        self.release = threading.Event()
        self.calls: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.calls.append(str(hash))
        if password == self.held:
            self.checking.set()
            assert self.release.wait(PATIENCE), "the test never let the check finish"
        return super().verify(hash, password)


@pytest.fixture
def user(database: Database) -> str:
    with database.write() as session:
        users.create_user(session, EMAIL, PASSWORD)
    return EMAIL


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldHasher]:
    held = HeldHasher(PASSWORD)
    monkeypatch.setattr(users, "_hasher", held)
    yield held
    held.release.set()


def attempt(
    database: Database,
    password: str,
    email: str = EMAIL,
    *,
    client: str = CLIENT,
    limits: users.SignInLimits = NO_CLIENT_LIMIT,
) -> users.SignInSuccess | HubError:
    return users.sign_in(
        database, users.SignInAttempt(email, password, client), secret=SECRET, limits=limits
    )


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run `work` in a thread of its own; its result (or exception) lands in the list."""
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(work())
        except Exception as error:  # handed to the test, which asserts on it
            result.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def locked(database: Database) -> bool:
    with database.read() as session:
        return users.get_user_by_email(session, EMAIL).locked_until is not None


def test_no_write_transaction_is_open_while_the_password_is_checked(
    database: Database, user: str, hasher: HeldHasher
) -> None:
    signing_in, outcome = in_thread(lambda: attempt(database, PASSWORD))
    assert hasher.checking.wait(PATIENCE)

    # The sign-in is inside argon2 now. On SQLite a write transaction would hold the one write
    # lock, and this write (ingest's, or anyone's) would wait for it; on PostgreSQL, a lock on
    # the user's row would hold up this change of the same row.
    def other_writes() -> None:
        with database.write() as session:
            channels.create_channel(session, "Shop")
            users.get_user_by_email(session, EMAIL).name = "Ada"

    writing, written = in_thread(other_writes)
    writing.join(PATIENCE)
    finished_first = not writing.is_alive()
    hasher.release.set()
    signing_in.join(PATIENCE)
    writing.join(PATIENCE)
    assert finished_first, "a write waited for a sign-in's password check"
    assert written == [None]
    assert isinstance(outcome[0], users.SignInSuccess)


def test_a_right_password_checked_while_the_account_becomes_locked_does_not_sign_in(
    database: Database, user: str, hasher: HeldHasher
) -> None:
    signing_in, outcome = in_thread(lambda: attempt(database, PASSWORD))
    assert hasher.checking.wait(PATIENCE)
    # While the right password is being checked, wrong ones lock the account.
    failing, failures = in_thread(
        lambda: [attempt(database, "a wrong password") for _ in range(users.MAX_FAILED_SIGN_INS)]
    )
    failing.join(PATIENCE)
    done_first = not failing.is_alive()
    hasher.release.set()
    signing_in.join(PATIENCE)
    failing.join(PATIENCE)
    assert done_first, "wrong passwords waited for another sign-in's password check"
    assert all(isinstance(f, HubError) for f in failures[0])
    assert locked(database)
    refused = outcome[0]
    assert isinstance(refused, HubError)
    assert refused.code == "invalid_credentials"
    with database.read() as session:
        assert session.scalars(select(AdminSession)).all() == []


def test_a_password_changed_during_the_check_is_not_signed_in_with(
    database: Database, user: str, hasher: HeldHasher
) -> None:
    signing_in, outcome = in_thread(lambda: attempt(database, PASSWORD))
    assert hasher.checking.wait(PATIENCE)
    with database.write() as session:
        users.set_password(session, users.get_user_by_email(session, EMAIL), "a brand new one!")
    hasher.release.set()
    signing_in.join(PATIENCE)
    assert isinstance(outcome[0], HubError)


def test_parallel_wrong_passwords_are_all_counted(database: Database, user: str) -> None:
    burst = 3 * users.MAX_FAILED_SIGN_INS
    start = threading.Barrier(burst)

    def wrong(_: int) -> users.SignInSuccess | HubError:
        start.wait(PATIENCE)
        return attempt(database, "a wrong password")

    with ThreadPoolExecutor(burst) as pool:
        outcomes = list(pool.map(wrong, range(burst)))
    assert all(isinstance(o, HubError) for o in outcomes)
    # The first five wrong passwords locked the account, once; the others found it locked.
    assert locked(database)
    assert audit_actions(database).count((CLIENT, "user.locked", EMAIL)) == 1
    # And every failure counts against the client's address.
    with database.read() as session:
        assert session.get(SignInThrottle, CLIENT).failures == burst  # type: ignore[union-attr]
    assert isinstance(attempt(database, PASSWORD), HubError)


def test_the_client_limit_counts_parallel_failures_and_then_refuses(
    database: Database, user: str
) -> None:
    limits = users.SignInLimits(max_failures=4)
    burst = 8
    start = threading.Barrier(burst)

    def spray(number: int) -> users.SignInSuccess | HubError:
        start.wait(PATIENCE)
        return attempt(database, PASSWORD, f"user{number}@example.com", limits=limits)

    with ThreadPoolExecutor(burst) as pool:
        list(pool.map(spray, range(burst)))
    with database.read() as session:
        assert session.get(SignInThrottle, CLIENT).failures == burst  # type: ignore[union-attr]
    # Even the right password of a real account is refused to this address now...
    refused = attempt(database, PASSWORD, limits=limits)
    assert isinstance(refused, HubError)
    assert refused.code == "too_many_sign_ins"
    assert refused.status_code == 429
    # ...and not to another.
    assert isinstance(attempt(database, PASSWORD, client="192.0.2.1"), users.SignInSuccess)


def test_every_account_refusal_costs_one_check_against_the_same_kind_of_hash(
    database: Database, user: str, hasher: HeldHasher
) -> None:
    hasher.release.set()
    with database.write() as session:
        users.create_user(session, "off@example.com", PASSWORD)
        users.set_enabled(
            session, users.get_user_by_email(session, "off@example.com"), False, acting=None
        )
    for _ in range(users.MAX_FAILED_SIGN_INS):
        attempt(database, "a wrong password")
    assert locked(database)
    cases = [
        (EMAIL, PASSWORD),  # locked, right password
        (EMAIL, "a wrong password"),  # locked, wrong password
        ("nobody@example.com", PASSWORD),  # no such account
        ("off@example.com", PASSWORD),  # disabled
        (EMAIL, "x" * (users.MAX_PASSWORD_LENGTH + 1)),  # too long to be anyone's
    ]
    answers = []
    for email, password in cases:
        hasher.calls.clear()
        refused = attempt(database, password, email)
        assert isinstance(refused, HubError)
        answers.append((refused.status_code, refused.code, refused.message))
        # One argon2 check each, against a hash made with the same parameters.
        assert len(hasher.calls) == 1, email
        assert hasher.calls[0].rsplit("$", 2)[0] == users._DUMMY_HASH.rsplit("$", 2)[0]
    assert set(answers) == {(401, "invalid_credentials", users.REFUSED_MESSAGE)}


def test_a_lock_out_holds_strangers_but_not_the_users_own_browser(
    database: Database, user: str
) -> None:
    signed_in = attempt(database, PASSWORD)
    assert isinstance(signed_in, users.SignInSuccess)
    device = signed_in.device
    for _ in range(users.MAX_FAILED_SIGN_INS):
        attempt(database, "a wrong password", client="203.0.113.66")
    assert locked(database)

    def with_device(cookie: str, password: str = PASSWORD) -> users.SignInSuccess | HubError:
        return users.sign_in(
            database, users.SignInAttempt(EMAIL, password, CLIENT, cookie), secret=SECRET
        )

    assert isinstance(attempt(database, PASSWORD), HubError)  # a browser without the cookie
    forged = device[:-1] + ("1" if device.endswith("0") else "0")
    assert isinstance(with_device(forged), HubError)  # a forged cookie
    assert isinstance(with_device(device, "a wrong password"), HubError)
    assert isinstance(with_device(device), users.SignInSuccess)
    assert locked(database)  # still locked for everyone else
    # A new password makes every device cookie worthless.
    with database.write() as session:
        users.set_password(session, users.get_user_by_email(session, EMAIL), "a brand new one!")
    assert isinstance(with_device(device, "a brand new one!"), users.SignInSuccess)
    for _ in range(users.MAX_FAILED_SIGN_INS):
        attempt(database, "a wrong password", client="203.0.113.66")
    assert isinstance(with_device(device, "a brand new one!"), HubError)


def test_the_client_limit_counts_an_ipv6_subscribers_whole_network(
    database: Database, user: str
) -> None:
    limits = users.SignInLimits(max_failures=2)
    for host in ("2001:db8:1:2::a", "2001:db8:1:2:ffff::b"):
        wrong = attempt(database, "a wrong password", client=host, limits=limits)
        assert isinstance(wrong, HubError)
        assert wrong.code == "invalid_credentials"
    refused = attempt(database, PASSWORD, client="2001:db8:1:2::c", limits=limits)
    assert isinstance(refused, HubError)
    assert refused.code == "too_many_sign_ins"
    # Another network, and an IPv4 client, are counted apart.
    assert isinstance(
        attempt(database, PASSWORD, client="2001:db8:1:3::a", limits=limits), users.SignInSuccess
    )
    assert users.client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert users.client_key("x" * 300) == "x" * 100


def test_a_burst_of_sign_ins_queues_for_one_password_check_at_a_time(
    client: TestClient, user: str, hasher: HeldHasher
) -> None:
    """Sixteen argon2 checks at once took the whole core from ingest and a gigabyte of memory:
    the admin runs one at a time per process (hub.password_checks), the others wait their turn
    on the event loop."""
    page = client.get("/admin/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None

    def post(password: str) -> Any:
        form = {"email": EMAIL, "password": password, "next": "", "csrf_token": token.group(1)}
        return client.post("/admin/sign-in", data=form, follow_redirects=False)

    with ThreadPoolExecutor(2) as pool:
        held = pool.submit(post, PASSWORD)
        assert hasher.checking.wait(PATIENCE)
        limiter = client.app.state.hub.password_checks()  # type: ignore[attr-defined]
        queued = pool.submit(post, "not the password")
        deadline = time.monotonic() + PATIENCE
        while limiter.statistics().tasks_waiting < 1:
            assert time.monotonic() < deadline, "the second sign-in never reached the queue"
            time.sleep(0.01)
        assert len(hasher.calls) == 1  # the second waits for its turn, it is not checking
        hasher.release.set()
        assert held.result(PATIENCE).status_code == 303
        assert queued.result(PATIENCE).status_code == 401
    assert len(hasher.calls) == 2
