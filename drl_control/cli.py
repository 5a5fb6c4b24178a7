"""`drl-control` command line. Each verb is a small adapter: parse arguments, call the core, print.

User errors (bad files, bad configs, bad ids) exit with status 2 and a one-line message, never a
traceback; every verb raises `UserError` (or ValueError/FileNotFoundError) for those.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence


class UserError(Exception):
    """An error caused by the user's input: reported as one line, exit status 2."""


Handler = Callable[[argparse.Namespace], int]


def _add_expert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("expert", help="run a scripted expert (privileged state + IK) and print its success rate")
    p.add_argument("--env", required=True, help="env id, e.g. DrlControl/IiwaPush-v0")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gif", default=None, help="write the first episode as an animated GIF")
    p.add_argument("--json", default=None, help="write the summary as JSON")

    def run(args: argparse.Namespace) -> int:
        from drl_control.sim.experts import run_expert_cli

        return run_expert_cli(args)

    p.set_defaults(handler=run)


# Verbs register here; each section owns one verb.
_VERBS: list[Callable[[argparse._SubParsersAction], None]] = [_add_expert]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="drl-control", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    for add in _VERBS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (UserError, ValueError, FileNotFoundError, KeyError) as exc:
        print(f"drl-control {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"drl-control {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
