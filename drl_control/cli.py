"""`drl-control` command line. Each verb is a small adapter: parse arguments, call the core, print.

User errors (bad files, bad configs, bad ids) exit with status 2 and a one-line message, never a
traceback; every verb raises `UserError` (or ValueError/OSError) for those. Anything else is an
internal error: one line, exit status 1 (DRL_CONTROL_DEBUG=1 re-raises it with its traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence


class UserError(Exception):
    """An error caused by the user's input: reported as one line, exit status 2."""


Handler = Callable[[argparse.Namespace], int]


def _lazy(module: str, function: str) -> Handler:
    """A handler that imports its module only when the verb runs (keeps `--help` fast)."""

    def run(args: argparse.Namespace) -> int:
        import importlib

        return getattr(importlib.import_module(module), function)(args)

    return run


def _add_expert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("expert", help="run a scripted expert (privileged state + IK) and print its success rate")
    p.add_argument("--env", required=True, help="env id, e.g. DrlControl/IiwaPush-v0")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gif", default=None, help="write the first episode as an animated GIF")
    p.add_argument("--json", default=None, help="write the summary as JSON")

    p.set_defaults(handler=_lazy("drl_control.sim.experts", "run_expert_cli"))


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train DDPG/TD3/SAC (+HER) or PPO into a run directory")
    p.add_argument("--algo", choices=("ddpg", "td3", "sac", "ppo"), default=None,
                   help="algorithm (required unless --resume)")
    p.add_argument("--env", default=None, help="env id, e.g. DrlControl/IiwaReach-v0 (required unless --resume)")
    p.add_argument("--timesteps", type=int, default=None, help="total env steps of the run (resume: new total)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--out", default=None, help="run directory (default with --resume: the resumed run)")
    p.add_argument("--n-envs", type=int, default=None, help="parallel envs (SubprocVecEnv when > 1)")
    p.add_argument("--config", default=None, help="YAML file overriding config/<algo>.yaml")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue this run's latest checkpoint")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. algorithm.gamma=0.98")

    p.set_defaults(handler=_lazy("drl_control.learn.cli_verbs", "train_cli"))


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a run directory or a deploy artifact on held-out seeded goals")
    p.add_argument("target", metavar="TARGET", help="run directory or deploy artifact directory")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the report as JSON")

    p.set_defaults(handler=_lazy("drl_control.learn.cli_verbs", "eval_cli"))


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a run's latest checkpoint as a deploy artifact")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("out_dir", metavar="OUT_DIR")

    p.set_defaults(handler=_lazy("drl_control.learn.cli_verbs", "export_cli"))


def _add_plot(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="write RUN_DIR/learning_curve.png from the run's episodes.csv")
    p.add_argument("run_dir", metavar="RUN_DIR")

    p.set_defaults(handler=_lazy("drl_control.learn.cli_verbs", "plot_cli"))


def _add_launch(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("launch", help="run a stack's node graph (config/stacks/STACK.yaml) as processes; Ctrl-C stops it",
                       description="Options may also follow STACK: drl-control launch train --dry-run num_envs:=2")
    p.add_argument("stack", nargs="?", metavar="STACK", help="stack name, e.g. train or deploy (omit to list them)")
    p.add_argument("assignments", nargs=argparse.REMAINDER, metavar="arg:=value",
                   help="stack arguments, e.g. num_envs:=2")
    p.add_argument("--list", action="store_true", help="list the stacks and their arguments")
    p.add_argument("--dry-run", action="store_true", help="print each node's command line and exit")
    p.add_argument("--grace", type=float, default=10.0, help="seconds nodes get to exit after SIGINT (then killed)")

    p.set_defaults(handler=_lazy("drl_control.ros.stack", "launch_verb"))


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job: train over ROS 2, export, deploy on a robot-mode sim, summarize")
    p.add_argument("--out", default="runs/demo", help="output directory (run, artifact, plots, GIF, logs)")
    p.add_argument("--timesteps", type=int, default=4000)
    p.add_argument("--workers", type=int, default=2, help="sim_node workers")
    p.add_argument("--goals", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)

    p.set_defaults(handler=_lazy("drl_control.ros.demo", "demo_cli"))


# Verbs register here; each section owns one verb.
_VERBS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_demo, _add_expert, _add_train, _add_eval, _add_export, _add_plot, _add_launch,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="drl-control", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    for add in _VERBS:
        add(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    text = exc.args[0] if isinstance(exc, KeyError) and len(exc.args) == 1 else str(exc)
    return " ".join(str(text).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (UserError, ValueError, OSError, KeyError) as exc:
        # OSError: a path that is a directory, unreadable, on a full disk, ... (user's environment)
        print(f"drl-control {args.verb}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"drl-control {args.verb}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # never a traceback for the user (issue 5); DRL_CONTROL_DEBUG=1 shows it
        import os

        if os.environ.get("DRL_CONTROL_DEBUG"):
            raise
        print(f"drl-control {args.verb}: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(run with DRL_CONTROL_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
