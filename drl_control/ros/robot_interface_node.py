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

Faults (each said once in the log and on `~/status`, state "fault"): `~/enable true` is refused
while nothing subscribes to the driver's command topic, while more than one process publishes the
driver's joint_states, or when the driver's joint names at its first joint_states are not the
profile's (that one is latched: restart with the right profile). While enabled, if the driver's
subscription goes away or the arm does not follow (drl_control.deploy.safety.TrackingMonitor,
allowance from the profile's `tracking`), the node sends the measured position once and disables
itself. Driver states pass a StateGate (stamp age, jumps) before the filter sees them.
Parameters are read-only; timers run on the steady clock; use_sim_time is refused
(drl_control.ros.guards).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from drl_control.deploy.profiles import JointMap, load_profile
from drl_control.deploy.safety import SafetyFilter, StateGate, TrackingMonitor
from drl_control.robot import iiwa14
from drl_control.ros import conversions as conv
from drl_control.ros import guards, names
from drl_control.ros.arm_node import CommandOut, ReasonLog, StateIntake, status_msg
from drl_control.ros.spin import Param, declare_parameters, run_node
from drl_control_interfaces.msg import ControllerStatus

DRY_RUN_COMMANDS = "~/dry_run/commands"
DRY_RUN_TRAJECTORY = "~/dry_run/joint_trajectory"


class RobotInterfaceNode(Node):
    # Every parameter is read-only: set at start with -p, never at run time (drl_control.ros.guards).
    PARAMETERS = tuple(Param(p.name, p.default, p.description, read_only=True) for p in (
        Param("profile", "sim", "robot profile of config/robot_profiles.yaml (lbr, iiwa_ros2, sim)"),
        Param("profiles_file", "", "another robot profiles YAML file (empty: the package's)"),
        Param("joint_states", "", "driver's joint state topic (empty: the profile's)"),
        Param("position_commands", "", "driver's position command topic (empty: the profile's)"),
        Param("joint_trajectory", "", "driver's joint trajectory topic (empty: the profile's)"),
        Param("driver_joint_names", [""], "driver's joint names in our joint order ([''] : the profile's)"),
        Param("command_interface", "", "position or trajectory (empty: the profile's)"),
        Param("rate_hz", 0.0, "command rate to the driver in Hz (0: the profile's)"),
        Param("dry_run", False, "send nothing to the driver: commands go to ~/dry_run/* instead"),
        Param("realtime_priority", 0, "SCHED_FIFO priority of the process (0: normal scheduling)"),
        Param("autostart", False, "start enabled (otherwise disabled until ~/enable true; disabled sends nothing)"),
        Param("velocity_scale", 0.0, "fraction of the URDF joint speeds allowed (0: the profile's)"),
        Param("limit_margin", -1.0, "rad kept clear of every URDF joint limit (negative: the profile's)"),
    ))

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(names.ROBOT_INTERFACE_NODE, **kwargs)
        guards.refuse_sim_time(self)
        v = declare_parameters(self, self.PARAMETERS)  # every row read-only (drl_control.ros.guards)
        profile_name = str(v["profile"])
        profiles_file = str(v["profiles_file"])
        overrides = {
            "joint_states": str(v["joint_states"]),
            "position_commands": str(v["position_commands"]),
            "joint_trajectory": str(v["joint_trajectory"]),
            "joint_names": list(v["driver_joint_names"]),
            "command_interface": str(v["command_interface"]),
            "rate_hz": float(v["rate_hz"]) or None,
        }
        if overrides["joint_names"] == [""]:
            overrides["joint_names"] = None
        self.dry_run = bool(v["dry_run"])
        self.realtime_priority = int(v["realtime_priority"])  # SCHED_FIFO; 0: normal scheduling
        autostart = bool(v["autostart"])  # enable as soon as enabling is allowed
        velocity_scale = float(v["velocity_scale"]) or None
        limit_margin = float(v["limit_margin"])
        self.spec = iiwa14()
        try:
            self.profile = load_profile(profile_name, profiles_file or None).with_overrides(**overrides)
            self.map = JointMap(self.spec.joint_names, self.profile.joint_names)
            config = self.profile.safety_config(velocity_scale=velocity_scale,
                                                limit_margin=limit_margin if limit_margin >= 0 else None)
            self.safety = SafetyFilter(config, self.spec)
            tracking = TrackingMonitor(self.profile.tracking_config(), self.safety.max_step / config.control_dt,
                                       self.spec.joint_names)
        except (ValueError, OSError) as exc:
            raise guards.ParameterError(str(exc)) from None
        self.intake = StateIntake(StateGate(config, self.spec), tracking, self.get_logger(), "driver joint_states")
        self.reasons = ReasonLog(self.get_logger())
        self.period = 1.0 / self.profile.rate_hz
        self._names_checked = False

        # our side (relative names, resolved in this node's namespace)
        self.state_pub = self.create_publisher(JointState, names.JOINT_STATES, 10)
        self.create_subscription(Float64MultiArray, names.FORWARD_POSITION_COMMANDS, self._on_positions, 10)
        self.create_subscription(JointTrajectory, names.JOINT_TRAJECTORY, self._on_trajectory, 10)
        self.create_service(SetBool, names.ENABLE, self._on_enable, callback_group=MutuallyExclusiveCallbackGroup())
        self.status_pub = self.create_publisher(ControllerStatus, names.STATUS, 10)
        ours = {self.resolve_topic_name(n) for n in (names.JOINT_STATES, names.FORWARD_POSITION_COMMANDS,
                                                     names.JOINT_TRAJECTORY)}
        theirs = {self.profile.joint_states, self.profile.position_commands, self.profile.joint_trajectory}
        if ours & theirs:
            raise guards.ParameterError(f"our topics {sorted(ours & theirs)} coincide with the driver's: run this "
                                        "node in another namespace (-r __ns:=/drl)")

        # driver side (absolute names from the profile)
        self.create_subscription(JointState, self.profile.joint_states, self._on_driver_state, 10)
        trajectory = self.profile.command_interface == "trajectory"
        if self.dry_run:
            topic = DRY_RUN_TRAJECTORY if trajectory else DRY_RUN_COMMANDS
        else:
            topic = self.profile.joint_trajectory if trajectory else self.profile.position_commands
        self.out = CommandOut(self, trajectory, topic, self.map.theirs, self.intake)
        self.enabler = guards.EnableGate(self, self.out.pub, self.profile.joint_states, self._apply_enabled,
                                         autostart, self.dry_run)
        self.create_timer(self.period, self._tick, clock=guards.steady_clock())
        self.get_logger().info(
            f"profile {self.profile.name}: driver state {self.profile.joint_states}, commands -> "
            f"{self.out.pub.topic_name}{' (DRY RUN: nothing is sent to the arm)' if self.dry_run else ''}, "
            f"{'enabling once allowed (autostart)' if autostart else 'disabled (call ~/enable)'}")

    # --- inputs ------------------------------------------------------------------------------
    def _on_driver_state(self, msg: JointState) -> None:
        now, wall = time.monotonic(), time.time()
        if not self._names_checked:  # the driver's generation must be the profile's (lbr_A1 vs A1)
            self._names_checked = True
            if not set(self.map.theirs) <= set(msg.name):
                self._trip(f"driver joint names {list(msg.name)} are not the profile {self.profile.name!r} "
                           f"joint names {self.map.theirs}: wrong profile?", latch=True)
        problem = conv.joint_state_problem(msg.name, msg.position, msg.velocity, msg.effort, self.map.theirs)
        mapped = None if problem else self.map.state_to_ours(msg.name, msg.position, msg.velocity, msg.effort)
        if mapped is None:  # the last valid state stays; the stale-state watchdog holds if none follows
            self.reasons.say(f"driver joint_states rejected: {problem or 'cannot map them'}")
            return
        q, qd, effort = mapped
        problem = self.safety.state_problem(q)
        if problem:  # NaN / out of range: the filter holds at once, and our side never sees it
            self.safety.observe_state(q, now)
            self.reasons.say(f"driver joint_states not relayed: {problem}")
            return
        accepted, fault = self.intake.accept(q, msg.header.stamp, now, wall, self.safety.enabled and not self.dry_run)
        if not accepted:  # the filter keeps the last accepted state (then: stale -> hold)
            return
        self.safety.observe_state(q, now)
        if fault:
            self._trip(fault)
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
            self.reasons.say(f"rejected {names.JOINT_TRAJECTORY}: needs joints {self.map.ours} once each and at "
                             f"least one point (got {list(msg.joint_names)}, {len(msg.points)} points)")
            target = np.full(self.spec.n_joints, np.nan)  # -> hold
            self.safety.propose(target, time.monotonic())
            return
        self._propose(names.JOINT_TRAJECTORY, target)

    def _propose(self, topic: str, q: np.ndarray) -> None:
        """A command for the safety filter: wrong size / NaN -> hold, outside the limits -> clamped (logged)."""
        n = self.spec.n_joints
        if q.shape != (n,) or not np.all(np.isfinite(q)):
            self.reasons.say(f"rejected {topic}: not {n} finite positions: {np.round(q, 4).tolist()} (holding)")
        else:
            bad = np.flatnonzero((q < self.safety.lower) | (q > self.safety.upper))
            if bad.size:
                j = int(bad[0])
                self.reasons.say(f"{topic}: {self.spec.joint_names[j]} = {q[j]:.4g} rad outside the limits "
                                 f"[{self.safety.lower[j]:.4f}, {self.safety.upper[j]:.4f}] (with margin): clamped")
        self.safety.propose(q, time.monotonic())

    def _apply_enabled(self, enabled: bool) -> None:
        self.safety.set_enabled(enabled)
        self.intake.reset()

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        return self.enabler.on_enable(request, response, "disabled: nothing is sent to the driver")

    def _trip(self, fault: str, latch: bool = False) -> None:
        """Hold where the arm is (one command: the measured position), then disable; said once."""
        measured = self.safety.measured
        if self.safety.enabled and measured is not None:
            self.out.hold(measured, self.spec.lower, self.spec.upper, self.period)
        self.enabler.trip(fault, latch)

    # --- the tick ----------------------------------------------------------------------------
    def _tick(self) -> None:
        now = time.monotonic()
        lost = self.enabler.supervise(now)
        if lost:
            self._trip(lost)
        decision = self.safety.decide(now)
        if decision.command is not None:
            self.out.send(decision.command, self.safety.enabled, self.period)
        if decision.holding:
            self.reasons.say(decision.reason)
        fault, extra = self.enabler.notes()
        enabled = self.safety.enabled
        state = ("fault" if fault else "disabled" if not enabled else "dry_run" if self.dry_run
                 else "holding" if decision.holding else "running")
        notes = (fault, decision.reason if enabled else "", extra, self.intake.gate.last_problem)
        self.status_pub.publish(status_msg(self.get_clock().now().to_msg(), enabled=enabled, holding=decision.holding,
                                           state=state, notes=notes if any(notes) or enabled else ("disabled",)))


def main(args: list[str] | None = None) -> int:
    return run_node(RobotInterfaceNode, args, realtime=True, usage_errors=guards.USAGE_ERRORS,
                    prog="robot_interface_node")


if __name__ == "__main__":
    sys.exit(main())
