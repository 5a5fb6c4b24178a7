"""The action law has one owner (robot/action_law.py): the sim arm and the deployed controller turn
the same action at the same joint state into the same joint targets, for every env id."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import drl_control  # noqa: F401 - registers the env ids
from drl_control.deploy.controller import PolicyController
from drl_control.deploy.safety import SafetyConfig, SafetyFilter
from drl_control.robot.action_law import FINGER_MAX_OPENING, ActionLaw, finger_opening, scale_step
from drl_control.sim.registration import ENV_IDS


class _FixedPolicy:
    """Returns whatever action the test sets: the controller's law, not a network, is under test."""

    def __init__(self, spec):
        self.spec = spec
        self.action = None

    def act(self, obs):
        return self.action


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sim_arm_and_deploy_controller_give_the_same_joint_targets(env_id):
    env = gym.make(env_id)
    sim = env.unwrapped
    spec = sim.deploy_spec()
    law = ActionLaw(spec)  # what PolicyController builds from an artifact's env_spec
    ctrl = None
    if "Reach" in env_id:  # object tasks need perception: the controller refuses them
        ctrl = PolicyController(_FixedPolicy(spec), SafetyConfig(check_workspace=False))
        assert ctrl.law.kind == law.kind
    env.reset(seed=5)
    rng = np.random.default_rng(5)
    names = list(sim.arm.spec.joint_names)
    for i in range(15):
        action = rng.uniform(-1.2, 1.2, sim.arm.action_dim)  # a little outside [-1, 1]: both clip
        q = sim.arm.joint_state()[0].copy()
        expected = law.joint_target(q, action)
        env.step(action)
        np.testing.assert_allclose(sim.arm.command, expected, atol=1e-6, err_msg=f"step {i}")
        if sim.arm.has_gripper:
            assert sim.arm.finger_command == pytest.approx(law.finger_target(np.clip(action, -1, 1)))
        if ctrl is not None:
            ctrl.set_enabled(False)
            ctrl.set_enabled(True)  # the safety filter's speed reference: the measured state
            ctrl.set_goal(sim.task.goal)
            ctrl.observe_joint_state(names, q, None, float(i))
            ctrl.policy.action = action
            result = ctrl.step(float(i))
            assert result.reason == "", result.reason  # the law's target passes the filter unchanged
            np.testing.assert_allclose(result.command, sim.arm.command, atol=1e-6)
    env.close()


def test_scale_step_keeps_direction_and_caps_every_joint():
    max_step = np.array([0.1, 0.2, 0.3])
    ref = np.zeros(3)
    small = np.array([0.05, -0.1, 0.1])
    assert scale_step(ref, small, max_step) is small
    out = scale_step(ref, np.array([0.4, 0.2, -0.3]), max_step)
    np.testing.assert_allclose(out, [0.1, 0.05, -0.075])
    assert np.all(np.abs(out - ref) <= max_step + 1e-12)


def test_safety_filter_speed_scaling_is_the_law_at_its_velocity_scale():
    filt = SafetyFilter(SafetyConfig(velocity_scale=0.5))
    ref = np.zeros(7)
    target = np.full(7, 1.0)
    np.testing.assert_allclose(filt.scale_speed(ref, target),
                               scale_step(ref, target, 0.5 * filt.spec.max_velocity * filt.config.control_dt))


def test_finger_opening_maps_the_command_range():
    assert finger_opening(-1.0) == 0.0
    assert finger_opening(1.0) == FINGER_MAX_OPENING
    assert finger_opening(0.0) == pytest.approx(FINGER_MAX_OPENING / 2)
    assert finger_opening(5.0) == FINGER_MAX_OPENING


def test_unknown_action_type_is_refused_with_its_name():
    spec = gym.make("DrlControl/IiwaReach-v0").unwrapped.deploy_spec()
    spec["action"] = dict(spec["action"], type="torque")
    with pytest.raises(ValueError, match="'torque'"):
        ActionLaw(spec)


def test_joint_delta_targets_stay_inside_the_shrunk_limits():
    spec = gym.make("DrlControl/IiwaReachJoints-v0").unwrapped.deploy_spec()
    law = ActionLaw(spec)
    q = law.upper - 1e-3
    target = law.joint_target(q, np.ones(7))
    np.testing.assert_array_equal(target, law.upper)
