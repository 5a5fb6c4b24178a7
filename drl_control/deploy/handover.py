"""Loading a new policy beside a running one, and handing it over between two control ticks. No ROS.

`PolicyHandover.build` (any thread, may take seconds for a big artifact) reads and validates an
artifact completely -- files, tensor shapes and dtypes (drl_control.deploy.artifact), the control
rate against the driver and the artifact's own training (`control_rate_problem`), a gripper action
against the driver profile (`gripper_problem`) -- and builds a
ready `PolicyController`; nothing running is touched, and a failure changes nothing. `take`
(the control thread, at a tick) returns the ready controller once; `carry_over` gives it the
running one's enable state, goal and latest joint state.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from drl_control.deploy.controller import PolicyController
from drl_control.deploy.profiles import gripper_problem
from drl_control.deploy.safety import SafetyConfig, control_rate_problem


class PolicyHandover:
    def __init__(self, joint_names: Sequence[str], safety: SafetyConfig, rate_override: float, max_rate: float,
                 profile: str = "") -> None:
        """`profile`: the driver profile's name ("": none), for what it can command (a gripper)."""
        self.joint_names = list(joint_names)
        self.profile = str(profile)
        self.safety = safety
        self.rate_override = float(rate_override)
        self.max_rate = float(max_rate)
        self._ready: PolicyController | None = None
        self._lock = threading.Lock()

    @property
    def pending(self) -> bool:
        return self._ready is not None

    def build(self, artifact: str) -> tuple[bool, str]:
        """(True, what was loaded) with a controller ready for `take`, or (False, why not)."""
        from drl_control.deploy.policy import DeployPolicy  # torch: imported on first use

        try:
            policy = DeployPolicy.load(artifact, joint_names=self.joint_names)
            problem = (control_rate_problem(policy.spec, self.rate_override or None, self.max_rate)
                       or gripper_problem(policy.spec, self.profile))
            if problem:
                raise ValueError(problem)
            core = PolicyController(policy, self.safety, rate_hz=self.rate_override or None)
        except Exception as exc:  # noqa: BLE001 - any bad artifact is reported, never fatal
            return False, f"cannot load {artifact!r}: {exc}"
        with self._lock:
            self._ready = core
        return True, (f"loaded {artifact} ({policy.algorithm}, {policy.env_id}, {policy.spec['action']['type']}) "
                      f"at {core.rate_hz:g} Hz")

    def take(self) -> PolicyController | None:
        with self._lock:
            core, self._ready = self._ready, None
        return core


def carry_over(
    core: PolicyController, enabled: bool, goal: np.ndarray | None, last_state: tuple[Any, ...] | None
) -> tuple[np.ndarray | None, str]:
    """Give the new controller the running state; returns (the goal it kept, why it dropped it or "")."""
    core.set_enabled(enabled)
    why = ""
    if goal is not None:
        ok, message = core.set_goal(goal)
        if not ok:
            goal, why = None, f"previous goal dropped by the new policy: {message}"
    if last_state is not None:
        core.observe_joint_state(*last_state)
    return goal, why
