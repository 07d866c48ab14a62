"""`public_url`: the origin admin forms must come from, Secure cookies, and the hub's own links.

The hub is reached here as `http://hub.internal:8000` (what it sees from a proxy it does not
trust), while browsers use `https://hub.example.com`. Cookies are handled by hand: a cookie jar
would not send a Secure cookie over the test's plain http.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx2
import pytest
from starlette.testclient import TestClient

from contacthub.app import create_app
from contacthub.settings import Settings
from tests.admin.conftest import EMAIL, PASSWORD, csrf_of
from tests.admin.reading import cookie

PUBLIC = "https://hub.example.com"
INTERNAL = "http://hub.internal:8000"


@pytest.fixture
def hub(settings: Settings, admin_user: str) -> Iterator[TestClient]:
    configured = settings.model_copy(update={"public_url": PUBLIC})
    with TestClient(create_app(configured), base_url=INTERNAL) as client:
        yield client


def sign_in(hub: TestClient) -> dict[str, str]:
    """Sign in as a browser at the public URL would; the headers of its later requests."""
    page = hub.get("/admin/sign-in")
    token, flags = cookie(page, "contacthub_sign_in")
    assert "secure" in flags
    signed_in = hub.post(
        "/admin/sign-in",
        headers={"Origin": PUBLIC, "Cookie": f"contacthub_sign_in={token}"},
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert signed_in.status_code == 303, signed_in.text
    session, flags = cookie(signed_in, "contacthub_session")
    assert "secure" in flags
    hub.cookies.clear()
    return {"Origin": PUBLIC, "Cookie": f"contacthub_session={session}"}


def post(hub: TestClient, headers: dict[str, str], path: str, **data: str) -> httpx2.Response:
    form = hub.get("/admin/", headers=headers)
    return hub.post(
        path,
        headers=headers,
        data={**data, "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    )


def test_forms_must_come_from_the_public_origin(hub: TestClient) -> None:
    headers = sign_in(hub)
    added = post(hub, headers, "/admin/cors", origin="https://www.example.com")
    assert added.status_code == 303, added.text
    _, flags = cookie(added, "contacthub_flash")
    assert "secure" in flags

    # The address the request arrived at is not where browsers are: refused as another site.
    internal = {**headers, "Origin": INTERNAL}
    refused = post(hub, internal, "/admin/cors", origin="https://shop.example.com")
    assert refused.status_code == 403
    assert "did not come from this site" in refused.text


def test_the_preview_points_its_links_at_the_public_url(hub: TestClient) -> None:
    headers = sign_in(hub)
    newsletter = post(
        hub,
        headers,
        "/admin/newsletters/new",
        name="Weekly",
        sender_name="The Team",
        sender_email="news@example.com",
        base_url="https://www.example.com",
    )
    assert newsletter.status_code == 303, newsletter.text
    issue = post(
        hub,
        headers,
        "/admin/issues/new",
        newsletter="Weekly",
        subject="Spring news",
        html_body='<p><a href="https://www.example.com/spring">Spring</a></p>',
    )
    assert issue.status_code == 303, issue.text
    preview = hub.get(f"{issue.headers['location']}/preview", headers=headers)
    links = re.findall(r'href="([^"]*Redirect\.ashx[^"]*)"', preview.text)
    assert links
    assert all(link.startswith(f"{PUBLIC}/") for link in links), links
