"""Evaluation on held-out seeded goals, for a run directory (SB3 model) or a deploy artifact.

Why not SB3's `evaluate_policy`: it reports returns only; we need success at the final step and
the final goal distance, and the same loop must drive the deploy policy (which has no SB3).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from drl_control.deploy.policy import DeployPolicy
from drl_control.learn.algos import build_model, make_env, wrap_normalizer
from drl_control.learn.checkpoint import checked_latest, restore_checkpoint
from drl_control.learn.config import load_run_config
from drl_control.sim.registration import check_env_id
from drl_control.sim.rollout import run_episode, summarize

Actor = Callable[[Mapping[str, np.ndarray]], np.ndarray]


class ModelActor:
    """Deterministic actions of an SB3 model, with the (frozen) observation normalizer applied."""

    def __init__(self, model: Any, normalizer: Any = None) -> None:
        self.model = model
        self.normalizer = normalizer

    def __call__(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        batched = {k: np.asarray(v)[None] for k, v in obs.items()}
        if self.normalizer is not None:
            batched = self.normalizer.normalize_obs(batched)
        action, _ = self.model.predict(batched, deterministic=True)
        return action[0]


def eval_seeds(seed: int, episodes: int, seed_offset: int = 1_000_000) -> list[int]:
    """Reset seeds of the evaluation episodes: a stream of their own, apart from training's seed+rank."""
    rng = np.random.default_rng([seed_offset, seed])
    return [int(s) for s in rng.integers(0, 2**31 - 1, size=episodes)]


def evaluate_actor(actor: Actor, env_id: str, *, episodes: int, seed: int, seed_offset: int = 1_000_000,
                   env: Any = None, hook: Any = None) -> dict[str, Any]:
    """Run `episodes` deterministic episodes; success = is_success at the final step.

    `hook`: see `sim.rollout.run_episode` (a recorder of the episodes)."""
    own_env = env is None
    if own_env:
        env = gym.make(check_env_id(env_id))  # a bad id from an artifact or config: one line, exit 2
    try:
        runs = [run_episode(env, actor, ep_seed, hook=hook) for ep_seed in eval_seeds(seed, episodes, seed_offset)]
    finally:
        if own_env:
            env.close()
    return {**summarize(env_id, seed, runs),
            "mean_length": float(np.mean([r.length for r in runs])),
            "successes": [float(r.success) for r in runs]}


def load_run_model(run_dir: str | Path) -> tuple[Any, Any, dict[str, Any]]:
    """Model + frozen normalizer from a run's latest checkpoint, built fresh (no pickle)."""
    # SB3 only for a run directory: evaluating an artifact does not pay its import (~1.3 s after
    # torch, measured with python -X importtime).
    from stable_baselines3.common.vec_env import DummyVecEnv

    cfg = load_run_config(run_dir)
    ckpt = checked_latest(run_dir)  # before building anything
    eval_cfg = copy.deepcopy(cfg)
    if cfg["algo"] != "ppo":
        eval_cfg.setdefault("algorithm", {})["buffer_size"] = 1000  # no replay needed to act
    venv = DummyVecEnv([lambda: make_env(cfg["env_id"])])
    venv = wrap_normalizer(venv, eval_cfg, training=False)
    normalizer = venv if hasattr(venv, "state_dict") else None
    model = build_model(eval_cfg, venv)
    restore_checkpoint(model, ckpt, normalizer, replay=False)
    return model, normalizer, cfg


def is_artifact(path: str | Path) -> bool:
    return (Path(path) / "policy.json").is_file()


def load_actor(target: Path) -> tuple[Actor, str, str, Callable[[], None] | None]:
    """(deterministic actor, env id, "artifact" or "run", close or None) of a run or artifact directory."""
    if is_artifact(target):
        policy = DeployPolicy.load(target)
        return policy.act, policy.env_id, "artifact", None
    model, normalizer, cfg = load_run_model(target)
    return ModelActor(model, normalizer), cfg["env_id"], "run", model.env.close


def evaluate(target: str | Path, *, episodes: int, seed: int, seed_offset: int = 1_000_000,
             record: str | Path | None = None) -> dict[str, Any]:
    """Evaluate a run directory or a deploy artifact directory; `record`: write the episodes as MCAP."""
    target = Path(target)
    if not target.is_dir():
        raise FileNotFoundError(f"{target}: no such run or artifact directory")
    if record is not None:
        from drl_control.record.writer import check_writable

        check_writable(record)  # before any model is loaded
    actor, env_id, kind, close = load_actor(target)
    hook = None
    if record is not None:
        from drl_control.record.episodes import EpisodeRecorder

        hook = EpisodeRecorder(record, {"source": "drl-control eval", "target": str(target), "env_id": env_id,
                                        "seed": str(seed), "episodes": str(episodes)})
    try:
        report = evaluate_actor(actor, env_id, episodes=episodes, seed=seed, seed_offset=seed_offset, hook=hook)
    finally:
        if hook is not None:
            hook.close()
        if close is not None:
            close()
    report["target"] = kind
    report["path"] = str(target)
    if record is not None:
        report["record"] = str(record)
    return report
