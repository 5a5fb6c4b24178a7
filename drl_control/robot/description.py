"""The arm's limits and names, read from `urdf/iiwa14.urdf` (the single source of truth)."""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drl_control.paths import data_path


def urdf_dir() -> Path:
    """Directory holding the arm and tool URDFs (see drl_control.paths)."""
    return data_path("urdf")


def arm_urdf_path() -> Path:
    return urdf_dir() / "iiwa14.urdf"


@dataclass(frozen=True)
class RobotSpec:
    """Joint names and limits of a serial arm, in SI units (rad, rad/s, Nm)."""

    name: str
    joint_names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    max_velocity: np.ndarray
    max_effort: np.ndarray
    base_link: str
    flange_link: str
    home: np.ndarray

    @property
    def n_joints(self) -> int:
        return len(self.joint_names)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "joint_names": list(self.joint_names),
            "lower": self.lower.tolist(),
            "upper": self.upper.tolist(),
            "max_velocity": self.max_velocity.tolist(),
            "max_effort": self.max_effort.tolist(),
            "base_link": self.base_link,
            "flange_link": self.flange_link,
        }


def parse_urdf_joints(path: Path) -> list[dict]:
    """Movable joints of a URDF in file order, with their limits."""
    root = ET.parse(path).getroot()
    joints = []
    for joint in root.findall("joint"):
        if joint.get("type") not in ("revolute", "prismatic"):
            continue
        limit = joint.find("limit")
        if limit is None:
            raise ValueError(f"{path}: joint {joint.get('name')!r} has no <limit>")
        joints.append(
            {
                "name": joint.get("name"),
                "lower": float(limit.get("lower")),
                "upper": float(limit.get("upper")),
                "velocity": float(limit.get("velocity")),
                "effort": float(limit.get("effort")),
            }
        )
    return joints


# A pose in front of the robot with the flange pointing down; see tests/test_robot.py.
IIWA14_HOME = np.array([0.0, 0.6, 0.0, -1.4, 0.0, 1.14, 0.0])


@functools.lru_cache(maxsize=1)
def iiwa14() -> RobotSpec:
    joints = parse_urdf_joints(arm_urdf_path())
    return RobotSpec(
        name="iiwa14",
        joint_names=tuple(j["name"] for j in joints),
        lower=np.array([j["lower"] for j in joints]),
        upper=np.array([j["upper"] for j in joints]),
        max_velocity=np.array([j["velocity"] for j in joints]),
        max_effort=np.array([j["effort"] for j in joints]),
        base_link="iiwa_link_0",
        flange_link="iiwa_link_ee",
        home=IIWA14_HOME.copy(),
    )
