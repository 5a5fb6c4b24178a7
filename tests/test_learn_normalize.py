"""Observation normalizer: arithmetic against numpy, shared goal statistic, freezing, JSON state,
and raw (un-normalized) transitions in the HER replay buffer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

from drl_control.learn.algos import build_model, make_env
from drl_control.learn.config import resolve_config
from drl_control.learn.normalize import ObsNormalizer

ENV = "DrlControl/IiwaReach-v0"


@pytest.fixture
def venv():
    v = DummyVecEnv([lambda: make_env(ENV)])
    yield v
    v.close()


def _batches(rng: np.random.Generator, n: int) -> list[dict[str, np.ndarray]]:
    out = []
    for _ in range(n):
        b = int(rng.integers(1, 7))
        out.append({
            "observation": rng.normal(3.0, 2.0, size=(b, 6)),
            "achieved_goal": rng.normal(0.5, 0.1, size=(b, 3)),
            "desired_goal": rng.normal(0.4, 0.3, size=(b, 3)),
        })
    return out


def test_running_statistics_match_numpy(venv) -> None:
    norm = ObsNormalizer(venv, eps=0.01, clip=5.0, shared_goal_stats=True)
    rng = np.random.default_rng(0)
    batches = _batches(rng, 40)
    for b in batches:
        norm.update_stats(b)
    obs = np.concatenate([b["observation"] for b in batches])
    goals = np.concatenate([np.concatenate([b["achieved_goal"], b["desired_goal"]]) for b in batches])
    rms_o, rms_g = norm.obs_rms["observation"], norm.obs_rms["desired_goal"]
    assert norm.obs_rms["achieved_goal"] is rms_g  # one statistic for both goals
    # SB3's RunningMeanStd starts from a pseudo-count of 1e-4 (mean 0, var 1): tolerance covers it
    np.testing.assert_allclose(rms_o.mean, obs.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rms_o.var, obs.var(0), rtol=1e-4)
    np.testing.assert_allclose(rms_g.mean, goals.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rms_g.var, goals.var(0), rtol=1e-4)

    x = {"observation": rng.normal(3.0, 8.0, size=(5, 6)).astype(np.float32),
         "achieved_goal": rng.normal(size=(5, 3)).astype(np.float32),
         "desired_goal": rng.normal(size=(5, 3)).astype(np.float32)}
    y = norm.normalize_obs(x)
    expected = np.clip((x["observation"] - rms_o.mean) / (np.sqrt(rms_o.var) + 0.01), -5, 5)
    np.testing.assert_allclose(y["observation"], expected, rtol=1e-6, atol=1e-6)
    assert y["observation"].dtype == np.float32
    assert np.abs(y["observation"]).max() <= 5.0 and np.isclose(np.abs(y["observation"]).max(), 5.0)
    np.testing.assert_allclose(y["desired_goal"], np.clip((x["desired_goal"] - rms_g.mean) / (np.sqrt(rms_g.var) + 0.01), -5, 5),
                               rtol=1e-6, atol=1e-6)


def test_separate_goal_statistics(venv) -> None:
    norm = ObsNormalizer(venv, shared_goal_stats=False)
    assert norm.obs_rms["achieved_goal"] is not norm.obs_rms["desired_goal"]
    assert set(norm.state_dict()["stats"]) == {"observation", "achieved_goal", "desired_goal"}


def test_frozen_outside_training_and_json_roundtrip(venv) -> None:
    norm = ObsNormalizer(venv)
    norm.reset()
    for _ in range(20):
        norm.step(np.array([venv.action_space.sample()]))
    state = json.loads(json.dumps(norm.state_dict()))
    norm.training = False
    before = norm.obs_rms["observation"].mean.copy()
    for _ in range(10):
        norm.step(np.array([venv.action_space.sample()]))
    np.testing.assert_array_equal(norm.obs_rms["observation"].mean, before)

    other = ObsNormalizer(DummyVecEnv([lambda: make_env(ENV)]))
    other.load_state_dict(state)
    for key in ("observation", "desired_goal"):
        np.testing.assert_array_equal(other.obs_rms[key].mean, norm.obs_rms[key].mean)  # exact through JSON
        np.testing.assert_array_equal(other.obs_rms[key].var, norm.obs_rms[key].var)
    other.close()


def test_replay_buffer_stores_raw_observations_including_terminal() -> None:
    cfg = resolve_config("sac", ENV, overrides=["algorithm.learning_starts=1000", "algorithm.buffer_size=500"])
    cfg["total_timesteps"] = 120
    raw_env = DummyVecEnv([lambda: make_env(ENV)])
    norm = ObsNormalizer(raw_env, raw_terminal_obs=True)
    model = build_model(cfg, norm)
    model.learn(120)
    buf = model.replay_buffer
    assert buf.pos == 120
    # the terminal transition (step 50) keeps the raw final observation (not a clipped round trip)
    ep_end = 49
    assert buf.dones[ep_end, 0] == 1.0
    # the next achieved goal of the terminal step matches what the env's reward was computed from
    r = raw_env.env_method("compute_reward", buf.next_observations["achieved_goal"][ep_end],
                           buf.observations["desired_goal"][ep_end], [{}], indices=[0])[0]
    assert float(r[0]) == float(buf.rewards[ep_end, 0])
    # consecutive raw observations chain: next_obs[t] == obs[t+1] inside an episode
    np.testing.assert_array_equal(buf.next_observations["observation"][10, 0], buf.observations["observation"][11, 0])
    sample = buf.sample(8, env=norm)  # normalized at sampling time
    assert float(sample.observations["observation"].abs().max()) <= 5.0
    raw_env.close()


def test_terminal_observation_passes_through_raw(venv) -> None:
    norm = ObsNormalizer(venv, raw_terminal_obs=True)
    norm.reset()
    for _ in range(50):
        _, _, dones, infos = norm.step(np.array([venv.action_space.sample()]))
    assert dones[0]
    raw = infos[0]["terminal_observation_raw"]
    back = norm.unnormalize_obs(infos[0]["terminal_observation"])  # what SB3 stores
    for key in raw:
        np.testing.assert_array_equal(back[key], raw[key])
