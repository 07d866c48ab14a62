"""Fixtures of the tracking API tests: a channel with its key, a contact, hubs with settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from starlette.testclient import TestClient

from contacthub.app import create_app
from contacthub.settings import Settings
from contacthub.storage.database import Database
from tests import factories
from tests.tracking.support import MakeClient


@pytest.fixture
def setup(database: Database) -> factories.TrackingSetup:
    """A channel "Mobile app" with an enabled tracking key."""
    return factories.tracking_channel(database)


@pytest.fixture
def contact(database: Database) -> str:
    """The GUID of an anonymous contact."""
    return factories.contact(database)


@pytest.fixture
def make_client(settings: Settings) -> Iterator[MakeClient]:
    """Start a hub on the test's database with some settings changed: make_client(enable=False)."""
    with ExitStack() as stack:

        def make(**changes: Any) -> TestClient:
            app = create_app(Settings(**{**settings.model_dump(), **changes}))
            return stack.enter_context(TestClient(app))

        yield make
