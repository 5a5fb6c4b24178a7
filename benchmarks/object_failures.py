"""Where an object policy (Push, PickAndPlace) fails on the held-out goals, by the direction of the move.

    .venv/bin/python benchmarks/object_failures.py RUN_OR_ARTIFACT [--episodes 100] [--seed S] [--json F]
    .venv/bin/python benchmarks/object_failures.py --expert ENV_ID [--seed S]   # the scripted expert

The same goals as `drl-control eval` (same seed stream). Each episode's move is classed by the
direction from the object's start to its goal in the robot base frame: toward the base (the goal
nearer the robot in x) or away from it. A failure is "overshoot" when the object ended more than
the success threshold past the goal along that line, "short" when it ended that far before it,
else "off the line". A second table bands the episodes by the object's peak speed (a strike
sends the cube sliding on its own, faster than any push). `--seed` defaults to the run's
training seed: the goals of its eval.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from drl_control.learn.config import load_run_config
from drl_control.learn.evaluate import evaluate_actor, is_artifact, load_actor
from drl_control.sim.experts import make_expert
from drl_control.sim.registration import check_env_id

SPEED_BANDS = ((0.0, 0.5), (0.5, 1.0), (1.0, float("inf")))  # m/s; the Push expert peaks above 1 in 2 of 400 goals


class MoveTrace:
    """An evaluation hook: the object's start, goal, end and peak speed of each episode."""

    def __init__(self) -> None:
        self.moves: list[dict[str, Any]] = []

    def on_reset(self, env: Any) -> None:
        task = env.unwrapped.task
        self._start = np.array(task.achieved_goal()[:2])
        self._goal = np.array(task.goal[:2])
        self._threshold = float(task.distance_threshold)
        self._peak_speed = 0.0

    def on_step(self, env: Any, action: Any, reward: Any, terminated: bool, truncated: bool, info: dict) -> None:
        task = env.unwrapped.task
        velocity = task.observation()[6:9]  # the ObjectTask layout: pos, rot, vel, ang_vel
        self._peak_speed = max(self._peak_speed, float(np.linalg.norm(velocity)))
        if terminated or truncated:
            move = classify(self._start, self._goal, np.array(task.achieved_goal()[:2]),
                            bool(info.get("is_success", False)), self._threshold)
            self.moves.append({**move, "peak_speed": self._peak_speed})


def classify(start: np.ndarray, goal: np.ndarray, end: np.ndarray, success: bool, threshold: float) -> dict[str, Any]:
    line = goal - start
    length = float(np.linalg.norm(line))
    past = float((end - start) @ (line / length)) - length  # > 0: beyond the goal along the line
    outcome = "success" if success else "overshoot" if past > threshold else "short" if past < -threshold else "off the line"
    return {"direction": "toward the base" if goal[0] < start[0] else "away from the base",
            "distance": length, "past_goal": past, "outcome": outcome}


def table(moves: list[dict[str, Any]]) -> str:
    outcomes = ["success", "overshoot", "short", "off the line"]
    lines = ["| move | goals | " + " | ".join(outcomes) + " | mean move (cm) |", "|---" * (len(outcomes) + 3) + "|"]
    for direction in ("toward the base", "away from the base"):
        rows = [m for m in moves if m["direction"] == direction]
        counts = [sum(m["outcome"] == o for m in rows) for o in outcomes]
        mean = 100 * float(np.mean([m["distance"] for m in rows])) if rows else float("nan")
        lines.append(f"| {direction} | {len(rows)} | " + " | ".join(map(str, counts)) + f" | {mean:.1f} |")
    return "\n".join(lines)


def speed_table(moves: list[dict[str, Any]]) -> str:
    lines = ["| peak object speed (m/s) | goals | success |", "|---|---|---|"]
    for low, high in SPEED_BANDS:
        rows = [m for m in moves if low <= m["peak_speed"] < high]
        wins = sum(m["outcome"] == "success" for m in rows)
        rate = f"{100 * wins / len(rows):.0f} %" if rows else "-"
        lines.append(f"| {low:g}-{high:g} | {len(rows)} | {rate} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("target", type=Path, nargs="?", help="a run directory or a deploy artifact directory")
    ap.add_argument("--expert", metavar="ENV_ID", default=None, help="class the scripted expert's episodes instead")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--seed", type=int, default=None, help="evaluation seed (default: the run's seed, else 0)")
    ap.add_argument("--json", type=Path, default=None, help="also write every episode's move here")
    args = ap.parse_args()
    if (args.target is None) == (args.expert is None):
        ap.error("give a run or artifact directory, or --expert ENV_ID")
    trace = MoveTrace()
    if args.expert:
        seed = args.seed or 0
        env = gym.make(check_env_id(args.expert))
        expert = make_expert(env)
        try:
            report = evaluate_actor(lambda _obs: expert.act(), args.expert, episodes=args.episodes, seed=seed,
                                    env=env, hook=trace)
        finally:
            env.close()
        env_id = args.expert
    else:
        actor, env_id, _, close = load_actor(args.target)
        seed = args.seed
        if seed is None:
            seed = 0 if is_artifact(args.target) else int(load_run_config(args.target).get("seed", 0))
        try:
            report = evaluate_actor(actor, env_id, episodes=args.episodes, seed=seed, hook=trace)
        finally:
            if close is not None:
                close()
    print(f"{args.target or 'expert'}: {env_id}, {report['episodes']} held-out goals (seed {seed}), "
          f"success {100 * report['success_rate']:.0f} %")
    print(table(trace.moves))
    print(speed_table(trace.moves))
    if args.json is not None:
        args.json.write_text(json.dumps({"report": report, "moves": trace.moves}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
