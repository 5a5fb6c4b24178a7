"""Simulation throughput: our iiwa envs side by side with panda-gym in one run.

Prints, per env: env steps/s on one core, the share of step time spent inside PyBullet's
stepSimulation, and SubprocVecEnv throughput with 2 envs relative to 1 env.

    .venv/bin/python benchmarks/bench_sim.py [--steps 5000]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv  # noqa: E402

import drl_control  # noqa: E402,F401  (registers the envs)

OURS = ["DrlControl/IiwaReach-v0", "DrlControl/IiwaPush-v0"]
PANDA = ["PandaReach-v3", "PandaPush-v3"]


def physics_client(env: gym.Env):
    """The object whose `stepSimulation` the env calls (ours: World.client; panda-gym: sim.physics_client)."""
    u = env.unwrapped
    return u.world.client if hasattr(u, "world") else u.sim.physics_client


def single_env(env_id: str, steps: int, seed: int = 0) -> tuple[float, float]:
    """(steps per second, share of wall time inside stepSimulation), random actions, resets included."""
    env = gym.make(env_id)
    client = physics_client(env)
    inner = client.stepSimulation
    spent = [0.0]

    def timed_step(*args, **kwargs):
        t = time.perf_counter()
        inner(*args, **kwargs)
        spent[0] += time.perf_counter() - t

    client.stepSimulation = timed_step  # instance attribute shadows the bound function
    env.reset(seed=seed)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    for a in actions[:200]:  # warm-up
        if any(env.step(a)[2:4]):
            env.reset()
    spent[0] = 0.0
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    wall = time.perf_counter() - start
    env.close()
    return steps / wall, spent[0] / wall


def _make(env_id: str):
    def thunk():
        if env_id.startswith("Panda"):
            import panda_gym  # noqa: F401
        return gym.make(env_id)

    return thunk


def vec_env_rate(env_id: str, n_envs: int, steps: int) -> float:
    """Env steps/s of a SubprocVecEnv (DummyVecEnv for 1, which has no IPC cost to hide)."""
    cls = DummyVecEnv if n_envs == 1 else SubprocVecEnv
    venv = cls([_make(env_id) for _ in range(n_envs)])
    venv.seed(0)
    venv.reset()
    action = np.stack([venv.action_space.sample() for _ in range(n_envs)])
    for _ in range(50):
        venv.step(action)
    rounds = steps // n_envs
    start = time.perf_counter()
    for _ in range(rounds):
        venv.step(action)
    wall = time.perf_counter() - start
    venv.close()
    return rounds * n_envs / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--no-panda", action="store_true", help="skip the panda-gym reference")
    args = parser.parse_args()
    ids = list(OURS)
    if not args.no_panda:
        try:
            import panda_gym  # noqa: F401

            ids += PANDA
        except ImportError:
            print("panda-gym not installed (requirements-bench.txt): reference rows skipped")
    rows = []
    for env_id in ids:
        rate, share = single_env(env_id, args.steps)
        one = vec_env_rate(env_id, 1, args.steps)
        two = vec_env_rate(env_id, 2, args.steps)
        rows.append((env_id, rate, share, one, two))
    print(f"\n{'env':<28}{'steps/s (1 core)':>18}{'physics share':>15}{'1 env':>10}{'2 envs':>10}{'scaling':>9}")
    for env_id, rate, share, one, two in rows:
        print(f"{env_id:<28}{rate:>18,.0f}{share:>15.2f}{one:>10,.0f}{two:>10,.0f}{two / one:>8.2f}x")
    by_id = {r[0]: r for r in rows}
    for ours, ref in zip(OURS, PANDA):
        if ref in by_id:
            print(f"{ours} / {ref} steps/s ratio: {by_id[ours][1] / by_id[ref][1]:.2f}")


if __name__ == "__main__":
    main()
