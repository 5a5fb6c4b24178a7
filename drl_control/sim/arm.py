"""The iiwa 14 in a PyBullet world: position-controlled joints, TCP state and the two action modes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet as p

from drl_control.robot import iiwa14
from drl_control.robot.description import RobotSpec
from drl_control.robot.kinematics import FLANGE_DOWN, dls_step, rotation_error
from drl_control.robot.tools import composed_urdf_path, tool_tip_offset
from drl_control.sim.world import World

CONTROL_MODES = ("ee", "joints")
FINGER_MAX_OPENING = 0.04  # per finger, from urdf/tools/gripper.urdf


@dataclass(frozen=True)
class ArmConfig:
    """How actions become joint targets. `ee_step` is the TCP displacement of a full action."""

    control: str = "ee"
    tool: str | None = None
    ee_step: float = 0.05
    ik_damping: float = 0.05
    nullspace_gain: float = 0.2
    keep_tool_down: bool = True
    limit_margin: float = 0.02  # rad kept clear of every joint limit
    # TCP target box (base frame, metres): keeps targets on the table side, above the surface.
    workspace_low: tuple[float, float, float] = (0.2, -0.6, 0.02)
    workspace_high: tuple[float, float, float] = (0.95, 0.6, 0.9)

    def __post_init__(self) -> None:
        if self.control not in CONTROL_MODES:
            raise ValueError(f"control must be one of {CONTROL_MODES}, got {self.control!r}")
        if not self.ee_step > 0:
            raise ValueError(f"ee_step must be positive, got {self.ee_step}")
        if not 0 <= self.limit_margin < 0.5:
            raise ValueError(f"limit_margin must be in [0, 0.5) rad, got {self.limit_margin}")


class Arm:
    """Loads the arm (with its task tool) and turns normalized actions into joint position targets."""

    def __init__(self, world: World, config: ArmConfig | None = None, spec: RobotSpec | None = None) -> None:
        self.world = world
        self.config = config or ArmConfig()
        self.spec = spec or iiwa14()
        self.client = world.client
        self.body = self.client.loadURDF(
            str(composed_urdf_path(self.config.tool)),
            useFixedBase=True,
            flags=p.URDF_USE_INERTIA_FROM_FILE,
        )
        joints = {}
        links = {}
        for i in range(self.client.getNumJoints(self.body)):
            info = self.client.getJointInfo(self.body, i)
            joints[info[1].decode()] = (i, info[2])
            links[info[12].decode()] = i
        self.joint_ids = [joints[name][0] for name in self.spec.joint_names]
        self.movable_ids = [i for i, kind in joints.values() if kind != p.JOINT_FIXED]
        self.finger_ids = [joints[n][0] for n in joints if n.startswith("gripper_finger")]
        self.tcp_link = links["tool_tip" if self.config.tool else self.spec.flange_link]
        self.tool_offset = tool_tip_offset(self.config.tool)
        self.has_gripper = bool(self.finger_ids)
        self._arm_cols = [self.movable_ids.index(j) for j in self.joint_ids]
        self._finger_cols = [self.movable_ids.index(j) for j in self.finger_ids]
        self._cached_at = -1
        self._cache: tuple = ()
        self.lower = self.spec.lower + self.config.limit_margin
        self.upper = self.spec.upper - self.config.limit_margin
        self._zeros = [0.0] * len(self.movable_ids)
        self._effort = self.spec.max_effort.tolist()
        self._max_step = self.spec.max_velocity * world.config.control_dt
        self._ws_low = np.array(self.config.workspace_low)
        self._ws_high = np.array(self.config.workspace_high)
        self.target_rotation = FLANGE_DOWN if (self.config.tool and self.config.keep_tool_down) else None
        self.action_dim = (3 if self.config.control == "ee" else self.spec.n_joints) + int(self.has_gripper)
        if self.has_gripper:
            for link in self.finger_ids:
                self.client.changeDynamics(self.body, link, lateralFriction=2.0, spinningFriction=0.01)

    # --- state -----------------------------------------------------------------------------
    def reset(self, q: np.ndarray | None = None, finger_opening: float = FINGER_MAX_OPENING) -> None:
        q = self.spec.home if q is None else np.asarray(q, dtype=float)
        for joint, angle in zip(self.joint_ids, q):
            self.client.resetJointState(self.body, joint, float(angle), 0.0)
        for joint in self.finger_ids:
            self.client.resetJointState(self.body, joint, finger_opening, 0.0)
        self.set_joint_targets(q)
        self.set_fingers(finger_opening)
        self.world.touch()

    def _state(self) -> tuple:
        """Joint and TCP state, read from PyBullet once per physics state (reads are per-step overhead).

        The arrays handed out are read-only views of this cache.
        """
        if self._cached_at != self.world.generation:
            states = self.client.getJointStates(self.body, self.movable_ids)
            all_q = [st[0] for st in states]
            link = self.client.getLinkState(
                self.body, self.tcp_link, computeLinkVelocity=1, computeForwardKinematics=1
            )
            n = len(self._arm_cols)
            # One array for everything, handed out as read-only views (no copy per call).
            flat = np.array(
                [all_q[i] for i in self._arm_cols] + [states[i][1] for i in self._arm_cols]
                + [*link[4], *link[6], *self.client.getMatrixFromQuaternion(link[5])]
            )
            flat.flags.writeable = False
            q, qd = flat[:n], flat[n : 2 * n]
            pos, vel, rot = flat[2 * n : 2 * n + 3], flat[2 * n + 3 : 2 * n + 6], flat[2 * n + 6 :].reshape(3, 3)
            self._cache = (all_q, q, qd, sum(all_q[i] for i in self._finger_cols), (pos, vel, rot))
            self._cached_at = self.world.generation
        return self._cache

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        _, q, qd, _, _ = self._state()
        return q, qd

    def tcp_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """TCP position, linear velocity and 3x3 orientation in the base frame."""
        return self._state()[4]

    def finger_opening(self) -> float:
        """Distance between the jaws (0 without a gripper)."""
        return float(self._state()[3])

    def observation_layout(self) -> list[tuple[str, int]]:
        layout = [("tcp_pos", 3), ("tcp_vel", 3)]
        if self.config.control == "joints":
            layout.append(("joint_pos", self.spec.n_joints))
        if self.has_gripper:
            layout.append(("finger_width", 1))
        return layout

    def observation(self) -> np.ndarray:
        pos, vel, _ = self.tcp_state()
        parts = [pos, vel]
        if self.config.control == "joints":
            parts.append(self.joint_state()[0])
        if self.has_gripper:
            parts.append([self.finger_opening()])
        return np.concatenate(parts)

    # --- commands ----------------------------------------------------------------------------
    def set_joint_targets(self, q_target: np.ndarray) -> None:
        q_target = np.minimum(np.maximum(q_target, self.lower), self.upper)
        self.client.setJointMotorControlArray(
            self.body, self.joint_ids, p.POSITION_CONTROL, targetPositions=q_target.tolist(), forces=self._effort
        )

    def set_fingers(self, opening_per_finger: float) -> None:
        if self.has_gripper:
            target = float(np.clip(opening_per_finger, 0.0, FINGER_MAX_OPENING))
            self.client.setJointMotorControlArray(
                self.body, self.finger_ids, p.POSITION_CONTROL, targetPositions=[target] * 2, forces=[40.0, 40.0]
            )

    def joint_targets_for_tcp(self, q: np.ndarray, tcp_target: np.ndarray) -> np.ndarray:
        """One DLS step from `q` towards `tcp_target` (and the tool-down orientation, if kept)."""
        all_q, _, _, _, (pos, _, rotation) = self._state()
        lin, ang = self.client.calculateJacobian(self.body, self.tcp_link, [0, 0, 0], all_q, self._zeros, self._zeros)
        if self.target_rotation is None:
            jac = np.array(lin)
            error = tcp_target - pos
        else:
            jac = np.array([*lin, *ang])
            error = np.concatenate([tcp_target - pos, rotation_error(rotation, self.target_rotation)])
        if self._finger_cols:  # drop the gripper's columns
            jac = jac[:, self._arm_cols]
        dq = dls_step(jac, error, q, self.config.ik_damping, self.spec.home, self.config.nullspace_gain)
        return q + dq

    def limit_speed(self, q: np.ndarray, q_target: np.ndarray) -> np.ndarray:
        """Scale the whole joint step down (keeping its direction) so no joint exceeds its max speed."""
        dq = q_target - q
        ratio = float(np.abs(dq / self._max_step).max())
        return q + dq / ratio if ratio > 1.0 else q_target

    def apply_action(self, action: np.ndarray) -> None:
        """Map a normalized action in [-1, 1] to joint (and finger) position targets."""
        q, _ = self.joint_state()
        if self.config.control == "ee":
            pos, _, _ = self.tcp_state()
            target = np.minimum(np.maximum(pos + action[:3] * self.config.ee_step, self._ws_low), self._ws_high)
            q_target = self.limit_speed(q, self.joint_targets_for_tcp(q, target))
        else:
            q_target = q + action[: self.spec.n_joints] * self._max_step
        self.set_joint_targets(q_target)
        if self.has_gripper:
            self.set_fingers((float(action[-1]) + 1.0) / 2.0 * FINGER_MAX_OPENING)
