"""Fixtures shared by test modules."""

from __future__ import annotations

import pytest
from launch_util import install_launch_stubs


@pytest.fixture
def launch_stubs(monkeypatch: pytest.MonkeyPatch) -> tuple[type, type]:
    """`launch`/`launch_ros` stand-ins (see launch_util); (Node, OpaqueFunction)."""
    return install_launch_stubs(monkeypatch)

