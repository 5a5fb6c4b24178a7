"""controller_node over real rclpy + FastDDS, nodes in their own processes on a private domain.

- a freshly trained SAC Reach artifact drives sim_node (robot mode) to goals given by service and
  by topic; an out-of-workspace goal is rejected; markers arrive in iiwa_link_0;
- `~/enable` false -> not one command is published;
- controller -> robot_interface_node (profile sim, topics remapped onto the sim_node) -> sim_node
  reaches a goal too (the deployment chain of a real arm);
- a controller fed by a test-published joint_states (trajectory interface) holds the last
  position within two control periods when the joint states stop; `~/load_policy` with a bad
  path fails with a reason and the node stays up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

from geometry_msgs.msg import Point, PointStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray

from drl_control.robot import iiwa14
from drl_control.ros import names
from drl_control_interfaces.msg import ControllerStatus
from drl_control_interfaces.srv import LoadPolicy, SetGoal

sys.path.insert(0, str(Path(__file__).parent))
from ros_util import BIN, RosHarness, domain_id, stamp_now  # noqa: E402

FAKE_NS = "/fake"  # second controller, fed by the test's own joint_states
CHAIN_NS = "/chain"  # third controller, behind a robot_interface_node relaying to the sim_node in "/"
CONTROL_DT = 1 / 25.0


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    """A real SAC + HER Reach policy: ~15 s of training, then export (or DRL_CONTROL_TEST_ARTIFACT)."""
    given = os.environ.get("DRL_CONTROL_TEST_ARTIFACT")
    if given:
        return Path(given)
    root = tmp_path_factory.mktemp("artifact")
    train = [str(BIN / "drl-control"), "train", "--algo", "sac", "--env", "DrlControl/IiwaReach-v0",
             "--timesteps", "3000", "--seed", "0", "--out", str(root / "run"), "eval.episodes=5"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(train, check=True, env=env, capture_output=True, timeout=240)
    subprocess.run([str(BIN / "drl-control"), "export", str(root / "run"), str(root / "artifact")],
                   check=True, env=env, capture_output=True, timeout=120)
    return root / "artifact"


@pytest.fixture(scope="module")
def ros(artifact, tmp_path_factory):
    harness = RosHarness(domain_id(29), tmp_path_factory.mktemp("ros_logs"))
    # as in config/stacks/deploy.yaml: the controller owns `markers`, the sim's go to sim_markers
    harness.start("sim_node", "-p", "mode:=robot", "-r", f"{names.MARKERS}:=sim_markers", name="sim_node")
    harness.start("controller_node", "-p", f"artifact:={artifact}", "-p", "autostart:=true", name="controller")
    # SCHED_FIFO (where permitted) so the watchdog timing is not at the mercy of a busy test machine
    harness.start("controller_node", "-r", f"__ns:={FAKE_NS}", "-p", "command_interface:=trajectory",
                  "-p", "realtime_priority:=20",
                  "-p", "goal:=[0.5, 0.0, 0.4]", name="controller_fake")
    harness.start("controller_node", "-r", f"__ns:={CHAIN_NS}", "-p", f"artifact:={artifact}", name="controller_chain")
    # disabled until its test: an enabled relay holds the arm, which would fight the controller in "/"
    harness.start("robot_interface_node", "-r", f"__ns:={CHAIN_NS}", "-p", "profile:=sim",
                  "-p", f"joint_states:=/{names.JOINT_STATES}",
                  "-p", f"position_commands:=/{names.FORWARD_POSITION_COMMANDS}", name="robot_interface_chain")
    try:
        yield harness
    finally:
        harness.close()


def _status(ros, namespace="/"):
    got, sub = ros.collect(ControllerStatus, names.private(namespace, names.CONTROLLER_NODE, names.STATUS))
    return got, sub


def test_reaches_goals_on_robot_mode_sim(ros):
    status, _ = _status(ros)
    markers, _ = ros.collect(MarkerArray, "/" + names.MARKERS)
    commands, _ = ros.collect(Float64MultiArray, "/" + names.FORWARD_POSITION_COMMANDS)
    set_goal = names.private("/", names.CONTROLLER_NODE, names.SET_GOAL)

    # the first call waits for the node processes to come up (long on a loaded machine)
    response = ros.call(SetGoal, set_goal, SetGoal.Request(goal=Point(x=3.0, y=0.0, z=0.4)), timeout=120)
    assert not response.success and "outside the workspace" in response.message

    for goal, via in (([0.5, 0.25, 0.45], "service"), ([0.65, -0.2, 0.3], "topic")):
        if via == "service":
            response = ros.call(SetGoal, set_goal, SetGoal.Request(goal=Point(x=goal[0], y=goal[1], z=goal[2])))
            assert response.success, response.message
        else:
            pub = ros.node.create_publisher(PointStamped, "/" + names.GOAL, 10)
            msg = PointStamped()
            msg.header.frame_id = names.BASE_FRAME
            msg.point = Point(x=goal[0], y=goal[1], z=goal[2])
            assert ros.wait_for(lambda p=pub: p.get_subscription_count() >= 1, 10)
            pub.publish(msg)
        t0 = time.monotonic()

        def reached(goal=goal, t0=t0):
            recent = [m for t, m in status[-5:] if t > t0 + 0.2]
            return len(recent) >= 3 and all(m.state == "running" and m.distance_to_goal < 0.05 for m in recent)

        assert ros.wait_for(reached, 15), (
            f"goal {goal} ({via}) not reached; last status: "
            f"{[(m.state, m.reason, round(m.distance_to_goal, 3)) for _, m in status[-3:]]}\n{ros.logs()}")
    assert len(commands) > 10 and all(len(m.data) == 7 for _, m in commands)
    inference = [m.inference_ms for _, m in status if np.isfinite(m.inference_ms)]
    assert inference and np.median(inference) < 20.0

    def ours(m):
        return any(x.ns.startswith("controller/") for x in m.markers)

    assert ros.wait_for(lambda: any(ours(m) for _, m in markers), 5)
    last = [m for _, m in markers if ours(m)][-1]
    by_ns = {m.ns: m for m in last.markers}
    assert set(by_ns) == {"controller/goal", "controller/ee_path"}
    assert all(m.header.frame_id == names.BASE_FRAME for m in by_ns.values())
    assert len(by_ns["controller/ee_path"].points) > 10
    p = by_ns["controller/goal"].pose.position
    np.testing.assert_allclose([p.x, p.y, p.z], [0.65, -0.2, 0.3])


def test_disabled_publishes_no_commands(ros):
    enable = names.private("/", names.CONTROLLER_NODE, names.ENABLE)
    commands, sub = ros.collect_sent(Float64MultiArray, "/" + names.FORWARD_POSITION_COMMANDS)
    status, _ = _status(ros)
    assert ros.wait_for(lambda: len(commands) > 3, 10), ros.logs()
    assert ros.call(SetBool, enable, SetBool.Request(data=False)).success
    disabled = time.time()  # the controller's send times decide (collect_sent), not arrival
    assert not ros.wait_for(lambda: any(t > disabled for t, _ in commands), 1.0), "commands published while disabled"
    ros.wait_for(lambda: status[-1][1].state == "disabled", 5)
    assert status[-1][1].state == "disabled" and status[-1][1].enabled is False
    count = len(commands)
    assert ros.call(SetBool, enable, SetBool.Request(data=True)).success
    assert ros.wait_for(lambda: len(commands) > count + 3, 5)


def _fake_joint_state(q):
    msg = JointState()
    spec = iiwa14()
    order = [6, 0, 5, 1, 4, 2, 3]  # scrambled order: the controller maps by name
    msg.name = ["some_other_joint"] + [spec.joint_names[i] for i in order]
    msg.position = [0.0] + [float(q[i]) for i in order]
    msg.velocity = [0.0] * 8
    return stamp_now(msg)


def test_load_policy_and_stale_state_hold_with_trajectory_interface(ros, artifact):
    load = names.private(FAKE_NS, names.CONTROLLER_NODE, names.LOAD_POLICY)
    bad = ros.call(LoadPolicy, load, LoadPolicy.Request(artifact_dir="/nonexistent/artifact"))
    assert not bad.success and "not an artifact directory" in bad.message
    good = ros.call(LoadPolicy, load, LoadPolicy.Request(artifact_dir=str(artifact)))
    assert good.success, good.message
    trajectories, _ = ros.collect(JointTrajectory, f"{FAKE_NS}/{names.JOINT_TRAJECTORY}")
    status, _ = _status(ros, FAKE_NS)
    pub = ros.node.create_publisher(JointState, f"{FAKE_NS}/{names.JOINT_STATES}", 10)
    assert ros.wait_for(lambda: pub.get_subscription_count() >= 1, 10)
    enable = names.private(FAKE_NS, names.CONTROLLER_NODE, names.ENABLE)
    # refused until the controller sees our subscription to its command topic (DDS discovery)
    assert ros.wait_for(lambda: ros.call(SetBool, enable, SetBool.Request(data=True)).success, 10), ros.logs()
    q = iiwa14().home.copy()
    for _ in range(100):  # 1 s of joint states at 100 Hz; the arm "follows" the commands exactly
        if trajectories:
            q = np.asarray(trajectories[-1][1].points[0].positions)
        pub.publish(_fake_joint_state(q))
        time.sleep(0.01)
    assert ros.wait_for(lambda: any(m.state == "running" for _, m in status), 2), ros.logs()
    last = trajectories[-1][1]
    assert list(last.joint_names) == list(iiwa14().joint_names) and len(last.points) == 1
    stopped, stopped_wall = time.monotonic(), time.time()
    assert ros.wait_for(lambda: status[-1][0] > stopped and status[-1][1].holding, 2), (
        [(m.state, m.reason) for _, m in status[-3:]])
    held_at = next(t for t, m in status if t > stopped and m.holding)
    held = next(m for t, m in status if t > stopped and m.holding)
    assert "stale joint state" in held.reason
    # decided within two control periods (+ one tick of the timer and transport slack), by the
    # controller's own clock (the status stamp), so this process's scheduling does not count
    decided = held.header.stamp.sec + held.header.stamp.nanosec * 1e-9
    assert decided - stopped_wall < 3 * CONTROL_DT + 0.1, decided - stopped_wall
    ros.wait_for(lambda: sum(t > held_at + 0.05 for t, _ in trajectories) >= 5, 3)
    after = [np.asarray(m.points[0].positions) for t, m in trajectories if t > held_at + 0.05]
    assert after, (f"no command after the hold: {[round(t - stopped, 3) for t, _ in trajectories[-5:]]}, "
                   f"held at {held_at - stopped:.3f}")
    assert all(np.array_equal(a, after[0]) for a in after), "hold position changed"


def test_bad_inputs_are_refused_and_the_node_stays_up(ros):
    status, _ = _status(ros, FAKE_NS)
    pub = ros.node.create_publisher(JointState, f"{FAKE_NS}/{names.JOINT_STATES}", 10)
    goal_pub = ros.node.create_publisher(PointStamped, f"{FAKE_NS}/{names.GOAL}", 10)
    assert ros.wait_for(lambda: pub.get_subscription_count() >= 1 and goal_pub.get_subscription_count() >= 1, 10)
    q = iiwa14().home.copy()
    q[2] = np.nan
    for _ in range(10):
        pub.publish(_fake_joint_state(q))
        time.sleep(0.01)
    missing = JointState(name=["iiwa_joint_1"], position=[0.0])
    pub.publish(missing)
    pub.publish(JointState(name=list(iiwa14().joint_names), position=[0.0] * 3))  # too few positions
    wrong_frame = PointStamped()
    wrong_frame.header.frame_id = "world"
    wrong_frame.point = Point(x=0.5, y=0.0, z=0.4)
    goal_pub.publish(wrong_frame)
    nan_goal = PointStamped()
    nan_goal.point = Point(x=float("nan"), y=0.0, z=0.4)
    goal_pub.publish(nan_goal)
    for _ in range(10):
        pub.publish(_fake_joint_state(q))
        time.sleep(0.01)
    t0 = time.monotonic()
    assert ros.wait_for(lambda: status and status[-1][0] > t0 + 0.1, 3), "controller stopped publishing status"
    last = status[-1][1]
    assert last.holding and "finite" in last.reason, (last.state, last.reason)
    assert all(proc.alive() for proc in ros.procs), ros.logs()


def test_chain_through_robot_interface_reaches_a_goal(ros):
    # the controller in "/" steps aside: only one command source may drive the sim arm
    assert ros.call(SetBool, names.private("/", names.CONTROLLER_NODE, names.ENABLE), SetBool.Request(data=False)).success
    assert ros.call(SetBool, names.private(CHAIN_NS, names.ROBOT_INTERFACE_NODE, names.ENABLE),
                    SetBool.Request(data=True)).success
    status, _ = _status(ros, CHAIN_NS)
    relayed, _ = ros.collect(JointState, f"{CHAIN_NS}/{names.JOINT_STATES}")
    goal = [0.45, -0.3, 0.5]
    response = ros.call(SetGoal, names.private(CHAIN_NS, names.CONTROLLER_NODE, names.SET_GOAL),
                        SetGoal.Request(goal=Point(x=goal[0], y=goal[1], z=goal[2])))
    assert response.success, response.message
    assert ros.call(SetBool, names.private(CHAIN_NS, names.CONTROLLER_NODE, names.ENABLE),
                    SetBool.Request(data=True)).success
    t0 = time.monotonic()

    def reached():
        recent = [m for t, m in status[-5:] if t > t0 + 0.2]
        return len(recent) >= 3 and all(m.state == "running" and m.distance_to_goal < 0.05 for m in recent)

    assert ros.wait_for(reached, 15), (
        f"{[(m.state, m.reason, round(m.distance_to_goal, 3)) for _, m in status[-3:]]}\n{ros.logs()}")
    assert relayed and list(relayed[-1][1].name) == list(iiwa14().joint_names)
