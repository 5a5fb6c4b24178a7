"""controller_node's `object_pose` input (geometry_msgs/PoseStamped in iiwa_link_0, from perception
or motion capture): subscribed only while the loaded policy observes an object, so a Reach policy
needs no perception stream running. The pose's rules (frame, stamp age, speed) are the core's
(deploy.object_pose via PolicyController.observe_object_pose); this only converts and logs."""

from __future__ import annotations

import time
from typing import Any

from geometry_msgs.msg import PoseStamped

from drl_control.ros import names
from drl_control.ros.conversions import duration_to_sec


class ObjectPoseInput:
    def __init__(self, node: Any) -> None:
        self.node = node
        self.core: Any = None  # the PolicyController the poses go to
        self._sub: Any = None

    def follow(self, core: Any) -> None:
        """A new policy is in charge: subscribe if it observes an object, else stop listening."""
        self.core = core
        if core.observes_object and self._sub is None:
            self._sub = self.node.create_subscription(PoseStamped, names.OBJECT_POSE, self._on_pose, 10)
        elif not core.observes_object and self._sub is not None:
            self.node.destroy_subscription(self._sub)
            self._sub = None

    def _on_pose(self, msg: PoseStamped) -> None:
        now, wall = time.monotonic(), time.time()
        core = self.core
        if core is None or not core.observes_object:
            return
        p, o = msg.pose.position, msg.pose.orientation
        problem = core.observe_object_pose(msg.header.frame_id, [p.x, p.y, p.z], [o.x, o.y, o.z, o.w],
                                           duration_to_sec(msg.header.stamp), now, wall)
        if problem:  # not accepted: the core keeps the last accepted pose and holds once it is stale
            self.node.get_logger().warning(f"object_pose refused ({core.object_gate.rejected} so far): {problem}",
                                           throttle_duration_sec=1.0)
