"""Observation normalization: running mean/variance, (x − μ)/(σ + ε), clipped to ±clip.

Why a subclass of SB3's `VecNormalize` and not a wrapper of our own: SB3's off-policy algorithms
recognise a VecNormalize, store the *raw* observations in the replay buffer and normalize at
sampling time (`buffer.sample(env=vec_normalize)`), after HER has relabelled the goals, which is
exactly what HER needs. What we change:
  - the formula: (x − μ)/(σ + ε) with ε ≈ 1 cm instead of SB3's (x − μ)/sqrt(σ² + ε); a
    near-constant feature (an object resting on the table) is not blown up to ±clip.
  - achieved and desired goals share ONE statistic (they live in the same space; HER feeds
    achieved goals in as desired goals).
  - terminal observations of off-policy runs stay raw: SB3 un-normalizes them before storing,
    which is lossy once a value was clipped (early in training that is common).
  - state is saved as JSON (no pickle), and reward normalization is never used.
Statistics use SB3's `RunningMeanStd` (Chan et al. parallel update) and are updated only while
`training` is true; evaluation and deployment freeze them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecEnv, VecNormalize
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

GOAL_KEYS = ("achieved_goal", "desired_goal")
GOAL_STAT = "goal"


class _RawObs(dict):
    """Marks a terminal observation that was left raw, so `unnormalize_obs` passes it through."""


def normalize_array(x: np.ndarray, mean: np.ndarray, var: np.ndarray, eps: float, clip: float) -> np.ndarray:
    """The one normalization formula (float64 math, float32 result); deploy/policy.py mirrors it."""
    x = np.asarray(x, dtype=np.float64)
    return np.clip((x - mean) / (np.sqrt(var) + eps), -clip, clip).astype(np.float32)


class ObsNormalizer(VecNormalize):
    """VecNormalize with our formula, a shared goal statistic and JSON state (see module doc)."""

    def __init__(
        self,
        venv: VecEnv,
        *,
        training: bool = True,
        clip: float = 5.0,
        eps: float = 1e-2,
        shared_goal_stats: bool = True,
        raw_terminal_obs: bool = True,
    ) -> None:
        super().__init__(venv, training=training, norm_obs=True, norm_reward=False, clip_obs=clip, epsilon=eps)
        self.raw_terminal_obs = raw_terminal_obs
        self.shared_goal_stats = shared_goal_stats and isinstance(self.obs_rms, dict) and all(
            k in self.obs_rms for k in GOAL_KEYS
        )
        if self.shared_goal_stats:
            shared = RunningMeanStd(shape=self.obs_spaces[GOAL_KEYS[0]].shape)
            for key in GOAL_KEYS:
                self.obs_rms[key] = shared

    # --- statistics -------------------------------------------------------------------------
    def stat_names(self) -> dict[str, str]:
        """Observation key -> name of the statistic it uses (goals map to 'goal' when shared)."""
        if not isinstance(self.obs_rms, dict):
            return {"obs": "obs"}
        return {k: (GOAL_STAT if self.shared_goal_stats and k in GOAL_KEYS else k) for k in self.obs_rms}

    def _stats(self) -> dict[str, RunningMeanStd]:
        if not isinstance(self.obs_rms, dict):
            return {"obs": self.obs_rms}
        return {name: self.obs_rms[key] for key, name in self.stat_names().items()}

    def update_stats(self, obs: np.ndarray | Mapping[str, np.ndarray]) -> None:
        """Fold a batch (first axis = env) into the running statistics."""
        if not isinstance(self.obs_rms, dict):
            self.obs_rms.update(np.asarray(obs, dtype=np.float64))
            return
        done_goal = False
        for key, rms in self.obs_rms.items():
            if self.shared_goal_stats and key in GOAL_KEYS:
                if not done_goal:  # one update with both goal batches stacked
                    rms.update(np.concatenate([np.asarray(obs[k], dtype=np.float64) for k in GOAL_KEYS]))
                    done_goal = True
            else:
                rms.update(np.asarray(obs[key], dtype=np.float64))

    # --- formula ----------------------------------------------------------------------------
    def _normalize_obs(self, obs: np.ndarray, obs_rms: RunningMeanStd) -> np.ndarray:
        return normalize_array(obs, obs_rms.mean, obs_rms.var, self.epsilon, self.clip_obs)

    def _unnormalize_obs(self, obs: np.ndarray, obs_rms: RunningMeanStd) -> np.ndarray:
        return (np.asarray(obs, dtype=np.float64) * (np.sqrt(obs_rms.var) + self.epsilon) + obs_rms.mean).astype(
            np.float32
        )

    def normalize_obs(self, obs: np.ndarray | dict[str, np.ndarray]) -> np.ndarray | dict[str, np.ndarray]:
        # VecNormalize deep-copies first; our formula builds new arrays anyway.
        if isinstance(obs, Mapping) and isinstance(self.obs_rms, dict):
            return {k: (self._normalize_obs(v, self.obs_rms[k]) if k in self.obs_rms else v) for k, v in obs.items()}
        return self._normalize_obs(obs, self.obs_rms)  # type: ignore[arg-type]

    def unnormalize_obs(self, obs: np.ndarray | dict[str, np.ndarray]) -> np.ndarray | dict[str, np.ndarray]:
        if isinstance(obs, _RawObs):  # left raw by step_wait (see raw_terminal_obs)
            return dict(obs)
        return super().unnormalize_obs(obs)

    # --- VecEnv interface -------------------------------------------------------------------
    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        self.old_obs = obs
        self.old_reward = rewards
        if self.training:
            self.update_stats(obs)
        for idx, done in enumerate(dones):
            if not done or "terminal_observation" not in infos[idx]:
                continue
            raw = infos[idx]["terminal_observation"]
            infos[idx]["terminal_observation_raw"] = raw
            if self.raw_terminal_obs and isinstance(raw, Mapping):
                infos[idx]["terminal_observation"] = _RawObs(raw)
            else:  # on-policy algorithms bootstrap from it with the policy: normalize
                infos[idx]["terminal_observation"] = self.normalize_obs(raw)
        return self.normalize_obs(obs), rewards.astype(np.float32), dones, infos

    def reset(self) -> np.ndarray | dict[str, np.ndarray]:
        obs = self.venv.reset()
        self.old_obs = obs
        self.returns = np.zeros(self.num_envs)
        if self.training:
            self.update_stats(obs)
        return self.normalize_obs(obs)

    # --- persistence (JSON, never pickle) ---------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-able statistics and settings; float64 values round-trip exactly through JSON."""
        return {
            "eps": float(self.epsilon),
            "clip": float(self.clip_obs),
            "shared_goal_stats": bool(self.shared_goal_stats),
            "keys": self.stat_names(),
            "stats": {
                name: {"mean": rms.mean.tolist(), "var": rms.var.tolist(), "count": float(rms.count)}
                for name, rms in self._stats().items()
            },
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore statistics saved by `state_dict` (shapes and key mapping must match)."""
        if dict(state.get("keys", {})) != self.stat_names():
            raise ValueError(f"normalizer keys differ: saved {state.get('keys')}, expected {self.stat_names()}")
        for name, rms in self._stats().items():
            saved = state["stats"][name]
            mean = np.asarray(saved["mean"], dtype=np.float64)
            var = np.asarray(saved["var"], dtype=np.float64)
            if mean.shape != rms.mean.shape or var.shape != rms.var.shape:
                raise ValueError(f"normalizer statistic {name!r} has shape {mean.shape}, expected {rms.mean.shape}")
            rms.mean, rms.var, rms.count = mean, var, float(saved["count"])
        self.epsilon = float(state["eps"])
        self.clip_obs = float(state["clip"])

    def save(self, save_path: str) -> None:
        with open(save_path, "w") as f:
            json.dump(self.state_dict(), f)

    @staticmethod
    def load(load_path: str, venv: VecEnv) -> ObsNormalizer:  # type: ignore[override]
        raise NotImplementedError("use ObsNormalizer(...).load_state_dict(json.load(f)); pickle is not used")
