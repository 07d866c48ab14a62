"""Ids in paths that only look like numbers: a 404, never a server error."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient


@pytest.mark.parametrize(
    "path",
    ["/api/keys/²/revoke", "/api/tokens/²/revoke", "/api/cors-origins/²"],
)
def test_a_digit_int_refuses_is_not_a_server_error(
    client: TestClient, api_headers: dict[str, str], path: str
) -> None:
    method = "DELETE" if path.startswith("/api/cors-origins") else "POST"
    response = client.request(method, path, headers=api_headers)
    assert response.status_code == 404, response.text
