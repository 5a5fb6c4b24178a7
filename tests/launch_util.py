"""Stand-ins of `launch`/`launch_ros` (not installable here) for the tests of launch/*.launch.py:
enough for drl_control.ros.stack.launch_description and the launch files to build their actions,
which record their arguments (`.args`, `.kwargs`)."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


class _Recorder:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context[self.name]


def install_launch_stubs(monkeypatch: pytest.MonkeyPatch) -> tuple[type, type]:
    """Put the stand-ins in sys.modules (undone by `monkeypatch`); returns (Node, OpaqueFunction)."""
    launch = types.ModuleType("launch")
    actions = types.ModuleType("launch.actions")
    subs = types.ModuleType("launch.substitutions")
    launch_ros = types.ModuleType("launch_ros")
    ros_actions = types.ModuleType("launch_ros.actions")

    class LaunchDescription(list):
        pass

    class Node(_Recorder):
        pass

    class OpaqueFunction(_Recorder):
        pass

    launch.LaunchDescription = LaunchDescription
    actions.DeclareLaunchArgument = type("DeclareLaunchArgument", (_Recorder,), {})
    actions.LogInfo = type("LogInfo", (_Recorder,), {})
    actions.OpaqueFunction = OpaqueFunction
    subs.LaunchConfiguration = _LaunchConfiguration
    ros_actions.Node = Node
    for name, module in {"launch": launch, "launch.actions": actions, "launch.substitutions": subs,
                         "launch_ros": launch_ros, "launch_ros.actions": ros_actions}.items():
        monkeypatch.setitem(sys.modules, name, module)
    return Node, OpaqueFunction


def load_launch_file(name: str) -> ModuleType:
    """launch/<name> as a module (with `launch_stubs` in place of launch/launch_ros)."""
    spec = importlib.util.spec_from_file_location(name.split(".")[0] + "_launch", ROOT / "launch" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def declared_arguments(description: list) -> dict[str, str]:
    """{name: default} of a stubbed LaunchDescription's DeclareLaunchArgument actions."""
    return {a.args[0]: a.kwargs["default_value"] for a in description
            if type(a).__name__ == "DeclareLaunchArgument"}
