"""The iiwa 14 in a PyBullet world: position-controlled joints, TCP state and the two action modes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet as p

from drl_control.robot import iiwa14
from drl_control.robot.action_law import FINGER_MAX_OPENING, ActionLaw, action_section, finger_opening
from drl_control.robot.description import RobotSpec
from drl_control.robot.kinematics import FLANGE_DOWN
from drl_control.robot.tools import composed_urdf_path, tool_tip_offset
from drl_control.sim.drivers import Driver, DriverModel, driver_model
from drl_control.sim.world import World

CONTROL_MODES = ("ee", "joints")


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
    """Loads the arm (with its task tool) and sends the joint position targets that the action law
    (`robot.action_law`, shared with the deployed controller) makes of normalized actions, through
    a model of a driver's command path (`sim.drivers`; default: the ideal servo)."""

    def __init__(self, world: World, config: ArmConfig | None = None, spec: RobotSpec | None = None,
                 driver: str | DriverModel | None = None) -> None:
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
        self._zeros = [0.0] * len(self.movable_ids)
        self._effort = self.spec.max_effort.tolist()
        self.target_rotation = FLANGE_DOWN if (self.config.tool and self.config.keep_tool_down) else None
        self.action_dim = (3 if self.config.control == "ee" else self.spec.n_joints) + int(self.has_gripper)
        self.law = ActionLaw({"action": self.action_spec(), "robot": self.spec.to_dict(),
                              "control_hz": world.config.control_hz, "tool_offset": self.tool_offset})
        self.lower, self.upper = self.law.lower, self.law.upper
        self.command = self.spec.home.copy()  # the joint targets last sent to the motors
        self.finger_command = 0.0
        self.driver = Driver(driver_model(driver), world.config.physics_dt, self._send)
        self.noise_rng: np.random.Generator | None = None  # the driver's measurement noise source
        self._measured_at = -1
        self._measured: np.ndarray | None = None
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
        self.driver.reset(self.command)
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

    def measured_joint_positions(self) -> np.ndarray:
        """Joint positions as the driver reports them: with its measurement noise, one sample per
        physics state (the action law and the observation see the same measurement)."""
        q = self._state()[1]
        if not self.driver.model.measurement_noise:
            return q
        if self._measured_at != self.world.generation:
            self._measured = self.driver.measure(q, self.noise_rng)
            self._measured_at = self.world.generation
        return self._measured

    def observation(self) -> np.ndarray:
        pos, vel, _ = self.tcp_state()
        q = self.measured_joint_positions()
        if q is not self._state()[1]:  # a noisy measurement moves the TCP it implies
            pos = self.kinematics(q)[0]
        parts = [pos, vel]
        if self.config.control == "joints":
            parts.append(q)
        if self.has_gripper:
            parts.append([self.finger_opening()])
        return np.concatenate(parts)

    # --- commands ----------------------------------------------------------------------------
    def action_spec(self) -> dict:
        """The deploy_spec's `action` section: what the action law is built from, here and on the robot."""
        cfg = self.config
        return action_section(
            cfg.control, self.action_dim, cfg.ee_step, self.spec.max_velocity / self.world.config.control_hz,
            self.has_gripper, damping=cfg.ik_damping, nullspace_gain=cfg.nullspace_gain, rest=self.spec.home,
            target_rotation=self.target_rotation, limit_margin=cfg.limit_margin,
            workspace_low=cfg.workspace_low, workspace_high=cfg.workspace_high,
        )

    def set_joint_targets(self, q_target: np.ndarray) -> None:
        """Drive the arm joints to `q_target`, clamped into the limits shrunk by the margin."""
        self._send(self.law.clamp(q_target))

    def _send(self, q_target: np.ndarray) -> None:
        self.command = q_target
        self.client.setJointMotorControlArray(
            self.body, self.joint_ids, p.POSITION_CONTROL, targetPositions=q_target.tolist(),
            forces=self.world.motor_forces(self._effort),
        )

    def set_fingers(self, opening_per_finger: float) -> None:
        if self.has_gripper:
            self._send_fingers(min(max(float(opening_per_finger), 0.0), FINGER_MAX_OPENING))

    def _send_fingers(self, target: float) -> None:
        self.finger_command = target
        self.client.setJointMotorControlArray(
            self.body, self.finger_ids, p.POSITION_CONTROL, targetPositions=[target] * 2,
            forces=self.world.motor_forces([40.0, 40.0]),
        )

    def kinematics(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """TCP position, rotation and 6 x 7 Jacobian from PyBullet at the current physics state.

        `q` is that state's joint positions as measured: where the driver's noise moves it off the
        true ones, the position moves with it to first order (J dq), as a controller's FK would."""
        all_q, true_q, _, _, (pos, _, rotation) = self._state()
        lin, ang = self.client.calculateJacobian(self.body, self.tcp_link, [0, 0, 0], all_q, self._zeros, self._zeros)
        jac = np.array([*lin, *ang])
        if self._finger_cols:  # drop the gripper's columns
            jac = jac[:, self._arm_cols]
        if q is not true_q:
            pos = pos + jac[:3] @ (q - true_q)
        return pos, rotation, jac

    def drive(self, q_target: np.ndarray) -> None:
        """A joint position command through the driver model (what a controller publishes)."""
        self.driver.command(self.law.clamp(np.asarray(q_target, dtype=float)))

    def advance(self, substeps: int | None = None, before_substep=None) -> None:
        """Run the physics for one control period (or `substeps` physics steps), the driver ticking
        at every physics step unless it is the ideal servo (then PyBullet runs the substeps at once)."""
        if self.driver.model.ideal:
            self.world.step(substeps, before_substep)
            return
        tick = self.driver.tick
        if before_substep is None:
            self.world.step(substeps, tick)
        else:
            def hook() -> None:
                tick()
                before_substep()
            self.world.step(substeps, hook)

    def apply_action(self, action: np.ndarray) -> None:
        """Send the action law's joint (and finger) targets for a normalized action in [-1, 1]."""
        q = self.measured_joint_positions()
        self.driver.command(self.law.joint_target(q, action, self.kinematics))  # the law clamps
        if self.has_gripper:
            self._send_fingers(finger_opening(float(action[-1])))
