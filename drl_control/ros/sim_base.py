"""What both `sim_node` roles share: the node name and its fixed parameters, `joint_states`,
`robot_description` (latched) and the goal / trail `markers`.

A subclass (sim_env_worker.EnvWorkerNode, sim_robot.RobotSimNode) builds its sim, then calls
`_announce(urdf_path, what)`. Every parameter a subclass declares with `self.fixed(...)` is
read-only after start; a subclass that allows a run-time change (the env worker's `num_envs`)
validates it in its own set-parameters callback.
"""

from __future__ import annotations

import collections
from typing import Any

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.event_handler import PublisherEventCallbacks
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from visualization_msgs.msg import MarkerArray

from drl_control.ros import conversions as conv
from drl_control.ros import names
from drl_control.ros.spin import Param

DEFAULT_ENV_ID = "DrlControl/IiwaReach-v0"
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)
VIS_RATE = 20.0  # Hz: markers (and env-mode joint_states); robot-mode joint_states use publish_rate
MAX_TRAIL_LENGTH = 10_000  # markers: points of the end-effector trail (each marker carries all of them)
MAX_PUBLISH_RATE = 1000.0  # Hz: joint_states (a real driver publishes at most at its control rate)


_UNSET = object()


class SimNodeBase(Node):
    # Parameters of both roles (each role adds its own rows; `sim_node --help` prints them all).
    PARAMETERS: tuple[Param, ...] = (
        Param("mode", "env", "env (serve ~/spec, ~/reset, ~/step) or robot (a real-time arm; ~/reset: a new "
              "episode of its task)", read_only=True),
        Param("env_id", DEFAULT_ENV_ID, "gymnasium id of the envs (robot mode: the task: its tool on the arm, its "
              "object on object_pose, its goals and objects from ~/reset)", read_only=True),
        Param("publish_rate", 0.0, "joint_states rate in Hz (0: 250 in robot mode, 20 in env mode)", read_only=True),
        Param("goal", Parameter.Type.DOUBLE_ARRAY, "robot mode: goal marker (x, y, z), base frame", read_only=True),
        Param("trail_length", 200, "end-effector positions kept for the trail marker", read_only=True),
        Param("driver", "ideal", "model of a real driver's command path in front of the arm (sim.drivers: "
              "ideal, lbr, iiwa_ros2)", read_only=True),
    )

    def __init__(self, mode: str, default_publish_rate: float, **kwargs: Any) -> None:
        # Every entity of the node is rebuilt into rclpy's wait set for each ~/step request; the
        # type description service and the publishers' default QoS-event handlers (9 entities
        # nobody here uses) cost ~0.05 ms of sim_node CPU per request (0.79-0.83 -> 0.74-0.78 ms
        # for a 1-env request, benchmarks/profile_ros_round.py).
        kwargs.setdefault("parameter_overrides", [Parameter("start_type_description_service", value=False)])
        super().__init__(names.SIM_NODE, **kwargs)
        self.mode = self.fixed("mode", mode)
        if self.mode != mode:
            raise ValueError(f"{type(self).__name__} runs mode {mode!r}, got mode {self.mode!r}")
        self.env_id = self.fixed("env_id")
        rate = float(self.fixed("publish_rate"))
        goal = self.fixed("goal") or []
        self.trail_length = int(self.fixed("trail_length"))
        if not 0.0 <= rate <= MAX_PUBLISH_RATE:
            raise ValueError(f"publish_rate must be in [0, {MAX_PUBLISH_RATE:g}] Hz (0: the default), got {rate:g}")
        if not 0 <= self.trail_length <= MAX_TRAIL_LENGTH:
            raise ValueError(f"trail_length must be in [0, {MAX_TRAIL_LENGTH}], got {self.trail_length}")
        self.publish_rate = rate if rate > 0 else default_publish_rate
        self.add_on_set_parameters_callback(self._refuse_fixed)

        quiet = PublisherEventCallbacks(use_default_callbacks=False)
        self.joint_pub = self.create_publisher(JointState, names.JOINT_STATES, 10, event_callbacks=quiet)
        self.marker_pub = self.create_publisher(MarkerArray, names.MARKERS, 10, event_callbacks=quiet)
        self.description_pub = self.create_publisher(String, names.ROBOT_DESCRIPTION, LATCHED, event_callbacks=quiet)
        self.trail: collections.deque[np.ndarray] = collections.deque(maxlen=max(self.trail_length, 2))
        self.goal: np.ndarray | None = np.asarray(goal, dtype=float) if len(goal) == 3 else None
        self._vis_period = 1.0 / min(VIS_RATE, self.publish_rate)
        self._last_vis = 0.0
        self._js = JointState()

    @classmethod
    def param(cls, name: str) -> Param:
        """The row of `name` in this role's PARAMETERS table (the one place its default and meaning live)."""
        return next(p for p in cls.PARAMETERS if p.name == name)

    def fixed(self, name: str, default: Any = _UNSET) -> Any:
        """Declare a parameter of the PARAMETERS table that cannot change after start (set_parameters
        is refused with a reason); `default` replaces the table's where a role has its own."""
        row = self.param(name)
        value = row.default if default is _UNSET else default
        return self.declare_parameter(name, value, ParameterDescriptor(description=row.description, read_only=True)).value

    @staticmethod
    def _refuse_fixed(params: list[Parameter]) -> SetParametersResult:
        """`use_sim_time` is not read-only in rclpy; here it would move the stamps onto a `/clock`
        nobody publishes, so it is fixed like the rest."""
        for param in params:
            if param.name == "use_sim_time":
                return SetParametersResult(successful=False, reason="use_sim_time is fixed after start")
        return SetParametersResult(successful=True)

    def _announce(self, urdf_path: Any, what: str) -> None:
        self.description_pub.publish(String(data=urdf_path.read_text()))
        self.get_logger().info(f"{self.mode} mode: {what}, publishing {names.JOINT_STATES} at {self.publish_rate:g} Hz")

    def _publish_joint_states(self, joint_names, position, velocity, effort) -> None:
        conv.joint_state_msg(self._js, self.get_clock().now().to_msg(), joint_names, position, velocity, effort)
        self.joint_pub.publish(self._js)

    def _publish_markers(self, extra: list | tuple = ()) -> None:
        """The goal sphere and end-effector trail, and a role's `extra` markers (robot mode: the object)."""
        stamp = self.get_clock().now().to_msg()
        self.marker_pub.publish(MarkerArray(markers=[
            conv.goal_marker(stamp, self.goal, "goal", (0.1, 0.8, 0.1, 0.8)),
            conv.path_marker(stamp, [conv.point_msg(p) for p in self.trail], "ee_trajectory", (0.9, 0.3, 0.1, 1.0)),
            *extra,
        ]))

    def close(self) -> None:
        """Release the sim (PyBullet clients); called before the node is destroyed."""
