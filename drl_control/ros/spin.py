"""The one `main()` of every node: init rclpy, build the node, spin it, shut down cleanly.

    def main(args=None) -> int:
        return run_node(ControllerNode, args, realtime=True)

Ctrl-C (SIGINT) and an external `rclpy.shutdown` end the spin quietly (exit status 0).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from drl_control.ros.realtime import set_realtime_priority

N = TypeVar("N", bound=Node)

USAGE_STATUS = 2  # exit status of a node refused by `usage_errors` (bad parameters)


def apply_realtime_priority(node: Node, priority: int) -> None:
    """SCHED_FIFO for the node's process (see drl_control.ros.realtime), logged: info when set, warning when not."""
    outcome = set_realtime_priority(priority)
    if outcome.startswith("SCHED_FIFO"):
        node.get_logger().info(outcome)
    elif outcome:
        node.get_logger().warning(outcome)


def run_node(
    node_factory: Callable[[], N],
    args: Sequence[str] | None = None,
    *,
    executor: Callable[[], Executor] = SingleThreadedExecutor,
    realtime: bool = False,
    on_shutdown: Callable[[N], None] | None = None,
    usage_errors: tuple[type[BaseException], ...] = (),
    prog: str = "",
) -> int:
    """Spin the node `node_factory()` builds until Ctrl-C or shutdown; returns the exit status.

    realtime: apply the node's `realtime_priority` (SCHED_FIFO, 0: normal scheduling) before spinning.
    on_shutdown: called with the node before it is destroyed (cancel work, close resources).
    usage_errors: exceptions that mean bad parameters: printed as one line `<prog>: error: ...` on
    stderr, status 2, no traceback.
    """
    rclpy.init(args=args)
    node: N | None = None
    try:
        node = node_factory()
        spinner = executor()
        spinner.add_node(node)
        if realtime:
            apply_realtime_priority(node, node.realtime_priority)
        spinner.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except usage_errors as exc:
        print(f"{prog or getattr(node_factory, '__name__', 'node')}: error: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return USAGE_STATUS
    finally:
        if node is not None:
            if on_shutdown is not None:
                on_shutdown(node)
            node.destroy_node()
        rclpy.try_shutdown()
    return 0

