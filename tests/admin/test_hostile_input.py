"""Every admin page under NUL characters and ids beyond any column: a 4xx page, never a 5xx, and
the same answer on SQLite and PostgreSQL (PostgreSQL once answered 500 to both: it cannot store
NUL in text, nor compare an integer column with 2**31)."""

from __future__ import annotations

import httpx2
import pytest
from starlette.testclient import TestClient

from contacthub.storage.database import Database
from contacthub.storage.models import Channel
from tests.admin.conftest import csrf_of
from tests.route_walk import OUT_OF_RANGE, Walked, values_for, walked_routes, world

NUL = "a\x00b"
# Path parameters that are ids: beyond any id they name no row (404).
ID_PARAMS = {"channel_id", "key_id", "origin_id", "user_id", "token_id"}
# The cursors each paged page reads; those of REFUSING_2_31 refuse 2**31 too (ids of integer
# columns, or the contact search's opaque cursor, which no number is). The activity and audit
# logs and a contact's timeline have big ids and refuse only 2**63.
CURSORS = {
    "/admin/issues": {"before", "after"},
    "/admin/newsletters/{key}": {"before", "after"},
    "/admin/activities": {"before", "after"},
    "/admin/audit": {"before"},
    "/admin/contacts/{guid}": {"before"},
    "/admin/contacts": {"after"},
    "/admin/groups/{key}": {"after"},
    "/admin/suppressions": {"before"},
    "/admin/deliverability": {"before"},
    "/admin/issues/{guid}/engagement": {"after"},
}
REFUSING_2_31 = {
    "/admin/issues",
    "/admin/newsletters/{key}",
    "/admin/contacts",
    "/admin/groups/{key}",
    "/admin/suppressions",
    "/admin/issues/{guid}/engagement",
}


@pytest.fixture
def values(database: Database) -> dict[str, dict[str, str]]:
    return world(database)


def admin_routes(client: TestClient) -> list[Walked]:
    return walked_routes(client.app, "/admin/", "/admin/sign-in")


def refused_as_nul(answer: httpx2.Response) -> bool:
    return answer.status_code == 400 and "must not contain NUL characters" in answer.text


def send(
    admin: TestClient, method: str, url: str, form: dict[str, str] | None = None
) -> httpx2.Response:
    data = {"csrf_token": admin.csrf, **(form or {})}  # type: ignore[attr-defined]
    if method == "GET":
        return admin.get(url, follow_redirects=False)
    return admin.request(method, url, data=data, follow_redirects=False)


def test_nul_in_any_path_parameter_is_refused(
    admin: TestClient, values: dict[str, dict[str, str]]
) -> None:
    problems = []
    for route in admin_routes(admin):
        for name, convertor in route.params.items():
            if convertor == "int":
                continue  # the route's pattern lets only digits through: a 404 from routing
            for method in route.methods:
                answer = send(
                    admin, method, route.url({**values_for(values, route.path), name: NUL})
                )
                if not refused_as_nul(answer):
                    problems.append(f"{method} {route.path} [{name}]: {answer.status_code}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("query", ["?q=a%00b", "?a%00b=1", "?before=%00"])
def test_nul_in_any_query_parameter_is_refused(
    admin: TestClient, values: dict[str, dict[str, str]], query: str
) -> None:
    problems = []
    for route in admin_routes(admin):
        for method in route.methods:
            answer = send(admin, method, route.url(values_for(values, route.path)) + query)
            if not refused_as_nul(answer):
                problems.append(f"{method} {route.path}: {answer.status_code}")
    assert not problems, "\n".join(problems)


def test_nul_in_any_form_field_is_refused(
    admin: TestClient, database: Database, values: dict[str, dict[str, str]]
) -> None:
    problems = []
    for route in admin_routes(admin):
        if "POST" not in route.methods:
            continue
        url = route.url(values_for(values, route.path))
        for form in ({"name": NUL}, {"a\x00b": "x"}):
            answer = send(admin, "POST", url, form)
            if not refused_as_nul(answer):
                problems.append(f"POST {route.path} {form!r}: {answer.status_code}")
    assert not problems, "\n".join(problems)
    with database.read() as session:
        assert session.query(Channel).count() == 1, "a refused form changed something"


def test_a_real_form_with_nul_is_refused_with_a_page(admin: TestClient) -> None:
    answer = send(admin, "POST", "/admin/channels/new", {"name": "Web\x00shop"})

    assert refused_as_nul(answer)
    assert answer.headers["content-type"].startswith("text/html")
    assert "name must not contain NUL characters." in answer.text


@pytest.mark.parametrize("field", ["email", "password", "next", "csrf_token"])
def test_nul_in_the_sign_in_form_is_refused(
    client: TestClient, admin_user: str, field: str
) -> None:
    page = client.get("/admin/sign-in")
    form = {
        "email": admin_user,
        "password": "correct horse battery staple",
        "csrf_token": csrf_of(page.text),
        field: NUL,
    }
    answer = client.post("/admin/sign-in", data=form, follow_redirects=False)

    assert refused_as_nul(answer), answer.text
    assert "contacthub_session" not in answer.cookies


def test_ids_beyond_any_row_are_not_found(
    admin: TestClient, values: dict[str, dict[str, str]]
) -> None:
    problems = []
    for route in admin_routes(admin):
        for name in route.params:
            for method in route.methods:
                for number in OUT_OF_RANGE:
                    url = route.url({**values_for(values, route.path), name: number})
                    answer = send(admin, method, url)
                    wrong = (
                        answer.status_code != 404
                        if name in ID_PARAMS
                        else not 400 <= answer.status_code < 500
                    )
                    if wrong:
                        problems.append(
                            f"{method} {route.path} [{name}={number}]: {answer.status_code}"
                        )
    assert not problems, "\n".join(problems)


def test_cursors_beyond_any_id_are_refused(
    admin: TestClient, values: dict[str, dict[str, str]]
) -> None:
    problems = []
    for route in admin_routes(admin):
        if "GET" not in route.methods:
            continue
        url = route.url(values_for(values, route.path))
        for cursor in ("before", "after"):
            for number in OUT_OF_RANGE:
                answer = admin.get(url, params={cursor: number}, follow_redirects=False)
                refused = number == OUT_OF_RANGE[1] or route.path in REFUSING_2_31
                reads = cursor in CURSORS.get(route.path, set())
                expected = 400 if reads and refused else 200
                if answer.status_code != expected:
                    problems.append(f"GET {route.path}?{cursor}={number}: {answer.status_code}")
    assert not problems, "\n".join(problems)
