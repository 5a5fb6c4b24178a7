"""Soak: many env steps over ROS through sim_node workers; memory and step accounting.

    .venv/bin/python benchmarks/bench_soak.py [--steps 100000] [--workers 2] [--envs-per-worker 1]

A RosVecEnv in this process steps random actions over --workers sim_node processes (each its own
process on a private ROS domain, localhost discovery) until --steps env steps (all envs together)
are done. Printed:
  - throughput (env steps/s),
  - RSS (VmRSS) of this process (the learner side: RosVecEnv) and of each sim_node, after a
    warm-up of --warmup env steps and at the end, and the growth in between (goal: < 50 MB each),
  - per worker: env steps sent, env steps the sim says it executed (its per-env step counter,
    `names.STEP_COUNT`), gaps (dropped steps) and repeats (duplicated steps); goal: sent ==
    executed, no gaps, no repeats, and the sim's count == steps sent (fresh sims: nothing else
    stepped them).
`soak()` is what tests/test_soak.py (pytest -m soak) runs and asserts on.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ENV_ID = "DrlControl/IiwaReach-v0"
MB = 1024 * 1024


def rss(pid: int) -> int:
    """Resident set size of process `pid`, bytes (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def start_sim(namespace: str, num_envs: int, domain: int, log: Path) -> subprocess.Popen:
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "drl_control.ros.sim_node", "--ros-args",
                                 "-r", f"__ns:={namespace}", "-p", f"env_id:={ENV_ID}", "-p", f"num_envs:={num_envs}"],
                                env=env, stdout=out, stderr=subprocess.STDOUT)


def soak(steps: int = 100_000, workers: int = 2, envs_per_worker: int = 1, warmup: int = 10_000,
         domain: int | None = None, seed: int = 0, log_dir: Path | None = None,
         report_every: float = 0.0) -> dict[str, Any]:
    import rclpy

    from drl_control.ros.vec_env import RosVecEnv

    domain = domain if domain is not None else 1 + (os.getpid() + 97) % 100
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="soak_"))
    names = [f"/soak{i}" for i in range(workers)]
    procs = {n: start_sim(n, envs_per_worker, domain, log_dir / f"sim{i}.log") for i, n in enumerate(names)}
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    venv = None
    try:
        venv = RosVecEnv(names, context=context, node_name="soak_vec_env", timeout=30.0, connect_timeout=60.0)
        n = venv.num_envs
        rng = np.random.default_rng(seed)
        venv.seed(seed)
        venv.reset()
        low, high = venv.action_space.low, venv.action_space.high
        done_steps = episodes = 0
        mem0: dict[str, int] = {}
        t0 = time.monotonic()
        t_warm = t_last = t0
        while done_steps < steps:
            _, _, dones, _ = venv.step(rng.uniform(low, high, (n, *venv.action_space.shape)).astype(np.float32))
            done_steps += n
            episodes += int(dones.sum())
            if not mem0 and done_steps >= warmup:
                mem0 = {"learner": rss(os.getpid()), **{w: rss(p.pid) for w, p in procs.items()}}
                t_warm = time.monotonic()
            if report_every and time.monotonic() - t_last > report_every:
                t_last = time.monotonic()
                print(f"  {done_steps} steps, {done_steps / (t_last - t0):.0f} steps/s", flush=True)
        elapsed = time.monotonic() - t0
        mem1 = {"learner": rss(os.getpid()), **{w: rss(p.pid) for w, p in procs.items()}}
        if not mem0:
            mem0, t_warm = dict(mem1), time.monotonic()
        stats = venv.stats()
        return {
            "steps": done_steps, "envs": n, "workers": names, "episodes": episodes,
            "seconds": elapsed, "steps_per_second": done_steps / elapsed,
            "steps_per_second_after_warmup": (done_steps - warmup) / max(time.monotonic() - t_warm, 1e-9),
            "rss_warm_mb": {k: v / MB for k, v in mem0.items()},
            "rss_end_mb": {k: v / MB for k, v in mem1.items()},
            "rss_growth_mb": {k: (mem1[k] - mem0[k]) / MB for k in mem1},
            "accounting": stats, "sims_alive": all(p.poll() is None for p in procs.values()),
            "log_dir": str(log_dir),
        }
    finally:
        if venv is not None:
            venv.close()
        rclpy.try_shutdown(context=context)
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--envs-per-worker", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10_000)
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    args = parser.parse_args()
    result = soak(args.steps, args.workers, args.envs_per_worker, args.warmup, report_every=0 if args.json else 10.0)
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"{result['steps']} env steps over {len(result['workers'])} sim_node workers x {args.envs_per_worker} envs "
          f"in {result['seconds']:.1f} s: {result['steps_per_second']:.0f} env steps/s, {result['episodes']} episodes")
    for k in result["rss_end_mb"]:
        print(f"  RSS {k:8s} warm {result['rss_warm_mb'][k]:7.1f} MB  end {result['rss_end_mb'][k]:7.1f} MB  "
              f"growth {result['rss_growth_mb'][k]:+6.1f} MB")
    for w, s in result["accounting"].items():
        print(f"  {w}: {s['requests']} requests, {s['env_steps_sent']} env steps sent, {s['env_steps_executed']} "
              f"executed (sim counts {s['sim_counts']}), gaps {s['gaps']}, repeats {s['repeats']}")


if __name__ == "__main__":
    main()
