"""Episodes of a goal-conditioned task and their summary: one loop for policy evaluation
(drl_control.learn.evaluate) and the scripted experts (drl_control.sim.experts)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Episode:
    success: bool  # `is_success` at the final step
    total_return: float
    length: int
    final_distance: float  # |achieved_goal - desired_goal| at the final step


def run_episode(env: Any, act: Callable[[Any], Any], seed: int | None,
                after_step: Callable[[], None] | None = None, hook: Any = None) -> Episode:
    """Reset with `seed`, step `act(obs)` until terminated or truncated; `after_step` runs after each step.

    `hook` (e.g. drl_control.record.episodes.EpisodeRecorder) sees the episode: `hook.on_reset(env)`
    after the reset, `hook.on_step(env, action, reward, terminated, truncated, info)` after each step.
    """
    obs, info = env.reset(seed=seed)
    if hook is not None:
        hook.on_reset(env)
    total, steps, done = 0.0, 0, False
    while not done:
        action = act(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        steps += 1
        done = terminated or truncated
        if hook is not None:
            hook.on_step(env, action, reward, terminated, truncated, info)
        if after_step is not None:
            after_step()
    distance = float(np.linalg.norm(np.asarray(obs["achieved_goal"]) - np.asarray(obs["desired_goal"])))
    return Episode(bool(info.get("is_success", False)), total, steps, distance)


def summarize(env_id: str, seed: int, episodes: Sequence[Episode]) -> dict[str, Any]:
    """env_id, episodes, seed, success_rate, mean_return, mean_final_distance."""
    return {
        "env_id": env_id,
        "episodes": len(episodes),
        "seed": seed,
        "success_rate": float(np.mean([e.success for e in episodes])),
        "mean_return": float(np.mean([e.total_return for e in episodes])),
        "mean_final_distance": float(np.mean([e.final_distance for e in episodes])),
    }
