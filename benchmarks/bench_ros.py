"""Training and rollouts over ROS 2 vs in-process, on this machine.

    .venv/bin/python benchmarks/bench_ros.py [--timesteps 3000] [--n-envs 2] [--pairs 3] [--envs-per-worker 8 16]

A. Training: SAC + HER (config/sac.yaml, learning_starts 1000) for --timesteps env steps with
   --n-envs envs, (1) in-process (Trainer with the default VecEnv: SubprocVecEnv for n > 1) and
   (2) through learner_node's ~/train action over --n-envs sim_node workers of one env each.
   Env steps/s is the trainer's own progress measure (steps / wall time of the learning loop)
   reported as the final feedback; --pairs runs of each, alternating, the median ratio of the
   pairs reported. Goal: ROS / in-process >= 0.8.
B. Rollouts: a RosVecEnv stepping random actions over 1, 2 and 4 sim_node workers of
   --envs-per-worker envs each (each size in turn), vs a DummyVecEnv of the same envs in this
   process; measured in interleaved rounds (median), so other load on the machine hits every
   configuration alike. Goal: 2 workers >= 1.7 x 1 worker. A step request costs ~0.45 ms of
   transport and executor CPU (client and sim_node) whatever the worker's size, so bigger
   workers scale better (benchmarks/profile_ros_round.py splits it).

Every sim_node / learner_node is its own process (drl_control.ros.stack.StackRunner), on a ROS
domain of its own (pid-derived) and localhost discovery.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
DOMAIN = 1 + (os.getpid() + 91) % 100
os.environ["ROS_DOMAIN_ID"] = str(DOMAIN)
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import numpy as np  # noqa: E402

ENV_ID = "DrlControl/IiwaReach-v0"


def start(nodes):
    from drl_control.ros.stack import StackRunner

    runner = StackRunner(nodes, out=io.StringIO(), grace=10.0)
    runner.start()
    return runner


def sims(count: int, envs: int, prefix: str):
    from drl_control.ros.stack import NodeSpec

    return [NodeSpec("drl_control", "sim_node", "sim_node", f"/{prefix}{i}", {"env_id": ENV_ID, "num_envs": envs})
            for i in range(count)]


def overrides(eval_episodes: int = 2) -> list[str]:
    return [f"eval.episodes={eval_episodes}", "train.progress_every=100", "train.checkpoint_every=1000000"]


def train_in_process(timesteps: int, n_envs: int, seed: int, workdir: Path) -> float:
    from drl_control.learn.config import parse_overrides, resolve_config
    from drl_control.learn.train import Trainer

    cfg = resolve_config("sac", ENV_ID, overrides={**parse_overrides(overrides()), "total_timesteps": timesteps,
                                                   "n_envs": n_envs, "seed": seed})
    last = []
    Trainer(cfg, workdir / "inproc", on_progress=last.append).train()
    return last[-1].fps


def train_over_ros(timesteps: int, n_envs: int, seed: int, workdir: Path) -> float:
    import rclpy
    from rclpy.action import ActionClient
    from rclpy.executors import SingleThreadedExecutor

    from drl_control.ros.stack import NodeSpec
    from drl_control_interfaces.action import Train

    workers = [f"/bt{i}" for i in range(n_envs)]
    runner = start(sims(n_envs, 1, "bt") + [NodeSpec(
        "drl_control", "learner_node", "learner_node", "/", {"workers": workers, "run_root": str(workdir)})])
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("bench_ros_client", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        client = ActionClient(node, Train, "/learner_node/train")
        if not client.wait_for_server(timeout_sec=60):
            raise RuntimeError("learner_node did not come up:\n" + runner.out.getvalue()[-3000:])
        feedback = []
        goal = Train.Goal(algorithm="sac", env_id=ENV_ID, timesteps=timesteps, seed=seed,
                          run_dir=str(workdir / "ros"), overrides=overrides())
        future = client.send_goal_async(goal, feedback_callback=lambda m: feedback.append(m.feedback))
        executor.spin_until_future_complete(future, timeout_sec=60)
        result_future = future.result().get_result_async()
        executor.spin_until_future_complete(result_future)
        result = result_future.result().result
        if not result.success:
            raise RuntimeError(f"training over ROS failed: {result.message}")
        executor.spin_once(timeout_sec=0.2)
        return feedback[-1].env_steps_per_second
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        runner.stop()


def rollouts(envs: int, seconds: float, rounds: int) -> dict[str, float]:
    """Median env steps/s per configuration; configurations interleaved round by round, so load
    from other processes on the machine hits them alike."""
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv

    import drl_control  # noqa: F401
    from drl_control.ros.vec_env import RosVecEnv

    runner = start(sims(4, envs, "br"))
    venvs = {}
    try:
        venvs["in-process"] = DummyVecEnv([lambda: gym.make(ENV_ID) for _ in range(envs)])
        for workers in (1, 2, 4):
            venvs[workers] = RosVecEnv([f"/br{i}" for i in range(workers)], node_name=f"bench_{workers}",
                                       connect_timeout=60)
        return interleaved(venvs, seconds, rounds)
    finally:
        for venv in venvs.values():
            venv.close()
        runner.stop()


def interleaved(venvs: dict, seconds: float, rounds: int) -> dict:
    """Median env steps/s of each VecEnv, `seconds` in all, measured in `rounds` interleaved rounds."""
    results: dict = {k: [] for k in venvs}
    for _ in range(rounds):
        for key, venv in venvs.items():
            results[key].append(_rollout(venv, seconds / rounds))
    return {k: float(np.median(v)) for k, v in results.items()}


def _rollout(venv, seconds: float) -> float:
    rng = np.random.default_rng(0)
    venv.seed(0)
    venv.reset()
    for _ in range(10):  # warm up
        venv.step(rng.uniform(-1, 1, (venv.num_envs, 3)).astype(np.float32))
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        venv.step(rng.uniform(-1, 1, (venv.num_envs, 3)).astype(np.float32))
        steps += venv.num_envs
    return steps / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timesteps", type=int, default=3000)
    ap.add_argument("--n-envs", type=int, default=2)
    ap.add_argument("--envs-per-worker", type=int, nargs="+", default=[8, 16],
                    help="worker sizes to measure (the per-request overhead is shared by a worker's envs)")
    ap.add_argument("--seconds", type=float, default=6.0, help="rollout measurement time per configuration")
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds of the rollout configurations")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pairs", type=int, default=3, help="training runs of each kind (alternating; medians)")
    ap.add_argument("--skip-training", action="store_true")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores; ROS_DOMAIN_ID={DOMAIN}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_ros_") as tmp:
        if not args.skip_training:
            pairs = []  # (in-process, over ROS), alternating, so drifting load hits both alike
            for i in range(args.pairs):
                workdir = Path(tmp) / f"pair{i}"
                pairs.append((train_in_process(args.timesteps, args.n_envs, args.seed, workdir),
                              train_over_ros(args.timesteps, args.n_envs, args.seed, workdir)))
                print(f"training pair {i + 1}/{args.pairs}: in-process {pairs[-1][0]:.0f}, over ROS "
                      f"{pairs[-1][1]:.0f} env steps/s (ratio {pairs[-1][1] / pairs[-1][0]:.2f})", flush=True)
            inproc, ros = (float(np.median(column)) for column in zip(*pairs))
            ratio = float(np.median([r / i for i, r in pairs]))
            rows.append((f"SAC+HER training, in-process, {args.n_envs} envs", inproc, f"median of {args.pairs}"))
            rows.append((f"SAC+HER training, learner_node + {args.n_envs} sim_node", ros,
                         f"median ratio {ratio:.2f} (goal >= 0.8)"))
        for k in args.envs_per_worker:
            fps = rollouts(k, args.seconds, args.rounds)
            rows.append((f"rollout, in-process DummyVecEnv x{k}", fps["in-process"], ""))
            for workers in (1, 2, 4):
                note = "" if workers == 1 else f"{fps[workers] / fps[1]:.2f} x 1 worker"
                note += " (goal >= 1.7)" if workers == 2 else ""
                rows.append((f"rollout, RosVecEnv {workers} sim_node x{k} envs", fps[workers], note))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measurement':<{width}}  {'env steps/s':>11}  note")
    for name, fps, note in rows:
        print(f"{name:<{width}}  {fps:>11.0f}  {note}")
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench_ros"
    sys.exit(main())
