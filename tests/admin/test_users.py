"""The Users & tokens pages: users, passwords, enable/disable, API tokens shown once."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from starlette.testclient import TestClient

from contacthub.storage.database import Database
from contacthub.storage.models import AdminToken
from contacthub.users import service as users
from tests import factories
from tests.admin.conftest import EMAIL, sign_in
from tests.admin.reading import audit_actions, field_error

PAGE = "/admin/users"
OTHER = "bob@example.com"
OTHER_PASSWORD = "another long password"


def post(admin: TestClient, path: str, **data: str) -> Any:
    return admin.post(path, data={**data, "csrf_token": admin.csrf}, follow_redirects=False)  # type: ignore[attr-defined]


def user_id(database: Database, email: str) -> int:
    with database.read() as session:
        return users.get_user_by_email(session, email).id


def other_user(database: Database) -> int:
    with database.write() as session:
        return users.create_user(session, OTHER, OTHER_PASSWORD, "Bob").id


def browser(admin: TestClient) -> TestClient:
    """Another browser on the same running hub (its own cookies)."""
    return TestClient(admin.app)


def can_sign_in(admin: TestClient, email: str, password: str) -> bool:
    other = browser(admin)
    page = other.get("/admin/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    answer = other.post(
        "/admin/sign-in",
        data={"email": email, "password": password, "csrf_token": token.group(1)},
        follow_redirects=False,
    )
    return answer.status_code == 303


def row_of(page: str, email: str) -> str:
    match = re.search(
        rf"<tr>\s*<td><a href=\"/admin/users/\d+\">{re.escape(email)}</a>.*?</tr>", page, re.S
    )
    assert match, f"no row for {email}"
    return match.group(0)


def test_signed_out_every_users_page_asks_to_sign_in(
    client: TestClient, database: Database
) -> None:
    other = other_user(database)
    for path in (PAGE, f"{PAGE}/{other}"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/admin/sign-in?next=")
    for path in (PAGE, f"{PAGE}/{other}/disable", "/admin/tokens"):
        answer = client.post(path, data={"email": "x@example.com"}, follow_redirects=False)
        assert answer.headers["location"].startswith("/admin/sign-in")
    with database.read() as session:
        assert users.get_user(session, other).enabled
        assert users.list_tokens(session) == []


def test_the_list_shows_users_and_their_status(admin: TestClient, database: Database) -> None:
    other_user(database)
    page = admin.get(PAGE)
    assert page.status_code == 200
    mine = row_of(page.text, EMAIL)
    assert "you" in mine
    assert "enabled" in mine
    assert "never" not in mine  # signed in just now
    assert "/disable" not in mine  # nobody disables themselves
    theirs = row_of(page.text, OTHER)
    assert "Bob" in theirs
    assert "never" in theirs
    assert f"/admin/users/{user_id(database, OTHER)}/disable" in theirs
    assert "No API tokens yet." in page.text


def test_a_locked_user_shows_until_when(admin: TestClient, database: Database) -> None:
    other_user(database)
    for _ in range(users.MAX_FAILED_SIGN_INS):
        factories.sign_in(database, OTHER, "wrong password!")
    with database.read() as session:
        until = users.get_user_by_email(session, OTHER).locked_until
    assert until is not None
    assert f"locked until {until:%Y-%m-%d %H:%M} UTC" in row_of(admin.get(PAGE).text, OTHER)


def test_create_a_user_who_can_then_sign_in(admin: TestClient, database: Database) -> None:
    answer = post(admin, PAGE, email="Carol@Example.com", name="Carol", password="twelve chars!")
    assert answer.status_code == 303
    page = admin.get(PAGE).text
    assert "User carol@example.com created" in page
    assert "Carol" in row_of(page, "carol@example.com")
    assert can_sign_in(admin, "carol@example.com", "twelve chars!")
    assert (EMAIL, "user.created", "carol@example.com") in audit_actions(database)


def test_create_user_errors_show_next_to_their_fields(
    admin: TestClient, database: Database
) -> None:
    cases = [
        ({"email": "new@example.com", "password": "short"}, "password", "12 to 1024"),
        ({"email": "not an address", "password": "long enough pass"}, "email", ""),
        ({"email": EMAIL.upper(), "password": "long enough pass"}, "email", "already exists"),
        (
            {"email": "new@example.com", "password": "long enough pass", "name": "n" * 101},
            "name",
            "at most 100 characters",
        ),
    ]
    for data, field, message in cases:
        answer = post(admin, PAGE, **data)
        assert answer.status_code == 400, data
        shown = field_error(answer.text, field)
        assert shown is not None, data
        assert message in shown, (data, shown)
        # The address typed comes back, the password never does.
        assert f'value="{data["email"]}"' in answer.text
        assert data["password"] not in answer.text
    with database.read() as session:
        assert [u.email for u in users.list_users(session)] == [EMAIL]


def test_user_names_are_escaped(admin: TestClient, database: Database) -> None:
    with database.write() as session:
        users.create_user(session, OTHER, OTHER_PASSWORD, "<script>alert(1)</script>")
    for path in (PAGE, f"{PAGE}/{user_id(database, OTHER)}"):
        page = admin.get(path).text
        assert "<script>alert" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_disable_and_enable_a_user(admin: TestClient, database: Database) -> None:
    other = other_user(database)
    their_browser = browser(admin)
    sign_in(their_browser, OTHER, OTHER_PASSWORD)
    assert their_browser.get("/admin/users", follow_redirects=False).status_code == 200
    answer = post(admin, f"{PAGE}/{other}/disable")
    assert answer.status_code == 303
    assert "bob@example.com is disabled" in admin.get(PAGE).text
    assert "disabled" in row_of(admin.get(PAGE).text, OTHER)
    # Signed out at once, and cannot sign in again.
    assert their_browser.get("/admin/users", follow_redirects=False).status_code == 303
    assert not can_sign_in(admin, OTHER, OTHER_PASSWORD)
    assert post(admin, f"{PAGE}/{other}/enable").status_code == 303
    assert can_sign_in(admin, OTHER, OTHER_PASSWORD)
    actions = [a[1:] for a in audit_actions(database) if a[0] == EMAIL]
    assert ("user.disabled", OTHER) in actions
    assert ("user.enabled", OTHER) in actions


def test_nobody_disables_themselves(admin: TestClient, database: Database) -> None:
    other_user(database)
    answer = post(admin, f"{PAGE}/{user_id(database, EMAIL)}/disable")
    assert answer.status_code == 400
    assert "You cannot disable yourself." in answer.text
    with database.read() as session:
        assert users.get_user_by_email(session, EMAIL).enabled
    assert admin.get(PAGE).status_code == 200  # still signed in


def test_unknown_users_are_not_found(admin: TestClient) -> None:
    for path in (f"{PAGE}/999", f"{PAGE}/abc", f"{PAGE}/99999999999999999999"):
        assert admin.get(path).status_code == 404, path
    assert post(admin, f"{PAGE}/999/disable").status_code == 404
    assert post(admin, f"{PAGE}/999/password", password="long enough pass").status_code == 404


def test_set_another_users_password(admin: TestClient, database: Database) -> None:
    other = other_user(database)
    page = admin.get(f"{PAGE}/{other}")
    assert page.status_code == 200
    assert "Set a new password" in page.text
    refused = post(admin, f"{PAGE}/{other}/password", password="too short")
    assert refused.status_code == 400
    assert "12 to 1024" in (field_error(refused.text, "password") or "")
    answer = post(admin, f"{PAGE}/{other}/password", password="a brand new password")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{PAGE}/{other}"
    assert "New password set for bob@example.com" in admin.get(answer.headers["location"]).text
    assert not can_sign_in(admin, OTHER, OTHER_PASSWORD)
    assert can_sign_in(admin, OTHER, "a brand new password")
    assert (EMAIL, "user.password_set", OTHER) in audit_actions(database)


def test_setting_your_own_password_signs_you_out(admin: TestClient, database: Database) -> None:
    mine = user_id(database, EMAIL)
    answer = post(admin, f"{PAGE}/{mine}/password", password="my new long password")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/sign-in"
    assert admin.get(PAGE, follow_redirects=False).status_code == 303
    assert can_sign_in(admin, EMAIL, "my new long password")


def create_token(admin: TestClient, **data: str) -> Any:
    return post(admin, "/admin/tokens", **data)


def test_a_new_token_is_shown_once_and_works(admin: TestClient, database: Database) -> None:
    answer = create_token(admin, token_name="deploy")
    assert answer.status_code == 200
    secret = re.search(r'<div class="secret".*?</div>', answer.text, re.S)
    assert secret
    token = re.search(r"<code>(cht_[A-Za-z0-9_\-]+)</code>", secret.group(0))
    assert token
    plaintext = token.group(1)
    assert "only time it is shown" in secret.group(0)
    # It works on the management API, as the signed-in user.
    api = admin.get("/api/users", headers={"Authorization": f"Bearer {plaintext}"})
    assert api.status_code == 200
    # Nothing shows it again; only its prefix is listed.
    page = admin.get(PAGE).text
    assert plaintext not in page
    assert 'class="secret"' not in page
    assert f"<code>{plaintext[:12]}…</code>" in page
    with database.read() as session:
        stored = session.scalars(select(AdminToken)).one()
        assert plaintext not in (stored.token_hash, stored.prefix)
        assert stored.user_id == user_id(database, EMAIL)
        assert stored.name == "deploy"
    assert (EMAIL, "token.created", plaintext[:12]) in audit_actions(database)


def test_a_token_with_an_expiry(admin: TestClient, database: Database) -> None:
    day = (datetime.now(UTC) + timedelta(days=30)).date()
    assert create_token(admin, token_name="ci", expires_at=day.isoformat()).status_code == 200
    with database.read() as session:
        expires_at = session.scalars(select(AdminToken)).one().expires_at
    assert expires_at == datetime(day.year, day.month, day.day, tzinfo=UTC)
    assert f"{day.isoformat()} 00:00 UTC" in admin.get(PAGE).text


def test_token_errors_show_next_to_their_fields(admin: TestClient, database: Database) -> None:
    cases = [
        ({"expires_at": "2020-01-01"}, "expires_at", "The expiry must be in the future."),
        ({"expires_at": "31/12/2099"}, "expires_at", "The expiry is a date: YYYY-MM-DD."),
        ({"token_name": "n" * 101}, "token_name", "at most 100 characters"),
    ]
    for data, field, message in cases:
        answer = create_token(admin, **data)
        assert answer.status_code == 400, data
        assert message in (field_error(answer.text, field) or ""), data
        assert 'class="secret"' not in answer.text
    # The new-user form's own `name` field shows no error.
    answer = create_token(admin, token_name="n" * 101)
    assert '<div class="error" id="e-name">' not in answer.text
    with database.read() as session:
        assert users.list_tokens(session) == []


def test_revoke_a_token(admin: TestClient, database: Database) -> None:
    answer = create_token(admin, token_name="deploy")
    token = re.search(r"<code>(cht_[A-Za-z0-9_\-]+)</code>", answer.text)
    assert token
    headers = {"Authorization": f"Bearer {token.group(1)}"}
    with database.read() as session:
        token_id = users.list_tokens(session)[0].id
    assert post(admin, f"/admin/tokens/{token_id}/revoke").status_code == 303
    page = admin.get(PAGE).text
    assert "is revoked" in page
    assert 'badge-danger">revoked' in page
    refused = admin.get("/api/users", headers=headers)
    assert refused.status_code == 401
    assert refused.json()["code"] == "token_revoked"
    assert post(admin, "/admin/tokens/999/revoke").status_code == 404
    assert (EMAIL, "token.revoked", token.group(1)[:12]) in audit_actions(database)
