"""Issue 5, faults C: a physics blow-up (NaN in the PyBullet state) truncates the episode, is
logged, the env recovers on reset, and training carries on to its timesteps with a clean replay
buffer. The NaN is written into the real simulator (resetJointState / resetBasePositionAndOrientation),
not faked in the observation.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

from drl_control.learn.algos import make_env
from drl_control.learn.checkpoint import latest_checkpoint
from drl_control.learn.config import resolve_config
from drl_control.learn.train import Trainer

NAN = math.nan


def _corrupt(env: gym.Env, how: str) -> None:
    base = env.unwrapped
    client = base.world.client
    if how == "joint":
        client.resetJointState(base.arm.body, base.arm.joint_ids[3], NAN, NAN)
    elif how == "base":
        client.resetBasePositionAndOrientation(base.arm.body, [NAN] * 3, [0.0, 0.0, 0.0, 1.0])
    elif how == "object":
        client.resetBasePositionAndOrientation(base.task.object, [NAN, 0.0, 0.1], [0.0, 0.0, 0.0, 1.0])
    else:
        raise AssertionError(how)


def _finite(obs: dict) -> bool:
    return all(np.isfinite(v).all() for v in obs.values())


@pytest.mark.parametrize(("env_id", "how"), [
    ("DrlControl/IiwaReach-v0", "joint"),
    ("DrlControl/IiwaReach-v0", "base"),
    ("DrlControl/IiwaPush-v0", "object"),
    ("DrlControl/IiwaPickAndPlace-v0", "joint"),
])
def test_env_truncates_logs_and_recovers(env_id: str, how: str, caplog) -> None:
    env = make_env(env_id)
    try:
        env.reset(seed=0)
        env.step(env.action_space.sample())
        _corrupt(env, how)
        with caplog.at_level(logging.WARNING, logger="drl_control.sim.env"):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert truncated and not terminated and info["physics_error"] and not info["is_success"]
        assert _finite(obs) and math.isfinite(reward)
        assert any("physics blow-up" in r.getMessage() for r in caplog.records)
        obs, _ = env.reset(seed=1)
        assert _finite(obs)  # before the fix: the arm's base stayed NaN and every later step blew up
        for _ in range(30):
            obs, _, _, truncated, info = env.step(env.action_space.sample())
            assert _finite(obs) and not info.get("physics_error")
    finally:
        env.close()


class InjectNaN(gym.Wrapper):
    """Writes NaN into the real PyBullet state before the env's `at`-th step (of its lifetime)."""

    def __init__(self, env: gym.Env, at: tuple[int, ...]) -> None:
        super().__init__(env)
        self.at = set(at)
        self.n = 0
        self.results: list[tuple[bool, dict]] = []

    def step(self, action):
        self.n += 1
        inject = self.n in self.at
        if inject:
            _corrupt(self.env, "joint")
        obs, reward, terminated, truncated, info = self.env.step(action)
        if inject:
            self.results.append((truncated, dict(info), _finite(obs)))
        return obs, reward, terminated, truncated, info


def test_training_survives_physics_blowups(tmp_path: Path, caplog) -> None:
    env_id = "DrlControl/IiwaReach-v0"
    cfg = resolve_config("sac", env_id, overrides=["algorithm.learning_starts=100", "algorithm.buffer_size=2000",
                                                   "eval.episodes=2", "train.checkpoint_every=100000"])
    cfg["total_timesteps"] = 300
    wrappers: list[InjectNaN] = []

    def factory(n_envs: int, seed: int):
        def make():
            wrappers.append(InjectNaN(make_env(env_id, 0, seed), at=(30, 120, 121, 260)))
            return wrappers[-1]
        venv = DummyVecEnv([make])
        venv.seed(seed)
        return venv

    trainer = Trainer(cfg, tmp_path / "run", vec_env_factory=factory)
    with caplog.at_level(logging.WARNING):
        res = trainer.train()
    assert res.timesteps == 300 and not res.cancelled and res.eval is not None
    (wrapper,) = wrappers
    assert len(wrapper.results) == 4  # all four injections happened, each truncated its episode
    assert all(truncated and info["physics_error"] and finite for truncated, info, finite in wrapper.results)
    assert trainer.physics_errors == 4
    logged = [r.getMessage() for r in caplog.records if r.name == "drl_control.learn.train"]
    assert sum("physics blow-up" in m for m in logged) == 4, logged
    buf = trainer.model.replay_buffer
    n = buf.pos
    assert n == 300
    for name in ("observations", "next_observations"):
        for key, arr in getattr(buf, name).items():
            assert np.isfinite(arr[:n]).all(), f"{name}/{key} holds a non-finite value"
    assert np.isfinite(buf.rewards[:n]).all() and np.isfinite(buf.actions[:n]).all()
    for rms in trainer.normalizer.obs_rms.values():
        assert np.isfinite(rms.mean).all() and np.isfinite(rms.var).all()
    with np.load(latest_checkpoint(tmp_path / "run") / "replay_buffer.npz", allow_pickle=False) as data:
        assert all(np.isfinite(data[k]).all() for k in data.files if data[k].dtype.kind == "f")
