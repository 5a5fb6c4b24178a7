"""Robot interface profiles (config/robot_profiles.yaml) and the joint-name map they define. No ROS."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from drl_control.deploy.safety import SafetyConfig
from drl_control.robot import iiwa14

COMMAND_INTERFACES = ("position", "trajectory")
KEYS = ("joint_states", "position_commands", "joint_trajectory", "joint_names", "command_interface", "rate_hz",
        "safety")


def profiles_path() -> Path:
    here = Path(__file__).resolve().parents[2] / "config" / "robot_profiles.yaml"
    if here.is_file():
        return here
    return Path(sys.prefix) / "share" / "drl_control" / "config" / "robot_profiles.yaml"


@dataclass(frozen=True)
class RobotProfile:
    """Driver-side topic names (absolute), joint names (in our joint order), rate and safety."""

    name: str
    joint_states: str
    position_commands: str
    joint_trajectory: str
    joint_names: tuple[str, ...]
    command_interface: str = "position"
    rate_hz: float = 100.0
    safety: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = iiwa14().n_joints
        if len(self.joint_names) != n or len(set(self.joint_names)) != n:
            raise ValueError(f"profile {self.name!r}: joint_names must be {n} distinct names, got {self.joint_names}")
        if self.command_interface not in COMMAND_INTERFACES:
            raise ValueError(f"profile {self.name!r}: command_interface must be one of {COMMAND_INTERFACES}, "
                             f"got {self.command_interface!r}")
        if not self.rate_hz > 0:
            raise ValueError(f"profile {self.name!r}: rate_hz must be positive, got {self.rate_hz}")
        for key in ("joint_states", "position_commands", "joint_trajectory"):
            if not getattr(self, key):
                raise ValueError(f"profile {self.name!r}: {key} is empty")
        SafetyConfig.from_dict(self.safety)  # fail early, naming the key

    def safety_config(self, **overrides: Any) -> SafetyConfig:
        return SafetyConfig.from_dict(self.safety, **overrides).with_rate(self.rate_hz)

    def with_overrides(self, **values: Any) -> RobotProfile:
        """Replace the fields given (None or "" or [] leaves a field as it is)."""
        changes = {k: v for k, v in values.items() if v not in (None, "", [], ())}
        if "joint_names" in changes:
            changes["joint_names"] = tuple(changes["joint_names"])
        return replace(self, **changes)


def load_profiles(path: str | Path | None = None) -> dict[str, RobotProfile]:
    path = Path(path) if path else profiles_path()
    data = yaml.safe_load(Path(path).read_text()) or {}
    profiles = data.get("profiles")
    if not isinstance(profiles, Mapping) or not profiles:
        raise ValueError(f"{path}: expected a non-empty 'profiles' mapping")
    out = {}
    for name, values in profiles.items():
        unknown = sorted(set(values) - set(KEYS))
        if unknown:
            raise ValueError(f"{path}: profile {name!r} has unknown key(s) {unknown}, expected some of {list(KEYS)}")
        values = dict(values)
        values["joint_names"] = tuple(values.get("joint_names", ()))
        out[str(name)] = RobotProfile(name=str(name), **values)
    return out


def load_profile(name: str, path: str | Path | None = None) -> RobotProfile:
    profiles = load_profiles(path)
    if name not in profiles:
        raise ValueError(f"unknown robot profile {name!r}, expected one of {sorted(profiles)}")
    return profiles[name]


class JointMap:
    """Our joint names <-> a driver's, positionally (ours[i] is theirs[i])."""

    def __init__(self, ours: Sequence[str], theirs: Sequence[str]) -> None:
        if len(ours) != len(theirs):
            raise ValueError(f"cannot map {len(ours)} joints onto {len(theirs)}")
        self.ours = list(ours)
        self.theirs = list(theirs)
        self._to_ours = dict(zip(self.theirs, self.ours))
        self._to_theirs = dict(zip(self.ours, self.theirs))

    def state_to_ours(
        self, names: Sequence[str], positions: Sequence[float], velocities: Sequence[float], efforts: Sequence[float]
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None] | None:
        """A driver JointState's arrays -> (q, qd, effort) in our order; None if a joint is missing."""
        index = {n: i for i, n in enumerate(names)}
        try:
            rows = [index[t] for t in self.theirs]
        except KeyError:
            return None
        if max(rows) >= len(positions):
            return None
        q = np.array([positions[i] for i in rows], dtype=float)
        qd = np.array([velocities[i] for i in rows], dtype=float) if len(velocities) == len(names) else None
        eff = np.array([efforts[i] for i in rows], dtype=float) if len(efforts) == len(names) else None
        return q, qd, eff

    def command_to_ours(self, names: Sequence[str], positions: Sequence[float]) -> np.ndarray | None:
        """A named command (our names, any order) -> positions in our order; None if not exactly our joints."""
        if sorted(names) != sorted(self.ours) or len(positions) != len(names):
            return None
        index = {n: i for i, n in enumerate(names)}
        return np.array([positions[index[n]] for n in self.ours], dtype=float)
