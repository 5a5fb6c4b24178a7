"""`drl-control replay F.mcap [--rate X]`: a recording published onto live ROS topics, as recorded.

Messages go out as their recorded CDR bytes (no decoding), on their recorded topics and types, at
their recorded pace divided by `rate`; `/clock` carries the recording's time so that rviz2 with
use_sim_time:=true shows TF and markers at their stamps. `robot_description` is transient-local
(latched) like robot_state_publisher's, so rviz gets the model whenever it starts.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path
from typing import Any

from drl_control.record.reader import Recording, read_recording
from drl_control.ros import names


def message_class(type_name: str) -> Any:
    """pkg/msg/Type -> its Python class (the interface package must be installed: tf2_msgs is built by
    scripts/build_interfaces.sh from ros2_ws/vendor)."""
    pkg, _, name = type_name.replace("/msg/", "/").partition("/")
    try:
        return getattr(importlib.import_module(f"{pkg}.msg"), name)
    except (ImportError, AttributeError):
        raise ValueError(f"message type {type_name} is not installed (make setup builds tf2_msgs)") from None


def replay(recording: Recording, *, rate: float = 1.0, clock: bool = True, namespace: str = "",
           wait_subscribers: float = 0.0) -> int:
    """Publish every message; returns how many. `namespace` prefixes every topic."""
    import rclpy
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from rosgraph_msgs.msg import Clock

    classes = {topic: message_class(type_name) for topic, type_name in recording.topics.items()}
    rclpy.init(args=[])
    node = Node("drl_control_replay")
    try:
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        publishers = {}
        for topic, cls in classes.items():
            full = names.join(namespace, topic)
            qos = latched if topic.endswith("/" + names.ROBOT_DESCRIPTION) else QoSProfile(depth=100)
            publishers[topic] = node.create_publisher(cls, full, qos)
        clock_pub = node.create_publisher(Clock, "/clock", 10) if clock else None
        deadline = time.monotonic() + wait_subscribers  # until every topic has a subscriber, at most this
        while time.monotonic() < deadline and not all(p.get_subscription_count() for p in publishers.values()):
            time.sleep(0.05)
        t0_rec, t0_wall = recording.messages[0].log_time_ns, time.monotonic()
        for message in recording.messages:
            delay = t0_wall + (message.log_time_ns - t0_rec) * 1e-9 / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if clock_pub is not None:
                stamp = Clock()
                stamp.clock.sec, stamp.clock.nanosec = divmod(message.log_time_ns, 1_000_000_000)
                clock_pub.publish(stamp)
            publishers[message.topic].publish(message.data)
        time.sleep(0.2)  # let the last messages leave before the node goes
        return len(recording.messages)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def replay_cli(args: Any) -> int:
    """`drl-control replay` handler: read (one clear error for a bad file) before ROS starts."""
    if not args.rate > 0:
        raise ValueError(f"--rate must be positive, got {args.rate}")
    recording = read_recording(Path(args.recording))
    if recording.truncated:
        print(f"note: {args.recording} ends without its index (the recording was cut short); "
              "replaying up to its last complete chunk", file=sys.stderr)
    span = (recording.messages[-1].log_time_ns - recording.messages[0].log_time_ns) * 1e-9
    print(f"replaying {len(recording.messages)} messages on {len(recording.topics)} topics, "
          f"{span:.1f} s of recording at rate {args.rate:g}", flush=True)
    count = replay(recording, rate=args.rate, clock=not args.no_clock, namespace=args.namespace,
                   wait_subscribers=args.wait)
    print(f"published {count} messages")
    return 0
