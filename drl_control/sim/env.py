"""Goal-conditioned gymnasium env composing a World, an Arm and a Task (panda-gym style)."""

from __future__ import annotations

import logging
import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from drl_control.robot.description import parse_urdf_joints
from drl_control.robot.tools import composed_urdf_path
from drl_control.sim.arm import Arm, ArmConfig
from drl_control.sim.randomization import Randomization, Randomizer
from drl_control.sim.rewards import REWARD_TYPES
from drl_control.sim.tasks import TASK_CLASSES, ObjectTask
from drl_control.sim.world import World, WorldConfig

log = logging.getLogger(__name__)


def _check_datasheet(spec) -> None:
    """Refuse robot limits beyond what the URDF (the datasheet) allows."""
    urdf = {j["name"]: j for j in parse_urdf_joints(composed_urdf_path(None))}
    for i, name in enumerate(spec.joint_names):
        ref = urdf.get(name)
        if ref is None:
            raise ValueError(f"robot.joint_names: unknown joint {name!r}")
        for field, value, bound in (("upper", spec.upper[i], ref["upper"]),
                                    ("lower", -spec.lower[i], -ref["lower"]),
                                    ("max_velocity", spec.max_velocity[i], ref["velocity"]),
                                    ("max_effort", spec.max_effort[i], ref["effort"])):
            if value > bound + 1e-9:
                raise ValueError(f"robot.{field}: {name} exceeds the datasheet limit ({value:g} > {bound:g})")


