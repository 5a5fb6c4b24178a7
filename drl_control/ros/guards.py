"""What the real-robot side nodes (controller_node, robot_interface_node) refuse from the graph.

A ROS domain is shared: any process may set parameters, call services and publish. So these
nodes
- declare every parameter read-only (set at start with -p, never at run time: a changed limit
  that the node does not apply would be a lie, one it applies mid-motion a hazard);
- tick on the steady clock and refuse `use_sim_time` (at start: one line, exit 2; at run time:
  the set is refused with the reason): a missing /clock would stop the arm's commands, a fast
  one would move it faster than its speed limit;
- refuse `~/enable true` while nothing subscribes to their command topic or more than one
  process publishes the joint states they trust (`enable_problem`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.node import Node
from rclpy.parameter import Parameter

SIM_TIME_REFUSED = ("use_sim_time is refused: this node ticks on the steady clock (a missing or jumping "
                    "/clock would stop the arm's commands or speed them up)")


class ParameterError(ValueError):
    """A start parameter that cannot work; `run_node` prints it as one line and exits 2."""


USAGE_ERRORS = (ParameterError, InvalidParameterTypeException)  # one line, exit 2 (drl_control.ros.spin)


def read_only(node: Node, name: str, default: Any) -> Any:
    """Declare a parameter that only -p at start can set; returns its value."""
    return node.declare_parameter(name, default, ParameterDescriptor(read_only=True)).value


def steady_clock() -> Clock:
    return Clock(clock_type=ClockType.STEADY_TIME)


def refuse_sim_time(node: Node) -> None:
    """Fail at start if use_sim_time is set; refuse setting it later (said once in the log each time)."""
    if node.get_parameter("use_sim_time").value:
        raise ParameterError(SIM_TIME_REFUSED)

    def check(params: list[Parameter]) -> SetParametersResult:
        for param in params:
            if param.name == "use_sim_time" and param.value is not False:
                node.get_logger().warning(f"set_parameters refused: {SIM_TIME_REFUSED}", throttle_duration_sec=1.0)
                return SetParametersResult(successful=False, reason=SIM_TIME_REFUSED)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(check)


def enable_problem(node: Node, command_topic: str | None, subscribers: int, state_topic: str) -> str:
    """Why `~/enable true` must be refused now ("" when it may enable). `command_topic` None: nothing
    is sent to an arm (dry run), so nobody needs to listen."""
    if command_topic is not None and subscribers == 0:
        return f"refused: nothing subscribes to {command_topic} (is the driver's controller running?)"
    publishers = node.count_publishers(state_topic)
    if publishers > 1:
        return (f"refused: {publishers} publishers on {state_topic}; only the arm's driver may publish the "
                "joint states this node trusts")
    return ""


class GraphWatch:
    """Counts the publishers of the joint states a node trusts, every `period` s; more than one is
    reported (once in the log, then on `~/status` through `note`) while it lasts."""

    def __init__(self, node: Node, state_topic: str, period: float = 0.5) -> None:
        self.node = node
        self.state_topic = state_topic
        self.period = period
        self.note = ""
        self._next = 0.0

    def check(self, now: float) -> str:
        if now >= self._next:
            self._next = now + self.period
            publishers = self.node.count_publishers(self.state_topic)
            note = f"{publishers} publishers on {self.state_topic}" if publishers > 1 else ""
            if note and note != self.note:
                self.node.get_logger().warning(f"{note}: only the arm's driver may publish there (enable is refused)")
            self.note = note
        return self.note


class EnableGate:
    """`~/enable` of a node that commands an arm: refusals (`enable_problem`, a latched fault),
    autostart once enabling is allowed, and the driver's subscription going away while enabled.

    `apply(enabled)` switches the node's safety filter; `trip(fault)` disables and says the fault
    once (the node first holds the arm where it must). `notes()` are for `~/status`.
    """

    def __init__(self, node: Node, command_pub: Any, state_topic: str, apply: Callable[[bool], None],
                 autostart: bool, dry_run: bool = False) -> None:
        self.node = node
        self.command_pub = command_pub
        self.graph = GraphWatch(node, state_topic)
        self.apply = apply
        self.autostart = autostart
        self.dry_run = dry_run  # nothing reaches an arm: nobody needs to listen
        self.enabled = False
        self.fault = ""  # why the node disabled itself; a successful enable clears it
        self.latched = ""  # a fault only a restart clears (e.g. the wrong driver profile)

    def problem(self) -> str:
        if self.latched:
            return f"refused: {self.latched}"
        command = None if self.dry_run else self.command_pub.topic_name
        return enable_problem(self.node, command, self.command_pub.get_subscription_count(), self.graph.state_topic)

    def set(self, enabled: bool) -> None:
        self.enabled = bool(enabled)
        self.apply(self.enabled)

    def on_enable(self, request: Any, response: Any, off_message: str) -> Any:
        problem = self.problem() if request.data else ""
        if problem:
            response.success, response.message = False, problem
            self.node.get_logger().warning(f"~/enable: {problem}", throttle_duration_sec=1.0)  # callers may retry
            return response
        self.autostart, self.fault = False, ""
        self.set(bool(request.data))
        response.success, response.message = True, "enabled" if request.data else off_message
        self.node.get_logger().info(response.message)
        return response

    def trip(self, fault: str, latch: bool = False) -> None:
        self.set(False)
        self.autostart = False
        if latch:
            self.latched = fault
        if fault != self.fault:
            self.fault = fault
            self.node.get_logger().error(f"fault, disabled: {fault}")

    def supervise(self, now: float) -> str:
        """Once per tick: returns the fault when the command topic lost its subscriber while enabled."""
        self.graph.check(now)
        if self.enabled and not self.dry_run and self.command_pub.get_subscription_count() == 0:
            return f"nothing subscribes to {self.command_pub.topic_name} any more (the driver is gone)"
        if self.autostart and not self.enabled and not self.problem():
            self.autostart = False
            self.set(True)
            self.node.get_logger().info("enabled (autostart)")
        return ""

    def notes(self) -> tuple[str, str]:
        return self.latched or self.fault, self.graph.note
