"""Signing in and out, and the guards every admin page shares: sign-in, CSRF, headers."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.routing import BaseRoute, Mount, Route
from starlette.testclient import TestClient

from contacthub.admin.auth import DEVICE_COOKIE, SIGN_IN_CSRF_COOKIE, _form_token
from contacthub.admin.web import SESSION_COOKIE, SIGN_IN_PATH
from contacthub.app import create_app
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.users import service as users
from tests.admin.conftest import EMAIL, PASSWORD, csrf_of, sign_in
from tests.admin.reading import audit_actions

SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def attempt(client: TestClient, email: str, password: str, next_path: str = "") -> Any:
    """Post the sign-in form as a browser does (after loading it)."""
    page = client.get("/admin/sign-in")
    return client.post(
        "/admin/sign-in",
        data={
            "email": email,
            "password": password,
            "next": next_path,
            "csrf_token": csrf_of(page.text),
        },
        follow_redirects=False,
    )


def admin_routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """(path, methods) of every admin page route of the app, mounts included."""
    for route in routes:
        if isinstance(route, Mount):
            if route.path != "/admin/static":
                yield from admin_routes(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            path = prefix + route.path
            if path.startswith("/admin") and path != SIGN_IN_PATH:
                yield path, set(route.methods or ())


def concrete(path: str) -> str:
    """A route's path with a value in each parameter."""
    return re.sub(r"\{[^}]+\}", "1", path)


def assert_security_headers(answer: Any) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers.get(name) == value, (answer.url, name)
    policy = answer.headers.get("content-security-policy", "")
    for directive in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"):
        assert directive in policy, (answer.url, policy)
    assert "unsafe-inline" not in policy


def test_sign_in_and_go_to_the_dashboard(
    client: TestClient, admin_user: str, database: Database
) -> None:
    answer = attempt(client, EMAIL.upper(), PASSWORD)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/"
    cookie = answer.headers["set-cookie"]
    assert f"{SESSION_COOKIE}=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert client.get("/admin/", follow_redirects=False).status_code == 200
    assert (EMAIL, "user.signed_in", "") in audit_actions(database)
    with database.read() as session:
        assert users.get_user_by_email(session, EMAIL).last_sign_in_at is not None


def test_a_wrong_password_is_refused_with_a_message(client: TestClient, admin_user: str) -> None:
    for email, password in [(EMAIL, "not the password"), ("nobody@example.com", PASSWORD)]:
        answer = attempt(client, email, password)
        assert answer.status_code == 401
        # The same words whether the address exists or not.
        assert "Wrong email address or password." in answer.text
        assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
        # The address typed comes back; the password does not.
        assert f'value="{email}"' in answer.text
        assert password not in answer.text
    assert client.get("/admin/", follow_redirects=False).status_code == 303


def test_five_failures_lock_the_account(
    client: TestClient, admin_user: str, database: Database
) -> None:
    for _ in range(users.MAX_FAILED_SIGN_INS):
        assert attempt(client, EMAIL, "wrong password").status_code == 401
    assert ("testclient", "user.locked", EMAIL) in audit_actions(database)
    locked = attempt(client, EMAIL, PASSWORD)
    assert locked.status_code == 401
    # The same words as a wrong password: the lock does not tell that the account exists.
    assert users.REFUSED_MESSAGE in locked.text
    assert client.get("/admin/", follow_redirects=False).status_code == 303


def test_four_failures_then_the_right_password_start_again(
    client: TestClient, admin_user: str, database: Database
) -> None:
    for _ in range(users.MAX_FAILED_SIGN_INS - 1):
        attempt(client, EMAIL, "wrong password")
    assert attempt(client, EMAIL, PASSWORD).status_code == 303
    with database.read() as session:
        assert users.get_user_by_email(session, EMAIL).failed_sign_ins == 0


