"""The deployed controller's core, without ROS: observation -> policy -> joint target -> safety.

`ActionLaw` reproduces `drl_control.sim.arm.Arm.apply_action` from the artifact's recorded
deploy_spec with numpy kinematics, so a policy sees the same action semantics on the robot as in
training:

- ee_displacement: tcp target = clip(tcp + a[:3]·scale, workspace); one damped-least-squares
  step (position, plus the tool-down orientation when recorded) with null-space pull to the rest
  pose; the whole joint step scaled (direction kept) so no joint exceeds max_velocity·control_dt;
  clipped to the URDF limits shrunk by the recorded limit margin.
- joint_delta: q + a[:7]·scale (scale = max_velocity·control_dt), clipped the same way.
- gripper: finger target (a[-1] + 1)/2 · 0.04 m per finger, reported but not commanded (the
  ros2_control arm contract carries the 7 arm joints only).

`PolicyController` adds goal handling, the latest joint state (any name order), inference timing
and the safety filter. Time is passed in explicitly (seconds, monotonic) so it is testable.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from drl_control.deploy.observation import ObservationBuilder, order_joints
from drl_control.deploy.safety import Decision, SafetyConfig, SafetyFilter
from drl_control.robot.description import RobotSpec, iiwa14
from drl_control.robot.kinematics import dls_step, forward, jacobian, rotation_error

FINGER_MAX_OPENING = 0.04  # per finger; the same constant as drl_control.sim.arm


class ActionLaw:
    """Normalized action in [-1, 1] -> joint position target, exactly as the simulator applies it."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        action = spec["action"]
        robot = spec["robot"]
        self.kind = str(action["type"])
        if self.kind not in ("ee_displacement", "joint_delta"):
            raise ValueError(f"action type {self.kind!r} is unknown (expected ee_displacement or joint_delta)")
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

    def limit_speed(self, q: np.ndarray, q_target: np.ndarray) -> np.ndarray:
        dq = q_target - q
        ratio = float(np.max(np.abs(dq) / self.max_step))
        return q + dq / ratio if ratio > 1.0 else q_target

    def joint_target(self, q: np.ndarray, action: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=float)
        action = np.clip(np.asarray(action, dtype=float), -1.0, 1.0)
        if self.kind == "ee_displacement":
            pose = forward(q, self.tool_offset)
            pos = pose[:3, 3]
            target = np.clip(pos + action[:3] * self.scale, self.ws_low, self.ws_high)
            jac = jacobian(q, self.tool_offset)
            if self.target_rotation is None:
                jac, error = jac[:3], target - pos
            else:
                error = np.concatenate([target - pos, rotation_error(pose[:3, :3], self.target_rotation)])
            dq = dls_step(jac, error, q, self.damping, self.rest, self.nullspace_gain)
            q_target = self.limit_speed(q, q + dq)
        else:
            q_target = q + action[: self.n_joints] * self.scale
        return np.clip(q_target, self.lower, self.upper)

    def finger_target(self, action: np.ndarray) -> float | None:
        if not self.gripper:
            return None
        return float(np.clip((float(action[-1]) + 1.0) / 2.0 * FINGER_MAX_OPENING, 0.0, FINGER_MAX_OPENING))


@dataclass
class StepResult:
    """One control tick: what to send (None: nothing), why, and what the policy did."""

    command: np.ndarray | None
    reason: str
    holding: bool
    action: np.ndarray | None = None
    inference_ms: float = float("nan")
    distance_to_goal: float = float("nan")
    tcp: np.ndarray | None = None


