"""Fixtures shared by test modules."""

from __future__ import annotations

import pytest
from launch_util import install_launch_stubs


@pytest.fixture
def launch_stubs(monkeypatch: pytest.MonkeyPatch) -> tuple[type, type]:
    """`launch`/`launch_ros` stand-ins (see launch_util); (Node, OpaqueFunction)."""
    return install_launch_stubs(monkeypatch)


# Modules whose tests run real ROS 2 nodes as separate processes and assert on timing (rates,
# holds within control periods, delivery within a settle window). On a 2-core machine a burst of
# load from another process can starve one of them for a few hundred milliseconds, so a failure
# there is re-run (at most twice) before it counts; a real fault fails every run. Pure unit
# tests are never re-run.
REAL_TIME_MODULES = ("test_ros_", "test_faults_messages", "test_faults_stale", "test_faults_workers", "test_demo")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.module is not None and item.module.__name__.startswith(REAL_TIME_MODULES):
            item.add_marker(pytest.mark.flaky(reruns=2, reruns_delay=2))
