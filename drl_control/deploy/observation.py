"""Observations for a deployed policy, rebuilt from joint states with numpy kinematics.

The simulator reads the TCP pose and velocity from PyBullet; on a robot only joint positions and
velocities exist, so the same quantities come from the DH model (`forward`, `jacobian`), which the
robot tests check against the URDF: tcp_pos = FK(q), tcp_vel = J_lin(q) qdot. The artifact's
`observation_layout` says which parts the policy was trained on, in which order. Object tasks'
parts (object_pos/rot/vel/ang_vel) come from the object's pose stream (`deploy.object_pose`), and
their achieved_goal is the object's position, as in the sim.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from drl_control.deploy.object_pose import OBJECT_PARTS
from drl_control.robot.kinematics import forward, jacobian

# Layout entries a controller can compute from joint states alone, and with an object pose stream.
JOINT_PARTS = ("tcp_pos", "tcp_vel", "joint_pos", "finger_width")
SUPPORTED_PARTS = JOINT_PARTS + OBJECT_PARTS


class ObservationError(ValueError):
    """The policy needs an observation part that a controller cannot provide."""


def order_joints(
    names: Sequence[str],
    values: Sequence[float],
    want: Sequence[str],
) -> np.ndarray | None:
    """`values` (given for `names`, any order) rearranged into `want` order; None if a joint is missing."""
    if len(values) < len(names):
        return None
    index = {name: i for i, name in enumerate(names)}
    try:
        return np.array([values[index[name]] for name in want], dtype=float)
    except KeyError:
        return None


class ObservationBuilder:
    """Builds the policy's dict observation {observation, achieved_goal, desired_goal}."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.layout = [(str(name), int(size)) for name, size in spec["observation_layout"]]
        unsupported = [name for name, _ in self.layout if name not in SUPPORTED_PARTS]
        if unsupported:
            raise ObservationError(
                f"policy observes {unsupported}, which joint states cannot provide "
                f"(a controller can build {list(SUPPORTED_PARTS)})"
            )
        self.observes_object = any(name in OBJECT_PARTS for name, _ in self.layout)
        self.tool_offset = float(spec.get("tool_offset") or 0.0)
        self.size = sum(size for _, size in self.layout)

    def tcp(self, q: np.ndarray, qd: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """TCP position and linear velocity in the base frame."""
        pos = forward(q, self.tool_offset)[:3, 3]
        vel = np.zeros(3) if qd is None else jacobian(q, self.tool_offset)[:3] @ qd
        return pos, vel

    def build(
        self,
        q: np.ndarray,
        qd: np.ndarray | None,
        goal: np.ndarray,
        finger_width: float = 0.0,
        object_parts: Mapping[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """`object_parts` (ObjectPoseTracker.parts) is required when the policy observes an object."""
        if self.observes_object and object_parts is None:
            raise ObservationError("the policy observes an object and no object pose is known")
        q = np.asarray(q, dtype=float)
        qd = None if qd is None else np.asarray(qd, dtype=float)
        pos, vel = self.tcp(q, qd)
        parts = {
            "tcp_pos": pos,
            "tcp_vel": vel,
            "joint_pos": q,
            "finger_width": np.array([finger_width], dtype=float),
            **(object_parts or {}),
        }
        observation = np.concatenate([parts[name][:size] for name, size in self.layout])
        achieved = parts["object_pos"] if self.observes_object else pos
        return {
            "observation": observation.astype(np.float32),
            "achieved_goal": np.asarray(achieved, dtype=np.float32),
            "desired_goal": np.asarray(goal, dtype=np.float32).reshape(3),
        }
