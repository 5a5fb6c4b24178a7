"""`controller_node`: a deploy artifact driving an arm through the ros2_control topic contract.

    controller_node --ros-args -p artifact:=artifacts/reach -p autostart:=true
    controller_node --ros-args -p command_interface:=trajectory -r __ns:=/drl

In:  `joint_states` (sensor_msgs/JointState, any joint order, extra joints ignored),
     `goal` (geometry_msgs/PointStamped, frame "" or iiwa_link_0), `~/set_goal` (SetGoal),
     `object_pose` (geometry_msgs/PoseStamped, frame iiwa_link_0; subscribed only while the loaded
     policy observes an object: deploy.controller, docs/DEPLOY.md "Object tasks"),
     `~/load_policy` (LoadPolicy), `~/enable` (std_srvs/SetBool: enable / e-stop).
Out: `forward_position_controller/commands` (Float64MultiArray, 7 positions) or, with
     command_interface:=trajectory, `joint_trajectory_controller/joint_trajectory` (one point,
     reached one control period ahead); `~/status` (ControllerStatus, every tick);
     `markers` (MarkerArray: goal sphere + executed end-effector path, ns "controller/...").
record:=PATH.mcap also writes what it received and sent to a rosbag2 MCAP file (drl_control.record).

The node starts disabled (autostart:=true enables it as soon as enabling is allowed). While
disabled it publishes NO commands (see drl_control.deploy.safety). `~/enable true` is refused while
nothing subscribes to the command topic or more than one process publishes `joint_states`; if the
subscriber goes away while enabled, the node disables itself (state "fault", said once in the log).
Joint states come in as robot_interface_node's do (ros.arm_node.StateIntake: StateGate on stamp
age and jumps; with `profile` set, the driver it commands, while enabled the profile's tracking
check: an arm that does not follow gets the measured position once, then the node disables itself,
state "fault"). Without `profile` no tracking check (robot_interface_node makes it with its own).
Object poses pass the same rules (ObjectPoseGate).
`~/load_policy` runs in a thread of its own (drl_control.ros.offload, deploy.handover: everything
validated first, a failure changes nothing).
Parameters are read-only, timers tick on the steady clock, use_sim_time is refused (ros.guards).
This file converts messages and keeps time; it stays up on any bad input and logs the reason.
"""

from __future__ import annotations

import collections
import sys
import time
from typing import Any

import numpy as np
from geometry_msgs.msg import PointStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool
from visualization_msgs.msg import MarkerArray

from drl_control.deploy.controller import PolicyController, StepResult, goal_problem
from drl_control.deploy.handover import PolicyHandover, carry_over
from drl_control.deploy.observation import order_joints
from drl_control.deploy.safety import SafetyFilter, StateGate, TrackingMonitor
from drl_control.record.writer import NODE_STATE_PERIOD, Recorder
from drl_control.robot import iiwa14
from drl_control.ros import conversions as conv
from drl_control.ros import guards, names
from drl_control.ros.arm_node import CommandOut, ReasonLog, StateIntake, status_msg
from drl_control.ros.controller_params import PARAMETERS, controller_settings
from drl_control.ros.object_input import ObjectPoseInput
from drl_control.ros.offload import OffloadedService
from drl_control.ros.spin import declare_parameters, run_node
from drl_control_interfaces.msg import ControllerStatus
from drl_control_interfaces.srv import LoadPolicy, SetGoal

IDLE_RATE = 10.0  # Hz: status ticks while no policy is loaded
MARKER_PERIOD = 0.1  # s


