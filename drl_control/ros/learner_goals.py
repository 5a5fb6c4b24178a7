"""What a `learner_node` ~/train goal may ask, checked before anything runs or is written.

`overrides` are config overrides (`dotted.key=value`), but `resume=true|false`: not a config key,
it allows `run_dir` to name an existing run, which then goes on from its checkpoint. `run_dir` is
confined to the learner's run root: a relative path is taken under it, an absolute one must lie in
it, `..` is refused, and symlinks are resolved before the check (`confined_run_dir`). An existing
directory is never written into unless the goal asks to resume it, and a run to resume must have a
checkpoint. A goal that breaks a rule is rejected ("rejected train goal: ..." in the learner's log);
one whose run_dir appeared between acceptance and start is aborted; nothing is written for either.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drl_control_interfaces.action import Train

RESUME = "resume"  # the goal override that allows writing into an existing run (not a config key)


def split_resume(overrides: Sequence[str]) -> tuple[bool, list[str]]:
    """A goal's `resume=true|false` override, and the config overrides without it."""
    resume, rest = False, []
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or key.strip() != RESUME:
            rest.append(item)
        elif raw.strip().lower() in ("true", "false"):
            resume = raw.strip().lower() == "true"
        else:
            raise ValueError(f"override {item!r}: {RESUME} must be true or false")
    return resume, rest


def goal_overrides(goal: Train.Goal, algo: str, env_id: str | None) -> dict[str, Any]:
    """The config overrides a train goal asks for: its `overrides` (but `resume`) validated as
    written (a bad value is refused even where the goal's timesteps or seed field would replace
    it), then those fields. Raises ValueError naming the bad key or value."""
    from drl_control.learn.config import parse_overrides, resolve_config

    overrides = parse_overrides(split_resume(goal.overrides)[1])
    resolve_config(algo, env_id, overrides=overrides)
    if goal.timesteps > 0:
        overrides["total_timesteps"] = int(goal.timesteps)
    if goal.seed >= 0:
        overrides["seed"] = int(goal.seed)
    return overrides


def confined_run_dir(root: Path, run_dir: str, resume: bool) -> Path:
    """The resolved run directory a goal names, inside `root`; ValueError why not."""
    from drl_control.learn.checkpoint import checked_latest

    root = root.resolve()
    if ".." in Path(run_dir).parts:
        raise ValueError(f"run_dir {run_dir!r}: '..' is not allowed")
    path = (root / run_dir).resolve()  # an absolute run_dir stays itself; symlinks are followed
    if path == root or not path.is_relative_to(root):
        raise ValueError(f"run_dir {run_dir!r} is not inside the learner's run root {root}")
    if path.exists() and not path.is_dir():
        raise ValueError(f"run_dir {run_dir!r} exists and is not a directory")
    if path.exists() and not resume:
        raise ValueError(f"run_dir {run_dir!r} exists; add the override {RESUME}=true to continue that run")
    if resume:
        if not path.exists():
            raise ValueError(f"run_dir {run_dir!r}: no run to resume")
        checked_latest(path)  # CheckpointError (a ValueError) naming what is missing or broken
    return path


def goal_problem(goal: Train.Goal, algo: str, run_root: Path | None) -> str:
    """Why a train goal cannot start ("" when it can), found before it is accepted: an unknown
    env id, overrides that do not parse or validate, a run_dir outside the run root, an existing
    run without resume=true. (Whether the env id is the workers' is known only once they are
    connected.) `run_root` None: a client's check, which cannot see the learner's run root."""
    import gymnasium as gym

    from drl_control.learn.config import resolve_config
    from drl_control.sim.registration import import_env_packages

    try:
        if goal.env_id:
            import_env_packages(goal.env_id)
            gym.spec(goal.env_id)
        resolve_config(algo, goal.env_id or None, overrides=goal_overrides(goal, algo, goal.env_id or None))
        resume = split_resume(goal.overrides)[0]
        if goal.run_dir:
            if run_root is not None:
                confined_run_dir(run_root, goal.run_dir, resume)
        elif resume:
            raise ValueError(f"{RESUME}=true needs the run_dir of the run to resume")
    except Exception as exc:  # noqa: BLE001 - any bad field is a rejection with its reason
        return f"{type(exc).__name__}: {exc}"
    return ""


def claim_run_dir(run_root: Path, run_dir: str, resume: bool, prefix: str) -> Path:
    """The run directory of a goal, checked again and created at train start: `run_dir` confined to
    `run_root`, or a new `<prefix>_<time>` under it ("" = a new run). A new run must not exist yet:
    one that appeared since the goal was accepted is refused (ValueError)."""
    if run_dir:
        path = confined_run_dir(run_root, run_dir, resume)
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = run_root / f"{prefix}_{stamp}"
        i = 1
        while path.exists():
            path = run_root / f"{prefix}_{stamp}_{i}"
            i += 1
    try:
        path.mkdir(parents=True, exist_ok=resume)
    except FileExistsError:
        raise ValueError(f"run_dir {str(path)!r} appeared meanwhile; not writing into it") from None
    return path


def env_section(asked: dict[str, Any] | None, workers: dict[str, Any] | None) -> dict[str, Any]:
    """The training envs' `env:` section (driver, randomization) of a goal over sim workers that
    report theirs (`workers`, None: they do not). The workers build their envs at start
    (sim_node -p driver:=... -p randomization:=...), so a goal cannot change them: an `env:`
    section the workers do not apply is refused (ValueError naming each key that differs) instead
    of training the nominal sim silently. A goal without one trains on the workers' envs."""
    from drl_control.sim.randomization import Randomization

    given = {k: v for k, v in (asked or {}).items() if v is not None}
    if not given:
        return dict(workers or {})

    def normal(section: dict[str, Any]) -> dict[str, Any]:
        out = {f"env.{k}": v for k, v in section.items() if k not in ("driver", "randomization")}
        out["env.driver"] = section.get("driver") or "ideal"
        rand = Randomization.from_dict(section.get("randomization"))
        out.update({f"env.randomization.{k}": v for k, v in vars(rand).items()})
        return out

    if workers is None:
        if normal(given) == normal({}):
            return given
        raise ValueError(f"the goal's env section {given} needs sim workers that report their envs' options "
                         "(this package's sim_node); these do not")
    goal, theirs = normal(given), normal(workers)
    differ = [f"{k} (goal {goal.get(k)!r}, workers {theirs.get(k)!r})" for k in sorted(set(goal) | set(theirs))
              if goal.get(k) != theirs.get(k)]
    if differ:
        raise ValueError("the sim workers do not apply the goal's env section: " + "; ".join(differ) +
                         ". The workers build their envs at start: run each sim_node with -p driver:=NAME "
                         "-p randomization:=PRESET|FILE to match, or leave env.* out of the goal to train on "
                         "the workers' envs")
    return given
