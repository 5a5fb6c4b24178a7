"""Helpers of the fault-injection test modules (test_faults_messages, test_faults_stale)."""

from __future__ import annotations

import fcntl
from pathlib import Path


def untrained_artifact(base: Path) -> Path:
    """A deploy artifact of an untrained SAC Reach policy, built once per pytest session under `base`
    (the session's temp root): a real artifact, its actions just are not useful."""
    out = Path(base) / "fault_artifact" / "policy"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "policy.json").is_file():
            from stable_baselines3.common.vec_env import DummyVecEnv

            from drl_control.learn.algos import build_model, make_env, wrap_normalizer
            from drl_control.learn.config import resolve_config
            from drl_control.learn.export import export_model

            env_id = "DrlControl/IiwaReach-v0"
            cfg = resolve_config("sac", env_id, overrides=["algorithm.buffer_size=1000"])
            venv = wrap_normalizer(DummyVecEnv([lambda: make_env(env_id)]), cfg)
            try:
                export_model(build_model(cfg, venv), venv, cfg, out)
            finally:
                venv.close()
    return out
