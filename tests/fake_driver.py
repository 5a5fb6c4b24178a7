"""Fake KUKA drivers for the ROS tests: the real topic contract of lbr_fri_ros2_stack (JointState
out at 100 Hz, stamped; Float64MultiArray in on `forward_position_controller/commands`), with the
arm behind it replaced by one of these behaviours (a stand-in only for the physical robot):

- `none`:   publishes joint states, never subscribes to commands (the controller is not running);
- `ignore`: subscribes, never moves (brakes on, FRI not commanding, a wrong controller active);
- `lbr`:    follows with the lbr hardware interface's smoothing: first order, tau 0.04 s, reported at
            100 Hz (integrated over the real time elapsed: a real arm moves on while this process
            waits for a core, so a busy test machine delays the reports, not the arm);
- `drop`:   like `lbr`, but removes its command subscription `drop_after` s after the first command.

One process hosts several drivers: `-p drivers:="['lbr:/d1', 'none:/d2', ...]"` (mode:namespace);
`-p humble:="['/d3']"` gives those namespaces the humble-era joint names A1..A7, `-p ours:="['/d4']"`
our names iiwa_joint_1..7 (a driver controller_node can command directly).

    python -m tests.fake_driver --ros-args -p drivers:="['lbr:/lbr']"
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from drl_control.robot import iiwa14

RATE = 100.0
TAU = 0.04  # s: lbr_fri_ros2_stack joint_position_tau (current versions)


class FakeDriver(Node):
    def __init__(self, mode: str, namespace: str, joint_names: list[str], drop_after: float, context) -> None:
        super().__init__("fake_driver", namespace=namespace, context=context, use_global_arguments=False)
        self.mode = mode
        self.joint_names = joint_names
        self.q = iiwa14().home.copy()
        self.target: np.ndarray | None = None
        self.drop_at: float | None = None
        self.drop_after = drop_after
        self._last = time.monotonic()
        self.pub = self.create_publisher(JointState, "joint_states", 10)
        self.sub = None
        if mode != "none":
            self.sub = self.create_subscription(Float64MultiArray, "forward_position_controller/commands",
                                                self._on_command, 10)
        self.create_timer(1.0 / RATE, self._tick)

    def _on_command(self, msg: Float64MultiArray) -> None:
        data = np.asarray(msg.data, dtype=float)
        if data.shape == (7,) and np.all(np.isfinite(data)):
            self.target = data
            if self.mode == "drop" and self.drop_at is None:
                self.drop_at = time.monotonic() + self.drop_after

    def _tick(self) -> None:
        if self.drop_at is not None and time.monotonic() >= self.drop_at and self.sub is not None:
            self.destroy_subscription(self.sub)
            self.sub = None
        now = time.monotonic()
        dt, self._last = now - self._last, now
        if self.mode in ("lbr", "drop") and self.target is not None:
            self.q = self.q + (1.0 - math.exp(-dt / TAU)) * (self.target - self.q)
        msg = JointState(name=self.joint_names, position=self.q.tolist(), velocity=[0.0] * 7)
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub.publish(msg)


def main() -> int:
    rclpy.init(args=sys.argv)
    params = rclpy.create_node("_fake_driver_params")
    drivers = list(params.declare_parameter("drivers", ["lbr:/lbr"]).value)
    humble = set(params.declare_parameter("humble", [""]).value)
    ours = set(params.declare_parameter("ours", [""]).value)
    drop_after = float(params.declare_parameter("drop_after", 1.0).value)
    executor = SingleThreadedExecutor()
    for item in drivers:
        mode, namespace = item.split(":", 1)
        names = [f"A{i}" for i in range(1, 8)] if namespace in humble else [f"lbr_A{i}" for i in range(1, 8)]
        if namespace in ours:
            names = list(iiwa14().joint_names)
        executor.add_node(FakeDriver(mode, namespace, names, drop_after, params.context))
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