class IiwaGoalEnv(gym.Env):
    """KUKA iiwa 14 goal env: Dict observations for HER, actions in [-1, 1]."""

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 25}

    def __init__(
        self,
        task: str = "Reach",
        reward_type: str = "sparse",
        control: str = "ee",
        render_mode: str | None = None,
        distance_threshold: float = 0.05,
        physics_hz: float = 500.0,
        control_hz: float = 25.0,
        ee_step: float = 0.05,
        randomization: dict | None = None,
        robot_spec=None,
        render_size: tuple[int, int] = (640, 480),
        driver: str | None = None,
    ) -> None:
        """`driver`: the command path between the action law and the arm (`sim.drivers`: ideal,
        lbr, iiwa_ros2; default ideal); `randomization`: see `sim.randomization`."""
        if task not in TASK_CLASSES:
            raise ValueError(f"task: unknown task {task!r}, expected one of {sorted(TASK_CLASSES)}")
        if reward_type not in REWARD_TYPES:
            raise ValueError(f"reward_type must be one of {REWARD_TYPES}, got {reward_type!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        if robot_spec is not None:
            _check_datasheet(robot_spec)
        task_cls = TASK_CLASSES[task]
        self.render_mode = render_mode
        self.reward_type = reward_type
        self.render_size = render_size
        self.randomization = Randomization.from_dict(randomization)
        world_config = WorldConfig(physics_hz=physics_hz, control_hz=control_hz, gui=render_mode == "human")
        self.metadata = {**self.metadata, "render_fps": control_hz}
        self.world = World(world_config)
        self.arm = Arm(self.world, ArmConfig(control=control, tool=task_cls.tool, ee_step=ee_step), robot_spec,
                       driver=driver)
        self.driver_model = self.arm.driver.model
        self.task = task_cls(self.world, self.arm, distance_threshold)
        self.randomizer = Randomizer(self.randomization)
        self._object_mass = (
            self.world.client.getDynamicsInfo(self.task.object, 0 - 1)[0] if isinstance(self.task, ObjectTask) else None
        )
        self._joint_axes = np.array(
            [self.world.client.getJointInfo(self.arm.body, j)[13] for j in self.arm.joint_ids]
        )
        self._last_action = np.zeros(self.arm.action_dim, dtype=np.float32)
        # Every body's pose as built: a reset after a physics blow-up puts them back (see _recover_physics).
        client = self.world.client
        self._initial_poses = {
            body: client.getBasePositionAndOrientation(body)
            for body in (client.getBodyUniqueId(i) for i in range(client.getNumBodies()))
        }
        self._physics_error = False

        self.action_space = spaces.Box(-1.0, 1.0, shape=(self.arm.action_dim,), dtype=np.float32)
        obs_dim = sum(n for _, n in self.observation_layout())
        self.observation_space = spaces.Dict(
            {
                "observation": spaces.Box(-np.inf, np.inf, shape=(obs_dim,), dtype=np.float32),
                "achieved_goal": spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float32),
                "desired_goal": spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float32),
            }
        )

    # --- layout, shared with the deploy artifact ---------------------------------------------
    def observation_layout(self) -> list[tuple[str, int]]:
        return self.arm.observation_layout() + self.task.observation_layout()

    def deploy_spec(self) -> dict[str, Any]:
        """Everything a controller needs to rebuild observations and apply actions without the sim."""
        arm = self.arm.config
        spec = self.spec.id if self.spec is not None else None
        return {
            "env_id": spec,
            "task": self.task.name,
            "control": arm.control,
            "control_hz": self.world.config.control_hz,
            "physics_hz": self.world.config.physics_hz,
            "observation_layout": [list(x) for x in self.observation_layout()],
            "goal_layout": [list(x) for x in self.task.goal_layout],
            "action": self.arm.action_spec(),
            "tool": arm.tool,
            "tool_offset": self.arm.tool_offset,
            "robot": self.arm.spec.to_dict(),
            "distance_threshold": self.task.distance_threshold,
            "reward_type": self.reward_type,
        }

    # --- gymnasium API -----------------------------------------------------------------------
    def _get_obs(self) -> dict[str, np.ndarray]:
        observation = np.concatenate([self.arm.observation(), self.task.observation()])
        observation = self.randomizer.noisy(self.np_random, observation)
        return {
            "observation": observation.astype(np.float32),
            "achieved_goal": self.task.achieved_goal().astype(np.float32),
            "desired_goal": self.task.goal.astype(np.float32),
        }

    def _recover_physics(self) -> None:
        """Undo a blow-up: NaN spreads to every body of the articulation (the fixed base included),
        and resetting joint angles alone leaves the base NaN, so every later step blows up again.
        Put each body back at its pose as built, at rest; the arm and task resets then do the rest."""
        client = self.world.client
        for body, (position, orientation) in self._initial_poses.items():
            client.resetBasePositionAndOrientation(body, position, orientation)
            client.resetBaseVelocity(body, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
        self.world.touch()
        self._physics_error = False

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self._physics_error:
            self._recover_physics()
        self.arm.reset()
        self.task.reset(self.np_random)
        self.randomizer.on_reset(
            self.np_random, self.world.client, self.arm.body, self.arm.joint_ids,
            getattr(self.task, "object", None), self._object_mass,
        )
        self.arm.noise_rng = self.np_random
        if not self.driver_model.ideal or self.randomizer.driver_randomized:
            # after the task's goal: a world's driver does not change which goals a seed gives
            self.arm.driver.configure(self.randomizer.driver(self.np_random, self.driver_model))
            self.arm.driver.reset(self.arm.command, phase=self.np_random.uniform())
        self._last_action = np.zeros(self.arm.action_dim, dtype=np.float32)
        if self.arm.has_gripper:
            self._last_action[-1] = 1.0  # hold the gripper open while a delayed action is pending
        obs = self._get_obs()
        # One reduction: a NaN/inf anywhere makes the sum non-finite (a finite overflow counts too,
        # and a state that large is a blow-up as well).
        if not math.isfinite(float(obs["observation"].sum() + obs["achieved_goal"].sum())):
            raise RuntimeError("physics state is not finite after reset and could not be recovered")
        return obs, {"is_success": bool(self.task.is_success(obs["achieved_goal"], obs["desired_goal"]))}

    def step(self, action):
        action = np.asarray(action, dtype=np.float32).reshape(self.action_space.shape)
        if not np.isfinite(action).all():
            raise ValueError(f"action must be finite, got {action.tolist()}")
        action = np.minimum(np.maximum(action, -1.0), 1.0)
        applied = self.randomizer.delay(action, self._last_action)
        self._last_action = applied
        self.arm.apply_action(applied)
        friction = None
        if self.randomizer.friction is not None:
            def friction() -> None:
                self.randomizer.apply_joint_friction(
                    self.world.client, self.arm.body, self.arm.joint_ids, self._joint_axes
                )
        self.arm.advance(self.randomizer.substeps(self.np_random, self.world.substeps), friction)
        obs = self._get_obs()
        # The observation holds the TCP and any object position, so this covers a physics blow-up.
        # One reduction: a NaN/inf anywhere makes the sum non-finite (a finite overflow counts too,
        # and a state that large is a blow-up as well).
        if not math.isfinite(float(obs["observation"].sum() + obs["achieved_goal"].sum())):
            self._physics_error = True
            log.warning("physics blow-up: non-finite simulator state, truncating the episode (reset recovers)")
            return self._safe_obs(obs), -1.0, False, True, {"is_success": False, "physics_error": True}
        # Scalar path of rewards.compute_reward (same float32 distance, no array round trips).
        distance = float(np.sqrt(np.square(obs["achieved_goal"] - obs["desired_goal"]).sum()))
        success = distance < self.task.distance_threshold
        reward = -distance if self.reward_type == "dense" else (0.0 if success else -1.0)
        return obs, reward, False, False, {"is_success": success}

    @staticmethod
    def _safe_obs(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0) for k, v in obs.items()}

    def compute_reward(self, achieved_goal, desired_goal, info) -> np.ndarray:
        """Vectorized over leading axes, as SB3's HerReplayBuffer calls it on batches."""
        return self.task.compute_reward(achieved_goal, desired_goal, self.reward_type)

    def render(self):
        if self.render_mode == "rgb_array":
            return self.world.render(*self.render_size)
        return None

    def close(self) -> None:
        self.world.close()
