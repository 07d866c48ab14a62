"""The website-side facade against a real hub (`contacthub serve` on a free port).

The facade runs in-process (Starlette's TestClient) or, for its command, as its own process;
either way it calls the real hub over HTTP with a real `email` API key.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from contacthub.email.compose import BROWSER_VIEW_PATH, CLICK_PATH, OPEN_PATH, UNSUBSCRIBE_PATH
from contacthub.email.facade import create_facade_app
from contacthub.email.hashing import LinkSigner, Purpose
from contacthub.email.pages import PIXEL_GIF
from contacthub.errors import InvalidInput
from contacthub.storage.database import Database
from tests import factories
from tests.email.tracking_support import (
    ANNA,
    SALE,
    SentIssue,
    logged,
    params,
    sent_issue,
    subscriber_status,
    url,
)
from tests.servers import HubServer, contacthub_command, free_port, running_hub

pytestmark = pytest.mark.slow

SIGNER = LinkSigner(["test-secret-for-servers"])  # the secret tests/servers.py gives the hub
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"


@pytest.fixture
def sent(database_url: str) -> SentIssue:
    database = Database(database_url)
    try:
        return sent_issue(database)
    finally:
        database.dispose()


@pytest.fixture
def hub(database_url: str, tmp_path: Path, sent: SentIssue) -> Iterator[HubServer]:
    with running_hub(database_url, tmp_path / "hub.log") as server:
        yield server


@pytest.fixture
def email_key(database_url: str, sent: SentIssue) -> str:
    database = Database(database_url)
    try:
        return factories.tracking_channel(database, "Website", access="email").key
    finally:
        database.dispose()


@pytest.fixture
def facade(hub: HubServer, email_key: str) -> Iterator[TestClient]:
    app = create_facade_app(hub.base_url, email_key)
    with TestClient(app, headers={"User-Agent": BROWSER}) as client:
        yield client


def test_the_pixel_logs_the_open_through_the_hub(
    facade: TestClient, database: Database, sent: SentIssue
) -> None:
    answer = facade.get(url(OPEN_PATH, params(SIGNER, Purpose.OPEN, sent.guid, ANNA)))
    assert answer.status_code == 200
    assert answer.content == PIXEL_GIF
    assert "no-store" in answer.headers["cache-control"]
    assert logged(database).opens == [(sent.subscriber_ids[ANNA], False, None)]


def test_a_bad_pixel_is_still_the_pixel(
    facade: TestClient, database: Database, sent: SentIssue
) -> None:
    for query in ("", "issueguid=nope", f"issueguid={sent.guid}&recipient={ANNA}&hash=00"):
        answer = facade.get(f"{OPEN_PATH}?{query}")
        assert answer.status_code == 200
        assert answer.content == PIXEL_GIF
    assert logged(database).opens == []


def test_a_head_request_reaches_the_hub_as_one(
    facade: TestClient, database: Database, sent: SentIssue
) -> None:
    facade.head(url(OPEN_PATH, params(SIGNER, Purpose.OPEN, sent.guid, ANNA)))
    assert logged(database).opens[0][1:] == (True, "HEAD request")


def test_the_click_redirects_to_the_target_the_hub_answers(
    facade: TestClient, database: Database, sent: SentIssue
) -> None:
    link = url(CLICK_PATH, params(SIGNER, Purpose.CLICK, sent.links[SALE], ANNA))
    answer = facade.get(link, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "https://shop.example.com/spring?name=Anna"
    assert len(logged(database).clicks) == 1
    forged = facade.get(
        f"{CLICK_PATH}?linkguid={sent.links[SALE]}&email={ANNA}&hash={'a' * 64}"
        "&url=https://evil.example",
        follow_redirects=False,
    )
    assert forged.status_code == 303
    assert forged.headers["location"] == "https://shop.example.com/spring?name="
    assert len(logged(database).clicks) == 1


@pytest.mark.parametrize(
    ("query", "status"),
    [("linkguid=c9fe0cee-7066-4017-b31c-6e98c0cf4bb3&email=a@b.c&hash=x", 404), ("", 400)],
)
def test_click_errors_are_pages(facade: TestClient, query: str, status: int) -> None:
    answer = facade.get(f"{CLICK_PATH}?{query}", follow_redirects=False)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("text/html")


def test_view_in_browser_through_the_facade(facade: TestClient, sent: SentIssue) -> None:
    good = params(SIGNER, Purpose.BROWSER_VIEW, sent.guid, ANNA)
    answer = facade.get(url(BROWSER_VIEW_PATH, good))
    assert answer.status_code == 200
    assert "Hello Anna" in answer.text
    assert answer.headers["referrer-policy"] == "no-referrer"
    bad = {**good, "hash": SIGNER.sign(Purpose.OPEN, sent.guid, ANNA)}
    refused = facade.get(url(BROWSER_VIEW_PATH, bad))
    assert refused.status_code == 403
    assert "Anna" not in refused.text


def test_unsubscribe_through_the_facade(
    facade: TestClient, database: Database, sent: SentIssue
) -> None:
    page = url(UNSUBSCRIBE_PATH, params(SIGNER, Purpose.UNSUBSCRIBE, sent.guid, ANNA))
    asked = facade.get(page)
    assert asked.status_code == 200
    assert "Unsubscribe?" in asked.text
    assert subscriber_status(database, ANNA)[0] == "subscribed"
    nothing = facade.post(page, data={"unsubscribe": "yes"})
    assert nothing.status_code == 400
    assert subscriber_status(database, ANNA)[0] == "subscribed"
    done = facade.post(
        page,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert done.status_code == 200
    assert "You are unsubscribed" in done.text
    assert subscriber_status(database, ANNA)[0] == "unsubscribed"


def test_a_facade_with_a_wrong_key_fails_closed_and_says_why(
    hub: HubServer, database: Database, sent: SentIssue, caplog: pytest.LogCaptureFixture
) -> None:
    tracking_key = factories.tracking_channel(database, "App", access="tracking").key
    with TestClient(create_facade_app(hub.base_url, tracking_key)) as client:
        pixel = client.get(url(OPEN_PATH, params(SIGNER, Purpose.OPEN, sent.guid, ANNA)))
        assert pixel.content == PIXEL_GIF
        with caplog.at_level(logging.ERROR, logger="contacthub.email.facade"):
            link = url(CLICK_PATH, params(SIGNER, Purpose.CLICK, sent.links[SALE], ANNA))
            click = client.get(link, follow_redirects=False)
    assert click.status_code == 502
    assert "tracking" not in click.text  # the key's details are for the log, not the visitor
    assert "refused the API key" in caplog.text
    assert logged(database).opens == []


def test_a_facade_whose_hub_is_away_still_answers_the_pixel(sent: SentIssue) -> None:
    app = create_facade_app(f"http://127.0.0.1:{free_port()}", "chk_whatever", timeout=2)
    with TestClient(app) as client:
        pixel = client.get(url(OPEN_PATH, params(SIGNER, Purpose.OPEN, sent.guid, ANNA)))
        assert pixel.status_code == 200
        assert pixel.content == PIXEL_GIF
        link = url(CLICK_PATH, params(SIGNER, Purpose.CLICK, sent.links[SALE], ANNA))
        assert client.get(link, follow_redirects=False).status_code == 502


def test_the_facade_command_behind_a_trusted_proxy(
    hub: HubServer, email_key: str, database: Database, sent: SentIssue, tmp_path: Path
) -> None:
    port = free_port()
    command = [
        str(contacthub_command()),
        "facade",
        *("--hub", hub.base_url, "--port", str(port), "--trusted-proxy", "127.0.0.1"),
    ]
    env = {**os.environ, "CONTACTHUB_FACADE_API_KEY": email_key}
    with (tmp_path / "facade.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            pixel = url(OPEN_PATH, params(SIGNER, Purpose.OPEN, sent.guid, ANNA))
            for _ in range(100):
                try:
                    # Apple's proxy as seen behind the website's own reverse proxy.
                    answer = client.get(
                        pixel, headers={"User-Agent": "Mozilla/5.0", "X-Forwarded-For": "17.5.6.7"}
                    )
                    break
                except httpx2.TransportError:
                    process.poll()
                    assert process.returncode is None, (tmp_path / "facade.log").read_text()
                    time.sleep(0.1)
            assert answer.content == PIXEL_GIF
    finally:
        process.terminate()
        process.wait(10)
    assert logged(database).opens == [
        (sent.subscriber_ids[ANNA], True, "Apple Mail Privacy Protection")
    ]


def test_the_facade_mounted_in_a_website_app(
    hub: HubServer, email_key: str, database: Database, sent: SentIssue
) -> None:
    async def home(request: Request) -> Response:
        return PlainTextResponse("the website")

    facade = create_facade_app(hub.base_url, email_key)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with facade.router.lifespan_context(facade):  # closes its client at the end
            yield

    site = Starlette(routes=[Route("/", home), Mount("/", app=facade)], lifespan=lifespan)
    with TestClient(site) as client:
        assert client.get("/").text == "the website"
        link = url(CLICK_PATH, params(SIGNER, Purpose.CLICK, sent.links[SALE], ANNA))
        assert client.get(link, follow_redirects=False).status_code == 303
        assert client.get("/elsewhere").status_code == 404
    assert len(logged(database).clicks) == 1


@pytest.mark.parametrize("hub_url", ["notaurl", "hub.example.com", "ftp://hub.example.com"])
def test_the_facade_refuses_a_hub_url_it_could_never_reach(hub_url: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        create_facade_app(hub_url, "chk_key")
    assert refused.value.code == "invalid_hub_url"
