"""The twelve gymnasium ids (contract): DrlControl/Iiwa{Reach,Push,PickAndPlace}{,Dense}{,Joints}-v0."""

from __future__ import annotations

import difflib
import re

import gymnasium as gym

from drl_control.errors import UserError

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


# An id as gymnasium writes it, without the `module:Id` form: gymnasium imports `module` to find
# such an id, so an id read from a file (policy.json, config.yaml) or a goal could run code.
_SAFE_ENV_ID = re.compile(r"[A-Za-z0-9_.-]{1,100}(/[A-Za-z0-9_.-]{1,100})?")


class EnvIdError(UserError, ValueError):
    """An env id that is malformed, of the `module:Id` form, or not registered."""


def check_env_id(env_id: object) -> str:
    """`env_id` if it is a registered id of an installed package; EnvIdError (one line) otherwise.

    Never imports a module named by the id. Panda* ids register by importing panda-gym, when installed.
    """
    if not isinstance(env_id, str) or not _SAFE_ENV_ID.fullmatch(env_id):
        shown = str(env_id) if len(str(env_id)) <= 80 else f"{str(env_id)[:80]}..."
        hint = " (the 'module:Id' form is refused: it imports a module)" if ":" in str(env_id) else ""
        raise EnvIdError(f"malformed env id {shown!r}{hint}")
    register_envs()
    if env_id.split("/")[-1].startswith("Panda"):
        try:
            import panda_gym  # noqa: F401  (registers Panda*)
        except ImportError:
            pass
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; this package's ids: {', '.join(ENV_IDS[:4])}, ..."
        raise EnvIdError(f"unknown env id {env_id!r}{hint}")
    return env_id


def import_env_packages(env_id: str) -> None:
    """Register the env ids `env_id` needs (ours always; panda-gym's for Panda* ids) and refuse an id
    that is not registered or of the `module:Id` form. Here, not in learn/, so that a sim worker
    making envs never imports torch."""
    check_env_id(env_id)
