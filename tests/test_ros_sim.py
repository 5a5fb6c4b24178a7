"""sim_node env mode over real FastDDS: RosVecEnv == in-process DummyVecEnv, bit for bit.

Two sim_node processes (/simA with 2 envs, /simB with 1) serve one RosVecEnv of 3 envs; the same
seeds and actions through a DummyVecEnv of the same env id give identical observations, rewards,
dones and terminal observations, across episode ends (auto-reset).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from ros_util import RosClient, domain_id, sim_node, wait_future, wait_until

rclpy = pytest.importorskip("rclpy")

import gymnasium as gym
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from visualization_msgs.msg import MarkerArray

import drl_control  # noqa: F401  (registers the env ids)
from drl_control.ros import names
from drl_control.ros.vec_env import RosVecEnv, WorkerError
from drl_control_interfaces.srv import EnvReset, EnvStep

ENV_ID = "DrlControl/IiwaReach-v0"
DOMAIN = domain_id(17)


@pytest.fixture(scope="module")
def sims():
    procs = [sim_node(DOMAIN, "/simA", num_envs=2), sim_node(DOMAIN, "/simB", num_envs=1)]
    client = RosClient(DOMAIN, "test_ros_sim")
    try:
        yield client
    finally:
        client.close()
        codes = [p.stop() for p in procs]
        assert codes == [0, 0], [p.log() for p in procs]


@pytest.fixture(scope="module")
def venv(sims):
    env = RosVecEnv(["/simA", "simB"], context=sims.context, node_name="test_vec_env", timeout=10.0)
    yield env
    env.close()


def test_spec(venv):
    assert venv.num_envs == 3
    assert venv.env_id == ENV_ID
    local = gym.make(ENV_ID)
    assert venv.observation_space == local.observation_space
    assert venv.action_space == local.action_space
    assert venv.control_hz == 25.0
    assert venv.deploy_spec == json.loads(json.dumps(local.unwrapped.deploy_spec()))
    assert venv.env_kwargs == {}  # nominal envs (sim_node's driver / randomization parameters unset)
    assert venv.reward_type == "sparse" and venv.distance_threshold == pytest.approx(0.05)
    local.close()


def test_reset_and_step_match_in_process(venv):
    from stable_baselines3.common.vec_env import DummyVecEnv

    local = DummyVecEnv([lambda: gym.make(ENV_ID) for _ in range(3)])
    venv.seed(7)
    local.seed(7)
    remote_obs, local_obs = venv.reset(), local.reset()
    for key in local_obs:
        np.testing.assert_array_equal(remote_obs[key], local_obs[key])
    rng = np.random.default_rng(0)
    episode_ends = 0
    for _ in range(60):  # episodes are 50 steps: crosses one auto-reset
        actions = rng.uniform(-1, 1, (3, 3)).astype(np.float32)
        r_obs, r_rew, r_done, r_info = venv.step(actions)
        l_obs, l_rew, l_done, l_info = local.step(actions)
        for key in l_obs:
            np.testing.assert_array_equal(r_obs[key], l_obs[key])
        np.testing.assert_array_equal(r_rew, l_rew)
        np.testing.assert_array_equal(r_done, l_done)
        for ri, li in zip(r_info, l_info):
            assert set(ri) == set(li)
            assert ri["is_success"] == li["is_success"]
            if "terminal_observation" in li:
                episode_ends += 1
                for key in li["terminal_observation"]:
                    np.testing.assert_array_equal(ri["terminal_observation"][key], li["terminal_observation"][key])
    assert episode_ends == 3
    # HER's reward: computed locally, same function as the env's.
    ag, dg = r_obs["achieved_goal"], rng.uniform(0.3, 0.7, (3, 3)).astype(np.float32)
    np.testing.assert_array_equal(
        venv.env_method("compute_reward", ag, dg, [{}] * 3, indices=[0])[0],
        local.env_method("compute_reward", ag, dg, [{}] * 3, indices=[0])[0],
    )
    assert venv.get_attr("reward_type") == ["sparse"] * 3
    local.close()


def test_bad_requests_are_refused_and_node_stays_up(sims, venv):
    reset = sims.node.create_client(EnvReset, names.sim_service("/simA", names.RESET))
    step = sims.node.create_client(EnvStep, names.sim_service("/simA", names.STEP))
    assert reset.wait_for_service(timeout_sec=10) and step.wait_for_service(timeout_sec=10)
    response = wait_future(reset.call_async(EnvReset.Request(seeds=[1, 2, 3])))
    assert not response.success and "2 seeds" in response.message
    response = wait_future(step.call_async(EnvStep.Request(actions=np.zeros(5, np.float32), action_dim=3)))
    assert not response.success and "2 x 3" in response.message
    venv.reset()  # still serving
    obs, *_ = venv.step(np.zeros((3, 3), np.float32))
    assert obs["observation"].shape == (3, 6)


def test_missing_worker_is_named(sims):
    with pytest.raises(WorkerError, match="/nowhere"):
        RosVecEnv(["/simA", "/nowhere"], context=sims.context, node_name="test_vec_env_missing",
                  connect_timeout=1.0)


def test_visualization_topics(sims, venv):
    got: dict[str, object] = {}
    node = sims.node
    node.create_subscription(JointState, "/simA/" + names.JOINT_STATES, lambda m: got.setdefault("js", m), 10)
    node.create_subscription(MarkerArray, "/simA/" + names.MARKERS, lambda m: got.setdefault("markers", m), 10)
    from drl_control.ros.sim_node import LATCHED

    node.create_subscription(String, "/simA/" + names.ROBOT_DESCRIPTION, lambda m: got.setdefault("urdf", m), LATCHED)
    venv.reset()
    for _ in range(5):
        venv.step(np.zeros((3, 3), np.float32))
    wait_until(lambda: {"js", "markers", "urdf"} <= set(got), what="joint_states, markers, robot_description")
    assert list(got["js"].name)[:7] == [f"iiwa_joint_{i}" for i in range(1, 8)]
    assert "<robot" in got["urdf"].data and "iiwa_joint_7" in got["urdf"].data
    by_ns = {m.ns: m for m in got["markers"].markers}
    assert {"goal", "ee_trajectory"} <= set(by_ns)
    assert by_ns["goal"].header.frame_id == names.BASE_FRAME


def test_idle_worker_publishes_visualization_rarely(sims, venv):
    from drl_control.ros.sim_node import IDLE_VIS_PERIOD, VIS_RATE

    sent, _ = sims.collect_sent(JointState, "/simA/" + names.JOINT_STATES)
    venv.reset()
    idle_from = time.time()
    time.sleep(2.5)  # nothing steps
    idle = [t for t, _ in sent if t > idle_from + 0.2]
    assert len(idle) <= 2.3 / IDLE_VIS_PERIOD + 1, f"{len(idle)} joint_states in 2.3 s idle"
    busy_from = time.time()
    while time.time() - busy_from < 1.0:  # stepping: the visualization follows at VIS_RATE
        venv.step(np.zeros((3, 3), np.float32))
    busy_to = time.time()
    wait_until(lambda: any(t > busy_to for t, _ in sent), 5.0, what="the next joint_states")
    busy = [t for t, _ in sent if busy_from < t <= busy_to]
    assert len(busy) >= VIS_RATE / 2, f"{len(busy)} joint_states in 1 s of stepping"


def test_answer_wait_takes_only_the_answer_to_the_request_still_wanted(sims):
    """RosVecEnv's step answers come through AnswerWait (its own wait set, matched by sequence
    number): an answer to a request given up on (a timed-out step) must never pass for the next one."""
    from drl_control.ros.answer_wait import AnswerWait

    reset = sims.node.create_client(EnvReset, names.sim_service("/simB", names.RESET))
    assert reset.wait_for_service(timeout_sec=10)
    assert wait_future(reset.call_async(EnvReset.Request(seeds=[3]))).success
    node = rclpy.create_node("answer_wait_probe", context=sims.context)  # spun by nobody but AnswerWait
    try:
        client = node.create_client(EnvStep, names.sim_service("/simB", names.STEP))
        assert client.wait_for_service(timeout_sec=10)
        wait = AnswerWait(sims.context, [client])
        with pytest.raises(TypeError, match="EnvStep"):
            wait.send(0, EnvReset.Request())

        def answer(pending) -> object:
            deadline = time.monotonic() + 10
            while not pending.done():
                assert time.monotonic() < deadline, "no answer within 10 s"
                wait.spin(0.25)
            return pending.result()

        def step_count(response) -> int:
            assert response.success, response.message
            return int(json.loads(response.infos_json)[0][names.STEP_COUNT])

        request = EnvStep.Request(actions=np.zeros(3, np.float32), action_dim=3)
        before = step_count(answer(wait.send(0, request)))
        wait.send(0, request).give_up()  # the sim still executes it and answers, after a while
        after = step_count(answer(wait.send(0, request)))
        assert after == before + 2  # the answer taken is the third request's, not the second's
        assert not wait.expected and not wait.answers  # nothing left over for the next round
        wait.close()
    finally:
        node.destroy_node()
