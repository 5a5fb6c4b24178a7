"""Learning benchmarks, ours and the references side by side in one run (never timed unit tests).

Subcommands:
  reach     SAC+HER, our default config (config/sac.yaml) through `train()` on DrlControl/IiwaReach-v0,
            vs plain SB3 SAC+HER on panda-gym's PandaReach-v3 with the same hyperparameters (read from
            config/sac.yaml). Runs alternate ours/theirs per seed. Held-out evaluation (100 seeded goals)
            every --eval-every steps from --eval-from; evaluation time is excluded from the wall clock.
            Prints steps and training wall time to the first eval >= --target, and the ratio ours/theirs.
  offpolicy Same held-out evaluation schedule for DDPG/TD3 (+HER) defaults through `train()`.
  overhead  Our `train()` (normalization, run callback, episodes.csv, TensorBoard, checkpoint, plot)
            vs plain SB3 SAC+HER with identical hyperparameters on the same env and steps,
            interleaved A/B/A/B; prints the median wall-time ratio.
  ppo-envs  PPO training throughput through `train()` for several --n-envs (pick the fastest).
  plot      PNG of the held-out success curves from the --json file of `reach` or `offpolicy`.
  curve     Summary of a run directory's episodes.csv (rolling training success vs env steps).

    .venv/bin/python benchmarks/bench_learn.py reach --seeds 0 1 2
    .venv/bin/python benchmarks/bench_learn.py offpolicy --algos ddpg td3 --seeds 0 1 2
    .venv/bin/python benchmarks/bench_learn.py overhead --pairs 5 --steps 3000
    .venv/bin/python benchmarks/bench_learn.py curve /tmp/push_run
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import drl_control  # noqa: E402,F401  (registers the envs)
import drl_control.learn.train as train_mod  # noqa: E402
from drl_control.learn.algos import import_env_packages  # noqa: E402
from drl_control.learn.config import resolve_config  # noqa: E402
from drl_control.learn.evaluate import ModelActor, evaluate_actor  # noqa: E402

OURS_REACH = "DrlControl/IiwaReach-v0"
PANDA_REACH = "PandaReach-v3"


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min) / {five:.2f} (5 min) on {os.cpu_count()} cores"


# --- periodic held-out evaluation inside learn() -------------------------------------------------
def eval_callback(env_id: str, *, every: int, start: int, episodes: int, target: float, seed: int,
                  normalizer_of: Any = None, stop_at_target: bool = True) -> Any:
    """An SB3 callback: evaluate every `every` steps from `start`; wall time excludes evaluation."""
    from stable_baselines3.common.callbacks import BaseCallback

    class EvalCallback(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            import_env_packages(env_id)
            self.env = gym.make(env_id)
            self.evals: list[dict[str, float]] = []
            self.eval_time = 0.0
            self.eval_cpu = 0.0
            self.t0 = 0.0
            self.c0 = 0.0
            self.hit: dict[str, float] | None = None

        def _on_training_start(self) -> None:
            self.t0 = time.perf_counter()
            self.c0 = time.process_time()

        def _on_step(self) -> bool:
            n = self.model.num_timesteps
            if n < start or (n - start) % every:
                return True
            t, c = time.perf_counter(), time.process_time()
            train_wall = t - self.t0 - self.eval_time
            train_cpu = c - self.c0 - self.eval_cpu
            normalizer = normalizer_of() if normalizer_of else None
            rep = evaluate_actor(ModelActor(self.model, normalizer), env_id, episodes=episodes, seed=seed,
                                 env=self.env)
            self.eval_time += time.perf_counter() - t
            self.eval_cpu += time.process_time() - c
            row = {"steps": n, "train_wall_s": train_wall, "train_cpu_s": train_cpu, "success": rep["success_rate"]}
            self.evals.append(row)
            if self.hit is None and rep["success_rate"] >= target:
                self.hit = row
                return not stop_at_target
            return True

        def _on_training_end(self) -> None:
            self.env.close()

    return EvalCallback()


def run_ours(algo: str, env_id: str, seed: int, steps: int, cb_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Our default config through `train()`, with the eval callback appended to the run callback."""
    from stable_baselines3.common.callbacks import CallbackList

    cfg = resolve_config(algo, env_id, overrides={"seed": seed, "total_timesteps": steps})
    holder: dict[str, Any] = {}
    original = train_mod._run_callback

    def patched(trainer: Any) -> Any:
        holder["trainer"] = trainer
        cb = eval_callback(env_id, seed=seed, normalizer_of=lambda: trainer.normalizer, **cb_kwargs)
        holder["eval"] = cb
        return CallbackList([original(trainer), cb])

    train_mod._run_callback = patched
    try:
        with tempfile.TemporaryDirectory() as d:
            train_mod.train(cfg, Path(d) / "run")
    finally:
        train_mod._run_callback = original
    cb = holder["eval"]
    return {"evals": cb.evals, "hit": cb.hit}