class ControllerNode(Node):
    PARAMETERS = PARAMETERS  # read-only, checked by controller_settings (ros/controller_params.py)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(names.CONTROLLER_NODE, **kwargs)
        guards.refuse_sim_time(self)
        s = controller_settings(declare_parameters(self, self.PARAMETERS))
        artifact, autostart, goal = s.artifact, s.autostart, s.goal
        self.command_interface, self.rate_override, self.path_length = s.command_interface, s.rate_override, s.path_length
        self.realtime_priority, self.safety_config, self.max_rate = s.realtime_priority, s.safety, s.max_rate
        try:  # last: a bad record path stops the node (one line, exit 2) before anything is published
            self.recorder = Recorder(s.record, start_ns=self._now_ns(), state_period=NODE_STATE_PERIOD, metadata={
                "source": "controller_node", "artifact": artifact}) if s.record else None
        except (ValueError, OSError) as exc:
            raise guards.ParameterError(str(exc)) from None
        spec = iiwa14()
        self.joint_names = list(spec.joint_names)
        self._limits = SafetyFilter(self.safety_config, spec)  # its state_problem only
        tracking = None if s.tracking is None else TrackingMonitor(  # command speed as robot_interface_node's
            s.tracking, self._limits.max_step / self.safety_config.control_dt, self.joint_names)
        self.intake = StateIntake(StateGate(self.safety_config, spec), tracking, self.get_logger(), "joint_states")
        self.reasons = ReasonLog(self.get_logger())
        self.core: PolicyController | None = None
        self.goal: np.ndarray | None = None
        self._last_state: tuple[list[str], list[float], list[float] | None, float] | None = None
        self._last_marker = 0.0
        self.handover = PolicyHandover(self.joint_names, self.safety_config, self.rate_override, self.max_rate,
                                       s.profile)
        self.object_input = ObjectPoseInput(self)
        self.path: collections.deque = collections.deque(maxlen=self.path_length)

        trajectory = self.command_interface == "trajectory"
        self.out = CommandOut(self, trajectory, names.JOINT_TRAJECTORY if trajectory else names.FORWARD_POSITION_COMMANDS,
                              self.joint_names, self.intake)
        self.status_pub = self.create_publisher(ControllerStatus, names.STATUS, 10)
        self.marker_pub = self.create_publisher(MarkerArray, names.MARKERS, 10)
        self.create_subscription(JointState, names.JOINT_STATES, self._on_joint_state, 10)
        self.enabler = guards.EnableGate(self, self.out.pub, self.resolve_topic_name(names.JOINT_STATES),
                                         self._apply_enabled, autostart)
        self.create_subscription(PointStamped, names.GOAL, self._on_goal, 10)
        self.create_service(SetGoal, names.SET_GOAL, self._on_set_goal)
        self.create_service(SetBool, names.ENABLE, self._on_enable, callback_group=MutuallyExclusiveCallbackGroup())
        self.loader = OffloadedService(self, LoadPolicy, names.LOAD_POLICY, self._on_load_policy)

        self._restart_timer(IDLE_RATE)
        if artifact:
            ok, message = self.handover.build(artifact)
            self.reasons.report(ok, message)
            self._install()
        if len(goal) == 3:
            ok, message = self.set_goal(np.asarray(goal, dtype=float))
            if not ok:
                self.get_logger().warning(f"goal parameter rejected: {message}")
        self.get_logger().info(
            f"ready: {'enabling once allowed (autostart)' if autostart else 'disabled (call ~/enable)'}, "
            f"commands on {self.out.pub.topic_name}")

    def destroy_node(self) -> None:
        if hasattr(self, "loader"):  # not when a bad parameter stopped __init__ before it
            self.loader.close()
        super().destroy_node()

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def close_recording(self) -> None:
        if self.recorder is not None:
            self.recorder.close()

    @property
    def enabled(self) -> bool:
        return self.enabler.enabled

    @property
    def rate_hz(self) -> float:
        if self.rate_override > 0:
            return self.rate_override
        return self.core.control_hz if self.core is not None else IDLE_RATE

    def _restart_timer(self, rate: float) -> None:
        old, self._timer = getattr(self, "_timer", None), self.create_timer(1.0 / rate, self._tick,
                                                                           clock=guards.steady_clock())
        if old is not None:
            self.destroy_timer(old)

    def _install(self) -> None:
        """Put a controller built by the loader in charge (control thread, between ticks)."""
        core = self.handover.take()
        if core is None:
            return
        self.goal, why = carry_over(core, self.enabled, self.goal, self._last_state)
        if why:
            self.get_logger().warning(why)
        self.core = core
        self.object_input.follow(core)
        if self._timer.timer_period_ns != round(1e9 / self.rate_hz):
            self._restart_timer(self.rate_hz)

    # --- inputs ------------------------------------------------------------------------------
    def _on_joint_state(self, msg: JointState) -> None:
        now, wall = time.monotonic(), time.time()
        problem = conv.joint_state_problem(msg.name, msg.position, msg.velocity, msg.effort, self.joint_names)
        if problem:  # the last valid state stays; the stale-state watchdog holds if none follows
            self.reasons.say(f"joint_states rejected: {problem}")
            return
        q = order_joints(msg.name, msg.position, self.joint_names)
        if q is not None and not self._limits.state_problem(q):  # NaN / out of range: the core holds on it
            accepted, fault = self.intake.accept(q, msg.header.stamp, now, wall, self.enabled)
            if not accepted:  # the core keeps the last accepted state
                return
            if fault:
                self._trip(fault, q)
        velocities = list(msg.velocity) if len(msg.velocity) == len(msg.name) else None
        self._last_state = (list(msg.name), list(msg.position), velocities, now)
        if self.recorder is not None:
            self.recorder.joint_state(self._now_ns(), msg.name, msg.position, velocities, msg.effort or None)
        if self.core is not None:
            why = self.core.observe_joint_state(msg.name, msg.position, velocities, now)
            if why:
                self.reasons.say(f"joint_states: {why}")

    def set_goal(self, goal: np.ndarray) -> tuple[bool, str]:
        if self.core is None:
            problem = goal_problem(goal)
            if problem:
                return False, problem
            self.goal = np.asarray(goal, dtype=float)  # checked against the policy's workspace when one is loaded
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
        self.reasons.report(ok, f"goal {'accepted' if ok else 'rejected'}: {message}")

    def _on_set_goal(self, request: SetGoal.Request, response: SetGoal.Response) -> SetGoal.Response:
        ok, message = self.set_goal(np.array([request.goal.x, request.goal.y, request.goal.z]))
        self.reasons.report(ok, f"{names.SET_GOAL} {'accepted' if ok else 'rejected'}: {message}")
        response.success, response.message = ok, message
        return response

    def _on_load_policy(self, request: LoadPolicy.Request, response: LoadPolicy.Response) -> LoadPolicy.Response:
        ok, message = self.handover.build(request.artifact_dir)  # the loader's thread: the tick installs it
        self.reasons.report(ok, message)
        response.success, response.message = ok, message
        return response

    def _apply_enabled(self, enabled: bool) -> None:
        if self.core is not None:
            self.core.set_enabled(enabled)
        self.intake.reset()

    def _trip(self, fault: str, measured: np.ndarray) -> None:
        """The arm does not follow: hold where it is, then disable."""
        self._record_command(self.out.hold(measured, self._limits.spec.lower, self._limits.spec.upper,
                                           1.0 / self.rate_hz))
        self.enabler.trip(fault)

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        return self.enabler.on_enable(request, response, "disabled: no commands are published")

    # --- the tick ----------------------------------------------------------------------------
    def _tick(self) -> None:
        now = time.monotonic()
        if self.handover.pending:
            self._install()
        lost = self.enabler.supervise(now)
        if lost:  # nobody receives commands: nothing to hold with, just stop
            self.enabler.trip(lost)
        if self.core is None:
            self._publish_status(None, "no policy loaded")
            return
        try:
            result = self.core.step(now)
        except Exception as exc:  # noqa: BLE001 - the node stays up; the arm gets nothing this tick
            result = StepResult(None, f"controller step failed: {type(exc).__name__}: {exc}", True)
        if result.command is not None:
            self._publish_command(result.command)
        self.reasons.say(result.reason if self.enabled else "", result.holding)
        self._publish_status(result, result.reason)
        if result.tcp is not None:  # stored as messages: a marker publish then only copies the list
            self.path.append(conv.point_msg(result.tcp))
        if now - self._last_marker >= MARKER_PERIOD:
            self._last_marker = now
            self._publish_markers()

    def _publish_command(self, command: np.ndarray) -> None:
        self.out.send(command, self.enabled, 1.0 / self.rate_hz)
        self._record_command(command)

    def _record_command(self, command: np.ndarray | None) -> None:
        if self.recorder is not None and command is not None:
            names_ = None if self.command_interface == "position" else self.joint_names
            self.recorder.command(self._now_ns(), command, names_, 1.0 / self.rate_hz)

    def _publish_status(self, result: StepResult | None, reason: str) -> None:
        holding = bool(result is not None and result.holding and self.enabled)
        fault, extra = self.enabler.notes()
        running = "holding" if holding else "running"
        msg = status_msg(
            self.get_clock().now().to_msg(), enabled=self.enabled, holding=holding, policy_loaded=self.core is not None,
            state="fault" if fault else "idle" if self.core is None else running if self.enabled else "disabled",
            notes=(fault, reason, extra, self.intake.gate.last_problem),
            distance=result.distance_to_goal if result is not None else float("nan"),
            inference_ms=result.inference_ms if result is not None else float("nan"))
        self.status_pub.publish(msg)
        if self.recorder is not None:
            self.recorder.controller_status(self._now_ns(), {k: getattr(msg, k) for k in (
                "enabled", "policy_loaded", "holding", "state", "reason", "distance_to_goal", "inference_ms")})

    def _publish_markers(self) -> None:
        stamp = self.get_clock().now().to_msg()
        self.marker_pub.publish(MarkerArray(markers=[
            conv.goal_marker(stamp, self.goal, "controller/goal", (0.1, 0.3, 0.9, 0.8)),
            conv.path_marker(stamp, self.path, "controller/ee_path", (0.9, 0.8, 0.1, 1.0)),
        ]))
        if self.recorder is not None:
            self.recorder.set_goal(self.goal)
            self.recorder.markers(self._now_ns())

def main(args: list[str] | None = None) -> int:
    return run_node(ControllerNode, args, realtime=True, on_shutdown=ControllerNode.close_recording,
                    usage_errors=guards.USAGE_ERRORS, prog="controller_node")

if __name__ == "__main__":
    sys.exit(main())