def test_a_disabled_user_cannot_sign_in(
    client: TestClient, admin_user: str, database: Database
) -> None:
    with database.write() as session:
        users.create_user(session, "other@example.com", "another long password")
        users.set_enabled(session, users.get_user_by_email(session, EMAIL), False, acting=None)
    answer = attempt(client, EMAIL, PASSWORD)
    assert answer.status_code == 401
    assert "Wrong email address or password." in answer.text


@pytest.mark.parametrize(
    ("next_path", "expected"),
    [
        ("/admin/consents?x=1", "/admin/consents?x=1"),
        ("https://evil.example", "/admin/"),
        ("https://evil.example/admin/", "/admin/"),
        ("//evil.example", "/admin/"),
        ("//evil.example/admin", "/admin/"),
        ("/\\evil.example", "/admin/"),
        ("/admin\\@evil.example", "/admin/"),
        ("javascript:alert(1)", "/admin/"),
        ("/elsewhere", "/admin/"),
        ("", "/admin/"),
    ],
)
def test_next_goes_only_inside_the_admin(
    client: TestClient, admin_user: str, next_path: str, expected: str
) -> None:
    answer = attempt(client, EMAIL, PASSWORD, next_path)
    assert answer.status_code == 303
    assert answer.headers["location"] == expected


def test_the_sign_in_page_carries_next_escaped(client: TestClient) -> None:
    page = client.get('/admin/sign-in?next=/admin/x"><script>alert(1)</script>')
    assert "<script>alert" not in page.text
    assert 'name="next" value="/admin/x&#34;&gt;&lt;script&gt;' in page.text


