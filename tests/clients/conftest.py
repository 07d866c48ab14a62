"""Fixtures of the SDKs' tests against a real hub process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from contacthub.storage.database import Database
from tests.servers import HubServer, running_hub


@pytest.fixture
def hub(database_url: str, database: Database, tmp_path: Path) -> Iterator[HubServer]:
    """`contacthub serve` on the test's database (migrated first), stopped at the test's end."""
    with running_hub(database_url, tmp_path / "hub.log") as server:
        yield server
        print(f"--- the hub's log:\n{server.log_tail(80)}")
