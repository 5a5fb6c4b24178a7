"""Reading a recording back (for plot, replay and the browser view): the mcap package's reader and
mcap_ros2's decoder, one clear error for a file that is not a readable ROS 2 MCAP.

A file whose writer was killed has no summary at its end; it is read sequentially up to its last
complete chunk and marked `truncated` (the callers say so in one line and go on). A file with no
readable ROS 2 message at all is an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drl_control.errors import UserError

MCAP_MAGIC = b"\x89MCAP0\r\n"


class RecordingError(UserError, ValueError):
    """A file that cannot be read as a recording: one line naming the file and what is wrong."""


@dataclass
class RawMessage:
    topic: str
    type_name: str
    log_time_ns: int
    data: bytes  # CDR, as published
    schema: Any = field(repr=False, default=None)
    channel: Any = field(repr=False, default=None)


@dataclass
class Recording:
    path: Path
    messages: list[RawMessage]
    truncated: bool  # no summary/index at the end: the writer did not finish (killed)
    metadata: dict[str, dict[str, str]]

    @property
    def topics(self) -> dict[str, str]:
        """topic -> pkg/msg/Type, in order of first message."""
        out: dict[str, str] = {}
        for m in self.messages:
            out.setdefault(m.topic, m.type_name)
        return out

    def decoded(self, topic: str) -> Iterator[tuple[int, Any]]:
        """(log time ns, decoded message) of one topic, in file order."""
        from mcap_ros2.decoder import DecoderFactory

        factory, decoders = DecoderFactory(), {}
        for m in self.messages:
            if m.topic != topic:
                continue
            if m.schema.id not in decoders:
                decoders[m.schema.id] = factory.decoder_for(m.channel.message_encoding, m.schema)
            yield m.log_time_ns, decoders[m.schema.id](m.data)


def read_recording(path: str | Path) -> Recording:
    """All messages of a recording, in log-time order."""
    from mcap.reader import NonSeekingReader

    path = Path(path)
    if not path.is_file():
        raise RecordingError(f"{path}: no such file")
    with open(path, "rb") as f:
        if f.read(len(MCAP_MAGIC)) != MCAP_MAGIC:
            raise RecordingError(f"{path}: not an MCAP file (a recording is written by --record ... .mcap)")
        f.seek(0)
        reader = NonSeekingReader(f, record_size_limit=None)
        messages: list[RawMessage] = []
        truncated = False
        try:
            for schema, channel, message in reader.iter_messages(log_time_order=False):
                if channel.message_encoding != "cdr" or schema is None or schema.encoding != "ros2msg":
                    continue
                messages.append(RawMessage(channel.topic, schema.name, message.log_time, message.data, schema, channel))
        except Exception as exc:  # noqa: BLE001 - McapError, or a cut chunk failing deep in zstd/lz4/struct
            if not messages:
                why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                raise RecordingError(f"{path}: truncated or corrupt MCAP with no complete message ({why})") from None
            truncated = True  # everything up to the cut is kept
        metadata = {}
        if not truncated:
            f.seek(0)
            try:
                from mcap.reader import make_reader

                metadata = {m.name: dict(m.metadata) for m in make_reader(f).iter_metadata()}
            except Exception:  # noqa: BLE001 - metadata is optional: a file without it still plays
                metadata = {}
    if not messages:
        raise RecordingError(f"{path}: no ROS 2 (cdr) messages in this MCAP file")
    messages.sort(key=lambda m: m.log_time_ns)  # stable: file order within one time
    return Recording(path, messages, truncated, metadata)


@dataclass
class Trajectory:
    """What a plot or the browser view needs, as arrays on the recording's clock (seconds from its start)."""

    t: np.ndarray  # (N,) joint-state times
    joint_names: list[str]
    q: np.ndarray  # (N, n) positions
    qd: np.ndarray  # (N, n) velocities (finite differences where the messages carry none)
    ee: np.ndarray  # (N, 3) flange position in the base frame (URDF kinematics)
    goal_t: np.ndarray  # (M,) times of marker messages
    goals: np.ndarray  # (M, 3) goal at those times (NaN: none)
    objects: np.ndarray  # (M, 3) object position at those times (NaN: none)
    urdf: str
    start_ns: int
    truncated: bool


def trajectory(recording: Recording) -> Trajectory:
    """Joint states, end-effector path, goals and object of a recording."""
    from drl_control.record.writer import FLANGE_LINK, MARKER_NS, TOPICS
    from drl_control.robot.links import link_poses

    topics = recording.topics
    js_topic, desc_topic, marker_topic = (TOPICS[k][0] for k in ("joint_states", "robot_description", "markers"))
    if js_topic not in topics:
        raise RecordingError(f"{recording.path}: no {js_topic} in this recording (topics: {sorted(topics)})")
    start = recording.messages[0].log_time_ns
    urdf = next((msg.data for _, msg in recording.decoded(desc_topic)), "") if desc_topic in topics else ""
    times, qs, qds, names = [], [], [], None
    for t_ns, msg in recording.decoded(js_topic):
        if names is None:
            names = list(msg.name)
        if list(msg.name) != names:
            continue
        times.append((t_ns - start) * 1e-9)
        qs.append(msg.position)
        qds.append(msg.velocity if len(msg.velocity) == len(names) else [np.nan] * len(names))
    t, q, qd = np.array(times), np.array(qs, dtype=float), np.array(qds, dtype=float)
    if np.isnan(qd).any() and len(t) > 1:
        qd = np.gradient(q, t, axis=0)
    ee = np.array([link_poses(dict(zip(names, row)))[FLANGE_LINK][:3, 3] for row in q]).reshape(-1, 3)
    goal_t, goals, objects = [], [], []
    if marker_topic in topics:
        for t_ns, msg in recording.decoded(marker_topic):
            by_ns = {m.ns: m for m in msg.markers if m.action == 0}
            goal_t.append((t_ns - start) * 1e-9)
            goals.append(_position(by_ns.get(MARKER_NS["goal"])))
            objects.append(_position(by_ns.get(MARKER_NS["object"])))
    return Trajectory(t, names or [], q, qd, ee, np.array(goal_t), np.array(goals).reshape(-1, 3),
                      np.array(objects).reshape(-1, 3), urdf, start, recording.truncated)


def _position(marker: Any) -> list[float]:
    if marker is None:
        return [np.nan] * 3
    p = marker.pose.position
    return [p.x, p.y, p.z]
