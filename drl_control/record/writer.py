"""Recording a robot run as a rosbag2-compatible MCAP file, without ROS installed.

What a ROS user expects in a bag of an arm (and what rviz/Foxglove need to draw it):
`/robot_description` (std_msgs/String, the URDF; first message in the file), `/joint_states`,
`/tf` (every URDF link from iiwa_link_0, by robot/links.py, plus the object where there is one),
`/markers` (goal sphere, end-effector path, object), the commands sent and the controller's status.
Every timestamp comes from one clock, the caller's: wall time on a robot, start + simulated time in
an evaluation.

Why not mcap_ros2.writer.Writer: it cannot set a channel's metadata (rosbag2's
`offered_qos_profiles`); its CDR encoder is used as is. Chunks are small (64 KiB) and the mcap
writer flushes the file as each fills, so a process killed mid-recording leaves a file that reads up
to its last chunk (a few seconds at most at 25 Hz); `close()` writes the index.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mcap.well_known import MessageEncoding, Profile, SchemaEncoding
from mcap.writer import CompressionType, Writer
from mcap_ros2._dynamic import serialize_dynamic

from drl_control.errors import UserError
from drl_control.record.definitions import full_definition
from drl_control.robot.description import arm_urdf_path
from drl_control.robot.links import joint_transforms, link_poses
from drl_control.ros import names  # pure strings (no rclpy): the one source of topic names

BASE_FRAME = names.BASE_FRAME
OBJECT_FRAME = "object"
FLANGE_LINK = "iiwa_link_ee"
CHUNK_SIZE = 64 * 1024
# Nodes record the arm at most every 20 ms of the recording's clock (50 Hz; rviz interpolates TF):
# a joint state with its tf costs ~1-1.7 ms through the pure-Python CDR encoder (measured under load
# on 2 cores), and robot mode and the real arm's drivers publish 100-250 Hz into a real-time node.
NODE_STATE_PERIOD = 0.02

# Topics of a recording (absolute names, as `ros2 bag record` would store them).
TOPICS = {
    "robot_description": ("/" + names.ROBOT_DESCRIPTION, "std_msgs/msg/String"),
    "joint_states": ("/" + names.JOINT_STATES, "sensor_msgs/msg/JointState"),
    "tf": ("/tf", "tf2_msgs/msg/TFMessage"),
    "markers": ("/" + names.MARKERS, "visualization_msgs/msg/MarkerArray"),
    "position_command": ("/" + names.FORWARD_POSITION_COMMANDS, "std_msgs/msg/Float64MultiArray"),
    "trajectory_command": ("/" + names.JOINT_TRAJECTORY, "trajectory_msgs/msg/JointTrajectory"),
    "controller_status": (names.private("/", names.CONTROLLER_NODE, names.STATUS),
                          "drl_control_interfaces/msg/ControllerStatus"),
    "action": ("/policy/action", "std_msgs/msg/Float64MultiArray"),  # eval: the raw policy action
    "episode": ("/policy/episode", "std_msgs/msg/String"),  # eval: JSON per step (episode, reward, success)
}
MARKER_NS = {"goal": "record/goal", "path": "record/ee_path", "object": "record/object"}


class RecordPathError(UserError, ValueError):
    """A record path that cannot be written: refused before any work starts."""


def check_writable(path: str | Path) -> Path:
    """Refuse a record path before any work starts: one line naming what is wrong."""
    path = Path(path)
    if path.is_dir():
        raise RecordPathError(f"cannot record to {path}: it is a directory")
    if path.suffix != ".mcap":
        raise RecordPathError(f"cannot record to {path}: the file name must end in .mcap")
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise RecordPathError(f"cannot record to {path}: {path.parent} is not a directory") from None
    except OSError as exc:
        raise RecordPathError(f"cannot record to {path}: {exc.strerror or exc}") from None
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise RecordPathError(f"cannot record to {path}: {exc.strerror or exc}") from None
    if not existed:
        path.unlink()
    return path


def _stamp(t_ns: int) -> dict[str, int]:
    return {"sec": int(t_ns // 1_000_000_000), "nanosec": int(t_ns % 1_000_000_000)}


def _quaternion(rot: np.ndarray) -> dict[str, float]:
    """xyzw of a rotation matrix (Shepperd's method: stable for every rotation)."""
    m = rot
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    else:
        i = int(np.argmax([m[0, 0], m[1, 1], m[2, 2]]))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = [0.0, 0.0, 0.0, (m[k, j] - m[j, k]) / s]
        q[i] = 0.25 * s
        q[j] = (m[j, i] + m[i, j]) / s
        q[k] = (m[k, i] + m[i, k]) / s
    return dict(zip("xyzw", (float(v) for v in q)))


def _transform(t_ns: int, parent: str, child: str, matrix: np.ndarray) -> dict[str, Any]:
    x, y, z = (float(v) for v in matrix[:3, 3])
    return {"header": {"stamp": _stamp(t_ns), "frame_id": parent}, "child_frame_id": child,
            "transform": {"translation": {"x": x, "y": y, "z": z}, "rotation": _quaternion(matrix[:3, :3])}}


def _point(xyz: Sequence[float]) -> dict[str, float]:
    return {"x": float(xyz[0]), "y": float(xyz[1]), "z": float(xyz[2])}


class Recorder:
    """One MCAP file of one run. Thread-safe (a node's timer and subscriptions may both write).

    Times are nanoseconds on the caller's clock and must not go backwards; `start_ns` (default:
    now) stamps the robot description, which is the first message of the file. `state_period`:
    joint states closer together are dropped (nodes: NODE_STATE_PERIOD).
    """

    def __init__(self, path: str | Path, *, start_ns: int | None = None, metadata: Mapping[str, str] | None = None,
                 path_length: int = 2000, urdf_text: str | None = None, chunk_size: int = CHUNK_SIZE,
                 state_period: float = 0.0) -> None:
        self.path = check_writable(path)
        self._lock = threading.Lock()
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._writer = Writer(self._file, chunk_size=chunk_size, compression=CompressionType.ZSTD)
        self._writer.start(profile=Profile.ROS2, library="drl_control.record")
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, tuple[int, Any]] = {}
        self._sequence = 0
        self.last_ns = int(start_ns if start_ns is not None else time.time_ns())
        self.counts: dict[str, int] = {}
        self.goal: np.ndarray | None = None
        self.object_pose: np.ndarray | None = None  # 4x4 in the base frame
        self.path_points: list[dict[str, float]] = []
        self.path_length = path_length
        self.state_period_ns = int(state_period * 1e9)
        self._last_state_ns: int | None = None
        self.closed = False
        if metadata:
            self._writer.add_metadata("drl_control", {str(k): str(v) for k, v in metadata.items()})
        urdf = urdf_text if urdf_text is not None else arm_urdf_path().read_text()
        self._write("robot_description", self.last_ns, {"data": urdf})

    # --- low level ----------------------------------------------------------------------------
    def _channel(self, key: str) -> tuple[int, Any]:
        if key not in self._channels:
            topic, type_name = TOPICS[key]
            if type_name not in self._schemas:
                self._schemas[type_name] = self._writer.register_schema(
                    type_name, SchemaEncoding.ROS2, full_definition(type_name).encode())
            encoder = serialize_dynamic(type_name, full_definition(type_name))[type_name]
            # rosbag2 reads offered_qos_profiles; "" = the player's default profile (see docs/RECORD.md)
            channel = self._writer.register_channel(topic, MessageEncoding.CDR, self._schemas[type_name],
                                                    {"offered_qos_profiles": ""})
            self._channels[key] = (channel, encoder)
        return self._channels[key]

    def _write(self, key: str, t_ns: int, message: Mapping[str, Any]) -> None:
        with self._lock:
            if self.closed:
                return
            t_ns = max(int(t_ns), self.last_ns)  # one clock, never backwards (a late callback)
            self.last_ns = t_ns
            channel, encoder = self._channel(key)
            self._writer.add_message(channel, log_time=t_ns, data=encoder(message), publish_time=t_ns,
                                     sequence=self._sequence)
            self._sequence += 1
            self.counts[key] = self.counts.get(key, 0) + 1

    # --- what a run produces -----------------------------------------------------------------
    def joint_state(self, t_ns: int, joint_names: Sequence[str], positions: Sequence[float],
                    velocities: Sequence[float] | None = None, efforts: Sequence[float] | None = None) -> None:
        """`/joint_states` and the matching `/tf` of every link (+ the object); extends the ee path.

        A state less than `state_period` after the last recorded one is dropped."""
        if self._last_state_ns is not None and t_ns - self._last_state_ns < self.state_period_ns:
            return
        self._last_state_ns = t_ns
        header = {"stamp": _stamp(t_ns), "frame_id": ""}
        self._write("joint_states", t_ns, {
            "header": header, "name": list(joint_names), "position": [float(v) for v in positions],
            "velocity": [float(v) for v in velocities] if velocities is not None else [],
            "effort": [float(v) for v in efforts] if efforts is not None else []})
        joints = dict(zip(joint_names, (float(v) for v in positions)))
        local = joint_transforms(joints)
        transforms = [_transform(t_ns, parent, child, m) for parent, child, m in local]
        if self.object_pose is not None:
            transforms.append(_transform(t_ns, BASE_FRAME, OBJECT_FRAME, self.object_pose))
        self._write("tf", t_ns, {"transforms": transforms})
        flange = link_poses(joints, local=local)[FLANGE_LINK][:3, 3]
        self.path_points.append(_point(flange))
        del self.path_points[:-self.path_length]

    def set_goal(self, goal: Sequence[float] | None) -> None:
        self.goal = None if goal is None else np.asarray(goal, dtype=float).copy()

    def set_object(self, position: Sequence[float] | None, quaternion_xyzw: Sequence[float] = (0, 0, 0, 1)) -> None:
        """The task object's pose in the base frame (drawn as a cube, sent on `/tf` as `object`)."""
        if position is None:
            self.object_pose = None
            return
        x, y, z, w = (float(v) for v in quaternion_xyzw)
        pose = np.eye(4)
        pose[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
        pose[:3, 3] = [float(v) for v in position]
        self.object_pose = pose

    def clear_path(self) -> None:
        self.path_points.clear()

    def markers(self, t_ns: int, object_size: float = 0.04) -> None:
        """`/markers`: goal sphere, end-effector path (line strip), object cube (DELETE when absent)."""
        def marker(ns: str, kind: int, rgba: Sequence[float], **fields: Any) -> dict[str, Any]:
            return {"header": {"stamp": _stamp(t_ns), "frame_id": BASE_FRAME}, "ns": ns, "id": 0, "type": kind,
                    "action": 0, "pose": {"orientation": {"w": 1.0}},
                    "color": dict(zip("rgba", (float(c) for c in rgba))), "frame_locked": False, **fields}

        def delete(ns: str) -> dict[str, Any]:
            return {"header": {"stamp": _stamp(t_ns), "frame_id": BASE_FRAME}, "ns": ns, "id": 0, "action": 2,
                    "pose": {"orientation": {"w": 1.0}}}

        sphere, line_strip, cube = 2, 4, 1  # visualization_msgs/Marker constants
        items = []
        if self.goal is not None:
            items.append(marker(MARKER_NS["goal"], sphere, (0.1, 0.8, 0.2, 0.9), scale=_point([0.05] * 3),
                                pose={"position": _point(self.goal), "orientation": {"w": 1.0}}))
        else:
            items.append(delete(MARKER_NS["goal"]))
        items.append(marker(MARKER_NS["path"], line_strip, (0.9, 0.8, 0.1, 1.0), scale=_point([0.005, 0, 0]),
                            points=list(self.path_points)))
        if self.object_pose is not None:
            pose = self.object_pose
            items.append(marker(MARKER_NS["object"], cube, (0.2, 0.4, 0.9, 0.9), scale=_point([object_size] * 3),
                                pose={"position": _point(pose[:3, 3]), "orientation": _quaternion(pose[:3, :3])}))
        else:
            items.append(delete(MARKER_NS["object"]))
        self._write("markers", t_ns, {"markers": items})

    def command(self, t_ns: int, positions: Sequence[float], joint_names: Sequence[str] | None = None,
                time_from_start: float = 0.0) -> None:
        """The command sent to the arm: forward position controller, or (with names) a one-point trajectory."""
        if joint_names is None:
            self._write("position_command", t_ns, {"data": [float(v) for v in positions]})
        else:
            self.trajectory(t_ns, joint_names, [time_from_start], [positions])

    def trajectory(self, t_ns: int, joint_names: Sequence[str], times: Sequence[float],
                   positions: Sequence[Sequence[float]]) -> None:
        """A joint trajectory controller's command: points at `times` (s from start)."""
        points = []
        for t, q in zip(times, positions):
            sec = int(t)
            points.append({"positions": [float(v) for v in q],
                           "time_from_start": {"sec": sec, "nanosec": int(round((t - sec) * 1e9))}})
        self._write("trajectory_command", t_ns, {"header": {"stamp": _stamp(t_ns)}, "joint_names": list(joint_names),
                                                 "points": points})

    def controller_status(self, t_ns: int, status: Mapping[str, Any]) -> None:
        """ControllerStatus fields (enabled, policy_loaded, holding, state, reason, distance_to_goal, inference_ms)."""
        self._write("controller_status", t_ns, {"header": {"stamp": _stamp(t_ns), "frame_id": BASE_FRAME},
                                                **status})

    def action(self, t_ns: int, action: Sequence[float]) -> None:
        self._write("action", t_ns, {"data": [float(v) for v in np.ravel(action)]})

    def episode_step(self, t_ns: int, info: Mapping[str, Any]) -> None:
        import json

        self._write("episode", t_ns, {"data": json.dumps(dict(info), default=float)})

    def close(self) -> None:
        """Write the summary and index (a file without them still reads, up to its last chunk)."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            try:
                self._writer.finish()
            finally:
                self._file.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
