"""Recording on the robot path and replaying it: controller_node -p record:=F.mcap driving sim_node
(robot mode) writes what it received and sent; `drl-control replay` publishes the file onto live
topics of another ROS domain. Files are read back by the mcap package, not by our reader."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from artifact_util import untrained_artifact
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from ros_util import BIN, NodeProcess, RosClient, RosHarness, domain_id, ros_env, wait_for, wait_until

from drl_control.robot import kinematics
from drl_control.ros import names

ENV = "DrlControl/IiwaReach-v0"


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    """An exported (untrained) SAC Reach policy: it moves the arm, which is all recording needs."""
    return untrained_artifact(ENV, tmp_path_factory.mktemp("art") / "policy")


@pytest.fixture(scope="module")
def recordings(artifact, tmp_path_factory) -> tuple[Path, Path]:
    """~2 s of controller_node driving the robot-mode sim, both recording, then stopped by SIGINT."""
    from drl_control_interfaces.msg import ControllerStatus

    path = tmp_path_factory.mktemp("rec") / "controller.mcap"
    sim_path = path.with_name("sim.mcap")
    harness = RosHarness(domain_id(61), tmp_path_factory.mktemp("ros_logs"))
    try:
        sim = harness.start("sim_node", "-p", "mode:=robot", "-r", f"{names.MARKERS}:=sim_markers",
                            "-p", f"record:={sim_path}", name="sim_node")
        controller = harness.start("controller_node", "-p", f"artifact:={artifact}", "-p", "autostart:=true",
                                   "-p", "goal:=[0.55, 0.1, 0.4]", "-p", f"record:={path}", name="controller")
        status, _ = harness.collect(ControllerStatus, names.private("/", names.CONTROLLER_NODE, names.STATUS))
        wait_until(lambda: sum(m.state == "running" for _, m in status) >= 50, 90,
                   what=f"2 s of the controller running\n{harness.logs()}")
        assert controller.stop(timeout=15) == 0, harness.logs()
        assert sim.stop(timeout=15) == 0, harness.logs()
    finally:
        harness.close()
    return path, sim_path


@pytest.fixture(scope="module")
def recorded(recordings) -> Path:
    return recordings[0]


def by_topic(path: Path) -> tuple[list, dict[str, list]]:
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        assert reader.get_summary() is not None, "closed with its index on SIGINT"
        messages = list(reader.iter_decoded_messages(log_time_order=False))
    out: dict[str, list] = {}
    for _, channel, message, decoded in messages:
        out.setdefault(channel.topic, []).append((message.log_time, decoded))
    return messages, out


def test_controller_node_records_what_it_received_and_sent(recorded: Path) -> None:
    messages, topics = by_topic(recorded)
    assert messages[0][1].topic == "/robot_description"
    assert {m[0].name for m in messages} >= {"sensor_msgs/msg/JointState", "tf2_msgs/msg/TFMessage",
                                             "std_msgs/msg/Float64MultiArray",
                                             "drl_control_interfaces/msg/ControllerStatus",
                                             "visualization_msgs/msg/MarkerArray"}
    times = [m[2].log_time for m in messages]
    assert times == sorted(times)
    assert len(topics["/forward_position_controller/commands"]) >= 40
    assert len(topics["/joint_states"]) >= 40 and len(topics["/tf"]) == len(topics["/joint_states"])
    states = [m.state for _, m in topics["/controller_node/status"]]
    assert states.count("running") >= 50
    assert all(len(m.data) == 7 for _, m in topics["/forward_position_controller/commands"])
    for (_, js), (_, tf) in zip(topics["/joint_states"][::10], topics["/tf"][::10]):
        q = dict(zip(js.name, js.position))
        transforms = {t.child_frame_id: t for t in tf.transforms}
        p = np.zeros(3)
        link = "iiwa_link_ee"
        rot = np.eye(3)
        chain = []
        while link != "iiwa_link_0":
            chain.append(transforms[link])
            link = transforms[link].header.frame_id
        for t in reversed(chain):  # base -> flange
            x, y, z, w = (t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z,
                          t.transform.rotation.w)
            r = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                          [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                          [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
            tr = t.transform.translation
            p = p + rot @ np.array([tr.x, tr.y, tr.z])
            rot = rot @ r
        joints = np.array([q[f"iiwa_joint_{i}"] for i in range(1, 8)])
        np.testing.assert_allclose(p, kinematics.forward(joints)[:3, 3], atol=2e-3)
    goal = [m for _, arr in topics["/markers"] for m in arr.markers if m.ns == "record/goal"][-1].pose.position
    np.testing.assert_allclose([goal.x, goal.y, goal.z], [0.55, 0.1, 0.4])


def test_unwritable_record_path_stops_the_node_with_one_line(tmp_path: Path) -> None:
    node = NodeProcess("controller_node", domain_id(62), ["-p", "record:=/proc/no/such/dir/x.mcap"],
                       log=tmp_path / "controller.log")
    assert node.wait(timeout=60) == 2, node.log()
    lines = [line for line in node.log().splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith("controller_node: error: cannot record to"), node.log()


def test_replay_publishes_the_recording_on_live_topics(recorded: Path) -> None:
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import JointState
    from std_msgs.msg import String
    from tf2_msgs.msg import TFMessage

    _, topics = by_topic(recorded)
    domain = domain_id(63)
    probe = RosClient(domain, "replay_probe")
    try:
        joints, _ = probe.collect(JointState, "/joint_states", qos=1000)
        tfs, _ = probe.collect(TFMessage, "/tf", qos=1000)
        clock, _ = probe.collect(Clock, "/clock", qos=1000)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        description: list = []
        probe.node.create_subscription(String, "/robot_description", description.append, latched)
        span = (max(t for v in topics.values() for t, _ in v) - min(t for v in topics.values() for t, _ in v)) * 1e-9
        t0 = time.monotonic()
        run = subprocess.run([str(BIN / "drl-control"), "replay", str(recorded), "--rate", "8", "--wait", "30"],
                             env=ros_env(domain), capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert time.monotonic() - t0 >= span / 8 * 0.9, "played at the recording's pace / rate"
        assert probe.wait_for(lambda: len(joints) >= len(topics["/joint_states"]), 10), (len(joints), run.stdout)
    finally:
        probe.close()
    assert len(tfs) == len(topics["/tf"])
    assert description and '<robot name="iiwa14">' in description[0].data
    sent = [m.position.tolist() if hasattr(m.position, "tolist") else list(m.position) for _, m in joints]
    np.testing.assert_allclose(sent, [list(m.position) for _, m in topics["/joint_states"]])
    first = topics["/joint_states"][0][0]
    assert clock and clock[0][1].clock.sec * 10**9 + clock[0][1].clock.nanosec <= first + 10**9


def test_sim_node_robot_mode_records_the_arm_and_the_commands_it_received(recordings) -> None:
    controller_file, sim_file = recordings
    _, sent = by_topic(controller_file)
    messages, topics = by_topic(sim_file)
    assert messages[0][1].topic == "/robot_description"
    times = [m[2].log_time for m in messages]
    assert times == sorted(times)
    received = topics["/forward_position_controller/commands"]
    # what the controller sent (to the sim, the only source of its joint states), the sim received
    sent_data = [list(m.data) for _, m in sent["/forward_position_controller/commands"]]
    got = [list(m.data) for _, m in received]
    assert all(g in sent_data for g in got) and len(got) >= 0.9 * len(sent_data), (len(got), len(sent_data))
    states = topics["/joint_states"]
    rate = (len(states) - 1) / ((states[-1][0] - states[0][0]) * 1e-9)
    assert 10 < rate <= 51, f"robot mode publishes at 250 Hz, recorded at most 50 Hz; got {rate:.0f} Hz"
    assert len(topics["/tf"]) == len(states) and topics["/markers"]


def test_live_view_follows_the_topics(recorded: Path) -> None:
    """`drl-control view` live: the replayed recording drives the viewer's scene through ROS."""
    import socket
    import threading

    from drl_control.ros.view_feed import LiveFeed
    from drl_control.viz.view import SceneView

    _, topics = by_topic(recorded)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    domain = domain_id(64)
    view = SceneView(port=port)
    feed = LiveFeed(view, domain_id=domain)
    stop = threading.Event()
    thread = threading.Thread(target=feed.spin, args=(stop,), daemon=True)
    thread.start()
    try:
        run = subprocess.run([str(BIN / "drl-control"), "replay", str(recorded), "--rate", "2", "--wait", "30"],
                             env=ros_env(domain), capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        last = topics["/joint_states"][-1][1]
        assert wait_for(lambda: len(feed.path) >= 0.9 * len(topics["/joint_states"]), 10), len(feed.path)
        wait_until(lambda: np.allclose([view.positions[n] for n in last.name], last.position), 10,
                   what="the viewer at the last joint state")
        q = np.array([view.positions[f"iiwa_joint_{i}"] for i in range(1, 8)])
        ee = view.scene_link_poses()["iiwa_link_ee"][:3, 3]
        np.testing.assert_allclose(ee, kinematics.forward(q)[:3, 3], atol=2e-3)
        assert feed.goal is not None and view.goal.visible
        np.testing.assert_allclose(view.goal.position, [0.55, 0.1, 0.4], atol=1e-6)
    finally:
        stop.set()
        thread.join(5)
        view.stop()
