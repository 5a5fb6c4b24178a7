"""Tasks: what the goal is, how it is sampled, and what counts as achieving it.

A task owns its objects in the world but not the arm; the env composes the two.
"""

from __future__ import annotations

import numpy as np

from drl_control.sim import rewards
from drl_control.sim.arm import Arm
from drl_control.sim.world import World

OBJECT_HALF = 0.02  # 4 cm cube
# Objects and goals lie on the table within TABLE_CENTRE +- OBJECT_XY_RANGE (x, y). With the tool
# pointing down, the iiwa's elbow (A4, +-120 deg) limits how close to the base it can work.
TABLE_CENTRE = np.array([0.6, 0.0])
OBJECT_XY_RANGE = np.array([0.12, 0.15])
# Reach goals (flange/TCP, base frame, metres): a box in front of the robot.
REACH_GOAL_LOW = np.array([0.35, -0.35, 0.15])
REACH_GOAL_HIGH = np.array([0.75, 0.35, 0.65])


class Task:
    """Base: a goal in the workspace, a success threshold, and the task part of the observation."""

    name = "task"
    tool: str | None = None
    goal_layout: list[tuple[str, int]] = [("position", 3)]

    def __init__(self, world: World, arm: Arm, distance_threshold: float = 0.05) -> None:
        if not distance_threshold > 0:
            raise ValueError(f"distance_threshold must be positive, got {distance_threshold}")
        self.world = world
        self.arm = arm
        self.distance_threshold = distance_threshold
        self.goal = np.zeros(3)
        self.goal_marker = world.create_sphere_marker(0.02, np.zeros(3), (0.1, 0.8, 0.1, 0.5))

    def reset(self, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def observation_layout(self) -> list[tuple[str, int]]:
        return []

    def observation(self) -> np.ndarray:
        return np.zeros(0)

    def achieved_goal(self) -> np.ndarray:
        raise NotImplementedError

    def _place_goal_marker(self) -> None:
        self.world.set_base_pose(self.goal_marker, self.goal)

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, reward_type: str) -> np.ndarray:
        return rewards.compute_reward(achieved_goal, desired_goal, reward_type, self.distance_threshold)

    def is_success(self, achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray:
        return rewards.is_success(achieved_goal, desired_goal, self.distance_threshold)


class Reach(Task):
    """Bring the flange to a point sampled in a box in front of the robot."""

    name = "Reach"
    goal_low = REACH_GOAL_LOW
    goal_high = REACH_GOAL_HIGH

    def reset(self, rng: np.random.Generator) -> None:
        self.goal = rng.uniform(self.goal_low, self.goal_high)
        self._place_goal_marker()

    def achieved_goal(self) -> np.ndarray:
        return self.arm.tcp_state()[0]


class ObjectTask(Task):
    """A 4 cm cube on the table; the goal is where the cube should end up."""

    goal_z_range = 0.0
    object_mass = 0.2
    object_friction = 0.6

    def __init__(self, world: World, arm: Arm, distance_threshold: float = 0.05) -> None:
        super().__init__(world, arm, distance_threshold)
        half = np.full(3, OBJECT_HALF)
        self._cached_at = -1
        self.object = self._make_object(np.array([*TABLE_CENTRE, OBJECT_HALF]))
        self.world.client.removeBody(self.goal_marker)
        self.goal_marker = world.create_box(half, 0.0, np.zeros(3), (0.1, 0.8, 0.1, 0.4), ghost=True)

    def _make_object(self, position: np.ndarray) -> int:
        return self.world.create_box(
            np.full(3, OBJECT_HALF), self.object_mass, position, (0.1, 0.3, 0.9, 1.0),
            lateral_friction=self.object_friction,
        )

    @staticmethod
    def _sample_xy(rng: np.random.Generator) -> np.ndarray:
        return TABLE_CENTRE + rng.uniform(-OBJECT_XY_RANGE, OBJECT_XY_RANGE)

    def reset(self, rng: np.random.Generator) -> None:
        object_xy = self._sample_xy(rng)
        while True:  # a goal already satisfied at the start teaches nothing
            goal_xy = self._sample_xy(rng)
            height = OBJECT_HALF + (rng.uniform(0.0, self.goal_z_range) if self.goal_z_range else 0.0)
            goal = np.array([*goal_xy, height])
            if np.linalg.norm(goal[:2] - object_xy) > self.distance_threshold:
                break
        self.goal = goal
        # A fresh body, not a moved one: PyBullet keeps contact caches across resetBasePosition,
        # which would make an episode depend on the previous one.
        self.world.client.removeBody(self.object)
        self.object = self._make_object(np.array([*object_xy, OBJECT_HALF]))
        self.world.touch()
        self._place_goal_marker()

    def observation_layout(self) -> list[tuple[str, int]]:
        return [("object_pos", 3), ("object_rot", 3), ("object_vel", 3), ("object_ang_vel", 3)]

    def observation(self) -> np.ndarray:
        return self._object_state()

    def achieved_goal(self) -> np.ndarray:
        return self._object_state()[:3]

    def _object_state(self) -> np.ndarray:
        """Position, Euler angles, linear and angular velocity, read once per physics state."""
        if self._cached_at != self.world.generation:
            client = self.world.client
            pos, orn = client.getBasePositionAndOrientation(self.object)
            lin, ang = client.getBaseVelocity(self.object)
            self._cache = np.array([*pos, *client.getEulerFromQuaternion(orn), *lin, *ang])
            self._cache.flags.writeable = False
            self._cached_at = self.world.generation
        return self._cache


class Push(ObjectTask):
    """Push the cube to a goal on the table with a pusher tip."""

    name = "Push"
    tool = "pusher"


class PickAndPlace(ObjectTask):
    """Grasp the cube with the parallel gripper and carry it to a goal on or above the table."""

    name = "PickAndPlace"
    tool = "gripper"
    goal_z_range = 0.2


TASK_CLASSES: dict[str, type[Task]] = {cls.name: cls for cls in (Reach, Push, PickAndPlace)}
