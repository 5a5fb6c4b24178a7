"""What the two nodes that command an arm (controller_node, robot_interface_node) do alike: the way
in of a measured joint state, the log of hold reasons, and the status message.

One place for both, so the real-robot side and the controller cannot drift apart: a joint state
is accepted only past the StateGate (stamp age, jumps: deploy.safety), and while commands are being
sent each accepted state is checked against the last command sent (deploy.safety.TrackingMonitor).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from drl_control.deploy.safety import StateGate, TrackingMonitor
from drl_control.ros import names
from drl_control.ros.conversions import command_msg, duration_to_sec
from drl_control_interfaces.msg import ControllerStatus


class ReasonLog:
    """A reason said once per change: a 250 Hz stream of the same hold must not flood the log."""

    def __init__(self, logger: Any) -> None:
        self.logger = logger
        self.last: str | None = None

    def say(self, reason: str, holding: bool = True) -> None:
        """Holds as warnings, adjustments (clamp, speed) as debug."""
        if reason != self.last:
            self.last = reason
            if reason and holding:
                self.logger.warning(reason)
            elif reason:
                self.logger.debug(reason)

    def report(self, ok: bool, message: str) -> None:
        # rclpy refuses one call site logging at two severities: one site per severity
        if ok:
            self.logger.info(message)
        else:
            self.logger.warning(message)


class StateIntake:
    """A measured joint state's way in: plausibility first, then whether the arm follows."""

    def __init__(self, gate: StateGate, tracking: TrackingMonitor | None, logger: Any, label: str) -> None:
        self.gate, self.tracking, self.logger, self.label = gate, tracking, logger, label
        self.sent: np.ndarray | None = None  # the last command sent while enabled

    def accept(self, q: np.ndarray, stamp: Any, now: float, wall: float, following: bool) -> tuple[bool, str]:
        """(accepted, fault): a refused state changes nothing (the last accepted one goes stale and the
        watchdog holds); `fault` says the arm does not follow the commands (checked while `following`)."""
        problem = self.gate.check(q, duration_to_sec(stamp), now, wall)
        if problem:
            self.logger.warning(f"{self.label} refused ({self.gate.rejected} so far): {problem}",
                                throttle_duration_sec=1.0)  # a flood must not flood the log
            return False, ""
        if following and self.tracking is not None and self.sent is not None:
            return True, self.tracking.update(self.sent, q, now)
        return True, ""

    def sent_command(self, command: np.ndarray, enabled: bool) -> None:
        if enabled:
            self.sent = np.asarray(command, dtype=float)

    def reset(self) -> None:
        """Enable / disable: tracking starts over from the next command."""
        if self.tracking is not None:
            self.tracking.reset()
        self.sent = None


class CommandOut:
    """The command publisher: a forward position controller's array or a one-point trajectory
    (`joint_names` in the receiver's naming, reached one `period` ahead). What an enabled node sends
    is what tracking is checked against."""

    def __init__(self, node: Any, trajectory: bool, topic: str, joint_names: list[str], intake: StateIntake) -> None:
        self.trajectory, self.joint_names, self.intake = trajectory, list(joint_names), intake
        self.pub = node.create_publisher(JointTrajectory if trajectory else Float64MultiArray, topic, 10)

    def send(self, command: np.ndarray, enabled: bool, period: float) -> None:
        self.intake.sent_command(command, enabled)
        self.pub.publish(command_msg(command, self.joint_names, period) if self.trajectory else command_msg(command))

    def hold(self, measured: np.ndarray, lower: np.ndarray, upper: np.ndarray, period: float) -> np.ndarray | None:
        """The arm does not follow (or its driver went): one command, the measured position, to a
        receiver that is still there, so the driver holds where the arm is, not at the last target.
        Returns what was sent (None: nobody to send it to)."""
        if self.pub.get_subscription_count() == 0:
            return None
        command = np.clip(measured, lower, upper)
        self.send(command, True, period)
        return command


def status_msg(stamp: Any, *, enabled: bool, holding: bool, state: str, notes: tuple[str, ...],
               policy_loaded: bool = False, distance: float = float("nan"),
               inference_ms: float = float("nan")) -> ControllerStatus:
    """`~/status` of either node; `notes` (fault, reason, ...) are joined, empty ones left out."""
    msg = ControllerStatus(enabled=enabled, policy_loaded=policy_loaded, holding=holding, state=state,
                           reason="; ".join(n for n in notes if n), distance_to_goal=float(distance),
                           inference_ms=float(inference_ms))
    msg.header.stamp = stamp
    msg.header.frame_id = names.BASE_FRAME
    return msg
