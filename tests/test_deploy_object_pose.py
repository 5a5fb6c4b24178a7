"""Object tasks on the deploy side, no ROS: the object parts of the observation rebuilt from the
poses the sim reports equal the sim's own (velocities: the mean over the control period, exactly);
a missing, stale, future, jumping, out-of-order or foreign-frame object pose holds the controller
with its reason; a policy with a gripper action is refused on every driver profile, Push on none."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import drl_control  # noqa: F401 - registers the env ids
from drl_control.deploy.controller import PolicyController
from drl_control.deploy.object_pose import ObjectPoseTracker
from drl_control.deploy.observation import ObservationBuilder
from drl_control.deploy.profiles import gripper_problem, load_profiles
from drl_control.deploy.safety import SafetyConfig
from drl_control.ros.names import BASE_FRAME
from drl_control.sim.experts import make_expert

WALL = 1.8e9  # a wall-clock time (s) for stamps
UPRIGHT = [0.0, 0.0, 0.0, 1.0]


def _step_recording_velocities(sim, action) -> tuple[np.ndarray, np.ndarray]:
    """env.step's physics (no randomization configured), reading the object's velocity after every
    physics step: returns the mean linear velocity over the control period and the mean rotation
    rate (the physics steps' rotations composed, as a rotation vector per second)."""
    client, body = sim.world.client, sim.task.object
    velocities = []
    sim.arm.apply_action(np.clip(np.asarray(action, dtype=np.float32), -1, 1))
    sim.arm.advance(None, lambda: velocities.append(client.getBaseVelocity(body)))
    velocities.append(client.getBaseVelocity(body))
    after_each_step = np.array(velocities[1:])  # the first was read before the first physics step
    h = sim.world.config.physics_dt
    rotation = Rotation.identity()
    for w in after_each_step[:, 1]:
        rotation = Rotation.from_rotvec(w * h) * rotation
    return after_each_step[:, 0].mean(axis=0), rotation.as_rotvec() / (h * len(after_each_step))


@pytest.mark.parametrize("env_id", ["DrlControl/IiwaPush-v0", "DrlControl/IiwaPushJoints-v0"])
def test_object_observation_matches_the_sim(env_id):
    env = gym.make(env_id)
    sim = env.unwrapped
    client = sim.world.client
    builder = ObservationBuilder(sim.deploy_spec())
    tracker = ObjectPoseTracker(0.5 / sim.world.config.control_hz)
    env.reset(seed=0)
    expert = make_expert(env)  # pushes the cube: impacts, sliding and rest in one episode
    dt = sim.world.config.control_dt
    position, quaternion = client.getBasePositionAndOrientation(sim.task.object)
    assert tracker.add(WALL, position, quaternion) == "" and tracker.parts() is None  # one pose: no velocity
    off_end = []  # |finite difference - the sim's end-of-step velocity|, linear and angular
    moved = 0.0
    for k in range(1, 60):
        mean_vel, mean_rate = _step_recording_velocities(sim, expert.act())
        sim_obs = sim._get_obs()  # what env.step returns for this state
        position, quaternion = client.getBasePositionAndOrientation(sim.task.object)
        assert tracker.add(WALL + k * dt, position, quaternion) == ""
        parts = tracker.parts()
        q, qd = sim.arm.joint_state()
        obs = builder.build(q, qd, sim.task.goal, object_parts=parts)
        n_arm = sum(size for name, size in builder.layout if not name.startswith("object"))
        # arm parts, object position and Euler angles: the same numbers (float32 rounding)
        np.testing.assert_allclose(obs["observation"][: n_arm + 6], sim_obs["observation"][: n_arm + 6], atol=1e-5)
        np.testing.assert_array_equal(obs["achieved_goal"], sim_obs["achieved_goal"])
        np.testing.assert_array_equal(obs["desired_goal"], sim_obs["desired_goal"])
        # velocities: the mean over the control period, to rounding (a wall-clock stamp in float
        # seconds resolves 0.24 us: 6e-6 of the 40 ms span)
        np.testing.assert_allclose(parts["object_vel"], mean_vel, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(parts["object_ang_vel"], mean_rate, rtol=1e-5, atol=1e-9)
        sim_vel = sim_obs["observation"][n_arm + 6:]
        off_end.append((np.abs(parts["object_vel"] - sim_vel[:3]).max(), np.abs(parts["object_ang_vel"] - sim_vel[3:]).max()))
        moved = max(moved, float(np.abs(sim_vel[:3]).max()))
        if not np.any(sim_vel):  # at rest: nothing to average
            np.testing.assert_allclose(obs["observation"][n_arm + 6:], 0.0, atol=1e-6)
    assert moved > 0.1, "the expert never moved the cube: the velocities were not tested"
    lin, ang = np.max(off_end, axis=0)
    # the end-of-step velocity the policy was trained on differs from the mean by at most the
    # velocity change within a period (docs: 0.1 m/s and 4.5 rad/s measured across the impacts)
    assert lin < 0.15 and ang < 6.0, (lin, ang)
    env.close()


def test_fast_pose_streams_are_differenced_over_half_a_control_period():
    tracker = ObjectPoseTracker(0.02)
    for k in range(11):  # 250 Hz, 0.1 m/s along x
        assert tracker.add(WALL + k * 0.004, [0.6 + 0.1 * k * 0.004, 0.0, 0.02], UPRIGHT) == ""
    parts = tracker.parts()
    np.testing.assert_allclose(parts["object_vel"], [0.1, 0.0, 0.0], rtol=1e-5, atol=1e-9)
    ref_time = tracker.reference()[0]
    assert 0.02 - 1e-6 <= tracker.latest_stamp - ref_time < 0.024  # the newest pose at least 20 ms older
    assert len(tracker._poses) <= 7  # bounded: the reference and what follows it


class _ZeroPolicy:
    """Stands in for DeployPolicy: a still action (the test is about when the policy may run)."""

    def __init__(self, spec):
        self.spec = spec
        self.calls = 0

    def act(self, obs):
        self.calls += 1
        assert obs["observation"].shape == (18,)
        return np.zeros(3)


@pytest.fixture(scope="module")
def push_spec():
    env = gym.make("DrlControl/IiwaPush-v0")
    spec = env.unwrapped.deploy_spec()
    env.close()
    return spec


def _controller(spec, **safety):
    ctrl = PolicyController(_ZeroPolicy(spec), SafetyConfig(**safety))
    ctrl.set_enabled(True)
    ok, why = ctrl.set_goal([0.6, 0.1, 0.02])  # on the table: below the flange box, a valid object goal
    assert ok, why
    return ctrl


def _joints(ctrl, now):
    names = list(ctrl.robot.joint_names)
    assert ctrl.observe_joint_state(names, ctrl.robot.home, np.zeros(7), now) == ""


def test_object_pose_absent_fresh_stale(push_spec):
    ctrl = _controller(push_spec)
    assert ctrl.observes_object
    _joints(ctrl, 0.0)
    res = ctrl.step(0.0)
    assert res.holding and "no object pose received yet" in res.reason and ctrl.policy.calls == 0
    pos = [0.6, 0.0, 0.02]
    assert ctrl.observe_object_pose(BASE_FRAME, pos, UPRIGHT, WALL, 0.0, WALL) == ""
    res = ctrl.step(0.01)
    assert res.holding and "waiting for object poses spanning 20 ms" in res.reason
    t = 0.04
    assert ctrl.observe_object_pose("/" + BASE_FRAME, pos, UPRIGHT, WALL + t, t, WALL + t) == ""
    _joints(ctrl, t)
    res = ctrl.step(t)
    assert not res.holding and res.command is not None and ctrl.policy.calls == 1, res.reason
    np.testing.assert_allclose(res.distance_to_goal, 0.1)  # the object's distance, not the TCP's
    # the pose stream stops; joint states go on
    for t in (0.08, 0.12, 0.16, 0.20, 0.24, 0.28, 0.32):
        _joints(ctrl, t)
        res = ctrl.step(t)
        if t - 0.04 <= ctrl.object_timeout:
            assert not res.holding, (t, res.reason)
    assert res.holding and "stale object pose (280 ms old > object_pose_timeout 0.25 s)" in res.reason
    assert res.command is not None  # the hold position is sent, as for stale joint states
    calls = ctrl.policy.calls
    t = 0.36  # fresh again: runs again
    assert ctrl.observe_object_pose(BASE_FRAME, pos, UPRIGHT, WALL + t, t, WALL + t) == ""
    _joints(ctrl, t)
    res = ctrl.step(t)
    assert not res.holding and ctrl.policy.calls == calls + 1, res.reason


@pytest.mark.parametrize("case,expect", [
    ("future", "object pose stamp 1.000 s in the future"),
    ("old", "stale object pose stamp (5.000 s old > 0.5 s)"),
    ("unstamped", "object pose has no header stamp"),
    ("jump", "implausible object pose: the object jumped 0.500 m in 40 ms"),
    ("frame", "object pose frame 'world' is not the base frame 'iiwa_link_0'"),
    ("nan", "object pose is not 3 + 4 finite numbers"),
    ("quaternion", "object orientation is not a unit quaternion (norm 0)"),
    ("order", "object pose stamp 20 ms before the last accepted one: out of order"),
])
def test_a_refused_object_pose_changes_nothing_and_ends_in_a_hold(push_spec, case, expect):
    ctrl = _controller(push_spec)
    pos = [0.6, 0.0, 0.02]
    for t in (0.0, 0.04):
        assert ctrl.observe_object_pose(BASE_FRAME, pos, UPRIGHT, WALL + t, t, WALL + t) == ""
    _joints(ctrl, 0.04)
    assert not ctrl.step(0.04).holding
    t, frame, position, quaternion, stamp = 0.08, BASE_FRAME, list(pos), list(UPRIGHT), WALL + 0.08
    if case == "future":
        stamp = WALL + t + 1.0
    elif case == "old":
        stamp = WALL + t - 5.0
    elif case == "unstamped":
        stamp = 0.0
    elif case == "jump":
        position[1] += 0.5
    elif case == "frame":
        frame = "world"
    elif case == "nan":
        position[0] = float("nan")
    elif case == "quaternion":
        quaternion = [0.0, 0.0, 0.0, 0.0]
    elif case == "order":
        stamp = WALL + 0.02
    problem = ctrl.observe_object_pose(frame, position, quaternion, stamp, t, WALL + t)
    assert expect in problem, problem
    assert ctrl.object_gate.rejected == 1
    _joints(ctrl, t)
    res = ctrl.step(t)  # the last accepted pose is 40 ms old: still running, the refusal reported
    assert not res.holding and expect in res.reason, res.reason
    later = 0.04 + ctrl.object_timeout + 0.01
    _joints(ctrl, later)
    res = ctrl.step(later)
    assert res.holding and "stale object pose" in res.reason and expect in res.reason, res.reason
    # the refused pose did not become the reference of the jump rule or the velocity
    np.testing.assert_allclose(ctrl.object.parts()["object_pos"], pos)


def test_the_object_max_speed_sets_the_jump_rule(push_spec):
    ctrl = _controller(push_spec, object_max_speed=10.0)
    assert ctrl.observe_object_pose(BASE_FRAME, [0.6, 0.0, 0.02], UPRIGHT, WALL, 0.0, WALL) == ""
    assert ctrl.observe_object_pose(BASE_FRAME, [0.6, 0.5, 0.02], UPRIGHT, WALL + 0.04, 0.04, WALL + 0.04) == ""


def test_gripper_policies_are_refused_on_every_profile_and_push_loads_on_all(push_spec):
    env = gym.make("DrlControl/IiwaPickAndPlace-v0")
    pick = env.unwrapped.deploy_spec()
    env.close()
    assert pick["action"]["gripper"] and not push_spec["action"]["gripper"]
    for profile in [*load_profiles(), ""]:
        problem = gripper_problem(pick, profile)
        assert "gripper dimension" in problem and "no gripper command interface" in problem
        assert (f"driver profile {profile!r}" if profile else "without a profile") in problem
        assert gripper_problem(push_spec, profile) == ""


def test_withholding_holds_only_after_the_rules_before_it():
    """SafetyFilter rule 5: a withheld command holds with its reason; disabled and no-state come first."""
    from drl_control.deploy.safety import SafetyFilter

    f = SafetyFilter(SafetyConfig())
    f.withhold("stale object pose")
    assert f.decide(0.0) == (None, "disabled", False)
    f.set_enabled(True)
    f.withhold("stale object pose")
    assert f.decide(0.0).reason == "no joint state received yet"
    home = f.spec.home
    f.observe_state(home, 0.0)
    decision = f.decide(0.0)
    assert decision.holding and decision.reason == "stale object pose"
    np.testing.assert_array_equal(decision.command, home)
    f.propose(home + 0.01, 0.01)  # the source proposes again: the hold ends
    f.observe_state(home, 0.01)
    decision = f.decide(0.01)
    assert not decision.holding and decision.reason == ""
