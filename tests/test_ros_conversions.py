"""drl_control.ros.conversions: spaces, batches and infos survive the trip through messages."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

import gymnasium as gym
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from drl_control.ros import conversions as conv
from drl_control.ros import names

SPACE = gym.spaces.Dict({
    "observation": gym.spaces.Box(-np.inf, np.inf, (6,), np.float32),
    "achieved_goal": gym.spaces.Box(-1.0, 2.0, (3,), np.float32),
    "desired_goal": gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
})


def test_space_json_round_trip():
    assert conv.space_from_json(conv.space_to_json(SPACE)) == SPACE
    box = gym.spaces.Box(-1.0, 1.0, (2, 3), np.float32)
    assert conv.space_from_json(conv.space_to_json(box)) == box


def test_batch_round_trip_is_exact():
    rng = np.random.default_rng(0)
    obs = {k: rng.standard_normal((4, *s.shape)).astype(np.float32) for k, s in SPACE.spaces.items()}
    back = conv.msg_to_batch(conv.batch_to_msg(obs), SPACE)
    assert list(back) == list(obs)
    for k in obs:
        np.testing.assert_array_equal(back[k], obs[k])
    box = rng.standard_normal((3, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(conv.msg_to_batch(conv.batch_to_msg(box), gym.spaces.Box(-1, 1, (2, 3))), box)


def test_infos_round_trip_terminal_observation():
    term = {k: np.arange(s.shape[0], dtype=np.float32) / 3 for k, s in SPACE.spaces.items()}
    infos = [{"is_success": np.bool_(True), "terminal_observation": term, "d": np.float32(0.5)}, {}]
    back = conv.infos_from_json(conv.infos_to_json(infos), SPACE)
    assert back[0]["is_success"] is True and back[1] == {}
    for k in term:
        np.testing.assert_array_equal(back[0]["terminal_observation"][k], term[k])


def test_actions_size_checked():
    np.testing.assert_array_equal(conv.actions_from_msg(np.arange(6, dtype=np.float32), 3, 2),
                                  np.arange(6).reshape(2, 3))
    with pytest.raises(ValueError, match="2 x 3"):
        conv.actions_from_msg(np.zeros(5, np.float32), 3, 2)


def test_trajectory_arrays():
    msg = JointTrajectory(joint_names=["a", "b"])
    msg.points = [JointTrajectoryPoint(positions=[1.0, 2.0]), JointTrajectoryPoint(positions=[3.0, 4.0])]
    msg.points[1].time_from_start.sec, msg.points[1].time_from_start.nanosec = 1, 500_000_000
    joint_names, times, positions = conv.trajectory_arrays(msg)
    assert joint_names == ["a", "b"] and times.tolist() == [0.0, 1.5] and positions.tolist() == [[1, 2], [3, 4]]
    msg.points[0].positions = [1.0]
    with pytest.raises(ValueError, match="point 0"):
        conv.trajectory_arrays(msg)


def test_names():
    assert names.sim_service("/sim0", names.STEP) == "/sim0/sim_node/step"
    assert names.sim_service("sim1", names.SPEC) == "/sim1/sim_node/spec"
    assert names.sim_service("/a/b:my_sim", names.RESET) == "/a/b/my_sim/reset"
    assert names.private("/", names.LEARNER_NODE, names.TRAIN) == "/learner_node/train"


def test_commands_and_markers():
    assert conv.duration_to_sec(conv.duration_msg(1.25)) == 1.25
    assert list(conv.command_msg(np.arange(3)).data) == [0.0, 1.0, 2.0]
    trajectory = conv.command_msg([1.0, 2.0], ["a", "b"], 0.04)
    assert trajectory.joint_names == ["a", "b"] and len(trajectory.points) == 1
    assert conv.duration_to_sec(trajectory.points[0].time_from_start) == pytest.approx(0.04)
    goal = conv.goal_marker(None, [0.5, 0.0, 0.4], "goal", (0.1, 0.8, 0.1, 0.8))
    assert (goal.action, goal.header.frame_id, goal.pose.position.x, goal.scale.z) == (goal.ADD, names.BASE_FRAME,
                                                                                       0.5, 0.04)
    assert conv.goal_marker(None, None, "goal", (0, 0, 0, 0)).action == goal.DELETE
    path = conv.path_marker(None, [conv.point_msg(p) for p in np.eye(3)], "path", (0.9, 0.3, 0.1, 1.0))
    assert path.type == path.LINE_STRIP and [p.y for p in path.points] == [0.0, 1.0, 0.0]
