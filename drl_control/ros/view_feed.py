"""`drl-control view` live: a thin subscriber feeding the browser view (drl_control.viz) from a running
stack's topics: `joint_states` (the arm), `goal` (PointStamped) and `markers` (a marker whose
namespace ends in "goal" or "object" places the goal or the object). The end-effector path is the
flange through the URDF's kinematics over the last `path_length` joint states."""

from __future__ import annotations

import collections
import sys
import threading
from typing import Any

import numpy as np

from drl_control.robot.links import link_poses
from drl_control.ros import names


class LiveFeed:
    """Subscriptions in their own rclpy context (`domain_id`: None = ROS_DOMAIN_ID) driving `view`."""

    def __init__(self, view: Any, *, namespace: str = "/", path_length: int = 500,
                 domain_id: int | None = None) -> None:
        import rclpy
        from geometry_msgs.msg import PointStamped
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import JointState
        from visualization_msgs.msg import MarkerArray

        self.view = view
        self.goal: list[float] | None = None
        self.object: list[float] | None = None
        self.path: collections.deque = collections.deque(maxlen=path_length)
        self.context = rclpy.Context()
        kwargs = {} if domain_id is None else {"domain_id": domain_id}
        rclpy.init(args=[], context=self.context, **kwargs)
        self.node = rclpy.create_node("drl_control_view", namespace=namespace, context=self.context)
        self.node.create_subscription(JointState, names.JOINT_STATES, self._on_joints, 10)
        self.node.create_subscription(PointStamped, names.GOAL, self._on_goal, 10)
        self.node.create_subscription(MarkerArray, names.MARKERS, self._on_markers, 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def _on_joints(self, msg: Any) -> None:
        if len(msg.position) != len(msg.name) or not np.all(np.isfinite(msg.position)):
            return  # a malformed state is not drawn; the next valid one is
        joints = dict(zip(msg.name, msg.position))
        self.path.append(link_poses(joints)["iiwa_link_ee"][:3, 3])
        self.view.show(joints, self.goal, self.object, np.array(self.path))

    def _on_goal(self, msg: Any) -> None:
        self.goal = [msg.point.x, msg.point.y, msg.point.z]

    def _on_markers(self, msg: Any) -> None:
        for marker in msg.markers:
            for key in ("goal", "object"):
                if marker.ns.endswith(key):
                    p = marker.pose.position
                    setattr(self, key, [p.x, p.y, p.z] if marker.action == 0 else None)

    def spin(self, stop: threading.Event) -> None:
        import rclpy

        try:
            while not stop.is_set() and rclpy.ok(context=self.context):
                self.executor.spin_once(timeout_sec=0.1)
        finally:
            self.executor.shutdown()
            self.node.destroy_node()
            rclpy.try_shutdown(context=self.context)


def view_live(*, host: str, port: int, namespace: str = "/", path_length: int = 500) -> None:
    """Serve the live view until Ctrl-C."""
    from drl_control.viz.view import SceneView

    view = SceneView(host=host, port=port)
    feed = LiveFeed(view, namespace=namespace, path_length=path_length)
    print(f"view: {view.url} (live from {feed.node.get_namespace()} topics; Ctrl-C stops)", file=sys.stderr,
          flush=True)
    try:
        feed.spin(threading.Event())
    finally:
        view.stop()
