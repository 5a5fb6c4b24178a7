"""drl_control.sim.emulator: the real-time arm behind sim_node robot mode, without ROS."""

from __future__ import annotations

import numpy as np
import pytest

from drl_control.sim.emulator import RobotEmulator


@pytest.fixture
def robot():
    r = RobotEmulator()
    yield r
    r.close()


def test_holds_home_and_tracks_position_commands_at_speed_limits(robot):
    home = robot.setpoint.copy()
    robot.advance(100)
    np.testing.assert_allclose(robot.joint_state()[0], home, atol=1e-3)
    target = home.copy()
    target[0] += 0.5
    robot.command_positions(target)
    robot.advance(int(0.2 * 500))  # 0.2 s: A1 moves at most 85 deg/s * 0.2 s ~ 0.297 rad
    assert robot.setpoint[0] - home[0] == pytest.approx(np.radians(85) * 0.2, rel=0.02)
    robot.advance(500)
    np.testing.assert_allclose(robot.joint_state()[0], target, atol=2e-3)


def test_trajectory_interpolates_in_time_and_maps_names(robot):
    home = robot.setpoint.copy()
    names = list(reversed(robot.joint_names))
    goal = home + 0.1
    robot.command_trajectory(names, [1.0], goal[::-1][None, :])
    robot.advance(250)  # half way in time
    np.testing.assert_allclose(robot.setpoint, home + 0.05, atol=2e-3)
    robot.advance(300)
    np.testing.assert_allclose(robot.setpoint, goal, atol=1e-9)


@pytest.mark.parametrize("command, reason", [
    ([0.0] * 6, "expected 7"),
    ([np.nan] * 7, "finite"),
    ([3.1] + [0.0] * 6, "outside its limits"),
])
def test_bad_position_commands_refused(robot, command, reason):
    before = robot.desired(robot.time).copy()
    with pytest.raises(ValueError, match=reason):
        robot.command_positions(command)
    np.testing.assert_array_equal(robot.desired(robot.time), before)


def test_bad_trajectories_refused(robot):
    q = robot.setpoint[None, :]
    with pytest.raises(ValueError, match="joint_names"):
        robot.command_trajectory(["x"] * 7, [1.0], q)
    with pytest.raises(ValueError, match="strictly increasing"):
        robot.command_trajectory(robot.joint_names, [1.0, 1.0], np.vstack([q, q]))
    with pytest.raises(ValueError, match="point 1"):
        robot.command_trajectory(robot.joint_names, [1.0, 2.0], np.vstack([q, q + 5.0]))


def test_object_task_episode_is_the_goal_envs_and_the_object_is_pushable():
    import gymnasium as gym
    from gymnasium.utils import seeding

    import drl_control  # noqa: F401  (registers the env ids)

    env = gym.make("DrlControl/IiwaPush-v0")
    expected, _ = env.reset(seed=21)
    env.close()
    robot = RobotEmulator(tool="pusher", task="Push")
    try:
        assert robot.has_object
        target = robot.setpoint.copy()
        target[1] += 0.3
        robot.command_positions(target)
        robot.advance(300)  # the arm is away from home
        achieved, goal = robot.reset_episode(seeding.np_random(21)[0])
        np.testing.assert_allclose(robot.joint_state()[0], robot.spec.home, atol=1e-9)  # home, at once
        np.testing.assert_allclose(achieved, expected["achieved_goal"], atol=1e-6)
        np.testing.assert_allclose(goal, expected["desired_goal"], atol=1e-6)
        np.testing.assert_allclose(robot.object_pose()[0], achieved)
        robot.advance(250)  # the drive holds home: it does not run back to the old command
        np.testing.assert_allclose(robot.joint_state()[0], robot.spec.home, atol=2e-3)
    finally:
        robot.close()
    with pytest.raises(ValueError, match="unknown task"):
        RobotEmulator(task="Juggle")
    reach = RobotEmulator(task="Reach")
    try:
        assert not reach.has_object and reach.object_pose() is None
    finally:
        reach.close()
