"""`drl-control view [F.mcap]` handler: a recording with a time slider (viz/, no rclpy), or live from ROS
topics (ros/view_feed.py). Here, in ros/, because the live view needs ROS; rclpy is imported only then."""

from __future__ import annotations

import sys
from typing import Any


def view_cli(args: Any) -> int:
    if args.recording:
        import threading

        from drl_control.viz.view import RecordingView

        view = RecordingView(args.recording, host=args.host, port=args.port)  # a bad file: one line, exit 2
        print(f"view: {view.view.url} ({args.recording}; Ctrl-C stops)", file=sys.stderr, flush=True)
        try:
            view.serve(threading.Event())
        except KeyboardInterrupt:
            pass
        finally:
            view.stop()
        return 0
    from drl_control.ros.view_feed import view_live

    try:
        view_live(host=args.host, port=args.port, namespace=args.namespace)
    except KeyboardInterrupt:
        pass
    return 0
