"""Fixtures for the management API: an admin user with a token, and headers that carry it."""

from __future__ import annotations

import pytest

from contacthub.storage.database import Database
from contacthub.users import service as users


@pytest.fixture
def api_headers(database: Database) -> dict[str, str]:
    """`Authorization` for a token of a fresh admin user (api@example.com)."""
    with database.write() as session:
        user = users.create_user(session, "api@example.com", "a long enough password")
        token = users.create_token(session, user, "tests").plaintext
    return {"Authorization": f"Bearer {token}"}
