"""Sign-in against real `contacthub serve` processes: two workers, parallel browsers."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest

from contacthub.storage.database import Database
from contacthub.storage.models import SignInThrottle
from contacthub.users import service as users
from tests.admin.reading import audit_actions
from tests.servers import running_hub

EMAIL = "ada@example.com"
PASSWORD = "correct horse battery staple"
BROWSERS = 16


def sign_in(base_url: str, password: str, start: threading.Barrier | None = None) -> int:
    """Load the sign-in page and post it, as a browser does; the answer's status."""
    with httpx2.Client(base_url=base_url, timeout=60) as browser:
        page = browser.get("/admin/sign-in")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        if start is not None:
            start.wait(60)
        form = {"email": EMAIL, "password": password, "csrf_token": token.group(1)}
        return browser.post("/admin/sign-in", data=form).status_code


@pytest.mark.slow
def test_parallel_wrong_passwords_on_two_workers_are_all_counted(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    with database.write() as session:
        users.create_user(session, EMAIL, PASSWORD)
    database.dispose()
    env = {"CONTACTHUB_SIGN_IN_MAX_FAILURES_PER_CLIENT": "1000"}
    with running_hub(database_url, tmp_path / "hub.log", workers=2, env=env) as server:
        start = threading.Barrier(BROWSERS)
        with ThreadPoolExecutor(BROWSERS) as pool:
            statuses = list(
                pool.map(
                    lambda _: sign_in(server.base_url, "a wrong password", start), range(BROWSERS)
                )
            )
        assert statuses == [401] * BROWSERS
        # Locked, once, by the first five; the right password is refused now.
        assert sign_in(server.base_url, PASSWORD) == 401
    assert audit_actions(database).count(("127.0.0.1", "user.locked", EMAIL)) == 1
    with database.read() as session:
        assert users.get_user_by_email(session, EMAIL).locked_until is not None
        # Every failure was counted against the address, whichever worker answered it.
        assert session.get(SignInThrottle, "127.0.0.1").failures == BROWSERS  # type: ignore[union-attr]
