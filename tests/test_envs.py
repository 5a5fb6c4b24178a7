"""The twelve goal envs: API checks, rewards for HER, determinism, bad input (real PyBullet)."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import drl_control
from drl_control.sim.registration import ENV_IDS


def test_twelve_ids_registered_on_import():
    assert drl_control.ENV_IDS == ENV_IDS
    assert len(ENV_IDS) == 12
    for env_id in ENV_IDS:
        assert env_id in gym.registry
    assert "DrlControl/IiwaReach-v0" in ENV_IDS and "DrlControl/IiwaPushDenseJoints-v0" in ENV_IDS


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_and_sb3_checkers(env_id):
    env = gym.make(env_id)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=True)
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"observation", "achieved_goal", "desired_goal"}
    spec = env.unwrapped.deploy_spec()
    assert sum(n for _, n in spec["observation_layout"]) == obs["observation"].shape[0]
    assert spec["action"]["dim"] == env.action_space.shape[0]
    env.close()


def test_episode_lasts_50_steps():
    env = gym.make("DrlControl/IiwaReach-v0")
    env.reset(seed=1)
    for step in range(1, 51):
        _, _, terminated, truncated, _ = env.step(np.zeros(3))
        assert not terminated
        assert truncated == (step == 50)
    env.close()


@pytest.mark.parametrize("task", ["Reach", "Push"])
def test_compute_reward_batched_for_her(task):
    sparse = gym.make(f"DrlControl/Iiwa{task}-v0").unwrapped
    dense = gym.make(f"DrlControl/Iiwa{task}Dense-v0").unwrapped
    rng = np.random.default_rng(0)
    achieved = rng.uniform(-1, 1, size=(256, 3)).astype(np.float32)
    desired = achieved + rng.normal(0, 0.05, size=(256, 3)).astype(np.float32)
    distance = np.linalg.norm(achieved - desired, axis=-1)
    r_sparse = sparse.compute_reward(achieved, desired, [{}] * 256)
    r_dense = dense.compute_reward(achieved, desired, [{}] * 256)
    assert r_sparse.shape == (256,) and r_dense.shape == (256,)
    np.testing.assert_array_equal(r_sparse, -(distance >= 0.05).astype(np.float32))
    np.testing.assert_allclose(r_dense, -distance, rtol=1e-6)
    assert set(np.unique(r_sparse)) <= {-1.0, 0.0} and (r_sparse == 0).any() and (r_sparse == -1).any()
    # single transition, as the env computes it itself
    assert sparse.compute_reward(achieved[0], achieved[0], {}) == 0.0
    sparse.close()
    dense.close()


def test_step_reward_and_success_agree_with_compute_reward():
    env = gym.make("DrlControl/IiwaReach-v0")
    obs, _ = env.reset(seed=3)
    for _ in range(10):
        goal_dir = obs["desired_goal"] - obs["achieved_goal"]
        obs, reward, _, _, info = env.step(np.clip(goal_dir / 0.05, -1, 1))
        expected = env.unwrapped.compute_reward(obs["achieved_goal"], obs["desired_goal"], info)
        assert reward == pytest.approx(float(expected))
        assert info["is_success"] == (reward == 0.0)
    assert info["is_success"]
    env.close()


@pytest.mark.parametrize("env_id", ["DrlControl/IiwaPickAndPlace-v0", "DrlControl/IiwaPushDenseJoints-v0"])
def test_same_seed_and_actions_give_identical_observations(env_id):
    def rollout():
        env = gym.make(env_id)
        obs, _ = env.reset(seed=42)
        rng = np.random.default_rng(0)
        trace = [np.concatenate(list(obs.values()))]
        for _ in range(30):
            obs, *_ = env.step(rng.uniform(-1, 1, size=env.action_space.shape))
            trace.append(np.concatenate(list(obs.values())))
        env.close()
        return np.array(trace)

    np.testing.assert_array_equal(rollout(), rollout())


def test_goals_in_workspace_and_on_the_table():
    reach = gym.make("DrlControl/IiwaReach-v0")
    push = gym.make("DrlControl/IiwaPush-v0")
    for seed in range(50):
        goal = reach.reset(seed=seed)[0]["desired_goal"]
        assert np.all(goal >= [0.35, -0.35, 0.15]) and np.all(goal <= [0.75, 0.35, 0.65])
        obs = push.reset(seed=seed)[0]
        assert obs["desired_goal"][2] == pytest.approx(0.02)
        assert np.linalg.norm(obs["desired_goal"][:2] - obs["achieved_goal"][:2]) > 0.05
    reach.close()
    push.close()


def test_out_of_range_actions_are_clipped():
    a, b = gym.make("DrlControl/IiwaReach-v0"), gym.make("DrlControl/IiwaReach-v0")
    a.reset(seed=5)
    b.reset(seed=5)
    big = a.step(np.array([50.0, -50.0, 7.0]))[0]
    unit = b.step(np.array([1.0, -1.0, 1.0]))[0]
    np.testing.assert_array_equal(big["observation"], unit["observation"])
    a.close()
    b.close()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_action_raises_and_leaves_sim_untouched(bad):
    env = gym.make("DrlControl/IiwaPush-v0")
    env.reset(seed=0)
    u = env.unwrapped
    state = (u.arm.joint_state()[0].copy(), u.task.achieved_goal().copy(), u.world.time)
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([0.1, bad, 0.0]))
    assert np.array_equal(u.arm.joint_state()[0], state[0])
    assert np.array_equal(u.task.achieved_goal(), state[1]) and u.world.time == state[2]
    env.close()


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"task": "Stack"}, "task"),
        ({"physics_hz": 500.0, "control_hz": 30.0}, "substeps"),
        ({"physics_hz": 0.0}, "physics_hz"),
        ({"control_hz": 1000.0}, "substeps"),
        ({"reward_type": "shaped"}, "reward_type"),
        ({"control": "torque"}, "control"),
        ({"distance_threshold": -1.0}, "distance_threshold"),
        ({"randomization": {"joint_dampin": [0, 1]}}, "joint_dampin"),
        ({"randomization": {"action_latency": [0, 5]}}, "action_latency"),
        ({"randomization": {"object_mass": [2.0, 1.0]}}, "object_mass"),
    ],
)
def test_invalid_configuration_names_the_field(kwargs, field):
    from drl_control.sim.env import IiwaGoalEnv

    with pytest.raises(ValueError, match=field):
        IiwaGoalEnv(**kwargs)


def test_limits_beyond_datasheet_are_refused():
    from dataclasses import replace

    from drl_control.robot import iiwa14
    from drl_control.sim.env import IiwaGoalEnv

    spec = iiwa14()
    fast = replace(spec, max_velocity=spec.max_velocity * 1.5)
    with pytest.raises(ValueError, match="max_velocity"):
        IiwaGoalEnv(robot_spec=fast)
    wide = replace(spec, upper=spec.upper + 0.2)
    with pytest.raises(ValueError, match="upper"):
        IiwaGoalEnv(robot_spec=wide)


def test_joint_actions_respect_datasheet_speeds():
    env = gym.make("DrlControl/IiwaReachJoints-v0")
    env.reset(seed=0)
    u = env.unwrapped
    q0 = u.arm.joint_state()[0]
    env.step(np.ones(7))
    moved = np.abs(u.arm.joint_state()[0] - q0)
    assert np.all(moved <= u.arm.spec.max_velocity * u.world.config.control_dt * 1.05 + 1e-3)
    assert np.all(moved > 0.0)
    env.close()


def test_render_rgb_array():
    env = gym.make("DrlControl/IiwaReach-v0", render_mode="rgb_array", render_size=(64, 48))
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8 and frame.std() > 0
    env.close()
