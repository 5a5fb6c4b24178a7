"""sim_node robot mode: the ros2_control contract of a real arm, in real time, over FastDDS.

joint_states at >= 100 Hz (position, velocity, effort), forward_position_controller/commands and
joint_trajectory_controller/joint_trajectory followed, bad commands rejected with a logged reason
while the node keeps running, robot_description (transient local) and markers published.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from ros_util import RosClient, domain_id, sim_node, wait_until

rclpy = pytest.importorskip("rclpy")

from builtin_interfaces.msg import Duration
from geometry_msgs.msg import PointStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from visualization_msgs.msg import MarkerArray

from drl_control.robot import iiwa14
from drl_control.ros import names
from drl_control.ros.sim_node import LATCHED

DOMAIN = domain_id(41)
NS = "/arm"
JOINTS = [f"iiwa_joint_{i}" for i in range(1, 8)]


class Listener:
    def __init__(self, client: RosClient) -> None:
        self.lock = threading.Lock()
        self.stamps: list[float] = []
        self.header_stamps: list[float] = []
        self.last: JointState | None = None
        self.positions: list[np.ndarray] = []  # every joint_states sample, in arrival order
        self.markers: MarkerArray | None = None
        node = client.node
        node.create_subscription(JointState, f"{NS}/{names.JOINT_STATES}", self._on_js, 50)
        node.create_subscription(MarkerArray, f"{NS}/{names.MARKERS}", self._on_markers, 10)
        self.commands = node.create_publisher(Float64MultiArray, f"{NS}/{names.FORWARD_POSITION_COMMANDS}", 10)
        self.trajectory = node.create_publisher(JointTrajectory, f"{NS}/{names.JOINT_TRAJECTORY}", 10)
        self.goal = node.create_publisher(PointStamped, f"{NS}/{names.GOAL}", 10)
        for pub in (self.commands, self.trajectory, self.goal):  # a message before discovery is lost
            client.wait_matched(pub)

    def _on_js(self, msg: JointState) -> None:
        with self.lock:
            self.stamps.append(time.monotonic())
            self.header_stamps.append(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)
            self.last = msg
            self.positions.append(np.array(msg.position))

    def _on_markers(self, msg: MarkerArray) -> None:
        self.markers = msg

    def position(self) -> np.ndarray:
        with self.lock:
            assert self.last is not None
            return np.array(self.last.position)


@pytest.fixture(scope="module")
def robot():
    proc = sim_node(DOMAIN, NS, mode="robot")
    client = RosClient(DOMAIN, "test_ros_robot")
    listener = Listener(client)
    try:
        wait_until(lambda: listener.last is not None, what="first joint_states")
        yield proc, client, listener
    finally:
        client.close()
        code = proc.stop()
        assert code == 0, proc.log()


def test_joint_states_rate_and_fields(robot):
    _, _, listener = robot
    time.sleep(0.2)
    with listener.lock:
        start = len(listener.stamps)
    time.sleep(1.0)
    with listener.lock:
        stamps = np.array(listener.header_stamps[start:])
        msg = listener.last
    # The publisher's rate, from the sim's own header stamps: a probe starved of CPU on a busy
    # 2-core machine receives fewer messages (history depth) but consecutive stamps stay 1/rate apart.
    rate = 1.0 / float(np.median(np.diff(stamps)))
    assert rate >= 100.0, f"joint_states published at {rate:.1f} Hz"
    assert list(msg.name) == JOINTS
    assert len(msg.position) == len(msg.velocity) == len(msg.effort) == 7
    np.testing.assert_allclose(msg.position, iiwa14().home, atol=0.02)


def _reach(listener: Listener, target: np.ndarray, timeout: float = 15.0, tol: float = 0.01, since: int = -1) -> None:
    """Wait until a joint_states sample (the last one; with `since`, any from that index on) is
    within `tol` of `target`: samples are recorded as they arrive, so a passing point is seen
    even when this probe polls late."""
    def near() -> bool:
        with listener.lock:
            samples = listener.positions[since:] if since >= 0 else listener.positions[-1:]
        return any(np.max(np.abs(q - target)) < tol for q in samples)

    wait_until(near, timeout,
               what=f"joints at {np.round(target, 3).tolist()} (now {np.round(listener.position(), 3).tolist()})")


def test_forward_position_commands(robot):
    _, _, listener = robot
    target = iiwa14().home + np.array([0.2, -0.1, 0.1, 0.15, -0.1, 0.1, 0.2])
    listener.commands.publish(Float64MultiArray(data=target.tolist()))
    _reach(listener, target)
    time.sleep(0.3)  # and holds it
    np.testing.assert_allclose(listener.position(), target, atol=0.01)


def test_joint_trajectory(robot):
    _, _, listener = robot
    home = iiwa14().home
    mid, end = home + 0.1, home - 0.05
    msg = JointTrajectory(joint_names=list(reversed(JOINTS)))  # names are mapped, any order
    for q, t in ((mid, 0.6), (end, 1.2)):
        msg.points.append(JointTrajectoryPoint(positions=list(reversed(q.tolist())),
                                               time_from_start=Duration(sec=int(t), nanosec=int(t % 1 * 1e9))))
    with listener.lock:
        since = len(listener.positions)
    t0 = time.monotonic()
    listener.trajectory.publish(msg)
    _reach(listener, mid, tol=0.03, since=since)  # passes the middle point...
    _reach(listener, end)  # ...and ends at the last one
    assert time.monotonic() - t0 >= 0.9  # not faster than the trajectory's timing


def test_bad_commands_rejected_node_stays_up(robot):
    proc, _, listener = robot
    before = listener.position()
    upper = iiwa14().upper
    bad = [[0.0] * 6, [float("nan")] * 7, (upper + 0.1).tolist()]
    for data in bad:
        listener.commands.publish(Float64MultiArray(data=data))
    wrong = JointTrajectory(joint_names=["joint_a1"] * 7,
                            points=[JointTrajectoryPoint(positions=[0.0] * 7, time_from_start=Duration(sec=1))])
    listener.trajectory.publish(wrong)
    wait_until(lambda: proc.log().count("rejected") >= 4, 5.0, what="4 rejection log lines")
    log = proc.log()
    assert "expected 7 joint positions, got 6" in log and "must be finite" in log and "outside its limits" in log
    assert "joint_names must name each of" in log
    time.sleep(0.3)
    assert proc.alive()
    np.testing.assert_allclose(listener.position(), before, atol=0.01)  # none of them moved the arm
    with listener.lock:
        n = len(listener.stamps)
    time.sleep(0.2)
    with listener.lock:
        assert len(listener.stamps) > n  # still publishing


def test_robot_description_and_goal_marker(robot):
    _, client, listener = robot
    got = {}
    client.node.create_subscription(String, f"{NS}/{names.ROBOT_DESCRIPTION}", lambda m: got.setdefault("u", m),
                                    LATCHED)  # late joiner: transient local delivers it
    wait_until(lambda: "u" in got, what="robot_description")
    assert "<robot" in got["u"].data
    goal = PointStamped()
    goal.header.frame_id = names.BASE_FRAME
    goal.point.x, goal.point.y, goal.point.z = 0.6, 0.1, 0.4

    def goal_marker():
        listener.goal.publish(goal)
        m = {x.ns: x for x in (listener.markers.markers if listener.markers else [])}
        return "goal" in m and abs(m["goal"].pose.position.x - 0.6) < 1e-9

    wait_until(goal_marker, what="goal marker at the published goal")
    traj = {x.ns: x for x in listener.markers.markers}["ee_trajectory"]
    assert len(traj.points) > 1
