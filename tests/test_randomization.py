"""Domain randomization: off by default, each knob observable in the real simulation."""

import gymnasium as gym
import numpy as np
import pytest

from drl_control.sim.randomization import Randomization


def _make(randomization=None, env_id="DrlControl/IiwaPush-v0"):
    return gym.make(env_id, randomization=randomization)


def test_off_by_default():
    env = _make()
    assert not env.unwrapped.randomization.enabled
    env.close()


def test_dynamics_are_resampled_each_reset():
    env = _make({"joint_damping": [0.1, 2.0], "object_mass": [0.5, 2.0], "object_friction": [0.3, 1.0]})
    u = env.unwrapped
    seen = set()
    for seed in range(4):
        env.reset(seed=seed)
        client = u.world.client
        damping = client.getJointInfo(u.arm.body, u.arm.joint_ids[0])[6]
        mass, friction = client.getDynamicsInfo(u.task.object, -1)[:2]
        assert 0.1 <= damping <= 2.0
        assert 0.2 * 0.5 - 1e-9 <= mass <= 0.2 * 2.0 + 1e-9
        assert 0.3 <= friction <= 1.0
        seen.add((round(damping, 6), round(mass, 6)))
    assert len(seen) == 4
    env.close()


def test_observation_noise_changes_observations_but_not_goals():
    clean, noisy = _make(env_id="DrlControl/IiwaReach-v0"), _make({"observation_noise": 0.01}, "DrlControl/IiwaReach-v0")
    a, b = clean.reset(seed=0)[0], noisy.reset(seed=0)[0]
    diff = b["observation"] - a["observation"]
    assert 0.001 < np.std(diff) < 0.05
    np.testing.assert_array_equal(a["desired_goal"], b["desired_goal"])
    clean.close()
    noisy.close()


def test_action_latency_delays_the_action_by_whole_steps():
    delayed = _make({"action_latency": [2, 2]}, "DrlControl/IiwaReach-v0")
    delayed.reset(seed=0)
    q0 = delayed.unwrapped.arm.joint_state()[0]
    push = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    delayed.step(push)
    delayed.step(np.zeros(3, dtype=np.float32))
    # Two steps in, only the initial hold has been applied: the arm has barely moved.
    assert np.abs(delayed.unwrapped.arm.joint_state()[0] - q0).max() < 1e-2
    x_before = delayed.unwrapped.arm.tcp_state()[0][0]
    delayed.step(np.zeros(3, dtype=np.float32))  # now the first action (+x) is applied
    assert delayed.unwrapped.arm.tcp_state()[0][0] - x_before > 0.01
    delayed.close()


def test_control_jitter_varies_the_physics_time_per_step():
    env = _make({"control_jitter": 0.2}, "DrlControl/IiwaReach-v0")
    env.reset(seed=0)
    times = []
    for _ in range(30):
        before = env.unwrapped.world.time
        env.step(np.zeros(3, dtype=np.float32))
        times.append(env.unwrapped.world.time - before)
    assert len({round(t, 6) for t in times}) > 1
    assert min(times) >= 0.04 * 0.8 - 1e-9 and max(times) <= 0.04 * 1.2 + 1e-9
    env.close()


def test_joint_friction_slows_the_arm():
    def travel(randomization):
        env = _make(randomization, "DrlControl/IiwaReachJoints-v0")
        env.reset(seed=0)
        q0 = env.unwrapped.arm.joint_state()[0]
        for _ in range(5):
            env.step(np.ones(7, dtype=np.float32))
        moved = np.abs(env.unwrapped.arm.joint_state()[0] - q0).sum()
        env.close()
        return moved

    assert travel({"joint_friction": [30.0, 30.0]}) < travel(None)


@pytest.mark.parametrize("bad", [{"observation_noise": -1}, {"control_jitter": 1.5}, {"joint_friction": [1]}])
def test_bad_randomization_names_the_key(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        Randomization.from_dict(bad)