def test_signed_out_pages_send_the_browser_to_sign_in_and_back(
    client: TestClient, admin_user: str
) -> None:
    answer = client.get("/admin/consents?sort=name", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/sign-in?next=%2Fadmin%2Fconsents%3Fsort%3Dname"
    page = client.get(answer.headers["location"])
    assert 'name="next" value="/admin/consents?sort=name"' in page.text
    assert attempt(client, EMAIL, PASSWORD, "/admin/consents?sort=name").headers["location"] == (
        "/admin/consents?sort=name"
    )


def test_sign_out_makes_the_session_cookie_worthless(client: TestClient, admin_user: str) -> None:
    csrf = sign_in(client)
    cookie = client.cookies.get(SESSION_COOKIE)
    assert cookie
    answer = client.post("/admin/sign-out", data={"csrf_token": csrf}, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == SIGN_IN_PATH
    # A browser (or a thief) that kept the old cookie gets nothing with it.
    replay = TestClient(client.app, cookies={SESSION_COOKIE: cookie})
    answer = replay.get("/admin/", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith(SIGN_IN_PATH)


def test_sign_out_needs_the_csrf_token(client: TestClient, admin_user: str) -> None:
    sign_in(client)
    answer = client.post("/admin/sign-out", data={}, follow_redirects=False)
    assert answer.status_code == 403
    assert client.get("/admin/", follow_redirects=False).status_code == 200


def test_sign_in_needs_its_csrf_cookie(client: TestClient, admin_user: str) -> None:
    page = client.get("/admin/sign-in")
    token = csrf_of(page.text)
    form = {"email": EMAIL, "password": PASSWORD, "csrf_token": token}
    # Another site's form: the browser has no (or another) sign-in cookie.
    stranger = TestClient(client.app)
    answer = stranger.post("/admin/sign-in", data=form, follow_redirects=False)
    assert answer.status_code == 403
    assert "The sign-in form expired" in answer.text
    # The cookie without the token in the form, or with another token, is refused too.
    for presented in ("", "not-the-token"):
        answer = client.post(
            "/admin/sign-in", data={**form, "csrf_token": presented}, follow_redirects=False
        )
        assert answer.status_code == 403
    assert client.get("/admin/", follow_redirects=False).status_code == 303


def test_the_route_walk_finds_the_admin(client: TestClient) -> None:
    # Guard against a walk that silently finds nothing (and so checks nothing).
    found = {path for path, _ in admin_routes(list(client.app.routes))}  # type: ignore[attr-defined]
    assert {
        "/admin/",
        "/admin/sign-out",
        "/admin/consents",
        "/admin/consents/{code}",
        "/admin/activity-types",
        "/admin/users",
        "/admin/tokens",
    } <= found


def test_every_admin_page_asks_to_sign_in(client: TestClient, database: Database) -> None:
    checked = 0
    for path, methods in admin_routes(list(client.app.routes)):  # type: ignore[attr-defined]
        url = concrete(path)
        if "GET" in methods:
            answer = client.get(url, follow_redirects=False)
            assert answer.status_code == 303, url
            assert answer.headers["location"].startswith(f"{SIGN_IN_PATH}?next="), url
            assert_security_headers(answer)
            checked += 1
        if "POST" in methods:
            answer = client.post(url, data={"csrf_token": "x"}, follow_redirects=False)
            assert answer.status_code == 303, url
            assert answer.headers["location"].startswith(SIGN_IN_PATH), url
            checked += 1
    assert checked >= 7


def test_every_admin_change_needs_the_csrf_token(admin: TestClient, database: Database) -> None:
    before = audit_actions(database)
    checked = 0
    for path, methods in admin_routes(list(admin.app.routes)):  # type: ignore[attr-defined]
        if "POST" not in methods:
            continue
        url = concrete(path)
        for data in ({}, {"csrf_token": "forged"}):
            answer = admin.post(url, data=data, follow_redirects=False)
            assert answer.status_code == 403, (url, data)
            assert_security_headers(answer)
        checked += 1
    assert checked >= 5
    # Nothing was changed (nor recorded).
    assert audit_actions(database) == before
    assert admin.get("/admin/", follow_redirects=False).status_code == 200


def test_a_form_from_another_origin_is_refused(admin: TestClient, database: Database) -> None:
    answer = admin.post(
        "/admin/activity-types",
        data={"code_name": "quiz", "display_name": "Quiz", "csrf_token": admin.csrf},  # type: ignore[attr-defined]
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert answer.status_code == 403
    assert "activity_type.created" not in [a[1] for a in audit_actions(database)]


def test_security_headers_on_every_kind_of_answer(admin: TestClient) -> None:
    answers = [
        admin.get("/admin/consents"),  # a page
        admin.get("/admin/consents/Nope"),  # an error page
        admin.post("/admin/tokens", data={}, follow_redirects=False),  # a refused form
        TestClient(admin.app).get("/admin/sign-in"),  # the sign-in page
        TestClient(admin.app).get("/admin/users", follow_redirects=False),  # signed out
    ]
    assert [a.status_code for a in answers] == [200, 404, 403, 200, 303]
    for answer in answers:
        assert_security_headers(answer)


def refusal_page(answer: Any) -> str:
    """A sign-in answer's page without what changes from one answer to the next."""
    page = re.sub(r'name="csrf_token" value="[^"]*"', "", answer.text)
    return re.sub(r'name="email" type="email" value="[^"]*"', "", page)


def test_a_locked_account_answers_as_an_unknown_address(
    client: TestClient, admin_user: str
) -> None:
    first_wrong = attempt(client, EMAIL, "not the password")
    for _ in range(users.MAX_FAILED_SIGN_INS - 1):
        attempt(client, EMAIL, "not the password")
    answers = [
        first_wrong,
        attempt(client, EMAIL, PASSWORD),  # locked, right password
        attempt(client, EMAIL, "not the password"),  # locked, wrong password
        attempt(client, "nobody@example.com", PASSWORD),  # no account
    ]
    assert {a.status_code for a in answers} == {401}
    assert len({refusal_page(a) for a in answers}) == 1
    assert users.REFUSED_MESSAGE in answers[0].text


def test_the_sign_in_token_is_bound_to_its_cookie_with_the_secret_key(
    client: TestClient, admin_user: str
) -> None:
    form = {"email": EMAIL, "password": PASSWORD}

    def post(browser: TestClient, token: str) -> int:
        data = {**form, "csrf_token": token}
        return browser.post(SIGN_IN_PATH, data=data, follow_redirects=False).status_code

    # A cookie of the attacker's choosing, repeated in the form.
    assert post(TestClient(client.app, cookies={SIGN_IN_CSRF_COOKIE: "a"}), "a") == 403
    # The token of one browser's form with another browser's cookie.
    issued = csrf_of(client.get(SIGN_IN_PATH).text)
    other = TestClient(client.app)
    other.get(SIGN_IN_PATH)
    assert post(other, issued) == 403
    # A pair made long ago, with the right key: too old.
    old = f"{int(time.time()) - 3 * 3600}.abc"
    stale = TestClient(client.app, cookies={SIGN_IN_CSRF_COOKIE: old})
    assert post(stale, _form_token(b"test-secret", old)) == 403
    # A recent pair made with the key passes (so the refusals above were for the right reason).
    fresh = f"{int(time.time())}.abc"
    browser = TestClient(client.app, cookies={SIGN_IN_CSRF_COOKIE: fresh})
    assert post(browser, _form_token(b"test-secret", fresh)) == 303


def test_sign_in_from_another_origin_is_refused(client: TestClient, admin_user: str) -> None:
    for origin in ("https://evil.example", "null"):
        page = client.get(SIGN_IN_PATH)
        answer = client.post(
            SIGN_IN_PATH,
            data={"email": EMAIL, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
            headers={"Origin": origin},
            follow_redirects=False,
        )
        assert answer.status_code == 403, origin
        assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    page = client.get(SIGN_IN_PATH)
    answer = client.post(
        SIGN_IN_PATH,
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
        headers={"Origin": "http://testserver"},
        follow_redirects=False,
    )
    assert answer.status_code == 303


def test_the_per_address_limit_holds_across_workers(settings: Settings, admin_user: str) -> None:
    limited = settings.model_copy(update={"sign_in_max_failures_per_client": 3})
    # Two apps on one database: two worker processes share nothing else.
    with (
        TestClient(create_app(limited), client=("203.0.113.9", 4000)) as one,
        TestClient(create_app(limited), client=("203.0.113.9", 4001)) as two,
    ):
        # Password spraying: one guess at each of several addresses.
        for number, browser in enumerate([one, two, one]):
            assert attempt(browser, f"user{number}@example.com", PASSWORD).status_code == 401
        refused = attempt(two, EMAIL, PASSWORD)
        assert refused.status_code == 429
        assert "Too many failed sign-ins from your address" in refused.text
        assert SESSION_COOKIE not in refused.headers.get("set-cookie", "")
        with TestClient(create_app(limited), client=("192.0.2.10", 4002)) as elsewhere:
            assert attempt(elsewhere, EMAIL, PASSWORD).status_code == 303


def test_a_lock_out_from_elsewhere_does_not_keep_the_user_out(
    settings: Settings, admin_user: str
) -> None:
    with (
        TestClient(create_app(settings), client=("192.0.2.10", 4000)) as own,
        TestClient(create_app(settings), client=("203.0.113.9", 4000)) as attacker,
    ):
        answer = attempt(own, EMAIL, PASSWORD)
        assert answer.status_code == 303
        device = next(c for c in answer.headers.get_list("set-cookie") if DEVICE_COOKIE in c)
        assert "HttpOnly" in device
        assert "SameSite=strict" in device
        assert f"Path={SIGN_IN_PATH}" in device
        own.post("/admin/sign-out", data={"csrf_token": csrf_of(own.get("/admin/").text)})
        for _ in range(users.MAX_FAILED_SIGN_INS):
            attempt(attacker, EMAIL, "not the password")
        # Locked for the attacker, even with the right password; not for the user's browser.
        assert attempt(attacker, EMAIL, PASSWORD).status_code == 401
        assert attempt(own, EMAIL, PASSWORD).status_code == 303
