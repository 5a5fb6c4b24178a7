"""Pose of every URDF link of the arm for given joint positions: the `tf` tree rviz needs.

`kinematics.py` is the datasheet's DH model (the control law); rviz and the browser view draw the
URDF's links, whose frames differ from DH frames, so TF is computed from the URDF's own joint
origins and axes. Written here (40 lines of numpy over the URDF this module already parses)
rather than with yourdfpy, which would load trimesh into the real-time controller process.
"""

from __future__ import annotations

import functools
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drl_control.robot.description import arm_urdf_path


@dataclass(frozen=True)
class UrdfJoint:
    name: str
    type: str  # revolute, prismatic, continuous or fixed
    parent: str
    child: str
    origin: np.ndarray  # 4x4 parent -> joint frame at zero position
    axis: np.ndarray  # unit axis in the joint frame


def _rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    return np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                     [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                     [-sp, cp * sr, cp * cr]])


def _axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' rotation, in plain floats: a 3x3 in numpy ops costs ~10x more (this runs per joint state)."""
    x, y, z = float(axis[0]), float(axis[1]), float(axis[2])
    c, s = math.cos(angle), math.sin(angle)
    t = 1.0 - c
    return np.array([[t * x * x + c, t * x * y - s * z, t * x * z + s * y],
                     [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
                     [t * x * z - s * y, t * y * z + s * x, t * z * z + c]])


def parse_urdf_tree(path: Path) -> tuple[UrdfJoint, ...]:
    """Every joint of a URDF (fixed ones too), in file order."""
    joints = []
    for joint in ET.parse(path).getroot().findall("joint"):
        origin = joint.find("origin")
        xyz = [float(v) for v in (origin.get("xyz", "0 0 0") if origin is not None else "0 0 0").split()]
        rpy = [float(v) for v in (origin.get("rpy", "0 0 0") if origin is not None else "0 0 0").split()]
        axis_el = joint.find("axis")
        axis = np.array([float(v) for v in (axis_el.get("xyz") if axis_el is not None else "1 0 0").split()])
        transform = np.eye(4)
        transform[:3, :3] = _rpy_matrix(*rpy)
        transform[:3, 3] = xyz
        joints.append(UrdfJoint(joint.get("name"), joint.get("type"), joint.find("parent").get("link"),
                                joint.find("child").get("link"), transform, axis / np.linalg.norm(axis)))
    return tuple(joints)


@functools.lru_cache(maxsize=1)
def iiwa14_tree() -> tuple[UrdfJoint, ...]:
    return parse_urdf_tree(arm_urdf_path())


def joint_transforms(positions: dict[str, float], tree: tuple[UrdfJoint, ...] | None = None
                     ) -> list[tuple[str, str, np.ndarray]]:
    """(parent link, child link, 4x4 parent -> child) for every joint; a missing joint is at 0."""
    out = []
    for joint in tree if tree is not None else iiwa14_tree():
        transform = joint.origin.copy()
        value = float(positions.get(joint.name, 0.0))
        if joint.type in ("revolute", "continuous"):
            motion = np.eye(4)
            motion[:3, :3] = _axis_angle(joint.axis, value)
            transform = transform @ motion
        elif joint.type == "prismatic":
            motion = np.eye(4)
            motion[:3, 3] = joint.axis * value
            transform = transform @ motion
        out.append((joint.parent, joint.child, transform))
    return out


def link_poses(positions: dict[str, float], tree: tuple[UrdfJoint, ...] | None = None,
               local: list[tuple[str, str, np.ndarray]] | None = None) -> dict[str, np.ndarray]:
    """4x4 pose of every link in the root link's frame (`local`: joint_transforms already computed)."""
    local = local if local is not None else joint_transforms(positions, tree)
    children = {child for _, child, _ in local}
    poses = {parent: np.eye(4) for parent, _, _ in local if parent not in children}
    pending = list(local)
    while pending:
        rest = [(p, c, t) for p, c, t in pending if p not in poses]
        for parent, child, transform in pending:
            if parent in poses:
                poses[child] = poses[parent] @ transform
        if len(rest) == len(pending):
            raise ValueError(f"URDF joints not connected to the root: {[c for _, c, _ in rest]}")
        pending = rest
    return poses
