"""numpy <-> ROS message conversions (pure functions; the nodes stay thin adapters).

Spaces travel as JSON (EnvSpec), observation batches as `EnvBatch` (row-major float32, see the
msg file), per-env infos as a JSON list in which numpy values become plain lists/numbers and an
auto-reset env's `terminal_observation` becomes {key: list} (or a list for Box spaces). Commands
(position arrays, one-point trajectories) and rviz markers (goal sphere, end-effector path) are
built here for every node that sends them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, PoseStamped
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from visualization_msgs.msg import Marker

from drl_control.ros.names import BASE_FRAME
from drl_control.safe_io import load_json_text
from drl_control_interfaces.msg import EnvBatch

# --- spaces ------------------------------------------------------------------------------------


def _finite_or_str(values: np.ndarray) -> list:
    """JSON has no inf: write +-inf as the strings "inf"/"-inf" (read back by `_floats`)."""
    return [v if math.isfinite(v) else ("inf" if v > 0 else "-inf") for v in values.astype(float).ravel().tolist()]


def _floats(values: Sequence) -> np.ndarray:
    return np.array([float(v) for v in values], dtype=np.float64)


def space_to_dict(space: gym.Space) -> dict[str, Any]:
    if isinstance(space, gym.spaces.Box):
        return {"type": "Box", "low": _finite_or_str(space.low), "high": _finite_or_str(space.high),
                "shape": list(space.shape), "dtype": np.dtype(space.dtype).name}
    if isinstance(space, gym.spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_dict(s) for k, s in space.spaces.items()}}
    raise ValueError(f"cannot convert space {space!r} (only Box and Dict of Box)")


def space_from_dict(d: Mapping[str, Any]) -> gym.Space:
    kind = d.get("type")
    if kind == "Box":
        shape = tuple(int(n) for n in d["shape"])
        dtype = np.dtype(d.get("dtype", "float32"))
        low = _floats(d["low"]).reshape(shape).astype(dtype)
        high = _floats(d["high"]).reshape(shape).astype(dtype)
        return gym.spaces.Box(low=low, high=high, shape=shape, dtype=dtype)
    if kind == "Dict":
        return gym.spaces.Dict({k: space_from_dict(s) for k, s in d["spaces"].items()})
    raise ValueError(f"unknown space type {kind!r}")


def space_to_json(space: gym.Space) -> str:
    return json.dumps(space_to_dict(space))


def space_from_json(text: str) -> gym.Space:
    return space_from_dict(load_json_text(text, "space description"))


# --- observation batches -----------------------------------------------------------------------

BOX_KEY = "observation"  # a plain Box observation travels as this single key


def batch_to_msg(obs: Mapping[str, np.ndarray] | np.ndarray, msg: EnvBatch | None = None) -> EnvBatch:
    """(n, ...) arrays per key (or one (n, ...) array for a Box space) -> EnvBatch."""
    if not isinstance(obs, Mapping):
        obs = {BOX_KEY: obs}
    keys = list(obs)
    arrays = [np.asarray(obs[k], dtype=np.float32) for k in keys]
    n = arrays[0].shape[0] if arrays else 0
    flat = [a.reshape(n, -1) for a in arrays]
    msg = msg or EnvBatch()
    msg.num_envs = n
    msg.keys = keys
    msg.key_sizes = [f.shape[1] for f in flat]
    msg.data = np.concatenate(flat, axis=1).ravel() if flat else np.zeros(0, dtype=np.float32)
    return msg


def msg_to_batch(msg: EnvBatch, space: gym.Space | None = None) -> dict[str, np.ndarray] | np.ndarray:
    """EnvBatch -> {key: (n, *shape)} float32 arrays (shapes from `space`, else flat rows).

    Returns a plain array when `space` is a Box (the single key of a Box observation).
    """
    n = int(msg.num_envs)
    sizes = [int(s) for s in msg.key_sizes]
    data = np.frombuffer(msg.data, dtype=np.float32) if len(msg.data) else np.zeros(0, dtype=np.float32)
    if data.size != n * sum(sizes):
        raise ValueError(f"EnvBatch: {data.size} floats for {n} envs x {sum(sizes)} per row")
    rows = data.reshape(n, sum(sizes))
    out: dict[str, np.ndarray] = {}
    offset = 0
    for key, size in zip(msg.keys, sizes, strict=True):
        part = rows[:, offset:offset + size]
        offset += size
        if isinstance(space, gym.spaces.Dict):
            part = part.reshape(n, *space[key].shape)
        elif isinstance(space, gym.spaces.Box):
            part = part.reshape(n, *space.shape)
        out[key] = np.array(part, dtype=np.float32)  # own, writable copy
    if isinstance(space, gym.spaces.Box):
        return out[BOX_KEY]
    return out


def stack_obs(obs_list: Sequence[Mapping[str, np.ndarray] | np.ndarray]) -> dict[str, np.ndarray] | np.ndarray:
    if isinstance(obs_list[0], Mapping):
        return {k: np.stack([np.asarray(o[k]) for o in obs_list]) for k in obs_list[0]}
    return np.stack([np.asarray(o) for o in obs_list])


def concat_obs(parts: Sequence[Mapping[str, np.ndarray] | np.ndarray]) -> dict[str, np.ndarray] | np.ndarray:
    """Join per-worker batches along the env axis."""
    if isinstance(parts[0], Mapping):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return np.concatenate(parts)


# --- infos -------------------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """numpy scalars/arrays -> plain Python (NaN/inf kept as JSON's NaN/Infinity extension)."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def infos_to_json(infos: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps([to_jsonable(i) for i in infos])


def infos_from_json(text: str, space: gym.Space | None = None) -> list[dict[str, Any]]:
    """Inverse of `infos_to_json`; `terminal_observation` back to float32 arrays shaped like `space`."""
    infos = load_json_text(text, "step infos") if text else []
    for info in infos:
        term = info.get("terminal_observation")
        if term is None:
            continue
        if isinstance(term, Mapping):
            info["terminal_observation"] = {
                k: np.asarray(v, dtype=np.float32).reshape(space[k].shape if isinstance(space, gym.spaces.Dict) else -1)
                for k, v in term.items()
            }
        else:
            arr = np.asarray(term, dtype=np.float32)
            info["terminal_observation"] = arr.reshape(space.shape) if isinstance(space, gym.spaces.Box) else arr
    return infos


# --- actions -----------------------------------------------------------------------------------


def actions_from_msg(actions: Sequence[float], action_dim: int, num_envs: int) -> np.ndarray:
    """Row-major float32 actions -> (num_envs, action_dim); ValueError on a size mismatch."""
    flat = np.frombuffer(actions, dtype=np.float32) if len(actions) else np.zeros(0, dtype=np.float32)
    if action_dim <= 0 or flat.size != num_envs * action_dim:
        raise ValueError(f"expected {num_envs} x {action_dim} actions, got {flat.size} values (action_dim={action_dim})")
    return flat.reshape(num_envs, action_dim)


# --- robot state and commands ------------------------------------------------------------------


def joint_state_msg(msg: Any, stamp: Any, names: Sequence[str], position: np.ndarray,
                    velocity: np.ndarray | None = None, effort: np.ndarray | None = None) -> Any:
    """Fill a sensor_msgs/JointState (passed in, so this module needs no sensor_msgs import)."""
    msg.header.stamp = stamp
    msg.name = list(names)
    msg.position = [float(x) for x in position]
    msg.velocity = [float(x) for x in velocity] if velocity is not None else []
    msg.effort = [float(x) for x in effort] if effort is not None else []
    return msg


def joint_state_problem(names: Sequence[str], position: Sequence[float], velocity: Sequence[float],
                        effort: Sequence[float], want: Sequence[str]) -> str:
    """Why a sensor_msgs/JointState's arrays cannot be read for the joints `want` ("" when they can).

    The message's own contract: unique names, `position` one per name, `velocity` / `effort` one
    per name or empty; every joint of `want` named. Values are not judged here (NaN or out of range
    is the safety filter's call, which holds on them).
    """
    n = len(names)
    if len(set(names)) != n:
        dup = sorted({x for x in names if list(names).count(x) > 1})
        return f"duplicate joint names {dup}"
    if len(position) != n:
        return f"{len(position)} positions for {n} joint names"
    for field, values in (("velocity", velocity), ("effort", effort)):
        if len(values) not in (0, n):
            return f"{len(values)} {field} values for {n} joint names (one per name or none)"
    missing = [w for w in want if w not in set(names)]
    if missing:
        return f"missing joints {missing} (has {list(names)})"
    return ""


def point_problem(frame_id: str, xyz: Sequence[float], base_frame: str = BASE_FRAME) -> str:
    """Why a geometry_msgs/PointStamped goal is unusable here ("" when it is fine): frame "" or the
    base frame (no tf lookups), three finite coordinates."""
    frame = frame_id.lstrip("/")
    if frame not in ("", base_frame):
        return f"frame {frame!r} is not {base_frame!r} (no tf here)"
    if not all(math.isfinite(v) for v in xyz):
        return f"goal must be 3 finite numbers, got {list(xyz)}"
    return ""


def duration_to_sec(duration: Any) -> float:
    """builtin_interfaces/Duration (or Time) -> seconds."""
    return float(duration.sec) + float(duration.nanosec) * 1e-9


def trajectory_arrays(msg: Any) -> tuple[list[str], np.ndarray, np.ndarray]:
    """trajectory_msgs/JointTrajectory -> (joint names, times (m,), positions (m, n)).

    ValueError when a point's positions do not match the joint names.
    """
    names = list(msg.joint_names)
    times = np.array([duration_to_sec(p.time_from_start) for p in msg.points], dtype=float)
    rows = []
    for i, point in enumerate(msg.points):
        if len(point.positions) != len(names):
            raise ValueError(f"point {i} has {len(point.positions)} positions for {len(names)} joint names")
        rows.append(np.asarray(point.positions, dtype=float))
    positions = np.array(rows, dtype=float).reshape(len(rows), len(names))
    return names, times, positions


def duration_msg(seconds: float) -> Duration:
    """seconds -> builtin_interfaces/Duration (inverse of `duration_to_sec`)."""
    sec, nanosec = divmod(int(round(seconds * 1e9)), 1_000_000_000)
    return Duration(sec=sec, nanosec=nanosec)


def command_msg(command: Sequence[float], joint_names: Sequence[str] | None = None,
                time_from_start: float = 0.0) -> Float64MultiArray | JointTrajectory:
    """Joint positions -> the command of a ros2_control controller: a forward position controller's
    Float64MultiArray, or (with `joint_names`) a joint trajectory controller's one-point
    JointTrajectory reached `time_from_start` seconds ahead."""
    positions = [float(x) for x in command]
    if joint_names is None:
        return Float64MultiArray(data=positions)
    point = JointTrajectoryPoint(positions=positions, time_from_start=duration_msg(time_from_start))
    return JointTrajectory(joint_names=list(joint_names), points=[point])


# --- rviz markers ------------------------------------------------------------------------------


def point_msg(xyz: Sequence[float]) -> Point:
    return Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))


