"""Where a RosVecEnv step round spends its time: wall time per round and CPU per round of the
client (this process) and of each sim_node, for 1 and 2 workers, with the step answers taken on
their own wait set (RosVecEnv's default) and through the executor, alternating.

    .venv/bin/python benchmarks/profile_ros_round.py [--envs-per-worker 1] [--seconds 5] [--repeats 2]

The per-request numbers in the comments of drl_control/ros (RosVecEnv, sim_node) and in the
README's "where the time goes" paragraph come from this script; RMW_FASTRTPS_PUBLICATION_MODE
set in the environment compares FastDDS's publication modes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).parent))
import bench_ros  # noqa: E402  (sets the ROS domain and OMP threads before rclpy loads)


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def measure(workers: int, seconds: float, direct: bool = True) -> str:
    from drl_control.ros.vec_env import RosVecEnv

    me = psutil.Process()
    sims = [p for p in me.children(recursive=True) if "sim_node" in " ".join(p.cmdline())]
    venv = RosVecEnv([f"/pr{i}" for i in range(workers)], node_name=f"profile_{workers}", connect_timeout=60,
                     direct_answers=direct)
    try:
        rng = np.random.default_rng(0)
        venv.reset()
        for _ in range(10):  # warm up
            venv.step(rng.uniform(-1, 1, (venv.num_envs, 3)).astype(np.float32))
        sims_before, me_before = [_cpu(p) for p in sims], _cpu(me)
        rounds, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            venv.step(rng.uniform(-1, 1, (venv.num_envs, 3)).astype(np.float32))
            rounds += 1
        wall = time.perf_counter() - t0
        client = (_cpu(me) - me_before) / rounds * 1e3
        sim = [(_cpu(p) - b) / rounds * 1e3 for p, b in zip(sims, sims_before)]
        how = "direct answers" if direct else "executor answers"
        return (f"{workers} worker(s) x {venv.num_envs // workers} envs, {how}: {rounds * venv.num_envs / wall:.0f} env "
                f"steps/s, {wall / rounds * 1e3:.2f} ms per round; CPU per round: client {client:.2f} ms, "
                f"sim_nodes {', '.join(f'{x:.2f}' for x in sim)} ms")
    finally:
        venv.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs-per-worker", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    runner = bench_ros.start(bench_ros.sims(2, args.envs_per_worker, "pr"))
    try:
        for _ in range(args.repeats):
            for workers in (1, 2):
                for direct in (True, False):
                    print(measure(workers, args.seconds, direct), flush=True)
    finally:
        runner.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
