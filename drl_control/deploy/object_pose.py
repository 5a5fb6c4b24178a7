"""The task object's observation parts, rebuilt from a stream of timestamped poses. No ROS.

In the simulator (`sim.tasks.ObjectTask`) the object parts are read from PyBullet each control
step: `object_pos` (base frame, m), `object_rot` (PyBullet's `getEulerFromQuaternion`: roll, pitch,
yaw with R = Rz(yaw) Ry(pitch) Rx(roll), i.e. scipy's extrinsic "xyz"), `object_vel` (m/s) and
`object_ang_vel` (rad/s, base frame), and an object task's achieved_goal is `object_pos`. On a
robot a perception or motion-capture system publishes only poses (position + quaternion, stamped),
so here position and Euler angles are the latest pose's, and the velocities are finite
differences over the pose stamps (the measurement times, not arrival times, so transport jitter
does not enter):

    object_vel     = (p_new - p_ref) / (t_new - t_ref)
    object_ang_vel = rotvec(R_new R_ref^T) / (t_new - t_ref)     (base frame, as PyBullet's)

The reference pose is the newest one at least half a training control period older than the
newest (`min_span`, 20 ms at 25 Hz). Poses at the control rate are differenced with their
predecessor; a faster stream (motion capture at 100-250 Hz) is differenced over that span instead
of between consecutive poses, which would multiply the measurement noise by the stream's rate.
There is no other filter: a filter's lag is a state the policy never saw in training.

A difference is the MEAN velocity over its span (exactly, for PyBullet's integrator: the mean of
the linear velocities after each physics step, and the physics steps' rotations composed), where
the sim hands the policy the velocity at the step's end. They agree while the object rests or
slides steadily; across an impact (the pusher striking the cube) they differ by up to the
velocity change within the span. tests/test_deploy_object_pose.py checks both on a scripted
pushing episode: the mean to a relative 1e-5 (a wall-clock stamp in float seconds resolves
0.24 us, 6e-6 of 40 ms), and the difference to the end velocity, measured there at up to
0.09 m/s and 4.5 rad/s (the cube tumbling at the impacts; asserted below 0.15 m/s and 6 rad/s).
Orientation jumps of a symmetric object (a perception system flipping the cube's pose by 90 deg)
show up as angular velocity spikes: no rule here catches them.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Sequence

import numpy as np
from scipy.spatial.transform import Rotation

OBJECT_PARTS = ("object_pos", "object_rot", "object_vel", "object_ang_vel")
QUATERNION_NORM_TOLERANCE = 0.01  # a unit quaternion as published in float32 or rounded; beyond: corrupt


def pose_problem(frame_id: str, position: Sequence[float], quaternion: Sequence[float], base_frame: str) -> str:
    """Why a pose (geometry_msgs/Pose fields, quaternion x, y, z, w) cannot be used ("" when it can).

    Only the base frame is accepted: this package does no tf lookups, and an object pose in another
    frame read as the base frame would steer the arm to the wrong place."""
    frame = frame_id.lstrip("/")
    if frame != base_frame:
        return f"object pose frame {frame_id!r} is not the base frame {base_frame!r} (no tf here)"
    values = [*position, *quaternion]
    if len(position) != 3 or len(quaternion) != 4 or not all(math.isfinite(v) for v in values):
        return f"object pose is not 3 + 4 finite numbers: {list(position)}, {list(quaternion)}"
    norm = math.sqrt(sum(v * v for v in quaternion))
    if abs(norm - 1.0) > QUATERNION_NORM_TOLERANCE:
        return f"object orientation is not a unit quaternion (norm {norm:.4g})"
    return ""


class ObjectPoseTracker:
    """Accepted poses -> the object's observation parts (see the module doc)."""

    def __init__(self, min_span: float) -> None:
        if not min_span > 0:
            raise ValueError(f"min_span must be positive, got {min_span}")
        self.min_span = float(min_span)
        self._poses: collections.deque[tuple[float, np.ndarray, Rotation]] = collections.deque()

    @property
    def latest_stamp(self) -> float:
        return self._poses[-1][0] if self._poses else -math.inf

    def add(self, stamp: float, position: Sequence[float], quaternion: Sequence[float]) -> str:
        """Take a checked pose (`pose_problem`); "" or why it is refused (a stamp not after the last)."""
        if stamp <= self.latest_stamp:
            return f"object pose stamp {stamp:.3f} is not after the last one ({self.latest_stamp:.3f})"
        rotation = Rotation.from_quat(np.asarray(quaternion, dtype=float))  # normalizes
        self._poses.append((float(stamp), np.asarray(position, dtype=float).copy(), rotation))
        # keep the newest pose old enough to difference against, and everything after it
        while len(self._poses) > 2 and self._poses[1][0] <= stamp - self.min_span:
            self._poses.popleft()
        return ""

    def reference(self) -> tuple[float, np.ndarray, Rotation] | None:
        """The pose the velocities are differenced against, or None while no pose is old enough."""
        if not self._poses or self._poses[0][0] > self.latest_stamp - self.min_span:
            return None
        return self._poses[0]

    def parts(self) -> dict[str, np.ndarray] | None:
        """{object_pos, object_rot, object_vel, object_ang_vel}, or None until the poses span `min_span`."""
        ref = self.reference()
        if ref is None:
            return None
        t1, p1, r1 = self._poses[-1]
        t0, p0, r0 = ref
        dt = t1 - t0
        return {
            "object_pos": p1.copy(),
            "object_rot": r1.as_euler("xyz"),
            "object_vel": (p1 - p0) / dt,
            "object_ang_vel": (r1 * r0.inv()).as_rotvec() / dt,
        }

    def waiting_reason(self) -> str:
        if not self._poses:
            return "no object pose received yet"
        return f"waiting for object poses spanning {self.min_span * 1e3:.0f} ms (velocity by finite difference)"