def sb3_sac_her(env: Any, cfg: dict[str, Any], seed: int) -> Any:
    """Plain SB3 SAC + HerReplayBuffer with the hyperparameters of `cfg` (our config/sac.yaml)."""
    from stable_baselines3 import SAC, HerReplayBuffer

    algo = dict(cfg["algorithm"])
    her = cfg["her"]
    pol = cfg["policy"]
    act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[pol["activation"]]
    return SAC(
        "MultiInputPolicy", env,
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs={"goal_selection_strategy": her["goal_selection_strategy"],
                              "n_sampled_goal": her["n_sampled_goal"]},
        policy_kwargs={"net_arch": pol["net_arch"], "activation_fn": act, "n_critics": pol["n_critics"]},
        seed=seed, device="cpu", verbose=0, **algo,
    )


def plain_vec_env(env_id: str, seed: int) -> Any:
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    import_env_packages(env_id)
    venv = DummyVecEnv([lambda: Monitor(gym.make(env_id))])
    venv.seed(seed)
    return venv


def run_theirs(env_id: str, seed: int, steps: int, cb_kwargs: dict[str, Any]) -> dict[str, Any]:
    cfg = resolve_config("sac", env_id)
    torch.set_num_threads(int(cfg["train"]["torch_threads"]))
    venv = plain_vec_env(env_id, seed)
    model = sb3_sac_her(venv, cfg, seed)
    cb = eval_callback(env_id, seed=seed, **cb_kwargs)
    model.learn(total_timesteps=steps, callback=cb)
    venv.close()
    return {"evals": cb.evals, "hit": cb.hit}


def fmt_hit(hit: dict[str, float] | None) -> str:
    return "not reached" if hit is None else f"{hit['steps']:>6,d} steps {hit['train_wall_s']:7.1f} s"


def cmd_reach(args: argparse.Namespace) -> None:
    cb_kwargs = {"every": args.eval_every, "start": args.eval_from, "episodes": args.episodes,
                 "target": args.target}
    cfg = resolve_config("sac", OURS_REACH)
    print(f"config/sac.yaml algorithm: {cfg['algorithm']}")
    print(f"policy: {cfg['policy']['net_arch']}, her: {cfg['her']}, normalize (ours only): "
          f"{cfg['normalize']['enabled']}")
    print(f"start: {time.strftime('%Y-%m-%d %H:%M:%S')}, {load_note()}")
    rows = []
    for seed in args.seeds:
        ours = run_ours("sac", OURS_REACH, seed, args.max_steps, cb_kwargs)
        theirs = run_theirs(PANDA_REACH, seed, args.max_steps, cb_kwargs)
        rows.append((seed, ours, theirs))
        print(f"seed {seed}: ours {fmt_hit(ours['hit'])} | theirs {fmt_hit(theirs['hit'])} | {load_note()}")
        for name, r in (("ours", ours), ("theirs", theirs)):
            print(f"   {name:6} " + "  ".join(f"{e['steps']}:{e['success']:.2f}" for e in r["evals"]))
    print(f"\nend: {time.strftime('%Y-%m-%d %H:%M:%S')}, {load_note()}")
    print(f"\n| seed | IiwaReach steps to {args.target:.0%} | wall s | CPU s | PandaReach steps | wall s | CPU s "
          "| wall ratio ours/theirs | CPU ratio ours/theirs |")
    print("|---|---|---|---|---|---|---|---|---|")
    cols: dict[str, list[float]] = {k: [] for k in ("os", "ow", "oc", "ts", "tw", "tc", "rw", "rc")}
    for seed, ours, theirs in rows:
        o, t = ours["hit"], theirs["hit"]
        cells = [str(seed)]
        for h, pre in ((o, "o"), (t, "t")):
            if h:
                cols[pre + "s"].append(h["steps"])
                cols[pre + "w"].append(h["train_wall_s"])
                cols[pre + "c"].append(h["train_cpu_s"])
                cells += [f"{h['steps']:,}", f"{h['train_wall_s']:.1f}", f"{h['train_cpu_s']:.1f}"]
            else:
                cells += ["not reached", "-", "-"]
        if o and t:
            cols["rw"].append(o["train_wall_s"] / t["train_wall_s"])
            cols["rc"].append(o["train_cpu_s"] / t["train_cpu_s"])
            cells += [f"{cols['rw'][-1]:.2f}", f"{cols['rc'][-1]:.2f}"]
        else:
            cells += ["-", "-"]
        print("| " + " | ".join(cells) + " |")

    def med(x: list[float], fmt: str = ".1f") -> str:
        return format(statistics.median(x), fmt) if x else "-"

    print(f"| median | {med(cols['os'], ',.0f')} | {med(cols['ow'])} | {med(cols['oc'])} | {med(cols['ts'], ',.0f')} | "
          f"{med(cols['tw'])} | {med(cols['tc'])} | {med(cols['rw'], '.2f')} | {med(cols['rc'], '.2f')} |")
    if args.json:
        Path(args.json).write_text(json.dumps([{"seed": s, "ours": o, "theirs": t} for s, o, t in rows], indent=1))


