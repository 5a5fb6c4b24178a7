"""The deployed controller's core, without ROS: observation -> policy -> joint target -> safety.

The action law (policy action -> joint target) is `drl_control.robot.action_law.ActionLaw`, the
same object the simulator's arm uses, built from the artifact's recorded deploy_spec; here it runs
on the DH kinematics, so a policy sees the same action semantics on the robot as in training. The
gripper target is reported but not commanded (the ros2_control arm contract carries the 7 arm
joints only; deploy.handover refuses policies with a gripper action, deploy.profiles.gripper_problem).

`PolicyController` adds goal handling, the latest joint state (any name order), inference timing
and the safety filter. Time is passed in explicitly (seconds, monotonic) so it is testable.

Object tasks (Push): the object's pose arrives by `observe_object_pose` (frame, finiteness,
`ObjectPoseGate`'s stamp and jump rules, then `ObjectPoseTracker`). While no accepted pose is
newer than `object_pose_timeout` (or none has come yet, or the poses do not yet span the velocity
difference), the controller withholds its command and the safety filter holds, with that reason.
The goal of an object task is where the object should go: it is checked against the trained TCP
box (on the table), not the flange box, which is about the arm.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from drl_control.deploy.object_pose import ObjectPoseTracker, pose_problem
from drl_control.deploy.observation import ObservationBuilder, order_joints
from drl_control.deploy.safety import Decision, ObjectPoseGate, SafetyConfig, SafetyFilter
from drl_control.robot.action_law import ActionLaw
from drl_control.robot.description import RobotSpec, iiwa14
from drl_control.robot.kinematics import forward
from drl_control.ros.names import BASE_FRAME

# A goal on the box's edge that crossed a float32 message (z = 0.02 arrives as 0.0199999996) is
# on the edge, not outside: accepted within this margin and clipped into the box.
GOAL_EDGE_TOLERANCE = 1e-6  # m


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


def goal_problem(goal: np.ndarray) -> str:
    """"" or why `goal` is no goal at all (the workspace box is the loaded policy's to judge)."""
    goal = np.asarray(goal, dtype=float).reshape(-1)
    if goal.shape != (3,) or not np.all(np.isfinite(goal)):
        return f"goal must be 3 finite numbers, got {goal.tolist()}"
    return ""


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
        self.observes_object = self.obs.observes_object
        self.goal_low = low if self.observes_object else np.maximum(low, cfg.workspace_low)
        self.goal_high = high if self.observes_object else np.minimum(high, cfg.workspace_high)
        self.object_timeout = cfg.object_pose_timeout
        self.object_gate = ObjectPoseGate(cfg, self.robot)
        # velocities over at least half a training control period (deploy.object_pose)
        self.object = ObjectPoseTracker(0.5 / self.control_hz)
        self.object_time = -np.inf  # arrival (monotonic) of the last accepted object pose
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
        problem = goal_problem(goal)
        if problem:
            return False, problem
        if np.any(goal < self.goal_low - GOAL_EDGE_TOLERANCE) or np.any(goal > self.goal_high + GOAL_EDGE_TOLERANCE):
            return False, (f"goal {np.round(goal, 3).tolist()} outside the workspace box "
                           f"{np.round(self.goal_low, 3).tolist()}..{np.round(self.goal_high, 3).tolist()}")
        self.goal = np.clip(goal, self.goal_low, self.goal_high)
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

    def observe_object_pose(
        self,
        frame_id: str,
        position: Sequence[float],
        quaternion: Sequence[float],
        stamp: float,
        now: float,
        wall: float,
    ) -> str:
        """Take a PoseStamped's fields (quaternion x, y, z, w; `stamp` the header stamp, `now`/`wall`
        the arrival on the monotonic / wall clock). Returns "" or why the pose is refused; a refused
        pose changes nothing (the last accepted one ages towards the timeout)."""
        gate = self.object_gate
        problem = pose_problem(frame_id, position, quaternion, BASE_FRAME)
        if problem:  # counted and shown like the gate's own refusals
            gate.rejected += 1
            gate.last_problem = problem
            return problem
        problem = gate.check(np.asarray(position, dtype=float), stamp, now, wall)
        if not problem:
            self.object.add(stamp, position, quaternion)  # in order: the gate checked the stamps
            self.object_time = float(now)
        return problem

    def object_problem(self, now: float) -> str:
        """Why the object parts of the observation cannot be built now ("" when they can)."""
        if self.object.reference() is None:
            return self.object.waiting_reason()
        age = now - self.object_time
        if age > self.object_timeout:
            return f"stale object pose ({age * 1e3:.0f} ms old > object_pose_timeout {self.object_timeout:g} s)"
        return ""

    # --- the tick ----------------------------------------------------------------------------
    def step(self, now: float) -> StepResult:
        """Run the policy (when it can) and ask the safety filter what to send."""
        action = None
        inference_ms = float("nan")
        distance = float("nan")
        tcp = None
        note = ""
        fresh = self.q is not None and self.safety.state_fresh(now)
        object_parts = self.object.parts() if self.observes_object else None
        if self.q is not None and np.all(np.isfinite(self.q)):
            tcp = forward(self.q, self.obs.tool_offset)[:3, 3]
        achieved = (object_parts or {}).get("object_pos") if self.observes_object else tcp
        if achieved is not None and self.goal is not None:
            distance = float(np.linalg.norm(achieved - self.goal))
        missing = self.object_problem(now) if self.observes_object else ""
        if not self.enabled:
            pass
        elif self.goal is None:
            note = "no goal"
        elif self.q is None or not np.all(np.isfinite(self.q)) or not fresh:
            pass  # the safety filter names the state problem
        elif missing:
            self.safety.withhold(missing)  # -> hold now, with this reason
        else:
            t0 = time.perf_counter()
            try:
                obs = self.obs.build(self.q, self.qd, self.goal, self.finger_width, object_parts)
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
        refused = self.object_gate.last_problem if self.observes_object else ""
        reason = "; ".join(r for r in (note, decision.reason, refused) if r)
        return StepResult(decision.command, reason, decision.holding, action, inference_ms, distance, tcp)
