"""Observations for a deployed policy, rebuilt from joint states with numpy kinematics.

The simulator reads the TCP pose and velocity from PyBullet; on a robot only joint positions and
velocities exist, so the same quantities come from the DH model (`forward`, `jacobian`), which the
robot tests check against the URDF: tcp_pos = FK(q), tcp_vel = J_lin(q) qdot. The artifact's
`observation_layout` says which parts the policy was trained on, in which order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from drl_control.robot.kinematics import forward, jacobian

# Layout entries a controller can compute from joint states alone.
SUPPORTED_PARTS = ("tcp_pos", "tcp_vel", "joint_pos", "finger_width")


class ObservationError(ValueError):
    """The policy needs an observation part that joint states cannot provide."""


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
                f"(a controller can build {list(SUPPORTED_PARTS)}); object tasks need a perception input"
            )
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
    ) -> dict[str, np.ndarray]:
        q = np.asarray(q, dtype=float)
        qd = None if qd is None else np.asarray(qd, dtype=float)
        pos, vel = self.tcp(q, qd)
        parts = {
            "tcp_pos": pos,
            "tcp_vel": vel,
            "joint_pos": q,
            "finger_width": np.array([finger_width], dtype=float),
        }
        observation = np.concatenate([parts[name][:size] for name, size in self.layout])
        return {
            "observation": observation.astype(np.float32),
            "achieved_goal": pos.astype(np.float32),
            "desired_goal": np.asarray(goal, dtype=np.float32).reshape(3),
        }
