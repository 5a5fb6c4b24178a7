"""The one `main()` of every node: init rclpy, build the node, spin it, shut down cleanly.

    def main(args=None) -> int:
        return run_node(ControllerNode, args, realtime=True)

Ctrl-C (SIGINT) and an external `rclpy.shutdown` end the spin quietly (exit status 0).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.task import Task

from drl_control.ros.realtime import set_realtime_priority

N = TypeVar("N", bound=Node)


class LeanExecutor(SingleThreadedExecutor):
    """A SingleThreadedExecutor whose callbacks do not wake it a second time.

    rclpy's handler triggers the executor's guard condition after taking an entity and again
    after its callback (so that other threads may take the next one); the next wait then returns
    at once and the whole wait set is built twice per callback. With one thread the next wait is
    built after the callback anyway: this handler leaves the guard alone. Profiled on a sim_node
    serving a RosVecEnv: 1 wait per ~/step request instead of 2, the executor's Python time per
    request about halved. It overrides rclpy's private `_make_handler` (rclpy is pinned in
    requirements.txt); `lean_executor()` falls back to the stock executor where the private parts
    it uses are not there.
    """

    def _make_handler(self, entity: Any, node: Node, take_from_wait_list: Callable[[Any], Any]) -> Task:
        entity._executor_event = True  # not added to the wait list again until taken

        async def handler(entity: Any, is_shutdown: bool, work_tracker: Any) -> None:
            group = entity.callback_group
            if is_shutdown or group is not None and not group.beginning_execution(entity):
                entity._executor_event = False
                return
            with work_tracker:
                call_coroutine = take_from_wait_list(entity)
                entity._executor_event = False
                try:
                    if call_coroutine is not None:
                        await call_coroutine()
                finally:
                    if group is not None:
                        group.ending_execution(entity)

        task = Task(handler, (entity, self._is_shutdown, self._work_tracker), executor=self)
        with self._tasks_lock:
            self._tasks.append((task, entity, node))
        return task


def lean_executor(context: Any = None) -> Executor:
    """A LeanExecutor, or rclpy's SingleThreadedExecutor where the private parts it uses differ."""
    executor = LeanExecutor(context=context)
    if all(hasattr(executor, a) for a in ("_tasks", "_tasks_lock", "_is_shutdown", "_work_tracker")):
        return executor
    executor.shutdown()
    return SingleThreadedExecutor(context=context)


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
    executor: Callable[[], Executor] = lean_executor,
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