def cmd_offpolicy(args: argparse.Namespace) -> None:
    cb_kwargs = {"every": args.eval_every, "start": args.eval_from, "episodes": args.episodes,
                 "target": args.target, "stop_at_target": False}
    print(f"start: {time.strftime('%Y-%m-%d %H:%M:%S')}, {load_note()}")
    results: dict[str, list[dict[str, Any]]] = {a: [] for a in args.algos}
    for seed in args.seeds:
        for algo in args.algos:
            r = run_ours(algo, args.env, seed, args.steps, cb_kwargs)
            results[algo].append(r)
            print(f"{algo} seed {seed}: first >= {args.target:.0%}: {fmt_hit(r['hit'])}; final "
                  f"{r['evals'][-1]['success']:.2f} | {load_note()}")
            print("   " + "  ".join(f"{e['steps']}:{e['success']:.2f}" for e in r["evals"]))
    print(f"\nend: {time.strftime('%Y-%m-%d %H:%M:%S')}, {load_note()}")
    print(f"\n| algo | seed | success at {args.steps:,} steps | best | first step >= {args.target:.0%} |")
    print("|---|---|---|---|---|")
    for algo, runs in results.items():
        for seed, r in zip(args.seeds, runs):
            best = max(e["success"] for e in r["evals"])
            print(f"| {algo} | {seed} | {r['evals'][-1]['success']:.2f} | {best:.2f} | "
                  f"{r['hit']['steps'] if r['hit'] else '-'} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


# --- overhead ------------------------------------------------------------------------------------
def overhead_ours(env_id: str, seed: int, steps: int, algo: str = "sac", n_envs: int = 1) -> dict[str, float]:
    """Whole `train()` call, with the final evaluation timed separately (it is not overhead)."""
    cfg = resolve_config(algo, env_id, overrides={"seed": seed, "total_timesteps": steps, "n_envs": n_envs})
    spent = {"eval": 0.0, "eval_cpu": 0.0}
    original = train_mod.Trainer.final_eval

    def timed_eval(self: Any) -> dict[str, Any]:
        t, c = time.perf_counter(), time.process_time()
        try:
            return original(self)
        finally:
            spent["eval"] += time.perf_counter() - t
            spent["eval_cpu"] += time.process_time() - c

    train_mod.Trainer.final_eval = timed_eval  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory() as d:
            t, c = time.perf_counter(), time.process_time()
            train_mod.train(cfg, Path(d) / "run")
            total, cpu = time.perf_counter() - t, time.process_time() - c
    finally:
        train_mod.Trainer.final_eval = original  # type: ignore[method-assign]
    return {"wall": total - spent["eval"], "cpu": cpu - spent["eval_cpu"], "eval": spent["eval"]}


def overhead_theirs(env_id: str, seed: int, steps: int) -> dict[str, float]:
    """Plain SB3: make env, build SAC + HerReplayBuffer, learn. Same hyperparameters and threads."""
    cfg = resolve_config("sac", env_id)
    t, c = time.perf_counter(), time.process_time()
    torch.set_num_threads(int(cfg["train"]["torch_threads"]))
    venv = plain_vec_env(env_id, seed)
    model = sb3_sac_her(venv, cfg, seed)
    model.learn(total_timesteps=steps)
    venv.close()
    return {"wall": time.perf_counter() - t, "cpu": time.process_time() - c, "eval": 0.0}


def cmd_overhead(args: argparse.Namespace) -> None:
    print(f"{args.env}, SAC+HER config/sac.yaml, {args.steps} steps, {args.pairs} interleaved pairs")
    print(f"start: {time.strftime('%Y-%m-%d %H:%M:%S')}, {load_note()}")
    overhead_ours(args.env, 99, 1100)  # warm-up of both paths: imports (matplotlib too), first env load, torch
    overhead_theirs(args.env, 99, 1100)
    rows = []
    for i in range(args.pairs):
        seed = args.seed + i
        first, second = (overhead_ours, overhead_theirs) if i % 2 == 0 else (overhead_theirs, overhead_ours)
        a = first(args.env, seed, args.steps)
        b = second(args.env, seed, args.steps)
        ours, theirs = (a, b) if i % 2 == 0 else (b, a)
        ratio, cratio = ours["wall"] / theirs["wall"], ours["cpu"] / theirs["cpu"]
        rows.append((seed, ours["wall"], theirs["wall"], ratio, ours["cpu"], theirs["cpu"], cratio))
        print(f"pair {i} (seed {seed}, {'ours first' if i % 2 == 0 else 'theirs first'}): ours {ours['wall']:.2f} s "
              f"/ {ours['cpu']:.2f} CPU s (+ final eval {ours['eval']:.2f} s, excluded), plain SB3 {theirs['wall']:.2f} s "
              f"/ {theirs['cpu']:.2f} CPU s, ratio wall {ratio:.3f} CPU {cratio:.3f} | {load_note()}")
    print(f"end: {time.strftime('%Y-%m-%d %H:%M:%S')}, {load_note()}")
    print("\n| pair | seed | ours train() wall s | plain SB3 wall s | wall ratio | ours CPU s | plain SB3 CPU s | CPU ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for i, r in enumerate(rows):
        print(f"| {i} | {r[0]} | {r[1]:.2f} | {r[2]:.2f} | {r[3]:.3f} | {r[4]:.2f} | {r[5]:.2f} | {r[6]:.3f} |")
    med = [statistics.median(r[k] for r in rows) for k in range(1, 7)]
    print(f"| median | | {med[0]:.2f} | {med[1]:.2f} | {med[2]:.3f} | {med[3]:.2f} | {med[4]:.2f} | {med[5]:.3f} |")


def cmd_ppo_envs(args: argparse.Namespace) -> None:
    """PPO training throughput through `train()` for several --n-envs, interleaved rounds (wall clock:
    SubprocVecEnv workers' CPU time is not in this process's process_time)."""
    print(f"PPO {args.env}, {args.steps} steps per run, n_envs {args.n_envs}, {args.rounds} rounds")
    print(f"start: {time.strftime('%Y-%m-%d %H:%M:%S')}, {load_note()}")
    rates: dict[int, list[float]] = {n: [] for n in args.n_envs}
    for r in range(args.rounds):
        order = args.n_envs if r % 2 == 0 else list(reversed(args.n_envs))
        for n in order:
            res = overhead_ours(args.env, r, args.steps, algo="ppo", n_envs=n)
            rates[n].append(args.steps / res["wall"])
            print(f"round {r} n_envs {n}: {res['wall']:.1f} s, {rates[n][-1]:.0f} steps/s | {load_note()}")
    print(f"end: {time.strftime('%Y-%m-%d %H:%M:%S')}, {load_note()}")
    base = statistics.median(rates[args.n_envs[0]])
    print(f"\n| n_envs | median steps/s | relative to n_envs={args.n_envs[0]} |")
    print("|---|---|---|")
    for n, v in rates.items():
        print(f"| {n} | {statistics.median(v):.0f} | {statistics.median(v) / base:.2f} |")


# --- curve summary -------------------------------------------------------------------------------
def cmd_curve(args: argparse.Namespace) -> None:
    with open(Path(args.run_dir) / "episodes.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    steps = np.array([int(r["env_step"]) for r in rows])
    success = np.array([float(r["success"]) for r in rows])
    wall = np.array([float(r["wall_time"]) for r in rows])
    w = args.window
    print(f"{args.run_dir}: {len(rows)} episodes, {steps[-1]:,} env steps, {wall[-1] / 60:.1f} min")
    print(f"| env steps | wall min | training success (last {w} episodes) |")
    print("|---|---|---|")
    marks = np.linspace(0, steps[-1], args.points + 1)[1:]
    for m in marks:
        i = int(np.searchsorted(steps, m, side="right")) - 1
        lo = max(0, i + 1 - w)
        print(f"| {steps[i]:,} | {wall[i] / 60:.1f} | {success[lo:i + 1].mean():.2f} |")
    best = max(success[max(0, i + 1 - w):i + 1].mean() for i in range(w - 1, len(success))) if len(success) >= w else 0
    print(f"best rolling success over {w} episodes: {best:.2f}")


# --- eval curves from a --json file -------------------------------------------------------------
def cmd_plot(args: argparse.Namespace) -> None:
    """Held-out success vs env steps, one line per run, from the --json of `reach` or `offpolicy`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(Path(args.json).read_text())
    series: list[tuple[str, list[dict[str, float]]]] = []
    if isinstance(data, list):  # reach
        for r in data:
            series.append((f"ours IiwaReach seed {r['seed']}", r["ours"]["evals"]))
            series.append((f"SB3 PandaReach seed {r['seed']}", r["theirs"]["evals"]))
    else:  # offpolicy
        for algo, runs in data.items():
            for seed, r in enumerate(runs):
                series.append((f"{algo} run {seed}", r["evals"]))
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, evals in series:
        style = "--" if label.startswith("SB3") else "-"
        ax.plot([e["steps"] for e in evals], [e["success"] for e in evals], style, marker="o", ms=3, label=label)
    ax.axhline(args.target, color="gray", lw=0.8)
    ax.set_xlabel("env steps")
    ax.set_ylabel("success on 100 held-out goals")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(args.title)
    fig.tight_layout()
    fig.savefig(args.png, dpi=100)
    print(f"wrote {args.png}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("reach", help="SAC+HER IiwaReach (ours) vs PandaReach-v3 (plain SB3): time to target")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--max-steps", type=int, default=10_000)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--eval-from", type=int, default=1500)
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--target", type=float, default=0.95)
    p.add_argument("--json")
    p.set_defaults(fn=cmd_reach)
    p = sub.add_parser("offpolicy", help="DDPG/TD3 (+HER) defaults on IiwaReach with held-out evals")
    p.add_argument("--algos", nargs="+", default=["ddpg", "td3"])
    p.add_argument("--env", default=OURS_REACH)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--eval-from", type=int, default=2000)
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--target", type=float, default=0.90)
    p.add_argument("--json")
    p.set_defaults(fn=cmd_offpolicy)
    p = sub.add_parser("overhead", help="our train() vs plain SB3, interleaved pairs")
    p.add_argument("--env", default=OURS_REACH)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--pairs", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_overhead)
    p = sub.add_parser("ppo-envs", help="PPO train() throughput for several --n-envs, interleaved")
    p.add_argument("--env", default="DrlControl/IiwaReachDense-v0")
    p.add_argument("--steps", type=int, default=16384)
    p.add_argument("--n-envs", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--rounds", type=int, default=2)
    p.set_defaults(fn=cmd_ppo_envs)
    p = sub.add_parser("plot", help="PNG of held-out success vs steps from a reach/offpolicy --json file")
    p.add_argument("json")
    p.add_argument("png")
    p.add_argument("--target", type=float, default=0.95)
    p.add_argument("--title", default="")
    p.set_defaults(fn=cmd_plot)
    p = sub.add_parser("curve", help="rolling training success of a run directory")
    p.add_argument("run_dir")
    p.add_argument("--window", type=int, default=100)
    p.add_argument("--points", type=int, default=10)
    p.set_defaults(fn=cmd_curve)
    args = parser.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
