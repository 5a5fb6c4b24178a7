"""Simulation throughput: our iiwa envs side by side with panda-gym in one run.

Prints, per env: env steps/s on one core, the share of step time spent inside PyBullet's
stepSimulation, and SubprocVecEnv throughput with 2 envs relative to 1 env (DummyVecEnv shown for reference).

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


def _block_rate(venv, action: np.ndarray, rounds: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        venv.step(action)
    return rounds * venv.num_envs / (time.perf_counter() - start)


def vec_env_rates(env_id: str, steps: int, blocks: int = 5) -> tuple[float, float, float, float]:
    """Env steps/s of DummyVecEnv x1, SubprocVecEnv x1 and x2, and the median x2/x1 ratio.

    The x1 and x2 SubprocVecEnvs run in alternating blocks (A/B/A/B...) so that a noisy
    neighbour on the host slows both alike; the scaling is the median of the paired ratios.
    """
    venvs = {name: cls([_make(env_id) for _ in range(n)])
             for name, cls, n in (("dummy", DummyVecEnv, 1), ("x1", SubprocVecEnv, 1), ("x2", SubprocVecEnv, 2))}
    actions = {}
    for name, venv in venvs.items():
        venv.seed(0)
        venv.reset()
        actions[name] = np.stack([venv.action_space.sample() for _ in range(venv.num_envs)])
        _block_rate(venv, actions[name], 50)  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in venvs}
    for _ in range(blocks):
        for name, venv in venvs.items():
            rates[name].append(_block_rate(venv, actions[name], steps // (blocks * venv.num_envs)))
    for venv in venvs.values():
        venv.close()
    ratio = float(np.median(np.array(rates["x2"]) / np.array(rates["x1"])))
    return (*(float(np.median(rates[name])) for name in ("dummy", "x1", "x2")), ratio)


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
        rows.append((env_id, rate, share, *vec_env_rates(env_id, 2 * args.steps)))
    print("\nsteps/s: one gym env in this process; DummyVecEnv x1; SubprocVecEnv x1 and x2 "
          "(scaling: median of paired x2/x1 block ratios)")
    print(f"{'env':<24}{'steps/s':>9}{'physics share':>15}{'Dummy x1':>10}{'Subproc x1':>12}{'x2':>8}{'scaling':>9}")
    for env_id, rate, share, dummy, one, two, scaling in rows:
        print(f"{env_id:<24}{rate:>9,.0f}{share:>15.2f}{dummy:>10,.0f}{one:>12,.0f}{two:>8,.0f}{scaling:>8.2f}x")
    by_id = {r[0]: r for r in rows}
    for ours, ref in zip(OURS, PANDA):
        if ref in by_id:
            print(f"{ours} / {ref} steps/s ratio: {by_id[ours][1] / by_id[ref][1]:.2f}")


if __name__ == "__main__":
    main()
