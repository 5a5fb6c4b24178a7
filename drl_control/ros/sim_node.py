"""`sim_node`: K gymnasium envs (env mode) or one real-time arm (robot mode) behind ROS 2.

Env mode (default) serves `~/spec`, `~/reset` and `~/step` (batched over the K envs, SB3 VecEnv
auto-reset semantics) for a RosVecEnv. Robot mode emulates a real arm's ros2_control contract:
`joint_states` out, `forward_position_controller/commands` and
`joint_trajectory_controller/joint_trajectory` in (see drl_control.sim.emulator).
Both publish `joint_states`, `robot_description` (transient local) and `markers`.

Env mode counts the steps each env executed and sends the count in its step info
(`names.STEP_COUNT`; RosVecEnv checks it and drops it, so dropped or duplicated steps show). The
`num_envs` parameter may be changed at run time (`ros2 param set`): a learner in
`on_worker_failure:=continue` mode moves a lost worker's env slots onto a surviving one this way.
New envs need a reset before they step.

    ros2 run drl_control sim_node --ros-args -r __ns:=/sim0 -p num_envs:=4 -p seed:=0
    ros2 run drl_control sim_node --ros-args -p mode:=robot

All physics, rewards and resets are in drl_control.sim; this file converts messages only.
"""

from __future__ import annotations

import collections
import json
import sys
import time
from typing import Any

import gymnasium as gym
import numpy as np
from geometry_msgs.msg import PointStamped
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.event_handler import PublisherEventCallbacks
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray

from drl_control.ros import conversions as conv
from drl_control.ros import names
from drl_control.ros.spin import run_node
from drl_control_interfaces.srv import EnvReset, EnvSpec, EnvStep

MODES = ("env", "robot")
DEFAULT_ENV_ID = "DrlControl/IiwaReach-v0"
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)
VIS_RATE = 20.0  # Hz: markers (and env-mode joint_states); robot-mode joint_states use publish_rate
IDLE_VIS_PERIOD = 1.0  # s: env mode, no reset/step since the last publish: republish this often only


def make_envs(env_id: str, num_envs: int) -> list[gym.Env]:
    from drl_control.learn.algos import import_env_packages

    import_env_packages(env_id)
    return [gym.make(env_id) for _ in range(num_envs)]


def env_tool(env_id: str) -> str | None:
    """The tool the task of `env_id` mounts (robot mode uses the same arm as training)."""
    from drl_control.learn.algos import import_env_packages
    from drl_control.sim.tasks import TASK_CLASSES

    import_env_packages(env_id)
    task = gym.spec(env_id).kwargs.get("task", "Reach")
    return TASK_CLASSES[task].tool


class SimNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        # Every entity of the node is rebuilt into rclpy's wait set for each ~/step request; the
        # type description service and the publishers' default QoS-event handlers (9 entities
        # nobody here uses) cost ~0.05 ms of sim_node CPU per request (0.79-0.83 -> 0.74-0.78 ms
        # for a 1-env request, benchmarks/profile_ros_round.py).
        kwargs.setdefault("parameter_overrides", [Parameter("start_type_description_service", value=False)])
        super().__init__(names.SIM_NODE, **kwargs)
        self.env_id = self.declare_parameter("env_id", DEFAULT_ENV_ID).value
        self.num_envs = int(self.declare_parameter("num_envs", 1).value)
        self.seed = int(self.declare_parameter("seed", -1).value)
        self.mode = self.declare_parameter("mode", "env").value
        rate = float(self.declare_parameter("publish_rate", 0.0).value)
        self.physics_hz = float(self.declare_parameter("physics_hz", 500.0).value)
        goal = self.declare_parameter(
            "goal", Parameter.Type.DOUBLE_ARRAY,
            ParameterDescriptor(description="robot mode: goal marker (x, y, z), base frame")).value or []
        self.trail_length = int(self.declare_parameter("trail_length", 200).value)
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {self.num_envs}")
        self.publish_rate = rate if rate > 0 else (250.0 if self.mode == "robot" else VIS_RATE)

        quiet = PublisherEventCallbacks(use_default_callbacks=False)
        self.joint_pub = self.create_publisher(JointState, names.JOINT_STATES, 10, event_callbacks=quiet)
        self.marker_pub = self.create_publisher(MarkerArray, names.MARKERS, 10, event_callbacks=quiet)
        self.description_pub = self.create_publisher(String, names.ROBOT_DESCRIPTION, LATCHED, event_callbacks=quiet)
        self.trail: collections.deque[np.ndarray] = collections.deque(maxlen=max(self.trail_length, 2))
        self.goal: np.ndarray | None = np.asarray(goal, dtype=float) if len(goal) == 3 else None
        self._vis_period = 1.0 / min(VIS_RATE, self.publish_rate)
        self._last_vis = 0.0
        self._js = JointState()

        if self.mode == "env":
            self._init_env_mode()
        else:
            self._init_robot_mode()
        self.description_pub.publish(String(data=self._urdf_path.read_text()))
        self.get_logger().info(
            f"{self.mode} mode: {self.env_id}" + (f" x{self.num_envs}" if self.mode == "env" else "")
            + f", publishing {names.JOINT_STATES} at {self.publish_rate:g} Hz"
        )

    # --- env mode ----------------------------------------------------------------------------
    def _init_env_mode(self) -> None:
        from drl_control.robot.tools import composed_urdf_path

        self.envs = make_envs(self.env_id, self.num_envs)
        self._env_steps = [0] * self.num_envs
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._pending_seed = self.seed if self.seed >= 0 else None
        base = self.envs[0].unwrapped
        self._arm = getattr(base, "arm", None)
        self._urdf_path = composed_urdf_path(self._arm.config.tool if self._arm is not None else None)
        self._vis_ids, self._vis_names = self._visual_joints()
        self.create_service(EnvSpec, names.SPEC, self._on_spec)
        self.create_service(EnvReset, names.RESET, self._on_reset)
        self.create_service(EnvStep, names.STEP, self._on_step)
        self._env_changed = True  # a reset or step since the last visualization publish
        self.create_timer(1.0 / self.publish_rate, self._publish_env_vis)

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """`num_envs` at run time: add envs (to be reset before they step) or close the last ones."""
        for param in params:
            if param.name != "num_envs":
                continue
            if param.type_ != Parameter.Type.INTEGER or param.value < 1:
                return SetParametersResult(successful=False, reason=f"num_envs must be an integer >= 1, got {param.value!r}")
            n = int(param.value)
            if n > len(self.envs):
                self.envs.extend(make_envs(self.env_id, n - len(self.envs)))
                self._env_steps.extend([0] * (n - len(self._env_steps)))
            while len(self.envs) > n:
                self.envs.pop().close()
                self._env_steps.pop()
            if n != self.num_envs:
                self.get_logger().info(f"num_envs {self.num_envs} -> {n}")
            self.num_envs = n
        return SetParametersResult(successful=True)

    def _visual_joints(self) -> tuple[list[int], list[str]]:
        if self._arm is None:
            return [], []
        ids = list(self._arm.joint_ids) + list(self._arm.finger_ids)
        client = self._arm.client
        return ids, [client.getJointInfo(self._arm.body, j)[1].decode() for j in ids]

    def _on_spec(self, _request: EnvSpec.Request, response: EnvSpec.Response) -> EnvSpec.Response:
        env = self.envs[0]
        base = env.unwrapped
        spec = base.deploy_spec() if hasattr(base, "deploy_spec") else {}
        response.env_id = self.env_id
        response.num_envs = self.num_envs
        response.observation_space_json = conv.space_to_json(env.observation_space)
        response.action_space_json = conv.space_to_json(env.action_space)
        response.control_hz = float(spec.get("control_hz") or env.metadata.get("render_fps", 0.0) or 0.0)
        response.deploy_spec_json = json.dumps(conv.to_jsonable(spec))
        return response

    def _refuse(self, response: Any, service: str, reason: str) -> Any:
        """A rejected env request: success=false, the reason in the response and the log."""
        response.success = False
        response.message = reason
        self.get_logger().warning(f"rejected {service} request: {reason}")
        return response

    def _on_reset(self, request: EnvReset.Request, response: EnvReset.Response) -> EnvReset.Response:
        seeds = [int(s) for s in request.seeds]
        problem = ""
        if seeds and len(seeds) != self.num_envs:
            problem = f"expected {self.num_envs} seeds (one per env) or none, got {len(seeds)}"
        elif any(s < 0 for s in seeds):
            problem = f"seeds must be >= 0, got {seeds}"
        options = None
        if not problem and request.options_json.strip():
            try:
                options = json.loads(request.options_json)
            except ValueError as exc:
                problem = f"options_json is not JSON: {exc}"
            else:
                if not isinstance(options, dict):
                    problem = f"options_json must be a JSON object, got {type(options).__name__}"
        if problem:  # refused before any env is touched
            return self._refuse(response, names.RESET, problem)
        if not seeds and self._pending_seed is not None:
            seeds = [self._pending_seed + i for i in range(self.num_envs)]
        self._pending_seed = None
        try:
            obs = [env.reset(seed=seeds[i] if seeds else None, options=options or None)[0]
                   for i, env in enumerate(self.envs)]
        except Exception as exc:  # noqa: BLE001 - reported to the caller, node stays up
            response.success = False
            response.message = f"reset failed: {type(exc).__name__}: {exc}"
            self.get_logger().error(response.message)
            return response
        self.trail.clear()
        self._env_changed = True
        conv.batch_to_msg(conv.stack_obs(obs), response.batch)
        response.success = True
        return response

    def _on_step(self, request: EnvStep.Request, response: EnvStep.Response) -> EnvStep.Response:
        try:
            actions = conv.actions_from_msg(request.actions, int(request.action_dim), self.num_envs)
        except ValueError as exc:
            return self._refuse(response, names.STEP, str(exc))
        dim = int(np.prod(self.envs[0].action_space.shape))
        if actions.shape[1] != dim:  # refused before any env steps: no half-stepped batch
            return self._refuse(response, names.STEP, f"action_dim must be {dim}, got {actions.shape[1]}")
        if not np.all(np.isfinite(actions)):
            bad = sorted({int(i) for i in np.flatnonzero(~np.all(np.isfinite(actions), axis=1))})
            return self._refuse(response, names.STEP, f"actions must be finite (env(s) {bad})")
        n = self.num_envs
        obs_list, infos = [], []
        rewards = np.zeros(n, dtype=np.float32)
        terminated = [False] * n
        truncated = [False] * n
        try:
            for i, env in enumerate(self.envs):
                obs, reward, term, trunc, info = env.step(actions[i])
                rewards[i] = reward
                terminated[i], truncated[i] = bool(term), bool(trunc)
                info = dict(info)
                info["TimeLimit.truncated"] = bool(trunc and not term)
                self._env_steps[i] += 1
                info[names.STEP_COUNT] = self._env_steps[i]
                if term or trunc:
                    info["terminal_observation"] = obs
                    obs, _ = env.reset()
                    if i == 0:
                        self.trail.clear()
                obs_list.append(obs)
                infos.append(info)
        except Exception as exc:  # noqa: BLE001 - e.g. step before reset; node stays up
            response.success = False
            response.message = f"step failed: {type(exc).__name__}: {exc}"
            self.get_logger().error(response.message)
            return response
        if self._arm is not None:
            self.trail.append(self._arm.tcp_state()[0])
        self._env_changed = True
        conv.batch_to_msg(conv.stack_obs(obs_list), response.batch)
        response.rewards = rewards
        response.terminated = terminated
        response.truncated = truncated
        response.infos_json = conv.infos_to_json(infos)
        response.success = True
        return response

    def _publish_env_vis(self) -> None:
        """Joint states and markers of env 0; an idle worker (nothing stepped) republishes them
        once per IDLE_VIS_PERIOD only, so spare workers cost next to no CPU (at VIS_RATE ~2% of a
        core each, measured)."""
        now = time.monotonic()
        if self._arm is None or not self._env_changed and now - self._last_vis < IDLE_VIS_PERIOD:
            return
        self._env_changed = False
        self._last_vis = now
        client, body = self._arm.client, self._arm.body
        states = client.getJointStates(body, self._vis_ids)
        self._publish_joint_states(self._vis_names, [s[0] for s in states], [s[1] for s in states],
                                   [s[3] for s in states])
        task = getattr(self.envs[0].unwrapped, "task", None)
        goal = getattr(task, "goal", None)
        self.goal = None if goal is None else np.asarray(goal, dtype=float)
        self._publish_markers()

    # --- robot mode --------------------------------------------------------------------------
    def _init_robot_mode(self) -> None:
        from drl_control.robot.tools import composed_urdf_path
        from drl_control.sim.emulator import RobotEmulator

        tool = env_tool(self.env_id)
        self.robot = RobotEmulator(tool=tool, physics_hz=self.physics_hz)
        self._urdf_path = composed_urdf_path(tool)
        self.create_subscription(Float64MultiArray, names.FORWARD_POSITION_COMMANDS, self._on_positions, 10)
        self.create_subscription(JointTrajectory, names.JOINT_TRAJECTORY, self._on_trajectory, 10)
        self.create_subscription(PointStamped, names.GOAL, self._on_goal, 10)
        self._t0: float | None = None  # wall clock of physics step 0, set at the first tick
        self._behind_logged = 0.0
        self.create_timer(1.0 / self.publish_rate, self._tick)

    def _on_positions(self, msg: Float64MultiArray) -> None:
        try:
            self.robot.command_positions(msg.data)
        except ValueError as exc:
            self.get_logger().warning(f"rejected {names.FORWARD_POSITION_COMMANDS}: {exc}")

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        try:
            joint_names, times, positions = conv.trajectory_arrays(msg)
            self.robot.command_trajectory(joint_names, times, positions)
        except ValueError as exc:
            self.get_logger().warning(f"rejected {names.JOINT_TRAJECTORY}: {exc}")

    def _on_goal(self, msg: PointStamped) -> None:
        goal = [msg.point.x, msg.point.y, msg.point.z]
        problem = conv.point_problem(msg.header.frame_id, goal)
        if problem:
            self.get_logger().warning(f"rejected {names.GOAL}: {problem}")
            return
        self.goal = np.array(goal)

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
        self.trail.append(self.robot.tcp_position())
        now = time.monotonic()
        if now - self._last_vis >= self._vis_period:
            self._last_vis = now
            self._publish_markers()

    # --- shared publishing -------------------------------------------------------------------
    def _publish_joint_states(self, joint_names, position, velocity, effort) -> None:
        conv.joint_state_msg(self._js, self.get_clock().now().to_msg(), joint_names, position, velocity, effort)
        self.joint_pub.publish(self._js)

    def _publish_markers(self) -> None:
        stamp = self.get_clock().now().to_msg()
        self.marker_pub.publish(MarkerArray(markers=[
            conv.goal_marker(stamp, self.goal, "goal", (0.1, 0.8, 0.1, 0.8)),
            conv.path_marker(stamp, [conv.point_msg(p) for p in self.trail], "ee_trajectory", (0.9, 0.3, 0.1, 1.0)),
        ]))

    def close(self) -> None:
        for env in getattr(self, "envs", []):
            env.close()
        if hasattr(self, "robot"):
            self.robot.close()


def main(args: list[str] | None = None) -> int:
    # bad parameters: one line on stderr, status 2
    return run_node(SimNode, args, on_shutdown=SimNode.close,
                    usage_errors=(ValueError, InvalidParameterTypeException), prog="sim_node")

if __name__ == "__main__":
    sys.exit(main())
