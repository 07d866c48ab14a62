"""Fixtures of the SDK's hub-free unit tests."""

from __future__ import annotations

import pytest
from fakehub import FakeHub


@pytest.fixture
def hub() -> FakeHub:
    """A scripted hub that accepts every activity unless told otherwise."""
    return FakeHub()
