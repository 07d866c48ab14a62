"""`contacthub serve` for real behind a TLS proxy, and the limits it puts on requests.

The proxy is played by requests from 127.0.0.1 (listed in `trusted_proxies`) carrying the
headers nginx or Caddy adds; 127.0.0.2 plays a client that is not a trusted proxy. Cookies are
handled by hand: the point is whether the hub marks them `Secure`, and a cookie jar would not
send a Secure cookie over the test's plain http.
"""

from __future__ import annotations

import re
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from uvicorn.config import Config

from contacthub.serving import WORKER_HEALTHCHECK_TIMEOUT, uvicorn_options
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.users import service as users
from tests.admin.reading import cookie
from tests.servers import HOST, HubServer, running_hub

pytestmark = pytest.mark.slow

PUBLIC_HOST = "hub.example.com"
EMAIL = "admin@example.com"
PASSWORD = "correct horse battery staple"
ORIGIN = "https://www.example.com"


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def browser(server: HubServer, source: str) -> httpx2.Client:
    """A client whose requests come from `source` (a loopback address) to the hub."""
    return httpx2.Client(
        base_url=server.base_url,
        transport=httpx2.HTTPTransport(local_address=source),
        timeout=10.0,
        follow_redirects=False,
    )


def add_origin_as_a_browser_would(
    client: httpx2.Client, headers: dict[str, str]
) -> tuple[httpx2.Response, set[str], dict[str, str]]:
    """Sign in and post the CORS form: the answer, the session cookie's flags, its headers."""
    page = client.get("/admin/sign-in", headers=headers)
    sign_in_token, _ = cookie(page, "contacthub_sign_in")
    signed_in = client.post(
        "/admin/sign-in",
        headers={**headers, "Cookie": f"contacthub_sign_in={sign_in_token}"},
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
    )
    assert signed_in.status_code == 303, signed_in.text
    session, flags = cookie(signed_in, "contacthub_session")
    session_headers = {**headers, "Cookie": f"contacthub_session={session}"}
    form = client.get("/admin/cors", headers=session_headers)
    assert form.status_code == 200, form.text
    posted = client.post(
        "/admin/cors",
        headers=session_headers,
        data={"origin": ORIGIN, "csrf_token": csrf_of(form.text)},
    )
    return posted, flags, session_headers


@pytest.fixture
def behind_proxy(database_url: str, tmp_path: Path) -> Iterator[HubServer]:
    database = Database(database_url)
    try:
        with database.write() as session:
            users.create_user(session, EMAIL, PASSWORD, "Ada Admin")
    finally:
        database.dispose()
    environment = {"CONTACTHUB_TRUSTED_PROXIES": '["127.0.0.1"]'}
    with running_hub(database_url, tmp_path / "serve.log", env=environment) as server:
        yield server


