"""`drl-control` command line. Each verb is a small adapter: parse arguments, call the core, print.

User errors (bad files, bad configs, bad ids) exit with status 2 and a one-line message, never a
traceback; the core raises the project's `UserError` (drl_control.errors; ConfigError, ArtifactError,
CheckpointError, ... derive from it) for those, and OSError stands for the user's environment (a
missing path, a full disk). Anything else -- a KeyError or ValueError included -- is a bug: an
internal error, one line, exit status 1 (DRL_CONTROL_DEBUG=1 re-raises it with its traceback).
Ctrl-C ends a verb with status 130 after it saved what it had (the verb prints where).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from drl_control.errors import EXIT_INTERRUPTED, EXIT_USER_ERROR, UserError

__all__ = ["UserError", "build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]


def _lazy(module: str, function: str) -> Handler:
    """A handler that imports its module only when the verb runs (keeps `--help` fast)."""

    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module), function)(args)

    return run


def _example(*commands: str) -> dict[str, object]:
    """`add_parser` keywords that end a verb's --help with example command lines (issue 15)."""
    text = "example" + ("s" if len(commands) > 1 else "") + ":\n" + "\n".join(f"  {c}" for c in commands)
    return {"epilog": text, "formatter_class": argparse.RawDescriptionHelpFormatter}


def _add_expert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("expert", help="run a scripted expert (privileged state + IK) and print its success rate",
                       **_example("drl-control expert --env DrlControl/IiwaPush-v0 --episodes 20 --gif runs/push.gif"))
    p.add_argument("--env", required=True, help="env id, e.g. DrlControl/IiwaPush-v0")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gif", default=None, help="write the first episode as an animated GIF")
    p.add_argument("--json", default=None, help="write the summary as JSON")
    p.add_argument("--save", default=None, metavar="FILE",
                   help="write the episodes as demonstrations for `train --demos FILE` (.npz, no pickle)")

    p.set_defaults(handler=_lazy("drl_control.learn.cli_verbs", "expert_cli"))


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train DDPG/TD3/SAC/TQC (+HER, +demonstrations) or PPO into a run directory",
                       **_example("drl-control train --algo sac --env DrlControl/IiwaReach-v0 --timesteps 5000 "
                                  "--out runs/reach algorithm.gamma=0.98",
                                  "drl-control train --resume runs/reach --timesteps 8000"))
    p.add_argument("--algo", choices=("ddpg", "td3", "sac", "tqc", "ppo"), default=None,
                   help="algorithm (required unless --resume)")
    p.add_argument("--env", default=None, help="env id, e.g. DrlControl/IiwaReach-v0 (required unless --resume)")
    p.add_argument("--timesteps", type=int, default=None, help="total env steps of the run (resume: new total)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--out", default=None, help="run directory (default: a new runs/<env>_<algo>_<time>; "
                   "with --resume: the resumed run); an existing run is refused unless --force")
    p.add_argument("--force", action="store_true", help="replace an existing run directory given as --out")
    p.add_argument("--n-envs", type=int, default=None, help="parallel envs (SubprocVecEnv when > 1)")
    p.add_argument("--config", default=None, help="YAML file overriding config/<algo>.yaml")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue this run's latest checkpoint")
    p.add_argument("--demos", default=None, metavar="N|FILE",
                   help="learn from N seeded scripted-expert episodes, or from a file of `expert --save` "
                        "(off-policy + HER; sets demos.episodes / demos.file)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                   help="torch device of the networks (train.device; auto: a CUDA GPU when there is one)")
    p.add_argument("--randomization", default=None, metavar="PRESET",
                   help="domain randomization preset (config/randomization/PRESET.yaml, e.g. sim2real) or a YAML file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. algorithm.gamma=0.98")

    p.set_defaults(handler=_lazy("drl_control.learn.cli_verbs", "train_cli"), intermixed_positionals="overrides")


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a run directory or a deploy artifact on held-out seeded goals",
                       **_example("drl-control eval runs/reach --episodes 100 --seed 1 --json runs/reach/eval100.json"))
    p.add_argument("target", metavar="TARGET", help="run directory or deploy artifact directory")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the report as JSON")
    p.add_argument("--record", default=None, metavar="F.mcap",
                   help="record the episodes (joint states, tf, markers, actions) as a rosbag2 MCAP file")

    p.set_defaults(handler=_lazy("drl_control.learn.cli_verbs", "eval_cli"))