class PolicyController:
    """Latest joint state + goal -> policy action -> joint target -> safety decision."""

    def __init__(
        self,
        policy: Any,
        safety: SafetyConfig | None = None,
        robot: RobotSpec | None = None,
        rate_hz: float | None = None,
    ) -> None:
        """`rate_hz` is the tick rate (default: the artifact's control rate); the safety timings
        follow it, the action law keeps the trained rate's semantics."""
        self.policy = policy
        self.spec = dict(policy.spec)
        self.robot = robot or iiwa14()
        joint_names = list(self.spec["robot"]["joint_names"])
        if joint_names != list(self.robot.joint_names):
            raise ValueError(f"artifact is for joints {joint_names}, this robot has {list(self.robot.joint_names)}")
        self.control_hz = float(self.spec["control_hz"])
        self.obs = ObservationBuilder(self.spec)
        self.law = ActionLaw(self.spec)
        self.rate_hz = float(rate_hz) if rate_hz else self.control_hz
        cfg = (safety or SafetyConfig()).with_rate(self.rate_hz)
        self.safety = SafetyFilter(cfg, self.robot)
        ik = self.spec["action"].get("ik") or {}
        # Goals: inside the TCP box the policy was trained in, intersected with the flange box.
        low = np.asarray(ik.get("workspace_low", cfg.workspace_low), dtype=float)
        high = np.asarray(ik.get("workspace_high", cfg.workspace_high), dtype=float)
        self.goal_low = np.maximum(low, cfg.workspace_low)
        self.goal_high = np.minimum(high, cfg.workspace_high)
        self.goal: np.ndarray | None = None
        self.q: np.ndarray | None = None
        self.qd: np.ndarray | None = None
        self.finger_width = 0.0
        self.distance_threshold = float(self.spec.get("distance_threshold", 0.05))

    # --- inputs ----------------------------------------------------------------------------
    def set_enabled(self, enabled: bool) -> None:
        self.safety.set_enabled(enabled)

    @property
    def enabled(self) -> bool:
        return self.safety.enabled

    def set_goal(self, goal: Sequence[float]) -> tuple[bool, str]:
        goal = np.asarray(goal, dtype=float).reshape(-1)
        if goal.shape != (3,) or not np.all(np.isfinite(goal)):
            return False, f"goal must be 3 finite numbers, got {goal.tolist()}"
        if np.any(goal < self.goal_low) or np.any(goal > self.goal_high):
            return False, (f"goal {np.round(goal, 3).tolist()} outside the workspace box "
                           f"{np.round(self.goal_low, 3).tolist()}..{np.round(self.goal_high, 3).tolist()}")
        self.goal = goal
        return True, "goal accepted"

    def observe_joint_state(
        self,
        names: Sequence[str],
        positions: Sequence[float],
        velocities: Sequence[float] | None,
        now: float,
    ) -> str:
        """Take a JointState's arrays (any order, extra joints ignored). Returns "" or what is wrong
        with it: ignored (joints missing), or unsafe (NaN, outside the URDF limits: the safety filter
        holds from its next decision, and it is said here at once, before a valid state follows)."""
        q = order_joints(names, positions, self.robot.joint_names)
        if q is None:
            return f"ignored: joint state lacks some of {list(self.robot.joint_names)} (has {list(names)})"
        qd = order_joints(names, velocities, self.robot.joint_names) if velocities is not None else None
        fingers = [positions[i] for i, n in enumerate(names) if n.startswith("gripper_finger") and i < len(positions)]
        self.finger_width = float(sum(fingers)) if fingers else 0.0
        self.q = q
        self.qd = qd if qd is not None and np.all(np.isfinite(qd)) else None
        self.safety.observe_state(q, now)
        problem = self.safety.state_problem(q)
        return f"{problem}: holding" if problem else ""

    # --- the tick ----------------------------------------------------------------------------
    def step(self, now: float) -> StepResult:
        """Run the policy (when it can) and ask the safety filter what to send."""
        action = None
        inference_ms = float("nan")
        distance = float("nan")
        tcp = None
        note = ""
        fresh = self.q is not None and (now - self.safety._state_time) <= (
            self.safety.config.stale_periods * self.safety.config.control_dt)
        if self.q is not None and np.all(np.isfinite(self.q)):
            tcp = forward(self.q, self.obs.tool_offset)[:3, 3]
            if self.goal is not None:
                distance = float(np.linalg.norm(tcp - self.goal))
        if not self.enabled:
            pass
        elif self.goal is None:
            note = "no goal"
        elif self.q is None or not np.all(np.isfinite(self.q)) or not fresh:
            pass  # the safety filter names the state problem
        else:
            t0 = time.perf_counter()
            try:
                obs = self.obs.build(self.q, self.qd, self.goal, self.finger_width)
                action = np.asarray(self.policy.act(obs), dtype=float)
                inference_ms = (time.perf_counter() - t0) * 1e3
                if action.shape != (self.law.dim,) or not np.all(np.isfinite(action)):
                    note = f"policy produced a bad action {np.round(action, 4).tolist()}"
                    action = None
                    self.safety.propose(np.full(self.robot.n_joints, np.nan), now)  # -> hold now
                else:
                    self.safety.propose(self.law.joint_target(self.q, action), now)
            except Exception as exc:  # noqa: BLE001 - a node must stay up; the reason is reported
                note = f"policy step failed: {type(exc).__name__}: {exc}"
                action = None
                self.safety.propose(np.full(self.robot.n_joints, np.nan), now)  # -> hold now
        decision: Decision = self.safety.decide(now)
        reason = "; ".join(r for r in (note, decision.reason) if r)
        return StepResult(decision.command, reason, decision.holding, action, inference_ms, distance, tcp)
