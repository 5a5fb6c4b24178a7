"""The one `main()` of every node: init rclpy, build the node, spin it, shut down cleanly.

    def main(args=None) -> int:
        return run_node(ControllerNode, args, realtime=True)

Ctrl-C (SIGINT) and an external `rclpy.shutdown` end the spin quietly (exit status 0).

Each node class lists its parameters once, in a `PARAMETERS` table of `Param` rows (name, default,
meaning); `declare_parameters` declares them from it (the meaning becomes the ROS parameter
description), and `<node> --help` prints the same table and exits 0 before rclpy is initialised,
so asking for help never starts a node.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.action import ActionClient
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.task import Task

from drl_control.ros.realtime import set_realtime_priority
from drl_control.ros.stack import format_param

N = TypeVar("N", bound=Node)


class ThreadSafeActionClient(ActionClient):
    """An ActionClient that may be made while its node is spun by another thread.

    rclpy's ActionClient (Kilted) puts itself into its node's wait set, which wakes the executor,
    before it creates its lock: an executor thread that gets there first calls
    `get_num_entities()` on the half-made client and dies of AttributeError, and from then on no
    answer reaches anyone on that node (seen as a hung Train goal in a test run). Here the lock
    exists before the client joins the wait set, and it stays the one lock.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_lock" and "_lock" in self.__dict__:
            return  # rclpy's own `self._lock = Lock()` at the end of __init__: keep the first one
        super().__setattr__(name, value)


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


@dataclass(frozen=True)
class Param:
    """One node parameter. `default` is its value when not set; a `Parameter.Type` means no default
    (the parameter is unset unless given). `read_only`: refused by set_parameters after start."""

    name: str
    default: Any
    description: str
    read_only: bool = False


def declare_parameters(node: Node, table: Sequence[Param]) -> dict[str, Any]:
    """Declare every row of `table` on `node`; returns {name: value} (None for an unset typed one)."""
    return {
        p.name: node.declare_parameter(
            p.name, p.default, ParameterDescriptor(description=p.description, read_only=p.read_only)).value
        for p in table
    }


def _format_default(value: Any) -> str:
    if isinstance(value, Parameter.Type):
        return f"unset ({value.name.lower().replace('_', ' ')})"
    return format_param(list(value) if isinstance(value, tuple) else value)


def parameter_help(prog: str, doc: str | None, table: Sequence[Param]) -> str:
    """`<prog> --help`: usage, the node's docstring, and its parameters with defaults and meaning."""
    lines = [f"usage: {prog} [--help] [--ros-args [-r __ns:=NAMESPACE] [-p NAME:=VALUE ...]]", ""]
    if doc:
        lines += [doc.strip(), ""]
    lines.append("parameters (set with --ros-args -p NAME:=VALUE):")
    width = max((len(p.name) for p in table), default=0)
    for p in table:
        flags = ", read-only" if p.read_only else ""
        lines.append(f"  {p.name:<{width}}  {p.description} (default: {_format_default(p.default)}{flags})")
    return "\n".join(lines)


def help_requested(args: Sequence[str] | None) -> bool:
    """-h/--help among the node's own arguments (those before --ros-args)."""
    argv = list(sys.argv[1:] if args is None else args)
    if "--ros-args" in argv:
        argv = argv[:argv.index("--ros-args")]
    return "-h" in argv or "--help" in argv


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
    `--help`: prints the node's `PARAMETERS` table (see `parameter_help`) and returns 0, nothing started.
    """
    if help_requested(args):
        module = sys.modules.get(getattr(node_factory, "__module__", ""), None)
        name = prog or os.path.basename(sys.argv[0]).removesuffix(".py") or "node"
        print(parameter_help(name, getattr(module, "__doc__", None), getattr(node_factory, "PARAMETERS", ())))
        return 0
    # A crash in native code (DDS, PyBullet) then prints every thread's Python stack on stderr, which
    # launch prefixes with the node's name, instead of a bare "exited with status -11".
    faulthandler.enable()
    rclpy.init(args=args)
    node: N | None = None
    spinner: Executor | None = None
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
    except Exception:  # noqa: BLE001 - Ctrl-C's shutdown can land between two waits, and rclpy's next
        if rclpy.ok():  # wait set then fails (RCLError "context is not valid"): that is the shutdown too
            raise
    finally:
        _close(spinner, node, on_shutdown)
    return 0


def _close(spinner: Executor | None, node: N | None, on_shutdown: Callable[[N], None] | None) -> None:
    """Tear down: the node's own work first, then executor, node and context (rclpy's order).

    `on_shutdown` goes first because it stops work that runs inside the executor's callbacks (the
    learner trains in its action's execute callback): a MultiThreadedExecutor's shutdown waits for
    its threads, so shutting it down first waited for a run that only `on_shutdown` stops.
    The executor is shut down before `rclpy.shutdown`: left to the garbage collector, it destroyed
    its guard conditions after their context was finalised (suspected, not proven, in a sim_node's
    SIGSEGV on Ctrl-C in CI; faulthandler, enabled in `run_node`, prints the stack should it recur).
    """
    if node is not None and on_shutdown is not None:
        on_shutdown(node)
    if spinner is not None:
        try:
            spinner.shutdown(timeout_sec=1.0)  # spin has returned: no new callback starts
        except Exception:  # noqa: BLE001 - a context already shut down by the signal: nothing to wake
            pass
    if node is not None:
        node.destroy_node()
    rclpy.try_shutdown()