def _add_transfer(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("transfer", help="evaluate a run or artifact through the deploy path in transfer worlds "
                                        "(nominal, lbr, iiwa_ros2, perturbed)",
                       **_example("drl-control transfer runs/reach --episodes 50 --seed 0 --json runs/reach/transfer.json"))
    p.add_argument("target", metavar="TARGET", help="run directory or deploy artifact directory")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worlds", nargs="+", default=None, metavar="WORLD", help="a subset of the worlds (default: all)")
    p.add_argument("--json", default=None, help="write the report as JSON")
    p.add_argument("--record", default=None, metavar="DIR", help="record each world to DIR/<world>.mcap (rosbag2 MCAP)")
    p.set_defaults(handler=_lazy("drl_control.learn.transfer", "transfer_cli"))


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a run's latest checkpoint as a deploy artifact",
                       **_example("drl-control export runs/reach artifacts/reach"))
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("out_dir", metavar="OUT_DIR")

    p.set_defaults(handler=_lazy("drl_control.learn.cli_verbs", "export_cli"))


def _add_plot(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="write RUN_DIR/learning_curve.png, or F.png of a recording F.mcap "
                                    "(end-effector path, joint positions and speeds against the limits), "
                                    "or compare runs' success curves (several RUN_DIRs, --out F.png)",
                       **_example("drl-control plot runs/reach", "drl-control plot runs/reach.mcap",
                                  "drl-control plot runs/push_s0 runs/push_s1 --out push.png",
                                  "drl-control plot runs/push_cuda runs/push_cpu --x wall --out speed.png"))
    p.add_argument("run_dir", metavar="RUN_DIR|F.mcap", nargs="+")
    p.add_argument("--out", default=None, help="PNG path of a recording's plot (default: F.png) "
                                               "or of the comparison of several runs (required then)")
    p.add_argument("--x", choices=("steps", "wall"), default="steps",
                   help="x axis of a comparison of runs: env steps, or wall minutes since each run started")
    p.set_defaults(handler=_lazy("drl_control.learn.cli_verbs", "plot_cli"))


def _add_launch(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("launch", help="run a stack's node graph (config/stacks/STACK.yaml) as processes; Ctrl-C stops it",
                       description="Options may also follow STACK: drl-control launch train --dry-run num_envs:=2",
                       **_example("drl-control launch deploy artifact:=artifacts/reach",
                                  "drl-control launch train --dry-run workers:=\"[/sim0, /sim1]\""))
    p.add_argument("stack", nargs="?", metavar="STACK", help="stack name, e.g. train or deploy (omit to list them)")
    p.add_argument("assignments", nargs="*", metavar="arg:=value", help="stack arguments, e.g. num_envs:=2")
    p.add_argument("--list", action="store_true", help="list the stacks and their arguments")
    p.add_argument("--dry-run", action="store_true", help="print each node's command line and exit")
    p.add_argument("--grace", type=float, default=10.0, help="seconds nodes get to exit after SIGINT (then killed)")

    p.set_defaults(handler=_lazy("drl_control.ros.stack", "launch_verb"), intermixed_positionals="assignments")


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job: train over ROS 2, export, deploy on a robot-mode sim, summarize",
                       **_example("drl-control demo --timesteps 4000 --goals 20",
                                  "drl-control demo --env DrlControl/IiwaPush-v0 --artifact artifacts/push --goals 20"))
    p.add_argument("--out", default=None, help="output directory, new or empty (default: a new "
                   "runs/demo_<time>): run, artifact, plots, GIF, logs")
    p.add_argument("--env", default=None, help="env id (default: DrlControl/IiwaReach-v0, trained here; an object "
                   "task, e.g. DrlControl/IiwaPush-v0, needs --artifact)")
    p.add_argument("--artifact", default=None, metavar="DIR", help="deploy this trained object-task policy instead "
                   "of training: seeded episodes on the sim's ~/reset, success = object at the goal")
    p.add_argument("--timesteps", type=int, default=4000)
    p.add_argument("--workers", type=int, default=2, help="sim_node workers")
    p.add_argument("--goals", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--goal-timeout", type=float, default=None, metavar="S",
                   help="with --artifact: seconds per episode (default: twice the training episode)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the summary as JSON to PATH")

    p.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    """`demo` trains and deploys Reach (ros.demo), or with --artifact deploys an object task's policy
    (ros.object_demo, which builds on ros.demo)."""
    if args.artifact is not None:
        return _lazy("drl_control.ros.object_demo", "object_demo_cli")(args)
    return _lazy("drl_control.ros.demo", "demo_cli")(args)


