"""Handlers of `drl-control train|eval|export` (argument plumbing only; the work is in train/evaluate/export)."""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from drl_control.learn.config import resolve_config


def _resolve_train_config(args: argparse.Namespace) -> dict[str, Any]:
    cli: dict[str, Any] = {}
    if args.timesteps is not None:
        cli["total_timesteps"] = args.timesteps
    if args.seed is not None:
        cli["seed"] = args.seed
    if args.n_envs is not None:
        cli["n_envs"] = args.n_envs
    from drl_control.learn.config import deep_merge, parse_overrides

    overrides = deep_merge(parse_overrides(args.overrides), cli)
    if args.resume:
        from drl_control.learn.train import load_run_config

        saved = load_run_config(args.resume)
        algo = args.algo or saved["algo"]
        if args.env is not None and args.env != saved["env_id"]:
            raise ValueError(f"--env {args.env} differs from the resumed run's env {saved['env_id']}")
        return resolve_config(algo, saved["env_id"], config_file=args.config, overrides=overrides, base=saved)
    missing = [flag for flag, v in (("--algo", args.algo), ("--env", args.env), ("--timesteps", args.timesteps),
                                    ("--out", args.out)) if v is None]
    if missing:
        raise ValueError("train needs " + ", ".join(missing) + " (or --resume RUN_DIR)")
    return resolve_config(args.algo, args.env, config_file=args.config, overrides=overrides)


def train_cli(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from drl_control.learn.train import Progress, Trainer

    cfg = _resolve_train_config(args)
    out = args.out or args.resume
    trainer_cancel = threading.Event()
    bars: list[Any] = []  # made on the first progress report: an early refusal prints only its error line

    def on_progress(p: Progress) -> None:
        if not bars:
            bars.append(tqdm(total=cfg["total_timesteps"], unit="step", dynamic_ncols=True, file=sys.stderr))
        bar = bars[0]
        bar.n = p.timesteps
        sr = "-" if math.isnan(p.success_rate) else f"{p.success_rate:.2f}"
        bar.set_postfix_str(f"success {sr}  ep {p.episodes}  {p.fps:.0f} steps/s", refresh=False)
        bar.refresh()

    def on_signal(signum: int, _frame: Any) -> None:
        # First signal: checkpoint and stop cleanly. A second one falls through to the default.
        if trainer_cancel.is_set():
            raise KeyboardInterrupt
        trainer_cancel.set()
        print(f"\nsignal {signal.Signals(signum).name}: checkpointing and stopping", file=sys.stderr)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        trainer = Trainer(cfg, out, resume_from=args.resume, on_progress=on_progress, cancel=trainer_cancel)
        result = trainer.train()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        for bar in bars:
            bar.close()
    print(f"run directory: {result.run_dir}")
    print(f"timesteps: {result.timesteps}  wall time: {result.wall_time_s:.1f} s  checkpoint: {result.checkpoint}")
    if result.cancelled:
        # An asked-for stop that saved everything is a success (issue 5): exit 0, not 130.
        print(f"stopped by signal at {result.timesteps} steps, checkpoint saved; resume with: "
              f"drl-control train --resume {result.run_dir}")
        return 0
    if result.eval:
        print(f"eval success rate: {result.eval['success_rate']:.3f} over {result.eval['episodes']} episodes "
              f"(mean final distance {result.eval['mean_final_distance']:.4f} m)")
    return 0


def eval_cli(args: argparse.Namespace) -> int:
    from drl_control.learn.evaluate import evaluate

    if args.episodes < 1:
        raise ValueError("--episodes must be >= 1")
    report = evaluate(args.target, episodes=args.episodes, seed=args.seed)
    print(f"success rate: {report['success_rate']:.3f} ({report['episodes']} episodes, {report['env_id']})")
    print(f"mean return: {report['mean_return']:.3f}  mean final distance: {report['mean_final_distance']:.4f} m")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


def export_cli(args: argparse.Namespace) -> int:
    from drl_control.learn.export import export_run

    out = export_run(args.run_dir, args.out_dir)
    print(f"artifact: {out}")
    return 0


def plot_cli(args: argparse.Namespace) -> int:
    """`drl-control plot RUN_DIR`: (re)draw the run's learning curve."""
    from drl_control.learn.plot import plot_run

    print(plot_run(args.run_dir))
    return 0
