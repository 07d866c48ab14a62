"""Fixtures for admin pages: a user, and a test client signed in as that user."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from contacthub.storage.database import Database
from contacthub.users import service as users

EMAIL = "admin@example.com"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def admin_user(database: Database) -> str:
    with database.write() as session:
        users.create_user(session, EMAIL, PASSWORD, "Ada Admin")
    return EMAIL


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def sign_in(client: TestClient, email: str = EMAIL, password: str = PASSWORD) -> str:
    """Sign in through the sign-in form; returns the session's CSRF token."""
    page = client.get("/admin/sign-in")
    response = client.post(
        "/admin/sign-in",
        data={"email": email, "password": password, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    # Every signed-in page carries the session's token (in its sign-out form at least).
    return csrf_of(client.get("/admin/").text)


@pytest.fixture
def admin(client: TestClient, admin_user: str) -> TestClient:
    """The hub's test client, signed in; `admin.csrf` is the token for forms."""
    client.csrf = sign_in(client)  # type: ignore[attr-defined]
    return client
