"""Goal distances, success and rewards: pure numpy, vectorized over leading batch axes.

The learner imports these directly for HER relabelling (no simulator, no ROS round trip).
"""

from __future__ import annotations

import numpy as np

REWARD_TYPES = ("sparse", "dense")


def goal_distance(achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.asarray(achieved_goal) - np.asarray(desired_goal), axis=-1)


def is_success(achieved_goal: np.ndarray, desired_goal: np.ndarray, threshold: float) -> np.ndarray:
    return goal_distance(achieved_goal, desired_goal) < threshold


def compute_reward(
    achieved_goal: np.ndarray, desired_goal: np.ndarray, reward_type: str, threshold: float
) -> np.ndarray:
    """Sparse: -1 until within `threshold`, then 0. Dense: minus the distance."""
    return reward_from_distance(goal_distance(achieved_goal, desired_goal), reward_type, threshold)


def reward_from_distance(d: np.ndarray | float, reward_type: str, threshold: float) -> np.ndarray:
    d = np.asarray(d)
    if reward_type == "sparse":
        return -(d >= threshold).astype(np.float32)
    if reward_type == "dense":
        return -d.astype(np.float32)
    raise ValueError(f"reward_type must be one of {REWARD_TYPES}, got {reward_type!r}")
