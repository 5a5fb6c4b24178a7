"""A deploy artifact for tests that need one to exist, not to be good: an untrained SAC policy, exported."""

from __future__ import annotations

from pathlib import Path


def untrained_artifact(env_id: str, out: Path) -> Path:
    from stable_baselines3.common.vec_env import DummyVecEnv

    from drl_control.learn.algos import build_model, make_env, wrap_normalizer
    from drl_control.learn.config import resolve_config
    from drl_control.learn.export import export_model

    cfg = resolve_config("sac", env_id, overrides=["algorithm.buffer_size=1000"])
    venv = wrap_normalizer(DummyVecEnv([lambda: make_env(env_id)]), cfg)
    try:
        return export_model(build_model(cfg, venv), venv, cfg, out)
    finally:
        venv.close()
