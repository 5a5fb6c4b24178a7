"""`sim_node` in robot mode: one real-time arm behind a real arm's ros2_control contract.

`joint_states` out, `forward_position_controller/commands` and
`joint_trajectory_controller/joint_trajectory` in (see drl_control.sim.emulator); the arm mounts
the tool of `env_id`'s task, as in training. Physics follows the steady clock. Every parameter is
fixed after start. With record:=PATH.mcap the arm is also recorded (joint states + tf at most
50 Hz, markers, the object, every command it received) to a rosbag2 MCAP file (drl_control.record;
closed on shutdown); a bad path stops the node (one line) before anything is published.

`env_id` also names the task whose bodies the world holds (sim.tasks, built as the goal env builds
them): an object task's (Push, PickAndPlace) cube is published on `object_pose`
(geometry_msgs/PoseStamped, base frame, stamped with the node's clock) at the joint_states rate,
as a tracker would see it, and drawn in `markers` (ns "object"). `~/reset` (EnvReset; one seed
or none, no options) starts an episode as the goal env's reset does: the arm jumps to its home
pose (stop whatever commands it first: a controller's state gate refuses the jump until the
arm could have moved that far), then the task samples goal and object from the seed (the same
as `env.reset(seed=s)`; no seed: the node's generator goes on). Its reply holds one row with
`achieved_goal` (object, or Reach's TCP) and `desired_goal` (the goal, also shown as the goal
marker).
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
from geometry_msgs.msg import PointStamped, PoseStamped
from gymnasium.utils import seeding
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from drl_control.ros import conversions as conv
from drl_control.ros import names
from drl_control.ros.sim_base import SimNodeBase
from drl_control.ros.spin import Param
from drl_control.sim.registration import import_env_packages
from drl_control.sim.tasks import OBJECT_HALF
from drl_control_interfaces.srv import EnvReset

DEFAULT_PUBLISH_RATE = 250.0  # Hz: joint_states, as a real driver's state broadcaster
MAX_PHYSICS_HZ = 5000.0  # Hz: the physics rate bound (the loop must keep up with the wall clock)


def env_task(env_id: str) -> tuple[str, float | None]:
    """The task of `env_id` and its success distance where the id sets one (robot mode builds the
    same task and mounts its tool, as in training)."""
    import_env_packages(env_id)
    kwargs = gym.spec(env_id).kwargs
    return kwargs.get("task", "Reach"), kwargs.get("distance_threshold")


class RobotSimNode(SimNodeBase):
    PARAMETERS = SimNodeBase.PARAMETERS + (
        Param("physics_hz", 500.0, f"physics steps per second (at most {MAX_PHYSICS_HZ:g})", read_only=True),
        Param("record", "", "record the arm to this rosbag2 MCAP file (empty: no recording)", read_only=True),
    )

    def __init__(self, **kwargs: Any) -> None:
        from drl_control.robot.tools import composed_urdf_path
        from drl_control.sim.emulator import RobotEmulator

        super().__init__("robot", DEFAULT_PUBLISH_RATE, **kwargs)
        self.physics_hz = float(self.fixed("physics_hz"))
        if not 0.0 < self.physics_hz <= MAX_PHYSICS_HZ:
            raise ValueError(f"physics_hz must be in (0, {MAX_PHYSICS_HZ:g}], got {self.physics_hz:g}")
        self.driver = str(self.fixed("driver"))
        record = str(self.fixed("record"))
        self.recorder = None
        if record:
            from drl_control.record.writer import check_writable

            check_writable(record)
        task, threshold = env_task(self.env_id)
        from drl_control.sim.tasks import TASK_CLASSES

        tool = TASK_CLASSES[task].tool
        self.robot = RobotEmulator(tool=tool, physics_hz=self.physics_hz, driver=self.driver, task=task,
                                   distance_threshold=threshold)
        self._episode_rng = np.random.default_rng()  # until a seeded ~/reset
        if record:
            from drl_control.record.writer import NODE_STATE_PERIOD, Recorder

            self.recorder = Recorder(record, start_ns=self._now_ns(), state_period=NODE_STATE_PERIOD,
                                     metadata={"source": "sim_node", "env_id": self.env_id},
                                     urdf_text=composed_urdf_path(tool).read_text())
            self.recorder.set_goal(self.goal)
        self.create_subscription(Float64MultiArray, names.FORWARD_POSITION_COMMANDS, self._on_positions, 10)
        self.create_subscription(JointTrajectory, names.JOINT_TRAJECTORY, self._on_trajectory, 10)
        self.create_subscription(PointStamped, names.GOAL, self._on_goal, 10)
        self.object_pub = None
        if self.robot.has_object:
            self.object_pub = self.create_publisher(PoseStamped, names.OBJECT_POSE, 10)
            self._object_msg = PoseStamped()
        self.create_service(EnvReset, names.RESET, self._on_reset)
        self._t0: float | None = None  # wall clock of physics step 0, set at the first tick
        self._behind_logged = 0.0
        self.create_timer(1.0 / self.publish_rate, self._tick)
        self._announce(composed_urdf_path(tool), self.env_id)

    def _on_positions(self, msg: Float64MultiArray) -> None:
        try:
            self.robot.command_positions(msg.data)
            if self.recorder is not None:
                self.recorder.command(self._now_ns(), msg.data)
        except ValueError as exc:
            self.get_logger().warning(f"rejected {names.FORWARD_POSITION_COMMANDS}: {exc}")

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        try:
            joint_names, times, positions = conv.trajectory_arrays(msg)
            self.robot.command_trajectory(joint_names, times, positions)
            if self.recorder is not None:
                self.recorder.trajectory(self._now_ns(), joint_names, times, positions)
        except ValueError as exc:
            self.get_logger().warning(f"rejected {names.JOINT_TRAJECTORY}: {exc}")

    def _on_goal(self, msg: PointStamped) -> None:
        goal = [msg.point.x, msg.point.y, msg.point.z]
        problem = conv.point_problem(msg.header.frame_id, goal)
        if problem:
            self.get_logger().warning(f"rejected {names.GOAL}: {problem}")
            return
        self.goal = np.array(goal)
        if self.recorder is not None:
            self.recorder.set_goal(self.goal)

    def _on_reset(self, request: EnvReset.Request, response: EnvReset.Response) -> EnvReset.Response:
        seeds = [int(s) for s in request.seeds]
        problem = ""
        if len(seeds) > 1 or any(s < 0 for s in seeds):
            problem = f"expected one seed >= 0 or none (robot mode runs one arm), got {seeds}"
        elif request.options_json.strip() not in ("", "{}"):
            problem = "robot mode takes no reset options (options_json must be empty)"
        if problem:  # refused before anything moves
            response.success, response.message = False, problem
            self.get_logger().warning(f"{names.RESET} refused: {problem}")
            return response
        if seeds:  # gymnasium's seeding, as env.reset(seed=s): the same goal and object
            self._episode_rng = seeding.np_random(seeds[0])[0]
        achieved, goal = self.robot.reset_episode(self._episode_rng)
        self.goal = goal
        self.trail.clear()
        if self.recorder is not None:
            self.recorder.set_goal(self.goal)
        conv.batch_to_msg({"achieved_goal": achieved[None], "desired_goal": goal[None]}, response.batch)
        response.success = True
        response.message = (f"episode{f' (seed {seeds[0]})' if seeds else ''}: arm home, goal "
                            f"{np.round(goal, 3).tolist()}, achieved {np.round(achieved, 3).tolist()}")
        self.get_logger().info(response.message)
        return response

    def _publish_markers(self) -> None:
        pose = self.robot.object_pose()
        extra = [] if pose is None else [conv.box_marker(self.get_clock().now().to_msg(), *pose, 2 * OBJECT_HALF,
                                                         "object", (0.1, 0.3, 0.9, 1.0))]
        super()._publish_markers(extra)

    def _tick(self) -> None:
        """Advance physics to the wall clock (real time), then publish the joint state."""
        if self._t0 is None:
            self._t0 = time.monotonic()
        target = int((time.monotonic() - self._t0) * self.physics_hz)
        behind = target - self.robot.steps
        max_chunk = int(0.1 * self.physics_hz)
        if behind > max_chunk:  # more than 0.1 s late: drop time rather than spiral
            now = time.monotonic()
            if now - self._behind_logged > 5.0:
                self.get_logger().warning(f"physics {behind / self.physics_hz:.3f} s behind real time; skipping")
                self._behind_logged = now
            self._t0 += (behind - max_chunk) / self.physics_hz
            behind = max_chunk
        self.robot.advance(behind)
        q, qd, effort = self.robot.joint_state()
        self._publish_joint_states(self.robot.joint_names, q, qd, effort)
        if self.object_pub is not None:
            position, orientation = self.robot.object_pose()
            self.object_pub.publish(conv.pose_stamped_msg(self._object_msg, self.get_clock().now().to_msg(),
                                                          position, orientation))
            if self.recorder is not None:
                self.recorder.set_object(position, orientation)
        self.trail.append(self.robot.tcp_position())
        if self.recorder is not None:
            self.recorder.joint_state(self._now_ns(), self.robot.joint_names, q, qd, effort)
        now = time.monotonic()
        if now - self._last_vis >= self._vis_period:
            self._last_vis = now
            self._publish_markers()
            if self.recorder is not None:
                self.recorder.markers(self._now_ns())

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def close(self) -> None:
        self.robot.close()
        if self.recorder is not None:
            self.recorder.close()
