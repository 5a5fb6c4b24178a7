"""Handlers of `drl-control train|eval|export` (argument plumbing only; the work is in train/evaluate/export).

The working modules are imported inside each handler on purpose: each verb needs a different
heavy set (train and export: torch + SB3; eval of an artifact: torch only; plot: matplotlib only),
seconds of start-up that the other verbs do not pay.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from drl_control.errors import EXIT_INTERRUPTED, UserError
from drl_control.learn.config import deep_merge, load_run_config, parse_overrides, resolve_config
from drl_control.paths import new_output_dir


def _resolve_train_config(args: argparse.Namespace) -> dict[str, Any]:
    cli: dict[str, Any] = {}
    if args.timesteps is not None:
        cli["total_timesteps"] = args.timesteps
    if args.seed is not None:
        cli["seed"] = args.seed
    if args.n_envs is not None:
        cli["n_envs"] = args.n_envs
    if getattr(args, "demos", None) is not None:
        cli["demos"] = _demo_source(args.demos)
    if getattr(args, "device", None) is not None:
        cli["train"] = {"device": args.device}
    overrides = deep_merge(parse_overrides(args.overrides), cli)
    if getattr(args, "randomization", None):
        from drl_control.learn.config import randomization_preset

        overrides = deep_merge({"env": {"randomization": randomization_preset(args.randomization)}}, overrides)
    if args.resume:
        saved = load_run_config(args.resume)
        algo = args.algo or saved["algo"]
        if args.env is not None and args.env != saved["env_id"]:
            raise UserError(f"--env {args.env} differs from the resumed run's env {saved['env_id']}")
        return resolve_config(algo, saved["env_id"], config_file=args.config, overrides=overrides, base=saved)
    missing = [flag for flag, v in (("--algo", args.algo), ("--env", args.env), ("--timesteps", args.timesteps))
               if v is None]
    if missing:
        raise UserError("train needs " + ", ".join(missing) + " (or --resume RUN_DIR)")
    return resolve_config(args.algo, args.env, config_file=args.config, overrides=overrides)


def _demo_source(value: str) -> dict[str, Any]:
    """`--demos N` (seeded expert episodes) or `--demos FILE` (absolute, so a resume finds it from anywhere)."""
    if value.strip().isdigit():
        return {"episodes": int(value), "file": None}
    path = Path(value)
    if not path.is_file():
        raise FileNotFoundError(f"--demos {value}: neither a number of episodes nor an existing demonstration file")
    return {"episodes": 0, "file": str(path.resolve())}


def train_cli(args: argparse.Namespace) -> int:
    # torch + SB3: seconds to import, paid only once the arguments are known to be good
    from drl_control.learn.algos import resolve_device
    from drl_control.learn.progress import TrainingBar
    from drl_control.learn.train import Progress, Trainer, claim_run_dir

    cfg = _resolve_train_config(args)  # everything checked before anything is created on disk
    resolve_device(cfg["train"].get("device", "auto"))  # --device cuda without a GPU: refused here too
    if args.out is not None:
        out = claim_run_dir(args.out, force=args.force)
    elif args.resume:
        out = args.resume
    else:
        out = new_output_dir(f"{cfg['env_id'].split('/')[-1]}_{cfg['algo']}")
    print(f"run directory: {out}", flush=True)
    trainer_cancel = threading.Event()
    bars: list[Any] = []  # made on the first progress report: an early refusal prints only its error line

    def on_progress(p: Progress) -> None:
        if not bars:
            bars.append(TrainingBar(cfg["total_timesteps"], file=sys.stderr))
        bars[0].update(p.timesteps, p.fps, p.success_rate, p.episodes)

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
    print(f"timesteps: {result.timesteps}  wall time: {result.wall_time_s:.1f} s  checkpoint: {result.checkpoint}")
    if result.cancelled:
        # Saved, but not finished: 130 like any interrupted command, so `train && eval` stops here.
        print(f"stopped by signal at {result.timesteps} steps, checkpoint saved in {result.run_dir}; resume with: "
              f"drl-control train --resume {result.run_dir}")
        return EXIT_INTERRUPTED
    if result.eval:
        print(f"eval success rate: {result.eval['success_rate']:.3f} over {result.eval['episodes']} episodes "
              f"(mean final distance {result.eval['mean_final_distance']:.4f} m)")
    return 0


def expert_cli(args: argparse.Namespace) -> int:
    """`drl-control expert`: the scripted expert's success rate; with --save, its episodes as demonstrations."""
    from drl_control.sim.experts import run_expert_cli

    if args.save is None:
        return run_expert_cli(args)
    from drl_control.learn.demos import collect_demos, save_demos
    from drl_control.sim.rollout import summarize

    if args.gif:
        raise UserError("--gif and --save cannot be combined (run the expert once for each)")
    if args.episodes < 1:
        raise UserError(f"--episodes must be at least 1, got {args.episodes}")
    demos, runs = collect_demos(args.env, [args.seed + i for i in range(args.episodes)])
    path = save_demos(demos, args.save)
    summary = {**summarize(args.env, args.seed, runs), "demos": str(path), "transitions": demos.transitions}
    print(f"{args.env}: expert success rate {summary['success_rate']:.1%} over {demos.episodes} episodes; "
          f"{demos.transitions} transitions saved to {path}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


def eval_cli(args: argparse.Namespace) -> int:
    from drl_control.learn.evaluate import evaluate  # torch (+ SB3 for a run directory)

    if args.episodes < 1:
        raise UserError("--episodes must be >= 1")
    report = evaluate(args.target, episodes=args.episodes, seed=args.seed, record=getattr(args, "record", None))
    print(f"success rate: {report['success_rate']:.3f} ({report['episodes']} episodes, {report['env_id']})")
    print(f"mean return: {report['mean_return']:.3f}  mean final distance: {report['mean_final_distance']:.4f} m")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    if report.get("record"):
        print(f"recording: {report['record']}")
    return 0


def export_cli(args: argparse.Namespace) -> int:
    from drl_control.learn.export import export_run  # torch + SB3

    out = export_run(args.run_dir, args.out_dir)
    print(f"artifact: {out}")
    return 0


def plot_cli(args: argparse.Namespace) -> int:
    """`drl-control plot RUN_DIR`: (re)draw the run's learning curve; `plot F.mcap`: a recording's;
    `plot RUN_A RUN_B ... --out F.png`: the runs' success curves on one plot."""
    targets = args.run_dir
    if len(targets) > 1:
        if args.out is None:
            raise UserError("plot: more than one run needs --out F.png (where the comparison goes)")
        for target in targets:
            if not Path(target).is_dir():
                raise UserError(f"plot: {target} is not a run directory (only runs are compared)")
        from drl_control.learn.plot import plot_runs  # matplotlib (inside plot_runs)

        print(plot_runs(targets, args.out, x=args.x))
        return 0
    target = targets[0]
    if args.x != "steps":
        raise UserError("plot: --x applies to a comparison of several runs")
    if Path(target).suffix == ".mcap" or Path(target).is_file():
        from drl_control.record.plot import plot_recording

        out, truncated = plot_recording(target, args.out)
        if truncated:
            print(f"note: {target} ends without its index (the recording was cut short); "
                  "plotted up to its last complete chunk", file=sys.stderr)
        print(out)
        return 0
    from drl_control.learn.plot import plot_run  # matplotlib (inside plot_run)

    print(plot_run(target))
    return 0