class _OverridesAnywhere(argparse.ArgumentParser):
    """A parser whose key=value overrides may also follow its options (`ros train LEARNER --algo sac
    k=v`): argparse fills all positionals at the first one, so later ones would be refused."""

    def parse_known_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201 - argparse's signature
        ns, extra = super().parse_known_args(args, namespace)
        if hasattr(ns, "overrides"):
            ns.overrides = [*ns.overrides, *(e for e in extra if "=" in e and not e.startswith("-"))]
            extra = [e for e in extra if e not in ns.overrides]
        return ns, extra


def _add_ros(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ros", help="drive a running stack (nodes, status, enable, goal, load-policy, train, echo)",
                       description="A client for nodes started by `drl-control launch` (no `ros2` command needed); "
                                   "it uses this shell's ROS_DOMAIN_ID.",
                       **_example("drl-control ros nodes", "drl-control ros enable controller_node"))
    verbs = p.add_subparsers(dest="ros_verb", required=True, metavar="SUBVERB", parser_class=_OverridesAnywhere)

    def verb(name: str, help: str, *examples: str) -> argparse.ArgumentParser:
        v = verbs.add_parser(name, help=help, **_example(*examples))
        v.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the node or topic to appear (answers: at least 30 s)")
        return v

    verb("nodes", "this package's nodes on the domain, their role and state", "drl-control ros nodes")
    v = verb("status", "a node's status (learner, controller, robot interface, sim worker)",
             "drl-control ros status controller_node --follow")
    v.add_argument("node", metavar="NODE", help="node name, e.g. controller_node or /sim0/sim_node")
    v.add_argument("--follow", action="store_true", help="keep printing each status message (Ctrl-C ends)")
    v.add_argument("--count", type=int, default=0, help="with --follow: stop after this many messages")
    for name, what in (("enable", "start sending commands"), ("disable", "stop sending commands (hold)")):
        v = verb(name, f"{what}: a controller's or robot interface's ~/enable", f"drl-control ros {name} controller_node")
        v.add_argument("node", metavar="NODE")
    v = verb("goal", "a Reach goal for a controller, metres in the base frame (iiwa_link_0)",
             "drl-control ros goal controller_node 0.5 0.1 0.4")
    v.add_argument("node", metavar="NODE")
    for axis in ("x", "y", "z"):
        v.add_argument(axis, type=float, metavar=axis.upper())
    v = verb("load-policy", "load a deploy artifact into a controller (replaces its policy)",
             "drl-control ros load-policy controller_node artifacts/reach")
    v.add_argument("node", metavar="NODE")
    v.add_argument("artifact", metavar="ARTIFACT", help="artifact directory (drl-control export)")
    v = verb("train", "send the learner a ~/train goal, show its progress; Ctrl-C cancels (checkpointed), exit 130",
             "drl-control ros train learner_node --algo sac --env DrlControl/IiwaReach-v0 --timesteps 4000")
    v.add_argument("learner", metavar="LEARNER", help="learner node, e.g. learner_node")
    v.add_argument("--algo", default=None, help="sac, td3, ddpg or ppo (default: the learner's)")
    v.add_argument("--env", default=None, help="env id (default: the sim workers')")
    v.add_argument("--timesteps", type=int, default=None, help="env steps (default: the config's)")
    v.add_argument("--seed", type=int, default=None)
    v.add_argument("--run-dir", default=None, help="run directory (default: a new one under the learner's run_root)")
    v.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. algorithm.gamma=0.98")
    v = verb("echo", "print a topic's messages (any installed type; Ctrl-C ends)",
             "drl-control ros echo /controller_node/status --count 1")
    v.add_argument("topic", metavar="TOPIC")
    v.add_argument("--count", type=int, default=0, help="stop after this many messages (0: never)")

    p.set_defaults(handler=_lazy("drl_control.ros.client", "ros_verb"))


