"""sim_node robot mode with an object task (Push): the object's pose on `object_pose`, episodes on
`~/reset`, over real FastDDS with the node in its own process.

The episode service must give what the goal env gives for the same seed (the controller of a
deployment sees the same goals and objects the policy was evaluated on), and `object_pose` must
say where the object is, in the base frame, with every joint state.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from ros_util import RosClient, domain_id, sim_node, wait_until

rclpy = pytest.importorskip("rclpy")

import gymnasium as gym
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState
from visualization_msgs.msg import Marker, MarkerArray

import drl_control  # noqa: F401  (registers the env ids)
from drl_control.ros import conversions as conv
from drl_control.ros import names
from drl_control.sim.tasks import OBJECT_HALF, OBJECT_XY_RANGE, TABLE_CENTRE
from drl_control_interfaces.srv import EnvReset

ENV_ID = "DrlControl/IiwaPush-v0"
NS = "/objsim"
DOMAIN = domain_id(47)


@pytest.fixture(scope="module")
def sim():
    proc = sim_node(DOMAIN, NS, mode="robot", env_id=ENV_ID)
    client = RosClient(DOMAIN, "test_ros_sim_object")
    poses, _ = client.collect(PoseStamped, names.join(NS, names.OBJECT_POSE), qos=500)
    client.poses = poses
    try:
        wait_until(lambda: poses or not proc.alive(), 60.0, what=f"object_pose from sim_node\n{proc.log()}")
        assert proc.alive(), proc.log()
        client.proc = proc
        yield client
    finally:
        client.close()
        code = proc.stop()
        assert code == 0, proc.log()


def _reset(sim, seeds=(), options: str = "") -> EnvReset.Response:
    return sim.call(EnvReset, names.private(NS, names.SIM_NODE, names.RESET),
                    EnvReset.Request(seeds=list(seeds), options_json=options))


def _position(msg: PoseStamped) -> np.ndarray:
    return np.array([msg.pose.position.x, msg.pose.position.y, msg.pose.position.z])


def _stamp(msg: PoseStamped) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def _pose_after(sim, t: float) -> PoseStamped:
    """The first object_pose stamped after wall time `t` (waits for it): taken after a reply came,
    it was published after the node served the request (one thread serves both)."""
    wait_until(lambda: sim.poses and _stamp(sim.poses[-1][1]) > t, 10.0, what="an object_pose after the reset")
    return next(m for _, m in sim.poses if _stamp(m) > t)


def test_object_pose_in_base_frame_with_every_joint_state(sim):
    joints, sub = sim.collect(JointState, names.join(NS, names.JOINT_STATES), qos=500)
    try:
        start = len(sim.poses)
        wait_until(lambda: len(joints) >= 200, 20.0, what="200 joint states")
        poses = [m for _, m in sim.poses[start:]]
    finally:
        sim.unsubscribe(sub)
    # published in the same tick as joint_states: as many, give or take the window's edges
    assert abs(len(poses) - len(joints)) <= 0.1 * len(joints) + 5, (len(poses), len(joints))
    assert all(m.header.frame_id == names.BASE_FRAME for m in poses)
    stamps = [_stamp(m) for m in poses]
    assert np.all(np.diff(stamps) > 0), "stamps must increase"
    assert abs(stamps[-1] - time.time()) < 2.0, "stamped with the node's (wall) clock"
    # before any episode the cube rests at the centre of its sampling area, upright
    last = poses[-1]
    np.testing.assert_allclose(_position(last), [*TABLE_CENTRE, OBJECT_HALF], atol=2e-3)
    q = last.pose.orientation
    assert abs(q.w) == pytest.approx(1.0, abs=1e-3)


def test_reset_samples_object_and_goal_as_the_goal_env(sim):
    env = gym.make(ENV_ID)
    try:
        expected, _ = env.reset(seed=11)
    finally:
        env.close()
    reply = _reset(sim, [11])
    after = time.time()
    assert reply.success, reply.message
    batch = conv.msg_to_batch(reply.batch)
    assert reply.batch.num_envs == 1 and list(batch) == ["achieved_goal", "desired_goal"]
    np.testing.assert_allclose(batch["achieved_goal"][0], expected["achieved_goal"], atol=1e-6)
    np.testing.assert_allclose(batch["desired_goal"][0], expected["desired_goal"], atol=1e-6)
    # object_pose follows the object to where the episode put it, inside the task's sampling box
    position = _position(_pose_after(sim, after))
    np.testing.assert_allclose(position, batch["achieved_goal"][0], atol=2e-3)
    assert np.all(np.abs(position[:2] - TABLE_CENTRE) <= OBJECT_XY_RANGE + 1e-6)
    assert position[2] == pytest.approx(OBJECT_HALF, abs=2e-3)


def test_reset_is_seeded(sim):
    first = conv.msg_to_batch(_reset(sim, [5]).batch)
    again = conv.msg_to_batch(_reset(sim, [5]).batch)
    other = conv.msg_to_batch(_reset(sim, [6]).batch)
    unseeded = _reset(sim)  # the generator of seed 6 goes on: a new episode
    assert unseeded.success, unseeded.message
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.allclose(first["desired_goal"], other["desired_goal"])
    assert not np.allclose(other["desired_goal"], conv.msg_to_batch(unseeded.batch)["desired_goal"])


def test_bad_reset_requests_are_refused_and_change_nothing(sim):
    reply = _reset(sim, [3])
    assert reply.success, reply.message
    placed = conv.msg_to_batch(reply.batch)["achieved_goal"][0]
    for seeds, options in (([1, 2], ""), ([-1], ""), ([4], '{"goal": [0, 0, 0]}')):
        bad = _reset(sim, seeds, options)
        assert not bad.success and bad.message, (seeds, options)
        np.testing.assert_allclose(_position(_pose_after(sim, time.time())), placed, atol=2e-3)
    assert sim.proc.alive()


def test_object_and_goal_markers(sim):
    reply = _reset(sim, [8])
    goal = conv.msg_to_batch(reply.batch)["desired_goal"][0]
    arrays, sub = sim.collect(MarkerArray, names.join(NS, names.MARKERS))
    try:
        def shown() -> dict[str, Marker]:
            return {m.ns: m for _, a in arrays[-1:] for m in a.markers}

        wait_until(lambda: "object" in shown() and np.allclose(
            [shown()["goal"].pose.position.x, shown()["goal"].pose.position.y], goal[:2], atol=1e-6),
            10.0, what="markers with the object and the episode's goal")
        cube = shown()["object"]
    finally:
        sim.unsubscribe(sub)
    assert cube.type == Marker.CUBE and cube.header.frame_id == names.BASE_FRAME
    assert cube.scale.x == pytest.approx(2 * OBJECT_HALF)
    np.testing.assert_allclose([cube.pose.position.x, cube.pose.position.y],
                               conv.msg_to_batch(reply.batch)["achieved_goal"][0][:2], atol=2e-3)
