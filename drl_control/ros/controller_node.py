"""`controller_node`: a deploy artifact driving an arm through the ros2_control topic contract.

    controller_node --ros-args -p artifact:=artifacts/reach -p autostart:=true
    controller_node --ros-args -p command_interface:=trajectory -r __ns:=/drl

In:  `joint_states` (sensor_msgs/JointState, any joint order, extra joints ignored),
     `goal` (geometry_msgs/PointStamped, frame "" or iiwa_link_0), `~/set_goal` (SetGoal),
     `~/load_policy` (LoadPolicy), `~/enable` (std_srvs/SetBool: enable / e-stop).
Out: `forward_position_controller/commands` (Float64MultiArray, 7 positions) or, with
     command_interface:=trajectory, `joint_trajectory_controller/joint_trajectory` (one point,
     reached one control period ahead); `~/status` (ControllerStatus, every tick);
     `markers` (MarkerArray: goal sphere + executed end-effector path, ns "controller/...").

The node starts disabled (autostart:=true enables it). While disabled it publishes NO commands
(see drl_control.deploy.safety). Policy, observation, action law and safety filter live in
drl_control.deploy; this file converts messages and keeps time. It stays up on any bad input and
logs the reason (once per change of reason).
"""

from __future__ import annotations

import collections
import sys
import time
from typing import Any

import numpy as np
from geometry_msgs.msg import PointStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray

from drl_control.deploy.controller import PolicyController, StepResult
from drl_control.deploy.safety import SafetyConfig
from drl_control.robot import iiwa14
from drl_control.ros import conversions as conv
from drl_control.ros import names
from drl_control.ros.spin import run_node
from drl_control_interfaces.msg import ControllerStatus
from drl_control_interfaces.srv import LoadPolicy, SetGoal

COMMAND_INTERFACES = ("position", "trajectory")
IDLE_RATE = 10.0  # Hz: status ticks while no policy is loaded
MARKER_PERIOD = 0.1  # s


class ControllerNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(names.CONTROLLER_NODE, **kwargs)
        p = self.declare_parameter
        artifact = str(p("artifact", "").value)
        self.command_interface = str(p("command_interface", "position").value)
        autostart = bool(p("autostart", False).value)
        self.rate_override = float(p("rate_hz", 0.0).value)  # 0: the artifact's control rate
        goal = list(p("goal", [0.0]).value)
        self.path_length = int(p("path_length", 500).value)
        self.realtime_priority = int(p("realtime_priority", 0).value)  # SCHED_FIFO; 0: normal scheduling
        self.safety_config = SafetyConfig(
            limit_margin=float(p("limit_margin", SafetyConfig.limit_margin).value),
            velocity_scale=float(p("velocity_scale", SafetyConfig.velocity_scale).value),
            workspace_low=tuple(float(v) for v in p("workspace_low", list(SafetyConfig.workspace_low)).value),
            workspace_high=tuple(float(v) for v in p("workspace_high", list(SafetyConfig.workspace_high)).value),
            stale_periods=float(p("stale_periods", SafetyConfig.stale_periods).value),
            command_timeout_periods=float(p("command_timeout_periods", SafetyConfig.command_timeout_periods).value),
        )
        if self.command_interface not in COMMAND_INTERFACES:
            raise ValueError(f"command_interface must be one of {COMMAND_INTERFACES}, got {self.command_interface!r}")
        self.joint_names = list(iiwa14().joint_names)
        self.core: PolicyController | None = None
        self.enabled = autostart
        self.goal: np.ndarray | None = None
        self._last_state: tuple[list[str], list[float], list[float] | None, float] | None = None
        self._last_reason: str | None = None
        self._last_marker = 0.0
        self._timer = None
        self.path: collections.deque = collections.deque(maxlen=max(2, self.path_length))
        self.last_result: StepResult | None = None

        if self.command_interface == "position":
            self.command_pub = self.create_publisher(Float64MultiArray, names.FORWARD_POSITION_COMMANDS, 10)
        else:
            self.command_pub = self.create_publisher(JointTrajectory, names.JOINT_TRAJECTORY, 10)
        self.status_pub = self.create_publisher(ControllerStatus, names.STATUS, 10)
        self.marker_pub = self.create_publisher(MarkerArray, names.MARKERS, 10)
        self.create_subscription(JointState, names.JOINT_STATES, self._on_joint_state, 10)
        self.create_subscription(PointStamped, names.GOAL, self._on_goal, 10)
        self.create_service(SetGoal, names.SET_GOAL, self._on_set_goal)
        self.create_service(LoadPolicy, names.LOAD_POLICY, self._on_load_policy)
        self.create_service(SetBool, names.ENABLE, self._on_enable)

        if artifact:
            self._report(*self.load(artifact))
        else:
            self._restart_timer(IDLE_RATE)
        if len(goal) == 3:
            ok, message = self.set_goal(np.asarray(goal, dtype=float))
            if not ok:
                self.get_logger().warning(f"goal parameter rejected: {message}")
        self.get_logger().info(
            f"ready: {'enabled' if self.enabled else 'disabled (call ~/enable)'}, commands on "
            f"{self.command_pub.topic_name}")

    # --- setup --------------------------------------------------------------------------------
    @property
    def rate_hz(self) -> float:
        if self.rate_override > 0:
            return self.rate_override
        return self.core.control_hz if self.core is not None else IDLE_RATE

    def _restart_timer(self, rate: float) -> None:
        if self._timer is not None:
            self.destroy_timer(self._timer)
        self._timer = self.create_timer(1.0 / rate, self._tick)

    def load(self, artifact: str) -> tuple[bool, str]:
        """Load an artifact; on any failure the previous policy (if any) stays in charge."""
        from drl_control.deploy.policy import DeployPolicy

        try:
            policy = DeployPolicy.load(artifact, joint_names=self.joint_names)
            core = PolicyController(policy, self.safety_config, rate_hz=self.rate_override or None)
        except Exception as exc:  # noqa: BLE001 - any bad artifact is reported, never fatal
            return False, f"cannot load {artifact!r}: {exc}"
        core.set_enabled(self.enabled)
        if self.goal is not None:
            ok, why = core.set_goal(self.goal)
            if not ok:
                self.goal = None
                self.get_logger().warning(f"previous goal dropped by the new policy: {why}")
        if self._last_state is not None:
            core.observe_joint_state(*self._last_state)
        self.core = core
        self._restart_timer(self.rate_hz)
        return True, (f"loaded {artifact} ({policy.algorithm}, {policy.env_id}, "
                      f"{policy.spec['action']['type']}) at {self.rate_hz:g} Hz")

    # --- inputs ------------------------------------------------------------------------------
    def _on_joint_state(self, msg: JointState) -> None:
        now = time.monotonic()
        problem = conv.joint_state_problem(msg.name, msg.position, msg.velocity, msg.effort, self.joint_names)
        if problem:  # the last valid state stays; the stale-state watchdog holds if none follows
            self._log_reason(f"joint_states rejected: {problem}")
            return
        velocities = list(msg.velocity) if len(msg.velocity) == len(msg.name) else None
        self._last_state = (list(msg.name), list(msg.position), velocities, now)
        if self.core is not None:
            why = self.core.observe_joint_state(msg.name, msg.position, velocities, now)
            if why:
                self._log_reason(f"joint_states: {why}")

    def set_goal(self, goal: np.ndarray) -> tuple[bool, str]:
        if self.core is None:
            goal = np.asarray(goal, dtype=float)
            if goal.shape != (3,) or not np.all(np.isfinite(goal)):
                return False, f"goal must be 3 finite numbers, got {goal.tolist()}"
            self.goal = goal  # checked against the policy's workspace when one is loaded
            return True, "goal stored; no policy loaded yet"
        ok, message = self.core.set_goal(goal)
        if ok:
            self.goal = np.asarray(goal, dtype=float)
        return ok, message

    def _on_goal(self, msg: PointStamped) -> None:
        goal = [msg.point.x, msg.point.y, msg.point.z]
        problem = conv.point_problem(msg.header.frame_id, goal)
        if problem:
            self.get_logger().warning(f"goal rejected: {problem}")
            return
        ok, message = self.set_goal(np.array(goal))
        self._report(ok, f"goal {'accepted' if ok else 'rejected'}: {message}")

    def _on_set_goal(self, request: SetGoal.Request, response: SetGoal.Response) -> SetGoal.Response:
        ok, message = self.set_goal(np.array([request.goal.x, request.goal.y, request.goal.z]))
        self._report(ok, f"{names.SET_GOAL} {'accepted' if ok else 'rejected'}: {message}")
        response.success, response.message = ok, message
        return response

    def _on_load_policy(self, request: LoadPolicy.Request, response: LoadPolicy.Response) -> LoadPolicy.Response:
        ok, message = self.load(request.artifact_dir)
        self._report(ok, message)
        response.success, response.message = ok, message
        return response

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self.enabled = bool(request.data)
        if self.core is not None:
            self.core.set_enabled(self.enabled)
        response.success = True
        response.message = "enabled" if self.enabled else "disabled: no commands are published"
        if self.core is None and self.enabled:
            response.message += " (no policy loaded yet)"
        self.get_logger().info(response.message)
        return response

    # --- the tick ----------------------------------------------------------------------------
    def _report(self, ok: bool, message: str) -> None:
        # rclpy refuses one call site logging at two severities: one site per severity
        if ok:
            self.get_logger().info(message)
        else:
            self.get_logger().warning(message)

    def _log_reason(self, reason: str, holding: bool = True) -> None:
        """Log a reason once per change: holds as warnings, adjustments (clamp, speed) as debug."""
        if reason != self._last_reason:
            self._last_reason = reason
            if reason and holding:
                self.get_logger().warning(reason)
            elif reason:
                self.get_logger().debug(reason)

    def _tick(self) -> None:
        now = time.monotonic()
        if self.core is None:
            self._publish_status(None, "no policy loaded")
            return
        try:
            result = self.core.step(now)
        except Exception as exc:  # noqa: BLE001 - the node stays up; the arm gets nothing this tick
            result = StepResult(None, f"controller step failed: {type(exc).__name__}: {exc}", True)
        self.last_result = result
        if result.command is not None:
            self._publish_command(result.command)
        self._log_reason(result.reason if self.enabled else "", result.holding)
        self._publish_status(result, result.reason)
        if result.tcp is not None:  # stored as messages: a marker publish then only copies the list
            self.path.append(conv.point_msg(result.tcp))
        if now - self._last_marker >= MARKER_PERIOD:
            self._last_marker = now
            self._publish_markers()

    def _publish_command(self, command: np.ndarray) -> None:
        if self.command_interface == "position":
            self.command_pub.publish(conv.command_msg(command))
        else:
            self.command_pub.publish(conv.command_msg(command, self.joint_names, 1.0 / self.rate_hz))

    def _publish_status(self, result: StepResult | None, reason: str) -> None:
        msg = ControllerStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = names.BASE_FRAME
        msg.enabled = self.enabled
        msg.policy_loaded = self.core is not None
        msg.holding = bool(result is not None and result.holding and self.enabled)
        if self.core is None:
            msg.state = "idle"
        elif not self.enabled:
            msg.state = "disabled"
        elif msg.holding:
            msg.state = "holding"
        else:
            msg.state = "running"
        msg.reason = reason
        msg.distance_to_goal = float(result.distance_to_goal) if result is not None else float("nan")
        msg.inference_ms = float(result.inference_ms) if result is not None else float("nan")
        self.status_pub.publish(msg)

    def _publish_markers(self) -> None:
        stamp = self.get_clock().now().to_msg()
        self.marker_pub.publish(MarkerArray(markers=[
            conv.goal_marker(stamp, self.goal, "controller/goal", (0.1, 0.3, 0.9, 0.8)),
            conv.path_marker(stamp, self.path, "controller/ee_path", (0.9, 0.8, 0.1, 1.0)),
        ]))

def main(args: list[str] | None = None) -> int:
    return run_node(ControllerNode, args, realtime=True)

if __name__ == "__main__":
    sys.exit(main())
