"""Fixtures of the client SDK tests: a real hub process on SQLite, with a channel and its key.

The SDKs are clients of the HTTP API, which behaves the same on either store; the hub's own
tests run everything on PostgreSQL too. So these tests start `contacthub serve` on a SQLite
file only, which keeps them fast.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from contacthub.storage.database import Database
from tests import factories
from tests.factories import TrackingSetup
from tests.servers import HubServer, running_hub

API = "/Kentico.Tracking"


@pytest.fixture
def database_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh migrated SQLite database (replaces the SQLite-and-PostgreSQL parametrisation)."""
    path = tmp_path / "hub.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def setup(database: Database) -> TrackingSetup:
    """A channel "Mobile app" with an enabled tracking key."""
    return factories.tracking_channel(database)


@pytest.fixture
def hub(database_url: str, database: Database, tmp_path: Path) -> Iterator[HubServer]:
    """`contacthub serve` on the test's database, stopped at the end of the test."""
    with running_hub(database_url, tmp_path / "hub.log") as server:
        yield server


def endpoint(server: HubServer) -> str:
    """The tracking API's base URL, as an application configures the SDK with it."""
    return f"{server.base_url}{API}"
