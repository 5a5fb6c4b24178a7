"""The deploy core against the simulator: observations and joint targets computed from joint states
with numpy kinematics equal what the sim computes; a real policy drives a sim arm to its goal
through the controller core (no ROS)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import drl_control  # noqa: F401 - registers the env ids
from drl_control.deploy.controller import PolicyController
from drl_control.deploy.observation import ObservationBuilder, ObservationError, order_joints
from drl_control.deploy.safety import SafetyConfig


@pytest.mark.parametrize("env_id", ["DrlControl/IiwaReach-v0", "DrlControl/IiwaReachJoints-v0"])
def test_observation_matches_the_sim(env_id):
    """(The action law's sim/robot agreement is tests/test_action_law.py, for all 12 ids.)"""
    env = gym.make(env_id)
    sim = env.unwrapped
    builder = ObservationBuilder(sim.deploy_spec())
    env.reset(seed=3)
    rng = np.random.default_rng(3)
    for _ in range(40):
        env.step(rng.uniform(-1, 1, sim.arm.action_dim))
        q, qd = sim.arm.joint_state()
        obs = builder.build(q, qd, sim.task.goal)
        np.testing.assert_allclose(obs["observation"], sim.arm.observation(), atol=1e-5)
        np.testing.assert_allclose(obs["achieved_goal"], sim.task.achieved_goal(), atol=1e-5)
    env.close()


def test_unknown_observation_parts_are_refused_with_a_reason():
    """(Object tasks' parts come from the object pose stream: tests/test_deploy_object_pose.py.)"""
    env = gym.make("DrlControl/IiwaPush-v0")
    spec = env.unwrapped.deploy_spec()
    spec["observation_layout"] = [*spec["observation_layout"], ["object_acc", 3]]
    with pytest.raises(ObservationError, match="object_acc"):
        ObservationBuilder(spec)
    env.close()


def test_order_joints_accepts_any_order_and_reports_missing():
    names = ["b", "x", "a"]
    np.testing.assert_array_equal(order_joints(names, [2.0, 9.0, 1.0], ["a", "b"]), [1.0, 2.0])
    assert order_joints(names, [2.0, 9.0, 1.0], ["a", "c"]) is None
    assert order_joints(names, [2.0], ["a"]) is None


class _ScriptedPolicy:
    """Stands in for DeployPolicy: moves straight towards the goal (the Reach expert's law)."""

    def __init__(self, spec, bad=False):
        self.spec = spec
        self.bad = bad

    def act(self, obs):
        if self.bad:
            return np.array([np.nan, 0.0, 0.0])
        delta = (obs["desired_goal"] - obs["achieved_goal"]) / 0.05
        return np.clip(delta, -1, 1)


def _reach_env():
    env = gym.make("DrlControl/IiwaReach-v0")
    return env, env.unwrapped


def test_controller_core_drives_the_sim_to_goals():
    env, sim = _reach_env()
    env.reset(seed=1)
    ctrl = PolicyController(_ScriptedPolicy(sim.deploy_spec()))
    ctrl.set_enabled(True)
    names = list(sim.arm.spec.joint_names)[::-1]  # reversed order: mapped by name
    for goal in ([0.5, 0.2, 0.4], [0.65, -0.25, 0.3]):
        ok, why = ctrl.set_goal(goal)
        assert ok, why
        t = 0.0
        for _ in range(60):
            q, qd = sim.arm.joint_state()
            assert ctrl.observe_joint_state(names, q[::-1], qd[::-1], t) == ""
            res = ctrl.step(t)
            assert res.command is not None and not res.holding, res.reason
            sim.arm.set_joint_targets(res.command)
            sim.world.step()
            t += 1 / ctrl.control_hz
        assert np.linalg.norm(sim.arm.tcp_state()[0] - np.array(goal)) < 0.02
    env.close()


def test_goal_outside_workspace_is_rejected():
    _, sim = _reach_env()
    ctrl = PolicyController(_ScriptedPolicy(sim.deploy_spec()))
    ok, why = ctrl.set_goal([3.0, 0.0, 0.4])
    assert not ok and "outside the workspace" in why
    ok, why = ctrl.set_goal([np.nan, 0.0, 0.4])
    assert not ok and "finite" in why
    assert ctrl.goal is None
    edge = np.array(ctrl.goal_low, dtype=np.float32).astype(float)  # the box's corner after a float32 message
    ok, why = ctrl.set_goal(edge - 5e-8)
    assert ok, why
    assert np.all(ctrl.goal >= ctrl.goal_low)
    ok, why = ctrl.set_goal(ctrl.goal_low - [0.0, 0.0, 1e-4])
    assert not ok and "outside the workspace" in why


def test_bad_policy_output_holds_immediately():
    _, sim = _reach_env()
    sim.reset(seed=0)
    ctrl = PolicyController(_ScriptedPolicy(sim.deploy_spec(), bad=True), SafetyConfig())
    ctrl.set_enabled(True)
    ctrl.set_goal([0.5, 0.0, 0.4])
    q, qd = sim.arm.joint_state()
    ctrl.observe_joint_state(list(sim.arm.spec.joint_names), q, qd, 0.0)
    res = ctrl.step(0.0)
    assert res.holding and "bad action" in res.reason
    np.testing.assert_allclose(res.command, q, atol=1e-9)


def test_disabled_controller_sends_nothing():
    _, sim = _reach_env()
    sim.reset(seed=0)
    ctrl = PolicyController(_ScriptedPolicy(sim.deploy_spec()))
    ctrl.set_goal([0.5, 0.0, 0.4])
    q, qd = sim.arm.joint_state()
    ctrl.observe_joint_state(list(sim.arm.spec.joint_names), q, qd, 0.0)
    res = ctrl.step(0.0)
    assert res.command is None and res.reason == "disabled" and res.action is None


def test_unsafe_joint_state_is_reported_at_once_and_held():
    _, sim = _reach_env()
    sim.reset(seed=0)
    ctrl = PolicyController(_ScriptedPolicy(sim.deploy_spec()), SafetyConfig())
    ctrl.set_enabled(True)
    ctrl.set_goal([0.5, 0.0, 0.4])
    names = list(sim.arm.spec.joint_names)
    q, qd = sim.arm.joint_state()
    assert ctrl.observe_joint_state(names, q, qd, 0.0) == ""
    assert ctrl.observe_joint_state(names, q[:3], None, 0.01).startswith("ignored: joint state lacks")
    why = ctrl.observe_joint_state(names, np.full(7, np.nan), None, 0.02)
    assert "not 7 finite values" in why and why.endswith("holding")
    res = ctrl.step(0.03)
    assert res.holding and "not 7 finite values" in res.reason
    assert "outside the URDF limits" in ctrl.observe_joint_state(names, np.full(7, 100.0), None, 0.04)
