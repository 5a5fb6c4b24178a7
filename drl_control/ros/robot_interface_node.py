"""`robot_interface_node`: relays between our controller and a real arm's driver, with a second
safety layer.

    robot_interface_node --ros-args -p profile:=lbr -p autostart:=true
    robot_interface_node --ros-args -r __ns:=/drl -p profile:=iiwa_ros2 -p dry_run:=true

A profile (config/robot_profiles.yaml: lbr, iiwa_ros2, sim) names the driver's topics (absolute)
and joint names. The node
- relays the driver's joint_states to our `joint_states` (relative), renamed to iiwa_joint_1..7
  and reordered (extra driver joints dropped);
- takes our `forward_position_controller/commands` (7 positions, our order) and
  `joint_trajectory_controller/joint_trajectory` (our joint names, any order; its first point is
  the target) as proposals for the safety filter (drl_control.deploy.safety: limits with margin,
  speed scaling, workspace box, stale-state watchdog, command timeout, e-stop, NaN);
- every tick (`rate_hz`) sends the filter's decision to the driver's forward position controller
  or joint trajectory controller (`command_interface`), with the driver's joint names and order;
- `~/enable` (SetBool) enables / e-stops (start disabled unless autostart:=true; disabled sends
  nothing), `~/status` (ControllerStatus) reports state and reason;
- dry_run:=true creates NO driver command publisher: what would be sent goes to
  `~/dry_run/commands` (Float64MultiArray) or `~/dry_run/joint_trajectory` instead.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from drl_control.deploy.profiles import JointMap, load_profile
from drl_control.deploy.safety import SafetyFilter
from drl_control.robot import iiwa14
from drl_control.ros import conversions as conv
from drl_control.ros import names
from drl_control.ros.spin import run_node
from drl_control_interfaces.msg import ControllerStatus

DRY_RUN_COMMANDS = "~/dry_run/commands"
DRY_RUN_TRAJECTORY = "~/dry_run/joint_trajectory"


class RobotInterfaceNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(names.ROBOT_INTERFACE_NODE, **kwargs)
        p = self.declare_parameter
        profile_name = str(p("profile", "sim").value)
        profiles_file = str(p("profiles_file", "").value)
        overrides = {
            "joint_states": str(p("joint_states", "").value),
            "position_commands": str(p("position_commands", "").value),
            "joint_trajectory": str(p("joint_trajectory", "").value),
            "joint_names": list(p("driver_joint_names", [""]).value),
            "command_interface": str(p("command_interface", "").value),
            "rate_hz": float(p("rate_hz", 0.0).value) or None,
        }
        if overrides["joint_names"] == [""]:
            overrides["joint_names"] = None
        self.dry_run = bool(p("dry_run", False).value)
        self.realtime_priority = int(p("realtime_priority", 0).value)  # SCHED_FIFO; 0: normal scheduling
        autostart = bool(p("autostart", False).value)
        velocity_scale = float(p("velocity_scale", 0.0).value) or None
        limit_margin = float(p("limit_margin", -1.0).value)
        self.profile = load_profile(profile_name, profiles_file or None).with_overrides(**overrides)
        self.spec = iiwa14()
        self.map = JointMap(self.spec.joint_names, self.profile.joint_names)
        config = self.profile.safety_config(velocity_scale=velocity_scale,
                                            limit_margin=limit_margin if limit_margin >= 0 else None)
        self.safety = SafetyFilter(config, self.spec)
        self.safety.set_enabled(autostart)
        self.period = 1.0 / self.profile.rate_hz
        self._last_reason: str | None = None

        # our side (relative names, resolved in this node's namespace)
        self.state_pub = self.create_publisher(JointState, names.JOINT_STATES, 10)
        self.create_subscription(Float64MultiArray, names.FORWARD_POSITION_COMMANDS, self._on_positions, 10)
        self.create_subscription(JointTrajectory, names.JOINT_TRAJECTORY, self._on_trajectory, 10)
        self.create_service(SetBool, names.ENABLE, self._on_enable)
        self.status_pub = self.create_publisher(ControllerStatus, names.STATUS, 10)
        ours = {self.resolve_topic_name(n) for n in (names.JOINT_STATES, names.FORWARD_POSITION_COMMANDS,
                                                     names.JOINT_TRAJECTORY)}
        theirs = {self.profile.joint_states, self.profile.position_commands, self.profile.joint_trajectory}
        if ours & theirs:
            raise ValueError(f"our topics {sorted(ours & theirs)} coincide with the driver's: run this node in "
                             "another namespace (-r __ns:=/drl)")

        # driver side (absolute names from the profile)
        self.create_subscription(JointState, self.profile.joint_states, self._on_driver_state, 10)
        trajectory = self.profile.command_interface == "trajectory"
        if self.dry_run:
            topic = DRY_RUN_TRAJECTORY if trajectory else DRY_RUN_COMMANDS
        else:
            topic = self.profile.joint_trajectory if trajectory else self.profile.position_commands
        self.command_pub = self.create_publisher(JointTrajectory if trajectory else Float64MultiArray, topic, 10)
        self.create_timer(self.period, self._tick)
        self.get_logger().info(
            f"profile {self.profile.name}: driver state {self.profile.joint_states}, commands -> "
            f"{self.command_pub.topic_name}{' (DRY RUN: nothing is sent to the arm)' if self.dry_run else ''}, "
            f"{'enabled' if autostart else 'disabled (call ~/enable)'}")

    # --- inputs ------------------------------------------------------------------------------
    def _on_driver_state(self, msg: JointState) -> None:
        now = time.monotonic()
        problem = conv.joint_state_problem(msg.name, msg.position, msg.velocity, msg.effort, self.map.theirs)
        mapped = None if problem else self.map.state_to_ours(msg.name, msg.position, msg.velocity, msg.effort)
        if mapped is None:  # the last valid state stays; the stale-state watchdog holds if none follows
            self._log_reason(f"driver joint_states rejected: {problem or 'cannot map them'}")
            return
        q, qd, effort = mapped
        self.safety.observe_state(q, now)  # NaN / out of range: the filter holds at once
        problem = self.safety.state_problem(q)
        if problem:  # ...and our side never sees it (our controller then holds on stale state)
            self._log_reason(f"driver joint_states not relayed: {problem}")
            return
        out = JointState()
        out.header = msg.header
        out.name = list(self.spec.joint_names)
        out.position = q.tolist()
        out.velocity = [] if qd is None else qd.tolist()
        out.effort = [] if effort is None else effort.tolist()
        self.state_pub.publish(out)

    def _on_positions(self, msg: Float64MultiArray) -> None:
        self._propose(names.FORWARD_POSITION_COMMANDS, np.asarray(msg.data, dtype=float))

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        target = None
        if msg.points:
            target = self.map.command_to_ours(list(msg.joint_names), list(msg.points[0].positions))
        if target is None:
            self._log_reason(f"rejected {names.JOINT_TRAJECTORY}: needs joints {self.map.ours} once each and at "
                             f"least one point (got {list(msg.joint_names)}, {len(msg.points)} points)")
            target = np.full(self.spec.n_joints, np.nan)  # -> hold
            self.safety.propose(target, time.monotonic())
            return
        self._propose(names.JOINT_TRAJECTORY, target)

    def _propose(self, topic: str, q: np.ndarray) -> None:
        """A command for the safety filter: wrong size / NaN -> hold, outside the limits -> clamped (logged)."""
        n = self.spec.n_joints
        if q.shape != (n,) or not np.all(np.isfinite(q)):
            self._log_reason(f"rejected {topic}: not {n} finite positions: {np.round(q, 4).tolist()} (holding)")
        else:
            bad = np.flatnonzero((q < self.safety.lower) | (q > self.safety.upper))
            if bad.size:
                j = int(bad[0])
                self._log_reason(f"{topic}: {self.spec.joint_names[j]} = {q[j]:.4g} rad outside the limits "
                                 f"[{self.safety.lower[j]:.4f}, {self.safety.upper[j]:.4f}] (with margin): clamped")
        self.safety.propose(q, time.monotonic())

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self.safety.set_enabled(bool(request.data))
        response.success = True
        response.message = "enabled" if request.data else "disabled: nothing is sent to the driver"
        self.get_logger().info(response.message)
        return response

    # --- the tick ----------------------------------------------------------------------------
    def _log_reason(self, reason: str) -> None:
        if reason != self._last_reason:
            self._last_reason = reason
            if reason:
                self.get_logger().warning(reason)

    def _tick(self) -> None:
        decision = self.safety.decide(time.monotonic())
        if decision.command is not None:
            self._send(decision.command)
        if decision.holding:
            self._log_reason(decision.reason)
        status = ControllerStatus()
        status.header.stamp = self.get_clock().now().to_msg()
        status.header.frame_id = names.BASE_FRAME
        status.enabled = self.safety.enabled
        status.policy_loaded = False
        status.holding = decision.holding
        if not self.safety.enabled:
            status.state = "disabled"
        elif self.dry_run:
            status.state = "dry_run"
        else:
            status.state = "holding" if decision.holding else "running"
        status.reason = decision.reason
        status.distance_to_goal = float("nan")
        status.inference_ms = float("nan")
        self.status_pub.publish(status)

    def _send(self, command: np.ndarray) -> None:
        if self.profile.command_interface == "position":
            self.command_pub.publish(conv.command_msg(command))
        else:
            self.command_pub.publish(conv.command_msg(command, self.map.theirs, self.period))

def main(args: list[str] | None = None) -> int:
    return run_node(RobotInterfaceNode, args, realtime=True)

if __name__ == "__main__":
    sys.exit(main())
