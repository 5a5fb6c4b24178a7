"""robot_interface_node over real rclpy + FastDDS, each node in its own process on a private domain.

- profile `sim` against sim_node in robot mode standing in for the driver (under /sim_robot):
  our commands move the arm, the driver's joint_states come back on our side;
- profile `lbr` with the test as the driver: lbr_A* states (scrambled, with an extra joint) are
  renamed/reordered to iiwa_joint_*, our commands reach /lbr/forward_position_controller/commands;
  `~/enable` false sends nothing; stale driver states -> hold;
- profile `iiwa_ros2` in dry-run: the trajectory goes to ~/dry_run/joint_trajectory with joint_a*
  names and nothing (not even a publisher) exists on the driver's topic.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from drl_control.deploy.profiles import load_profiles
from drl_control.robot import iiwa14
from drl_control.ros import names

sys.path.insert(0, str(Path(__file__).parent))
from ros_util import RosHarness, domain_id, stamp_now  # noqa: E402

SPEC = iiwa14()
HOME = SPEC.home
OURS = list(SPEC.joint_names)
PROFILES = load_profiles()


@pytest.fixture(scope="module")
def ros(tmp_path_factory):
    h = RosHarness(domain_id(53), tmp_path_factory.mktemp("ros_logs"))
    h.start("sim_node", "-r", "__ns:=/sim_robot", "-p", "mode:=robot", name="sim_node")
    h.start("robot_interface_node", "-r", "__ns:=/drl_sim", "-p", "profile:=sim", "-p", "autostart:=true",
            name="ri_sim")
    h.start("robot_interface_node", "-r", "__ns:=/drl_lbr", "-p", "profile:=lbr", "-p", "autostart:=true",
            name="ri_lbr")
    h.start("robot_interface_node", "-r", "__ns:=/drl_iiwa", "-p", "profile:=iiwa_ros2", "-p", "dry_run:=true",
            "-p", "autostart:=true", name="ri_iiwa")
    try:
        yield h
    finally:
        h.close()


def test_profiles_file_names_both_driver_stacks():
    assert PROFILES["lbr"].joint_names == tuple(f"lbr_A{i}" for i in range(1, 8))
    assert PROFILES["lbr"].position_commands == "/lbr/forward_position_controller/commands"
    assert PROFILES["lbr"].joint_trajectory == "/lbr/joint_trajectory_controller/joint_trajectory"
    assert PROFILES["iiwa_ros2"].joint_names == tuple(f"joint_a{i}" for i in range(1, 8))
    assert PROFILES["sim"].joint_names == tuple(OURS)


def test_sim_profile_drives_robot_mode_sim_node(ros):
    states, _ = ros.collect(JointState, "/drl_sim/" + names.JOINT_STATES)
    driver, _ = ros.collect(JointState, "/sim_robot/" + names.JOINT_STATES)
    pub = ros.publisher(Float64MultiArray, "/drl_sim/" + names.FORWARD_POSITION_COMMANDS)
    assert ros.wait_for(lambda: driver and states, 30), f"no joint states from sim_node via the relay\n{ros.logs()}"
    target = HOME + np.array([0.3, -0.1, 0.2, 0.15, -0.2, 0.1, 0.3])

    def arrived():
        return np.max(np.abs(np.asarray(driver[-1][1].position) - target)) < 0.02

    end = time.monotonic() + 20.0
    while time.monotonic() < end and not arrived():  # the controller's role: command the target at 25 Hz
        pub.publish(Float64MultiArray(data=target.tolist()))
        time.sleep(0.04)
    ros.wait_for(lambda: np.allclose(states[-1][1].position, driver[-1][1].position, atol=0.05), 2.0)
    assert states and list(states[-1][1].name) == OURS
    q = np.asarray(driver[-1][1].position)
    np.testing.assert_allclose(q, target, atol=0.02, err_msg=ros.logs())
    np.testing.assert_allclose(states[-1][1].position, driver[-1][1].position, atol=0.05)


def test_lbr_profile_maps_names_both_ways(ros):
    relayed, _ = ros.collect(JointState, "/drl_lbr/" + names.JOINT_STATES)
    # what reached the driver, with the robot interface's own send times (see collect_sent)
    sent, _ = ros.collect_sent(Float64MultiArray, PROFILES["lbr"].position_commands)
    driver_pub = ros.publisher(JointState, PROFILES["lbr"].joint_states)
    cmd_pub = ros.publisher(Float64MultiArray, "/drl_lbr/" + names.FORWARD_POSITION_COMMANDS)
    order = [3, 0, 6, 1, 5, 2, 4]
    target = HOME + 0.01 * np.arange(1, 8)

    def driver_state(q):
        msg = JointState()
        msg.name = ["lbr_gripper"] + [f"lbr_A{i + 1}" for i in order]
        msg.position = [0.5] + [float(q[i]) for i in order]
        msg.velocity = [0.0] * 8
        msg.effort = [float(i) for i in range(8)]
        return stamp_now(msg)

    def drive(command, until, timeout=15.0):
        """Be the driver (100 Hz, following the last command exactly) and our controller (25 Hz)
        until `until()` or `timeout`."""
        q, end, i = HOME.copy(), time.monotonic() + timeout, 0
        while time.monotonic() < end and not until():
            if sent:
                q = np.asarray(sent[-1][1].data)
            driver_pub.publish(driver_state(q))
            if command is not None and i % 4 == 0:
                cmd_pub.publish(Float64MultiArray(data=command.tolist()))
            i += 1
            time.sleep(0.01)

    drive(target, lambda: sent and relayed and np.allclose(sent[-1][1].data, target, atol=1e-9))
    assert relayed, ros.logs()
    last = relayed[-1][1]
    assert list(last.name) == OURS
    np.testing.assert_allclose(last.effort, [1 + order.index(i) for i in range(7)])
    assert sent and all(len(m.data) == 7 for _, m in sent)
    np.testing.assert_allclose(sent[-1][1].data, target, atol=1e-9, err_msg=ros.logs())

    # e-stop: once ~/enable false has answered, nothing is sent to the driver, though our
    # controller keeps commanding (another target) and the driver keeps reporting
    enable = names.private("/drl_lbr", names.ROBOT_INTERFACE_NODE, names.ENABLE)
    assert ros.call(SetBool, enable, SetBool.Request(data=False)).success
    disabled = time.time()
    drive(target + 0.05, lambda: False, timeout=0.5)
    assert not ros.wait_for(lambda: any(t > disabled for t, _ in sent), 1.0), \
        f"commands reached the driver while disabled: {[m.data for t, m in sent if t > disabled][:3]}"

    # stale driver state -> the relay holds the last safe position
    assert ros.call(SetBool, enable, SetBool.Request(data=True)).success
    enabled = time.time()
    drive(target + 0.05, lambda: sum(t > enabled for t, _ in sent) >= 10)
    stopped = time.time()  # states and commands stop: the relay holds (stale state, command timeout)
    assert ros.wait_for(lambda: sum(t > stopped + 0.2 for t, _ in sent) >= 5, 10), ros.logs()
    late = [np.asarray(m.data) for t, m in sent if t > stopped + 0.2]
    assert late and all(np.array_equal(a, late[0]) for a in late)


def test_iiwa_ros2_dry_run_sends_nothing(ros):
    profile = PROFILES["iiwa_ros2"]
    dry, _ = ros.collect(JointTrajectory, names.private("/drl_iiwa", names.ROBOT_INTERFACE_NODE,
                                                        "~/dry_run/joint_trajectory"))
    real, _ = ros.collect(JointTrajectory, profile.joint_trajectory)
    relayed, _ = ros.collect(JointState, "/drl_iiwa/" + names.JOINT_STATES)
    driver_pub = ros.publisher(JointState, profile.joint_states)
    cmd_pub = ros.publisher(JointTrajectory, "/drl_iiwa/" + names.JOINT_TRAJECTORY)
    target = HOME - 0.02
    order = [6, 5, 4, 3, 2, 1, 0]

    def arrived():
        return dry and np.allclose(dry[-1][1].points[0].positions, [target[i] for i in range(7)], atol=1e-9)

    end, i = time.monotonic() + 15.0, 0
    while time.monotonic() < end and not (arrived() and relayed):
        driver_pub.publish(stamp_now(JointState(name=list(profile.joint_names), position=HOME.tolist())))
        i += 1
        if i % 4 == 1:
            msg = JointTrajectory(joint_names=[OURS[i] for i in order])
            msg.points = [JointTrajectoryPoint(positions=[float(target[i]) for i in order])]
            cmd_pub.publish(msg)
        time.sleep(0.01)
    assert relayed and list(relayed[-1][1].name) == OURS
    assert dry, ros.logs()
    last = dry[-1][1]
    assert list(last.joint_names) == list(profile.joint_names)
    np.testing.assert_allclose(last.points[0].positions, target, atol=1e-9)
    assert not real
    assert ros.node.count_publishers(profile.joint_trajectory) == 0
