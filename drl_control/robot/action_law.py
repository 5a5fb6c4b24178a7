"""The action law: a normalized policy action in [-1, 1] -> joint position targets.

One owner for the simulator (`sim.arm.Arm`), the deployed controller (`deploy.controller`) and the
safety filter's speed scaling (`scale_step`), built from the `action` section of an env's
`deploy_spec()` (what an artifact records), so a policy sees the same action semantics in training
and on the robot:

- ee_displacement: tcp target = clip(tcp + a[:3]·scale, workspace box); one damped-least-squares
  step (position, plus the tool-down orientation when recorded) with a null-space pull to the rest
  pose; the whole joint step scaled (direction kept) so no joint exceeds max_velocity·control_dt;
  clipped to the URDF limits shrunk by the recorded limit margin.
- joint_delta: q + a[:7]·scale (scale = max_velocity·control_dt), clipped the same way.
- gripper: finger target (a[-1] + 1)/2 · FINGER_MAX_OPENING per finger (the ros2_control arm
  contract carries the 7 arm joints only, so a controller reports it but does not command it).

The kinematics (TCP pose and Jacobian at q) are a parameter: the simulator passes PyBullet's (read
once per physics state, already cached), a controller uses the DH model of `robot.kinematics`; the
robot tests check that the two agree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from drl_control.robot.kinematics import dls_step, forward, jacobian, rotation_error

ACTION_TYPES = ("ee_displacement", "joint_delta")
FINGER_MAX_OPENING = 0.04  # metres per finger, from urdf/tools/gripper.urdf

# q -> (tcp position (3,), tcp rotation (3, 3), 6 x n geometric Jacobian, linear rows first)
Kinematics = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def scale_step(reference: np.ndarray, target: np.ndarray, max_step: np.ndarray) -> np.ndarray:
    """Scale the whole step reference -> target down, keeping its direction, so no joint moves
    farther than its `max_step`. A step within the limits comes back unchanged (the same object),
    and so does one over them by rounding only (1e-9 relative: a step the law already capped)."""
    step = target - reference
    ratio = float((np.abs(step) / max_step).max())
    return reference + step / ratio if ratio > 1.0 + 1e-9 else target


def action_section(
    control: str,
    dim: int,
    ee_step: float,
    max_step: np.ndarray,
    gripper: bool,
    *,
    damping: float,
    nullspace_gain: float,
    rest: np.ndarray,
    target_rotation: np.ndarray | None,
    limit_margin: float,
    workspace_low: Sequence[float],
    workspace_high: Sequence[float],
) -> dict[str, Any]:
    """The deploy_spec's `action` section (contract: artifacts record it) for an arm's settings."""
    return {
        "type": "ee_displacement" if control == "ee" else "joint_delta",
        "dim": int(dim),
        "scale": [float(ee_step)] * 3 if control == "ee" else np.asarray(max_step, dtype=float).tolist(),
        "gripper": bool(gripper),
        "ik": {
            "damping": float(damping),
            "nullspace_gain": float(nullspace_gain),
            "rest": np.asarray(rest, dtype=float).tolist(),
            "target_rotation": None if target_rotation is None else np.asarray(target_rotation).tolist(),
            "limit_margin": float(limit_margin),
            "workspace_low": [float(v) for v in workspace_low],
            "workspace_high": [float(v) for v in workspace_high],
        },
    }


class ActionLaw:
    """Normalized action -> joint position target (and finger opening), from a deploy_spec."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        action = spec["action"]
        robot = spec["robot"]
        self.kind = str(action["type"])
        if self.kind not in ACTION_TYPES:
            raise ValueError(f"action type {self.kind!r} is unknown (expected one of {ACTION_TYPES})")
        ik = action.get("ik") or {}
        self.n_joints = len(robot["joint_names"])
        self.scale = np.asarray(action["scale"], dtype=float)
        self.gripper = bool(action.get("gripper", False))
        self.dim = int(action["dim"])
        self.tool_offset = float(spec.get("tool_offset") or 0.0)
        margin = float(ik.get("limit_margin", 0.0))
        self.lower = np.asarray(robot["lower"], dtype=float) + margin
        self.upper = np.asarray(robot["upper"], dtype=float) - margin
        self.max_step = np.asarray(robot["max_velocity"], dtype=float) / float(spec["control_hz"])
        self.damping = float(ik.get("damping", 0.05))
        self.nullspace_gain = float(ik.get("nullspace_gain", 0.0))
        self.rest = None if ik.get("rest") is None else np.asarray(ik["rest"], dtype=float)
        rot = ik.get("target_rotation")
        self.target_rotation = None if rot is None else np.asarray(rot, dtype=float)
        self.ws_low = np.asarray(ik.get("workspace_low", [-np.inf] * 3), dtype=float)
        self.ws_high = np.asarray(ik.get("workspace_high", [np.inf] * 3), dtype=float)

    def dh_kinematics(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """TCP pose and Jacobian from the DH model (what a controller without a simulator has)."""
        pose = forward(q, self.tool_offset)
        return pose[:3, 3], pose[:3, :3], jacobian(q, self.tool_offset)

    def clamp(self, q: np.ndarray) -> np.ndarray:
        """Into the URDF limits shrunk by the recorded margin."""
        return np.minimum(np.maximum(q, self.lower), self.upper)

    def joint_target(self, q: np.ndarray, action: np.ndarray, kinematics: Kinematics | None = None) -> np.ndarray:
        """The joint position target for `action` (clipped to [-1, 1]) taken at joint position `q`."""
        q = np.asarray(q, dtype=float)
        if self.kind == "ee_displacement":
            pos, rotation, jac = (kinematics or self.dh_kinematics)(q)
            move = np.minimum(np.maximum(action[:3], -1.0), 1.0) * self.scale
            target = np.minimum(np.maximum(pos + move, self.ws_low), self.ws_high)
            if self.target_rotation is None:
                jac, error = jac[:3], target - pos
            else:
                error = np.concatenate([target - pos, rotation_error(rotation, self.target_rotation)])
            dq = dls_step(jac, error, q, self.damping, self.rest, self.nullspace_gain)
            q_target = scale_step(q, q + dq, self.max_step)
        else:
            q_target = q + np.minimum(np.maximum(action[: self.n_joints], -1.0), 1.0) * self.scale
        return self.clamp(q_target)

    def finger_target(self, action: np.ndarray) -> float | None:
        """Opening per finger (metres) for the action's last entry; None without a gripper."""
        if not self.gripper:
            return None
        return finger_opening(float(action[-1]))


def finger_opening(command: float) -> float:
    """A gripper command in [-1, 1] (closed .. open) -> opening per finger in [0, FINGER_MAX_OPENING]."""
    return float(min(max((command + 1.0) / 2.0 * FINGER_MAX_OPENING, 0.0), FINGER_MAX_OPENING))
