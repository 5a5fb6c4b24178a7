"""Robot interface profiles (config/robot_profiles.yaml) and the joint-name map they define. No ROS.

Grippers: no profile has a gripper command interface. The stock lbr_fri_ros2_stack and iiwa_ros2
bring-ups command the 7 arm joints only (no gripper controller in their controller lists), sim_node
in robot mode takes arm joint commands only (the gripper stays as reset, open), and controller_node
publishes no gripper command. A policy whose action has a gripper dimension (PickAndPlace) is
therefore refused at load (`gripper_problem`, naming the profile); Reach and Push have none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from drl_control.deploy.safety import SafetyConfig, TrackingConfig
from drl_control.paths import data_path
from drl_control.robot import iiwa14
from drl_control.safe_io import load_yaml_text

COMMAND_INTERFACES = ("position", "trajectory")
KEYS = ("joint_states", "position_commands", "joint_trajectory", "joint_names", "command_interface", "rate_hz",
        "safety", "driver_rate_hz", "base_frame", "tracking")


def profiles_path() -> Path:
    return data_path("config", "robot_profiles.yaml")


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
    driver_rate_hz: float = 100.0  # the driver's own update rate (documentation, tracking latency)
    base_frame: str = "iiwa_link_0"  # the driver's base link: the frame our markers/goals mean there
    tracking: dict[str, Any] = field(default_factory=dict)  # TrackingConfig fields

    def __post_init__(self) -> None:
        n = iiwa14().n_joints
        if len(self.joint_names) != n or len(set(self.joint_names)) != n:
            raise ValueError(f"profile {self.name!r}: joint_names must be {n} distinct names, got {self.joint_names}")
        if self.command_interface not in COMMAND_INTERFACES:
            raise ValueError(f"profile {self.name!r}: command_interface must be one of {COMMAND_INTERFACES}, "
                             f"got {self.command_interface!r}")
        for key in ("rate_hz", "driver_rate_hz"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1.0 <= value <= 1000.0:
                raise ValueError(f"profile {self.name!r}: {key} must be in [1, 1000] Hz, got {value!r}")
        for key in ("joint_states", "position_commands", "joint_trajectory"):
            if not getattr(self, key):
                raise ValueError(f"profile {self.name!r}: {key} is empty")
        SafetyConfig.from_dict(self.safety)  # fail early, naming the key
        self.tracking_config()

    def tracking_config(self) -> TrackingConfig:
        unknown = sorted(set(self.tracking) - set(TrackingConfig.__dataclass_fields__))
        if unknown:
            raise ValueError(f"profile {self.name!r}: tracking has unknown key(s) {unknown}, expected some of "
                             f"{sorted(TrackingConfig.__dataclass_fields__)}")
        return TrackingConfig(**self.tracking)

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
    data = load_yaml_text(Path(path).read_text(), str(path)) or {}
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


def gripper_problem(spec: Mapping[str, Any], profile: str) -> str:
    """Why a policy with this deploy_spec cannot be deployed through `profile` for want of a
    gripper interface ("" when its action has no gripper dimension)."""
    if not (spec.get("action") or {}).get("gripper"):
        return ""
    where = f"driver profile {profile!r}" if profile else "controller_node without a profile (its own topics)"
    return (f"the policy's action has a gripper dimension (task {spec.get('task')!r}), but {where} has no "
            "gripper command interface: only the 7 arm joints are commanded (docs/DEPLOY.md, Object tasks)")


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
