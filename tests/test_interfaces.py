"""drl_control_interfaces: generated Python types, and real round trips over rclpy + FastDDS.

No mocks: server and client nodes live in two rclpy contexts of this process (two DDS
participants, each spun by its own MultiThreadedExecutor thread) and talk over FastDDS on a ROS
domain of their own, derived from the pid so parallel test runs on one machine do not hear each
other.
"""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

from action_msgs.msg import GoalStatus
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.executors import MultiThreadedExecutor
from ros_util import domain_id

from drl_control.ros.spin import ThreadSafeActionClient

# Built by `make setup` (scripts/build_interfaces.sh) or `colcon build` in ros2_ws/.
from drl_control_interfaces.action import Train
from drl_control_interfaces.msg import ControllerStatus, EnvBatch, LearnerStatus
from drl_control_interfaces.srv import EnvReset, EnvSpec, EnvStep, LoadPolicy, SetGoal

DOMAIN = domain_id(0)  # offset apart from the other ROS test modules

TIMEOUT = 10.0
KEYS = ["observation", "achieved_goal", "desired_goal"]
KEY_SIZES = [20, 3, 3]
NUM_ENVS = 3
ACTION_DIM = 7


@pytest.fixture(scope="module")
def ros():
    """Two private rclpy contexts (two DDS participants) on a per-process domain.

    Yields ``make_node(name, side)``; nodes of side "server" and "client" live in different
    contexts, each spun by its own MultiThreadedExecutor thread, so requests cross real DDS
    discovery and transport between participants.
    """
    saved = {k: os.environ.get(k) for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")}
    os.environ["ROS_DOMAIN_ID"] = str(DOMAIN)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    sides, nodes = {}, []
    for side in ("server", "client"):
        context = rclpy.Context()
        rclpy.init(context=context, domain_id=DOMAIN)
        executor = MultiThreadedExecutor(num_threads=3, context=context)
        thread = threading.Thread(target=executor.spin, daemon=True, name=f"ros-{side}")
        thread.start()
        sides[side] = (context, executor, thread)

    def make_node(name: str, side: str):
        context, executor, _ = sides[side]
        node = rclpy.create_node(name, context=context)
        nodes.append(node)
        executor.add_node(node)
        return node

    try:
        yield make_node
    finally:
        for _, executor, _ in sides.values():
            executor.shutdown()
        for node in nodes:
            node.destroy_node()
        for context, _, thread in sides.values():
            rclpy.shutdown(context=context)
            thread.join(timeout=5.0)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _wait(future, timeout: float = TIMEOUT):
    """Block on a future completed by the executor thread."""
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    assert done.wait(timeout), "timed out waiting for a ROS response"
    return future.result()


def _batch(rows: np.ndarray) -> EnvBatch:
    msg = EnvBatch()
    msg.num_envs = rows.shape[0]
    msg.keys = list(KEYS)
    msg.key_sizes = list(KEY_SIZES)
    msg.data = rows.astype(np.float32).ravel()
    return msg


def _unbatch(msg: EnvBatch) -> dict[str, np.ndarray]:
    data = np.asarray(msg.data, dtype=np.float32).reshape(msg.num_envs, sum(msg.key_sizes))
    out, offset = {}, 0
    for key, size in zip(msg.keys, msg.key_sizes, strict=True):
        out[key] = data[:, offset : offset + size]
        offset += size
    return out


def test_types_construct_with_documented_fields():
    spec = EnvSpec.Response(env_id="DrlControl/IiwaReach-v0", num_envs=2, control_hz=25.0)
    assert spec.observation_space_json == "" and spec.deploy_spec_json == ""
    reset = EnvReset.Request(seeds=[1, 2], options_json="{}")
    assert list(reset.seeds) == [1, 2]
    assert isinstance(EnvReset.Response().batch, EnvBatch)
    step = EnvStep.Response()
    assert {"success", "message", "batch", "rewards", "terminated", "truncated", "infos_json"} <= set(
        step.get_fields_and_field_types()
    )
    assert LoadPolicy.Request(artifact_dir="/tmp/a").artifact_dir == "/tmp/a"
    goal = SetGoal.Request()
    goal.goal.x, goal.goal.y, goal.goal.z = 0.5, 0.0, 0.4
    assert goal.goal.z == pytest.approx(0.4)
    status = ControllerStatus(enabled=True, state="running", distance_to_goal=0.01, inference_ms=0.2)
    status.header.frame_id = "iiwa_link_0"
    assert status.header.frame_id == "iiwa_link_0"
    learner = LearnerStatus(workers=["/sim0", "/sim1"], workers_alive=[True, False], timesteps=10)
    assert list(learner.workers_alive) == [True, False]
    assert set(Train.Goal.get_fields_and_field_types()) == {
        "algorithm",
        "env_id",
        "overrides",
        "timesteps",
        "seed",
        "run_dir",
    }
    assert set(Train.Result.get_fields_and_field_types()) == {
        "success",
        "message",
        "run_dir",
        "artifact_dir",
        "success_rate",
    }
    assert set(Train.Feedback.get_fields_and_field_types()) == {
        "timesteps",
        "success_rate",
        "env_steps_per_second",
        "mean_return",
    }


def test_env_step_service_round_trip(ros):
    server, client_node = ros("iface_test_sim", "server"), ros("iface_test_learner", "client")
    rng = np.random.default_rng(0)
    next_obs = rng.standard_normal((NUM_ENVS, sum(KEY_SIZES))).astype(np.float32)
    terminal = rng.standard_normal(KEY_SIZES[0]).astype(np.float32)
    seen = {}

    def on_step(request, response):
        seen["actions"] = np.asarray(request.actions, dtype=np.float32).reshape(-1, request.action_dim)
        n = seen["actions"].shape[0]
        response.success = True
        response.batch = _batch(next_obs)
        response.rewards = -np.arange(n, dtype=np.float32)
        response.terminated = [False, True, False]
        response.truncated = [False, False, True]
        infos = [{} for _ in range(n)]
        infos[1] = {"is_success": 1.0, "terminal_observation": {"observation": terminal.tolist()}}
        response.infos_json = json.dumps(infos)
        return response

    server.create_service(EnvStep, "step", on_step)
    client = client_node.create_client(EnvStep, "/step")
    assert client.wait_for_service(timeout_sec=TIMEOUT), "EnvStep service not discovered"

    actions = rng.uniform(-1, 1, (NUM_ENVS, ACTION_DIM)).astype(np.float32)
    t0 = time.perf_counter()
    response = _wait(client.call_async(EnvStep.Request(actions=actions.ravel(), action_dim=ACTION_DIM)))
    assert time.perf_counter() - t0 < TIMEOUT

    np.testing.assert_array_equal(seen["actions"], actions)
    assert response.success
    obs = _unbatch(response.batch)
    assert list(obs) == KEYS
    np.testing.assert_array_equal(np.concatenate([obs[k] for k in KEYS], axis=1), next_obs)
    np.testing.assert_array_equal(np.asarray(response.rewards), [0.0, -1.0, -2.0])
    assert list(response.terminated) == [False, True, False]
    assert list(response.truncated) == [False, False, True]
    infos = json.loads(response.infos_json)
    assert len(infos) == NUM_ENVS
    np.testing.assert_allclose(infos[1]["terminal_observation"]["observation"], terminal)


def test_train_action_round_trip_with_feedback_and_cancel(ros):
    server_node, client_node = ros("iface_test_learner_node", "server"), ros("iface_test_cli", "client")
    steps = 5

    def execute(goal_handle):
        goal = goal_handle.request
        for i in range(1, steps + 1):
            if goal_handle.is_cancel_requested:
                goal_handle.canceled()
                return Train.Result(success=False, message="cancelled", run_dir=goal.run_dir)
            feedback = Train.Feedback(
                timesteps=i * goal.timesteps // steps,
                success_rate=i / steps,
                env_steps_per_second=1000.0,
                mean_return=-50.0 + 10 * i,
            )
            goal_handle.publish_feedback(feedback)
            time.sleep(0.05 if goal.algorithm == "sac" else 0.5)
        goal_handle.succeed()
        return Train.Result(
            success=True,
            message=f"{goal.algorithm} on {goal.env_id}: {','.join(goal.overrides)} seed={goal.seed}",
            run_dir=goal.run_dir,
            artifact_dir=goal.run_dir + "/artifact",
            success_rate=1.0,
        )

    ActionServer(
        server_node,
        Train,
        "train",
        execute_callback=execute,
        goal_callback=lambda goal: GoalResponse.ACCEPT if goal.timesteps > 0 else GoalResponse.REJECT,
        cancel_callback=lambda _handle: CancelResponse.ACCEPT,
    )
    client = ThreadSafeActionClient(client_node, Train, "/train")
    assert client.wait_for_server(timeout_sec=TIMEOUT), "Train action server not discovered"

    # Rejected goal.
    handle = _wait(client.send_goal_async(Train.Goal(algorithm="sac", timesteps=0)))
    assert not handle.accepted

    # Full run: every feedback arrives, then the result.
    feedback = []
    goal = Train.Goal(
        algorithm="sac",
        env_id="DrlControl/IiwaReach-v0",
        overrides=["algo.batch_size=256", "her.n_sampled_goal=4"],
        timesteps=4000,
        seed=-1,
        run_dir="/tmp/runs/x",
    )
    handle = _wait(client.send_goal_async(goal, feedback_callback=lambda fb: feedback.append(fb.feedback)))
    assert handle.accepted
    wrapped = _wait(handle.get_result_async())
    assert wrapped.status == GoalStatus.STATUS_SUCCEEDED
    result = wrapped.result
    assert result.success and result.success_rate == 1.0
    assert result.artifact_dir == "/tmp/runs/x/artifact"
    overrides = "algo.batch_size=256,her.n_sampled_goal=4"
    assert result.message == f"sac on DrlControl/IiwaReach-v0: {overrides} seed=-1"
    deadline = time.monotonic() + 2.0
    while len(feedback) < steps and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [fb.timesteps for fb in feedback] == [800, 1600, 2400, 3200, 4000]
    assert feedback[-1].success_rate == pytest.approx(1.0)

    # Cancel mid-run.
    handle = _wait(client.send_goal_async(Train.Goal(algorithm="td3", timesteps=100, run_dir="/tmp/y")))
    assert handle.accepted
    cancel = _wait(handle.cancel_goal_async())
    assert len(cancel.goals_canceling) == 1
    wrapped = _wait(handle.get_result_async())
    assert wrapped.status == GoalStatus.STATUS_CANCELED
    assert not wrapped.result.success and wrapped.result.run_dir == "/tmp/y"