def _add_replay(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="publish a recording (F.mcap) onto live ROS topics (rviz2, view)",
                       **_example("drl-control replay runs/reach.mcap --rate 2"))
    p.add_argument("recording", metavar="F.mcap")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    p.add_argument("--namespace", default="", help="prefix every topic with this namespace")
    p.add_argument("--no-clock", action="store_true", help="do not publish /clock (the recording's time)")
    p.add_argument("--wait", type=float, default=0.0, metavar="S",
                   help="wait up to S seconds for a subscriber on every topic before starting")

    p.set_defaults(handler=_lazy("drl_control.ros.replay", "replay_cli"))


def _add_view(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("view", help="the arm in a web browser: a recording with a time slider, or live from ROS",
                       **_example("drl-control view runs/reach.mcap", "drl-control view --port 8081"))
    p.add_argument("recording", nargs="?", default=None, metavar="F.mcap", help="omit: live from ROS topics")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: the whole network)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--namespace", default="/", help="live: namespace of joint_states, goal, markers")

    p.set_defaults(handler=_lazy("drl_control.ros.view_verb", "view_cli"))


# Verbs register here; each section owns one verb.
_VERBS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_demo, _add_expert, _add_train, _add_eval, _add_transfer, _add_export, _add_plot, _add_launch, _add_ros,
    _add_replay, _add_view,
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


def _check_env_arg(args: argparse.Namespace) -> None:
    """A verb's `--env` must be a registered id: one line naming close matches, before any work."""
    if getattr(args, "env", None) is not None:
        # gymnasium + the registry: imported once a verb runs, not for `drl-control --help`
        from drl_control.sim.registration import check_env_id

        check_env_id(args.env)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse argv. A verb whose defaults name a list positional in `intermixed_positionals` takes its
    items after options too (argparse ends a positional list at the first option:
    `launch train --dry-run n:=2`, `train --algo sac a=1 --env X b=2`)."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    dest = getattr(args, "intermixed_positionals", None)
    if extras and dest and not any(e.startswith("-") for e in extras):
        setattr(args, dest, [*getattr(args, dest), *extras])
    elif extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    handler: Handler = args.handler
    try:
        _check_env_arg(args)
        return handler(args)
    except (UserError, OSError) as exc:
        # OSError: a path that is a directory, unreadable, on a full disk, ... (user's environment)
        print(f"drl-control {args.verb}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"drl-control {args.verb}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # never a traceback for the user (issue 5); DRL_CONTROL_DEBUG=1 shows it
        if os.environ.get("DRL_CONTROL_DEBUG"):
            raise
        print(f"drl-control {args.verb}: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(run with DRL_CONTROL_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    # `python -m drl_control.cli`: this file is then __main__, a second copy of the module; the
    # verbs raise drl_control.cli.UserError, so run that module's main.
    from drl_control.cli import main as _main

    sys.exit(_main())
