"""controller_node with an object task over real rclpy + FastDDS, in its own process: the probe plays
the arm (joint_states) and the perception system (object_pose, geometry_msgs/PoseStamped).

- `object_pose` is subscribed only while the loaded policy observes an object: not before a Push
  policy is loaded by `~/load_policy`, and no longer after a Reach policy replaces it;
- a PickAndPlace policy (gripper action) is refused, naming the driver profile;
- commands flow while the pose is fresh; when the poses stop the controller holds (the same
  position, still sent) with "stale object pose" on `~/status`; a pose in another frame is refused,
  naming both frames, and ends in the same hold; correct poses resume the policy.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

from artifact_util import untrained_artifact  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from ros_util import RosHarness, domain_id, stamp_now, wait_until  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from std_srvs.srv import SetBool  # noqa: E402

from drl_control.robot import iiwa14  # noqa: E402
from drl_control.ros import names  # noqa: E402
from drl_control_interfaces.msg import ControllerStatus  # noqa: E402
from drl_control_interfaces.srv import LoadPolicy  # noqa: E402

OBJECT = [0.6, 0.0, 0.02]  # on the table, where Push's cube lies


class _Feeder:
    """Publishes the arm's joint states (home, stamped) and, while `frame` is set, the object's pose
    at 100 Hz from a thread of its own: the stream goes on whatever the test thread waits for."""

    def __init__(self, node) -> None:
        self.joints = node.create_publisher(JointState, "/" + names.JOINT_STATES, 10)
        self.poses = node.create_publisher(PoseStamped, "/" + names.OBJECT_POSE, 10)
        self.frame: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        spec = iiwa14()
        while not self._stop.wait(0.01):
            self.joints.publish(stamp_now(JointState(name=list(spec.joint_names), position=spec.home.tolist(),
                                                     velocity=[0.0] * 7)))
            frame = self.frame
            if frame is not None:
                msg = PoseStamped()
                msg.header.frame_id = frame
                msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = OBJECT
                msg.pose.orientation.w = 1.0
                self.poses.publish(stamp_now(msg))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.fixture(scope="module")
def ros(tmp_path_factory):
    harness = RosHarness(domain_id(47), tmp_path_factory.mktemp("ros_logs"))
    # stale_periods:=10: a starved probe's joint states must not be what this module sees hold
    harness.start("controller_node", "-p", "profile:=sim", "-p", "goal:=[0.6, 0.1, 0.02]",
                  "-p", "stale_periods:=10.0", name="controller")
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    """Exported untrained SAC policies: they move the arm, which is all these checks need."""
    root = tmp_path_factory.mktemp("art")
    return {task: untrained_artifact(f"DrlControl/Iiwa{task}-v0", root / task)
            for task in ("Push", "PickAndPlace", "Reach")}


def _since(status, t0):
    return [m for t, m in status if t > t0]


def test_object_pose_stream_drives_and_holds_the_controller(ros, artifacts):
    status, _ = ros.collect(ControllerStatus, names.private("/", names.CONTROLLER_NODE, names.STATUS))
    commands, _ = ros.collect(Float64MultiArray, "/" + names.FORWARD_POSITION_COMMANDS)
    feeder = _Feeder(ros.node)
    try:
        wait_until(lambda: status, 30, what=f"the controller's status\n{ros.logs()}")
        assert feeder.poses.get_subscription_count() == 0  # no policy: no perception consumer
        load = names.private("/", names.CONTROLLER_NODE, names.LOAD_POLICY)
        pick = ros.call(LoadPolicy, load, LoadPolicy.Request(artifact_dir=str(artifacts["PickAndPlace"])))
        assert not pick.success and "gripper" in pick.message and "driver profile 'sim'" in pick.message, pick.message
        push = ros.call(LoadPolicy, load, LoadPolicy.Request(artifact_dir=str(artifacts["Push"])))
        assert push.success, push.message
        ros.wait_matched(feeder.poses)  # subscribed now that the policy observes an object

        enable = names.private("/", names.CONTROLLER_NODE, names.ENABLE)
        assert ros.wait_for(lambda: ros.call(SetBool, enable, SetBool.Request(data=True)).success, 15), ros.logs()
        t0 = time.monotonic()
        wait_until(lambda: any(m.holding and "no object pose received yet" in m.reason for m in _since(status, t0)),
                   10, what=f"the hold without object poses\n{ros.logs()}")

        feeder.frame = names.BASE_FRAME
        t0 = time.monotonic()
        wait_until(lambda: sum(m.state == "running" for m in _since(status, t0)) >= 10, 15,
                   what=f"the policy running on fresh poses: {[m.reason for m in _since(status, t0)][-3:]}")
        running = next(m for m in reversed(_since(status, t0)) if m.state == "running")
        assert abs(running.distance_to_goal - 0.1) < 1e-6  # the object's distance to the goal
        assert sum(t > t0 for t, _ in commands) >= 10

        feeder.frame = None  # perception stops; joint states go on
        stopped = time.monotonic()
        wait_until(lambda: any(m.holding and "stale object pose" in m.reason for m in _since(status, stopped)),
                   5, what=f"the stale-pose hold: {[m.reason for m in _since(status, stopped)][-3:]}")
        held_at = next(t for t, m in status if t > stopped and m.holding)
        assert held_at - stopped > 0.2  # not before the 0.25 s timeout (less the probe's own latency)
        wait_until(lambda: sum(t > held_at + 0.05 for t, _ in commands) >= 5, 5, what="commands after the hold")
        held = [np.asarray(m.data) for t, m in commands if t > held_at + 0.05]
        assert all(np.array_equal(h, held[0]) for h in held), "the hold position changed"

        feeder.frame = "world"
        t0 = time.monotonic()
        wait_until(lambda: any("object pose frame 'world' is not the base frame 'iiwa_link_0'" in m.reason
                               for m in _since(status, t0)), 5, what=f"the frame refusal\n{ros.logs()}")
        assert all(m.holding for m in _since(status, t0) if "'world'" in m.reason)
        wait_until(lambda: "object pose frame 'world' is not the base frame 'iiwa_link_0'" in ros.logs(), 5,
                   what="the refusal in the controller's log")

        feeder.frame = names.BASE_FRAME
        t0 = time.monotonic()
        wait_until(lambda: sum(m.state == "running" for m in _since(status, t0)) >= 3, 10,
                   what=f"the policy running again: {[m.reason for m in _since(status, t0)][-3:]}")

        reach = ros.call(LoadPolicy, load, LoadPolicy.Request(artifact_dir=str(artifacts["Reach"])))
        assert reach.success, reach.message
        wait_until(lambda: feeder.poses.get_subscription_count() == 0, 10,
                   what="object_pose unsubscribed once a Reach policy is in charge")
        assert all(proc.alive() for proc in ros.procs), ros.logs()
    finally:
        feeder.stop()
