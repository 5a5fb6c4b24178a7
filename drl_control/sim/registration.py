"""The twelve gymnasium ids (contract): DrlControl/Iiwa{Reach,Push,PickAndPlace}{,Dense}{,Joints}-v0."""

from __future__ import annotations

import gymnasium as gym

TASKS = ("Reach", "Push", "PickAndPlace")
MAX_EPISODE_STEPS = 50


def env_id(task: str, dense: bool = False, joints: bool = False) -> str:
    return f"DrlControl/Iiwa{task}{'Dense' if dense else ''}{'Joints' if joints else ''}-v0"


ENV_IDS = tuple(env_id(t, d, j) for t in TASKS for d in (False, True) for j in (False, True))


def register_envs() -> None:
    for task in TASKS:
        for dense in (False, True):
            for joints in (False, True):
                name = env_id(task, dense, joints)
                if name in gym.registry:
                    continue
                gym.register(
                    id=name,
                    entry_point="drl_control.sim.env:IiwaGoalEnv",
                    max_episode_steps=MAX_EPISODE_STEPS,
                    kwargs={
                        "task": task,
                        "reward_type": "dense" if dense else "sparse",
                        "control": "joints" if joints else "ee",
                    },
                )