def test_admin_forms_work_behind_a_trusted_tls_proxy(behind_proxy: HubServer) -> None:
    # What nginx sends for https://hub.example.com/admin/cors.
    proxied = {
        "Host": PUBLIC_HOST,
        "Origin": f"https://{PUBLIC_HOST}",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-For": "203.0.113.7",
    }
    with browser(behind_proxy, "127.0.0.1") as client:
        posted, session_flags, signed_in = add_origin_as_a_browser_would(client, proxied)
        assert posted.status_code == 303, posted.text
        assert "secure" in session_flags
        assert ORIGIN in client.get("/admin/cors", headers=signed_in).text
        _, sign_in_flags = cookie(
            client.get("/admin/sign-in", headers=proxied), "contacthub_sign_in"
        )
        assert "secure" in sign_in_flags


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(behind_proxy: HubServer) -> None:
    forged = {
        "Host": PUBLIC_HOST,
        "Origin": f"https://{PUBLIC_HOST}",
        "X-Forwarded-Proto": "https",
    }
    plain = {**forged, "Origin": f"http://{PUBLIC_HOST}"}
    with browser(behind_proxy, "127.0.0.2") as client:
        # The request is plain http: an https Origin is another site, on sign-in as on any form.
        page = client.get("/admin/sign-in", headers=forged)
        sign_in_token, sign_in_flags = cookie(page, "contacthub_sign_in")
        assert "secure" not in sign_in_flags
        refused = client.post(
            "/admin/sign-in",
            headers={**forged, "Cookie": f"contacthub_sign_in={sign_in_token}"},
            data={"email": EMAIL, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
        )
        assert refused.status_code == 403
        assert "expired" in refused.text
        # With the origin the hub really has there, it goes through, and no cookie is Secure.
        posted, session_flags, signed_in = add_origin_as_a_browser_would(client, plain)
        assert posted.status_code == 303, posted.text
        assert "secure" not in session_flags
        # A signed-in form claiming https is refused as well.
        form = client.get("/admin/cors", headers=signed_in)
        forged_post = client.post(
            "/admin/cors",
            headers={**signed_in, "Origin": forged["Origin"]},
            data={"origin": "https://other.example.com", "csrf_token": csrf_of(form.text)},
        )
        assert forged_post.status_code == 403
        assert "expired" in forged_post.text


# -- limits ----------------------------------------------------------------------------------

TIMEOUT = 1.0


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """A hub with a short request timeout (SQLite: the limits do not touch the store)."""
    path = tmp_path_factory.mktemp("limits")
    environment = {"CONTACTHUB_REQUEST_TIMEOUT": str(TIMEOUT)}
    with running_hub(f"sqlite:///{path / 'hub.db'}", path / "serve.log", env=environment) as hub:
        yield hub


def connect(server: HubServer) -> socket.socket:
    return socket.create_connection((HOST, server.port), timeout=10)


def read_answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_headers_under_the_limit_are_served(limited: HubServer) -> None:
    with httpx2.Client(base_url=limited.base_url) as client:
        answer = client.get("/health", headers={"X-Padding": "a" * 60_000})
    assert answer.status_code == 200


def test_headers_over_the_limit_get_431_in_one_piece(limited: HubServer) -> None:
    with connect(limited) as sock:
        sock.sendall(
            b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 70_000 + b"\r\n\r\n"
        )
        answer = read_answer(sock)
    assert status_of(answer) == 431
    assert b'"code":"headers_too_large"' in answer


def test_an_endless_header_is_cut_off_early(limited: HubServer) -> None:
    # A 64 MB header: the hub answers 431 and closes long before it has all been sent.
    sent = 0
    cut_off = False
    with connect(limited) as sock:
        # Little buffered on this side, so that `sent` is close to what the hub took in.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65_536)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: ")
        try:
            while sent < 64 * 1024 * 1024:
                sock.sendall(b"a" * 65_536)
                sent += 65_536
        except (BrokenPipeError, ConnectionResetError):
            cut_off = True  # the hub has closed the connection
    assert cut_off
    # The limit, plus what the kernel's buffers on both sides held meanwhile.
    assert sent < 16 * 1024 * 1024


def test_a_body_that_never_ends_gets_408(limited: HubServer) -> None:
    with connect(limited) as sock:
        started = time.monotonic()
        sock.sendall(
            b"POST /Kentico.Tracking/activities HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer chk_whatever\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n"
        )
        answer = read_answer(sock)
        waited = time.monotonic() - started
    assert status_of(answer) == 408, answer
    assert b'"code":"request_timeout"' in answer
    assert TIMEOUT * 0.9 <= waited < TIMEOUT + 5
    # The handler, cut off mid-body, is not a server error: no traceback in the log.
    time.sleep(0.5)
    assert "Traceback" not in limited.log_tail(1000)


def test_a_trickled_admin_form_gets_408(limited: HubServer) -> None:
    with connect(limited) as sock:
        sock.sendall(
            b"POST /admin/sign-in HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
        )
        deadline = time.monotonic() + TIMEOUT + 5
        # A byte every 0.2 s, never idle and never done, until the hub answers.
        while time.monotonic() < deadline and not select.select([sock], [], [], 0.2)[0]:
            sock.sendall(b"a")
        answer = read_answer(sock)
    assert status_of(answer) == 408


def test_headers_sent_slowly_get_408(limited: HubServer) -> None:
    with connect(limited) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        answer = read_answer(sock)
    assert status_of(answer) == 408


def test_a_kept_alive_connection_is_not_timed_out_between_requests(limited: HubServer) -> None:
    # The timer is per connection: requests later on the same connection get their own time.
    with httpx2.Client(base_url=limited.base_url) as client:
        for _ in range(3):
            assert client.get("/health").status_code == 200
            time.sleep(TIMEOUT * 0.7)
        assert client.get("/health").status_code == 200


def test_serve_says_where_the_admin_is_and_how_to_make_the_first_user(limited: HubServer) -> None:
    printed = limited.log_tail(200)
    assert f"the admin is at http://{HOST}:{limited.port}/admin/" in printed
    assert "No admin user yet" in printed
    assert "contacthub user create you@example.com" in printed


def test_trusted_proxies_become_uvicorns_forwarded_allow_ips() -> None:
    options = uvicorn_options(Settings(trusted_proxies=["10.1.2.3/8", "127.0.0.1", "::1"]))
    assert options["proxy_headers"] is True
    # As networks uvicorn parses (it would take "10.1.2.3/8" for a host name and never match).
    assert options["forwarded_allow_ips"] == ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]
    assert uvicorn_options(Settings(trusted_proxies=[]))["proxy_headers"] is False


def test_workers_get_a_minute_to_answer_the_supervisors_health_ping() -> None:
    # uvicorn's own 5 s killed workers that were only slow (several starting at once on a busy
    # machine, or answering a long request on a large store) and restarted them in a loop.
    config = Config("contacthub.app:create_app", factory=True, **uvicorn_options(Settings()))
    assert config.timeout_worker_healthcheck == WORKER_HEALTHCHECK_TIMEOUT == 60