def pose_stamped_msg(msg: PoseStamped | Marker, stamp: Any, position: Sequence[float], orientation: Sequence[float],
                     frame: str = BASE_FRAME) -> PoseStamped | Marker:
    """Fill the header and pose of `msg` (a PoseStamped reused by a publisher at a high rate, or a
    Marker); `orientation` is (x, y, z, w)."""
    msg.header.stamp, msg.header.frame_id = stamp, frame
    p, o = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = (float(v) for v in position)
    o.x, o.y, o.z, o.w = (float(v) for v in orientation)
    return msg


def _marker(stamp: Any, ns: str, kind: int, rgba: Sequence[float], frame: str) -> Marker:
    marker = Marker(ns=ns, id=0, type=kind, action=Marker.ADD)
    marker.header.frame_id, marker.header.stamp = frame, stamp
    marker.pose.orientation.w = 1.0
    marker.color.r, marker.color.g, marker.color.b, marker.color.a = (float(c) for c in rgba)
    return marker


def goal_marker(stamp: Any, goal: Sequence[float] | None, ns: str, rgba: Sequence[float],
                diameter: float = 0.04, frame: str = BASE_FRAME) -> Marker:
    """A sphere at `goal`; with no goal, a DELETE of that sphere (ns, id 0)."""
    if goal is None:
        marker = Marker(ns=ns, id=0, type=Marker.SPHERE, action=Marker.DELETE)
        marker.header.frame_id, marker.header.stamp = frame, stamp
        return marker
    marker = _marker(stamp, ns, Marker.SPHERE, rgba, frame)
    marker.pose.position = point_msg(goal)
    marker.scale.x = marker.scale.y = marker.scale.z = diameter
    return marker


def box_marker(stamp: Any, position: Sequence[float], orientation: Sequence[float], size: float, ns: str,
               rgba: Sequence[float], frame: str = BASE_FRAME) -> Marker:
    """A cube of edge `size` at a pose (`orientation` x, y, z, w): an object task's cube."""
    marker = _marker(stamp, ns, Marker.CUBE, rgba, frame)
    pose_stamped_msg(marker, stamp, position, orientation, frame)
    marker.scale.x = marker.scale.y = marker.scale.z = float(size)
    return marker


def path_marker(stamp: Any, points: Sequence[Point], ns: str, rgba: Sequence[float],
                width: float = 0.005, frame: str = BASE_FRAME) -> Marker:
    """A line strip through `points` (geometry_msgs/Point, see `point_msg`)."""
    marker = _marker(stamp, ns, Marker.LINE_STRIP, rgba, frame)
    marker.scale.x = width
    marker.points = list(points)
    return marker
