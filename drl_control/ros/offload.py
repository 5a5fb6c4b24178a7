"""A slow service of a node served in its own thread, so its requests never wait in the node's
control executor (and the control tick never waits for them).

rclpy serves a node's callbacks in the node's one executor; a coroutine callback awaiting a
worker thread keeps that executor busy-polling the pending task (rclpy re-yields in-progress
tasks every wait), and a MultiThreadedExecutor gives up the LeanExecutor's one-wait-per-callback
(drl_control.ros.spin). So the service lives on a hidden helper node (a name starting with "_"),
in the owner's namespace and context, with the owner's fully resolved service name, spun by a
SingleThreadedExecutor in a daemon thread: requests are served one at a time, in order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node


class OffloadedService:
    """Serve `srv_type` at the owner's `name` (e.g. "~/load_policy") from a thread of its own."""

    def __init__(self, owner: Node, srv_type: Any, name: str, callback: Callable[[Any, Any], Any]) -> None:
        full_name = owner.resolve_service_name(name)
        label = full_name.rsplit("/", 1)[-1]
        # no global arguments: a `__node:=` remap meant for the owner must not rename this node too
        self.node = rclpy.create_node(f"_{owner.get_name()}_{label}", namespace=owner.get_namespace(),
                                      context=owner.context, use_global_arguments=False,
                                      start_parameter_services=False)
        self.node.create_service(srv_type, full_name, callback)
        self.executor = SingleThreadedExecutor(context=owner.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True, name=self.node.get_name())
        self.thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
