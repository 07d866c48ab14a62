"""Every management API route under NUL characters and ids beyond any column: a 4xx, never a
5xx, and the same answer on SQLite and PostgreSQL (PostgreSQL once answered 500 to both: it
cannot store NUL in text, nor compare an integer column with 2**31)."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient

from contacthub.api.routes import ROUTERS
from contacthub.storage.database import Database
from tests.route_walk import OUT_OF_RANGE, Walked, values_for, walked_routes, world

NUL = "a\x00b"
# Path parameters that are ids: beyond any id they name no row (404).
ID_PARAMS = {"user_id", "token_id", "key_id", "origin_id", "number"}
# Lists whose cursors refuse 2**31 too: ids of integer columns (past their last row), and the
# contact search's opaque cursor (which no number is).
REFUSING_2_31 = {
    "/api/newsletters/{name}/subscribers",
    "/api/issues",
    "/api/contacts",
    "/api/groups/{name}/members",
    "/api/suppressions",
    "/api/issues/{guid}/engagement/people",
}


def cursor_names(path: str, method: str) -> set[str]:
    """The cursors (`before`, `after`) an operation documents."""
    return {
        q.name
        for router in ROUTERS
        for o in router.operations
        if (o.path, o.method) == (path, method)
        for q in o.query
        if q.name in ("before", "after")
    }


def has_body(path: str, method: str) -> bool:
    return any(
        o.body is not None
        for router in ROUTERS
        for o in router.operations
        if (o.path, o.method) == (path, method)
    )


@pytest.fixture
def values(database: Database) -> dict[str, dict[str, str]]:
    return world(database)


def api_routes(client: TestClient) -> list[Walked]:
    return walked_routes(client.app, "/api/", "/api/openapi.json")


def refused_as_nul(answer: httpx2.Response) -> bool:
    return answer.status_code == 400 and answer.json().get("code") == "nul_character"


def request(
    client: TestClient, headers: dict[str, str], method: str, url: str, **options: Any
) -> httpx2.Response:
    return client.request(method, url, headers=headers, **options)


def test_nul_in_any_path_parameter_is_refused(
    client: TestClient, api_headers: dict[str, str], values: dict[str, dict[str, str]]
) -> None:
    problems = []
    for route in api_routes(client):
        for name in route.params:
            for method in route.methods:
                url = route.url({**values_for(values, route.path), name: NUL})
                answer = request(client, api_headers, method, url)
                if not refused_as_nul(answer):
                    problems.append(f"{method} {route.path} [{name}]: {answer.text[:200]}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("query", ["?q=a%00b", "?a%00b=1", "?limit=10&before=%00"])
def test_nul_in_any_query_parameter_is_refused(
    client: TestClient,
    api_headers: dict[str, str],
    values: dict[str, dict[str, str]],
    query: str,
) -> None:
    problems = []
    for route in api_routes(client):
        for method in route.methods:
            answer = request(
                client, api_headers, method, route.url(values_for(values, route.path)) + query
            )
            if not refused_as_nul(answer):
                problems.append(f"{method} {route.path}: {answer.text[:200]}")
    assert not problems, "\n".join(problems)


def test_nul_in_any_json_body_is_refused(
    client: TestClient, api_headers: dict[str, str], values: dict[str, dict[str, str]]
) -> None:
    problems = []
    walked = 0
    for route in api_routes(client):
        for method in route.methods:
            if not has_body(route.path, method):
                continue
            walked += 1
            url = route.url(values_for(values, route.path))
            for body, field in (({"name": NUL}, "name"), ({"a": [{"b": NUL}]}, "a[0].b")):
                answer = request(client, api_headers, method, url, json=body)
                if not refused_as_nul(answer) or answer.json().get("field") != field:
                    problems.append(f"{method} {route.path}: {answer.text[:200]}")
    assert walked > 10
    assert not problems, "\n".join(problems)


def test_a_property_name_with_nul_is_refused(
    client: TestClient, api_headers: dict[str, str]
) -> None:
    answer = client.post("/api/channels", headers=api_headers, json={"na\x00me": "Shop"})
    assert refused_as_nul(answer), answer.text


def test_an_escaped_backslash_before_u0000_is_no_nul(
    client: TestClient, api_headers: dict[str, str]
) -> None:
    answer = client.post(
        "/api/channels",
        headers={**api_headers, "Content-Type": "application/json"},
        content=b'{"name": "Shop \\\\u0000"}',
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["name"] == "Shop \\u0000"


def test_ids_beyond_any_row_are_not_found(
    client: TestClient, api_headers: dict[str, str], values: dict[str, dict[str, str]]
) -> None:
    problems = []
    for route in api_routes(client):
        for name in route.params:
            for method in route.methods:
                for number in OUT_OF_RANGE:
                    url = route.url({**values_for(values, route.path), name: number})
                    body = {} if has_body(route.path, method) else None
                    answer = request(client, api_headers, method, url, json=body)
                    wrong = (
                        answer.status_code != 404
                        if name in ID_PARAMS
                        else not 400 <= answer.status_code < 500
                    )
                    if wrong:
                        problems.append(
                            f"{method} {route.path} [{name}={number}]: {answer.status_code} "
                            f"{answer.text[:200]}"
                        )
    assert not problems, "\n".join(problems)


def test_cursors_beyond_any_id_are_refused(
    client: TestClient, api_headers: dict[str, str], values: dict[str, dict[str, str]]
) -> None:
    problems = []
    walked = 0
    for route in api_routes(client):
        if "GET" not in route.methods:
            continue
        walked += 1
        cursors = cursor_names(route.path, "GET")
        url = route.url(values_for(values, route.path))
        for cursor in ("before", "after"):
            for number in OUT_OF_RANGE:
                answer = client.get(url, params={cursor: number}, headers=api_headers)
                refused = number == OUT_OF_RANGE[1] or route.path in REFUSING_2_31
                expected = 400 if cursor in cursors and refused else 200
                if answer.status_code != expected:
                    problems.append(f"GET {route.path}?{cursor}={number}: {answer.text[:200]}")
    assert walked > 10
    assert not problems, "\n".join(problems)
