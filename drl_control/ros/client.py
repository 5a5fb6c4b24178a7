"""`drl-control ros ...`: drive a running stack from a shell.

The PyPI-wheel ROS 2 install has rclpy but no `ros2` command line, so this is the client a user of
`drl-control launch` has: list the package's nodes, read their status, enable/disable a controller,
give it a goal or another policy, send the learner a `~/train` goal, echo a topic. Every name comes
from `names.py`; a node is found on the graph by what it serves (a renamed or re-namespaced node is
still found), not by its name.

A node that is not on the domain, a node of the wrong kind, or a call the node refuses is a
`UserError`: one line, exit 2 (drl_control.errors). Ctrl-C ends `--follow` and `echo` normally; during
`train` it cancels the goal, waits for the learner's checkpoint and exits 130.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

from drl_control.errors import UserError
from drl_control.ros import names

# Node roles, recognised by the interface types a node serves or publishes.
LEARNER, CONTROLLER, ROBOT_INTERFACE, SIM_WORKER, SIM_ROBOT = (
    "learner", "controller", "robot interface", "sim worker", "sim (robot mode)")
_IFACE = "drl_control_interfaces"
STATUS_TYPES = {LEARNER: "LearnerStatus", CONTROLLER: "ControllerStatus", ROBOT_INTERFACE: "ControllerStatus"}
ENABLE_ROLES = (CONTROLLER, ROBOT_INTERFACE)
ANSWER_TIMEOUT = 30.0  # s: least wait for a node's answer to a call (--timeout is for finding it)


def domain() -> str:
    return os.environ.get("ROS_DOMAIN_ID", "0")


@dataclass(frozen=True)
class NodeInfo:
    """A node of this package on the graph."""

    name: str  # fully qualified, e.g. /sim0/sim_node
    role: str

    def private(self, name: str) -> str:
        """Absolute name of this node's `~/x` service/topic/action."""
        return names.join(self.name, name[2:])


def _role(services: dict[str, list[str]], publishers: dict[str, list[str]], subscriptions: dict[str, list[str]],
          private_ns: str) -> str | None:
    def serves(type_name: str, private_name: str | None = None) -> bool:
        return any(type_name in types and (private_name is None or name == names.join(private_ns, private_name[2:]))
                   for name, types in services.items())

    if serves(f"{_IFACE}/action/Train_SendGoal"):
        return LEARNER
    if serves(f"{_IFACE}/srv/SetGoal") or serves(f"{_IFACE}/srv/LoadPolicy"):
        return CONTROLLER  # (its ~/load_policy is served by a hidden helper node: ros/offload.py)
    if serves(f"{_IFACE}/srv/EnvStep"):
        return SIM_WORKER
    if serves("std_srvs/srv/SetBool", names.ENABLE) and any(
            f"{_IFACE}/msg/ControllerStatus" in t for t in publishers.values()):
        return ROBOT_INTERFACE
    # Robot mode: the ros2_control contract of an arm (an env-mode sim_node still starting has the
    # same publishers but neither these subscriptions nor its env services yet).
    pubs = {name.rsplit("/", 1)[-1]: types for name, types in publishers.items()}
    if ("sensor_msgs/msg/JointState" in pubs.get(names.JOINT_STATES, [])
            and any(name.endswith("/" + names.FORWARD_POSITION_COMMANDS) for name in subscriptions)):
        return SIM_ROBOT
    return None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class RosSession:
    """One short-lived rclpy node on the user's domain, spun in the calling thread.

    rclpy's own SIGINT handler is off: it would shut the context down under a running train goal,
    and the cancel that Ctrl-C should send could no longer go out. Ctrl-C is a KeyboardInterrupt.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.context = rclpy.Context()
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = Node(f"drl_control_cli_{os.getpid()}", context=self.context,
                         start_parameter_services=False, enable_rosout=False)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    # --- waiting ---------------------------------------------------------------------------------
    def spin_until(self, done: Callable[[], bool], timeout: float | None) -> bool:
        """Spin callbacks until `done()` or `timeout` seconds (None: forever); returns done()."""
        end = None if timeout is None else time.monotonic() + timeout
        while not done():
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                return bool(done())
            self.executor.spin_once(timeout_sec=0.1 if left is None else min(0.1, left))
        return True

    def result(self, future: Any, what: str) -> Any:
        # A node may take seconds to answer its first call (it imports what the call needs).
        wait = max(self.timeout, ANSWER_TIMEOUT)
        if not self.spin_until(future.done, wait):
            raise UserError(f"no answer from {what} within {wait:g} s")
        return future.result()

    # --- the graph -------------------------------------------------------------------------------
    def nodes(self) -> list[NodeInfo]:
        found = []
        for name, namespace in self.node.get_node_names_and_namespaces():
            if name.startswith("_"):  # a hidden helper of another node (ROS's convention), not one of ours
                continue
            full = names.join(namespace, name)
            try:
                services = dict(self.node.get_service_names_and_types_by_node(name, namespace))
                publishers = dict(self.node.get_publisher_names_and_types_by_node(name, namespace))
                subscriptions = dict(self.node.get_subscriber_names_and_types_by_node(name, namespace))
            except Exception:  # noqa: BLE001 - the node left between the graph queries
                continue
            role = _role(services, publishers, subscriptions, full)
            if role:
                found.append(NodeInfo(full, role))
        return sorted(found, key=lambda n: n.name)

    def discover(self, settle: float = 1.0) -> list[NodeInfo]:
        """The package's nodes, after discovery had time to settle (a fresh participant sees the
        graph fill in over the first second or so)."""
        start = time.monotonic()
        seen: list[NodeInfo] = []
        stable_since = start
        while time.monotonic() - start < self.timeout:
            now = self.nodes()
            if now != seen:
                seen, stable_since = now, time.monotonic()
            elif seen and time.monotonic() - stable_since >= settle:
                break
            self.spin_until(lambda: False, 0.1)
        return seen

    def find(self, query: str, roles: tuple[str, ...], verb: str) -> NodeInfo:
        """The node `query` names ("/ns/name", "ns/name" or a unique "name"), of one of `roles`."""
        query = query.strip()
        if not query:
            raise UserError("empty node name")

        def matches(nodes: list[NodeInfo]) -> list[NodeInfo]:
            if query.startswith("/"):
                return [n for n in nodes if n.name == names.join(query)]
            return [n for n in nodes if n.name == names.join(query) or n.name.endswith("/" + query.strip("/"))]

        end = time.monotonic() + self.timeout
        hits: list[NodeInfo] = []
        while True:
            nodes = self.nodes()
            hits = matches(nodes)
            if hits or time.monotonic() >= end:
                break
            self.spin_until(lambda: False, 0.1)
        if not hits:
            listed = ", ".join(n.name for n in nodes) or "none"
            raise UserError(f"no node {query!r} on ROS domain {domain()} after {self.timeout:g} s "
                            f"(this package's nodes there: {listed})")
        if len(hits) > 1:
            raise UserError(f"{query!r} is ambiguous: {', '.join(n.name for n in hits)} (give the full name)")
        node = hits[0]
        if node.role not in roles:
            raise UserError(f"{node.name} is a {node.role}; `{verb}` needs a {' or '.join(roles)}")
        return node

    # --- calls -----------------------------------------------------------------------------------
    def call(self, srv_type: Any, service: str, request: Any) -> Any:
        client = self.node.create_client(srv_type, service)
        try:
            if not self.spin_until(client.service_is_ready, self.timeout):
                raise UserError(f"service {service} is not available (waited {self.timeout:g} s)")
            return self.result(client.call_async(request), service)
        finally:
            self.node.destroy_client(client)

    def messages(self, msg_type: Any, topic: str, qos: QoSProfile | int = 10) -> Iterator[Any]:
        """Messages of `topic` as they arrive (the first within `timeout`, later ones forever)."""
        inbox: list[Any] = []
        sub = self.node.create_subscription(msg_type, topic, inbox.append, qos)
        try:
            first = True
            while True:
                if not self.spin_until(lambda: bool(inbox), self.timeout if first else None):
                    raise UserError(f"nothing on {topic} within {self.timeout:g} s")
                first = False
                while inbox:
                    yield inbox.pop(0)
        finally:
            self.node.destroy_subscription(sub)


@contextmanager
def session(args: argparse.Namespace) -> Iterator[RosSession]:
    if not args.timeout > 0:
        raise UserError(f"--timeout must be > 0, got {args.timeout:g}")
    s = RosSession(args.timeout)
    try:
        yield s
    finally:
        s.close()


# --- formatting ------------------------------------------------------------------------------------


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _num(x: float, fmt: str) -> str:
    return "-" if not math.isfinite(x) else format(x, fmt)


def status_line(role: str, msg: Any) -> str:
    """One line of a node's status message."""
    if role == LEARNER:
        workers = ", ".join(f"{w}{'' if alive else ' (lost)'}" for w, alive in zip(msg.workers, msg.workers_alive))
        return (f"{msg.state}  steps {msg.timesteps}  success {_num(msg.success_rate, '.2f')}  "
                f"{_num(msg.env_steps_per_second, '.0f')} steps/s  workers [{workers}]"
                + (f"  run {msg.run_dir}" if msg.run_dir else ""))
    line = (f"{msg.state}  enabled {_yes(msg.enabled)}  policy {_yes(msg.policy_loaded)}  "
            f"holding {_yes(msg.holding)}  distance {_num(msg.distance_to_goal, '.3f')} m")
    if role == CONTROLLER:
        line += f"  inference {_num(msg.inference_ms, '.2f')} ms"
    return line + (f"  ({msg.reason})" if msg.reason else "")


def to_yaml(msg: Any, indent: int = 0) -> str:
    """A message as YAML-like text, like `ros2 topic echo`.

    Written here because rosidl_runtime_py (which has message_to_yaml) is not among the PyPI
    wheels; a message's own field list makes it a few lines."""
    pad = "  " * indent
    lines = []
    for field in msg.get_fields_and_field_types():
        value = getattr(msg, field)
        if hasattr(value, "get_fields_and_field_types"):
            lines.append(f"{pad}{field}:\n{to_yaml(value, indent + 1)}")
        elif isinstance(value, (list, tuple)) and value and hasattr(value[0], "get_fields_and_field_types"):
            lines.append(f"{pad}{field}:")
            lines += [f"{pad}- " + to_yaml(v, indent + 1).lstrip() for v in value]
        else:
            if not isinstance(value, (str, bytes, int, float, bool)):
                value = [v.item() if hasattr(v, "item") else v for v in value]  # numpy / array.array
            lines.append(f"{pad}{field}: {value!r}" if isinstance(value, str) else f"{pad}{field}: {value}")
    return "\n".join(lines)


def _message_class(type_name: str) -> Any:
    package, kind, name = type_name.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError):
        raise UserError(f"message type {type_name} is not installed here") from None


# --- verbs -------------------------------------------------------------------------------------------


def nodes_verb(args: argparse.Namespace) -> int:
    with session(args) as s:
        found = s.discover()
        if not found:
            raise UserError(f"no drl_control nodes on ROS domain {domain()} (waited {args.timeout:g} s; "
                            "is the stack running, with the same ROS_DOMAIN_ID?)")
        rows = [(n.name, n.role, _state(s, n)) for n in found]
    width = [max(len(r[i]) for r in [("NODE", "ROLE", "")] + rows) for i in range(2)]
    print(f"{'NODE':<{width[0]}}  {'ROLE':<{width[1]}}  STATE")
    for name, role, state in rows:
        print(f"{name:<{width[0]}}  {role:<{width[1]}}  {state}")
    return 0


def _state(s: RosSession, node: NodeInfo, wait: float = 3.0) -> str:
    """A short state of `node` for `ros nodes` ("?" when it says nothing within `wait` s)."""
    if node.role in STATUS_TYPES:
        msg = _first(s, _status_type(node.role), node.private(names.STATUS), wait)
        if msg is None:
            return "? (no status)"
        if node.role == LEARNER:
            return f"{msg.state}" + (f" ({msg.timesteps} steps)" if msg.timesteps else "")
        return f"{msg.state}  enabled {_yes(msg.enabled)}" + (
            f"  policy {_yes(msg.policy_loaded)}" if node.role == CONTROLLER else "")
    if node.role == SIM_WORKER:
        spec = _spec(s, node, wait)
        return "? (no answer)" if spec is None else f"{spec.env_id} x {_plural(spec.num_envs, 'env')}"
    return "running"


def _status_type(role: str) -> Any:
    return _message_class(f"{_IFACE}/msg/{STATUS_TYPES[role]}")


def _first(s: RosSession, msg_type: Any, topic: str, wait: float) -> Any:
    inbox: list[Any] = []
    sub = s.node.create_subscription(msg_type, topic, inbox.append, 10)
    try:
        s.spin_until(lambda: bool(inbox), wait)
        return inbox[-1] if inbox else None
    finally:
        s.node.destroy_subscription(sub)


def _spec(s: RosSession, node: NodeInfo, wait: float) -> Any:
    from drl_control_interfaces.srv import EnvSpec

    client = s.node.create_client(EnvSpec, node.private(names.SPEC))
    try:
        if not s.spin_until(client.service_is_ready, wait):
            return None
        future = client.call_async(EnvSpec.Request())
        return future.result() if s.spin_until(future.done, wait) else None
    finally:
        s.node.destroy_client(client)


def status_verb(args: argparse.Namespace) -> int:
    with session(args) as s:
        node = s.find(args.node, (*STATUS_TYPES, SIM_WORKER), "ros status")
        if node.role == SIM_WORKER:
            spec = _spec(s, node, args.timeout)
            if spec is None:
                raise UserError(f"{node.name} did not answer {names.SPEC} within {args.timeout:g} s")
            print(f"{node.name}: {spec.env_id} x {_plural(spec.num_envs, 'env')} at {spec.control_hz:g} Hz")
            return 0
        count = 0
        try:
            for msg in s.messages(_status_type(node.role), node.private(names.STATUS)):
                print(f"{node.name}: {status_line(node.role, msg)}", flush=True)
                count += 1
                if not args.follow or (args.count and count >= args.count):
                    break
        except KeyboardInterrupt:  # the way --follow ends
            pass
    return 0


def _request(args: argparse.Namespace, roles: tuple[str, ...], verb: str, srv_type: Any, service: str,
             request: Any, refused: str) -> tuple[NodeInfo, Any]:
    """Find the node, call its private `service`; a refusal is a UserError ("<node> <refused>: why")."""
    with session(args) as s:
        node = s.find(args.node, roles, verb)
        response = s.call(srv_type, node.private(service), request)
    if not response.success:
        raise UserError(f"{node.name} {refused}: {response.message}")
    return node, response


def enable_verb(args: argparse.Namespace, enable: bool = True) -> int:
    from std_srvs.srv import SetBool

    node, response = _request(args, ENABLE_ROLES, "ros enable" if enable else "ros disable", SetBool, names.ENABLE,
                              SetBool.Request(data=enable), "refused")
    print(f"{node.name}: {response.message}")
    return 0


def disable_verb(args: argparse.Namespace) -> int:
    return enable_verb(args, enable=False)


def goal_verb(args: argparse.Namespace) -> int:
    from geometry_msgs.msg import Point

    from drl_control_interfaces.srv import SetGoal

    x, y, z = (float(v) for v in (args.x, args.y, args.z))
    if not all(math.isfinite(v) for v in (x, y, z)):
        raise UserError(f"goal must be finite, got {[x, y, z]}")
    node, response = _request(args, (CONTROLLER,), "ros goal", SetGoal, names.SET_GOAL,
                              SetGoal.Request(goal=Point(x=x, y=y, z=z)), "refused the goal")
    print(f"{node.name}: goal ({x:g}, {y:g}, {z:g}) m in {names.BASE_FRAME}: {response.message}")
    return 0


def load_policy_verb(args: argparse.Namespace) -> int:
    from drl_control_interfaces.srv import LoadPolicy

    # The node resolves a relative path against ITS working directory, not the user's.
    artifact = str(Path(args.artifact).expanduser().resolve())
    node, response = _request(args, (CONTROLLER,), "ros load-policy", LoadPolicy, names.LOAD_POLICY,
                              LoadPolicy.Request(artifact_dir=artifact), f"refused {artifact}")
    print(f"{node.name}: {response.message}")
    return 0


def echo_verb(args: argparse.Namespace) -> int:
    topic = names.join(args.topic)
    with session(args) as s:
        types: list[str] = []
        s.spin_until(lambda: bool(types.extend(dict(s.node.get_topic_names_and_types()).get(topic, [])) or types),
                     args.timeout)
        if not types:
            raise UserError(f"no topic {topic} on ROS domain {domain()} after {args.timeout:g} s")
        msg_type = _message_class(types[0])
        # A latched topic (robot_description) is only heard with the publisher's durability.
        latched = any(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
                      for i in s.node.get_publishers_info_by_topic(topic))
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)
        count = 0
        try:
            for msg in s.messages(msg_type, topic, qos):
                print(to_yaml(msg) + "\n---", flush=True)
                count += 1
                if args.count and count >= args.count:
                    break
        except KeyboardInterrupt:  # the way echo ends
            pass
    return 0


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def train_verb(args: argparse.Namespace) -> int:
    from action_msgs.msg import GoalStatus

    from drl_control.learn.progress import TrainingBar
    from drl_control.ros.learner_goals import goal_problem
    from drl_control.ros.spin import ThreadSafeActionClient
    from drl_control_interfaces.action import Train

    goal = Train.Goal(algorithm=args.algo or "", env_id=args.env or "", timesteps=args.timesteps or 0,
                      seed=-1 if args.seed is None else args.seed, overrides=list(args.overrides),
                      run_dir=args.run_dir or "")  # relative: under the learner's run_root
    if goal.algorithm:
        # The learner refuses a bad goal without a reason on the wire; the same check here says why.
        problem = goal_problem(goal, goal.algorithm.lower(), None)
        if problem:
            raise UserError(f"bad train goal: {problem}")
    with session(args) as s:
        node = s.find(args.learner, (LEARNER,), "ros train")
        action = ThreadSafeActionClient(s.node, Train, node.private(names.TRAIN))
        bar: TrainingBar | None = None
        try:
            if not s.spin_until(action.server_is_ready, args.timeout):
                raise UserError(f"{node.private(names.TRAIN)} is not available (waited {args.timeout:g} s)")

            def on_feedback(msg: Any) -> None:
                nonlocal bar
                f = msg.feedback
                if bar is None:
                    bar = TrainingBar(args.timesteps or f.timesteps, desc=node.name)
                bar.total = bar.total or int(f.timesteps)
                bar.update(int(f.timesteps), f.env_steps_per_second, f.success_rate)

            handle = s.result(action.send_goal_async(goal, feedback_callback=on_feedback), node.private(names.TRAIN))
            if not handle.accepted:
                state = _first(s, _status_type(LEARNER), node.private(names.STATUS), 2.0)
                busy = f" (it is {state.state})" if state is not None and state.state not in ("idle", "done") else ""
                raise UserError(f"{node.name} refused the train goal{busy}; its log says why")
            print(f"{node.name} accepted the goal: {args.algo or 'default algorithm'} on "
                  f"{args.env or 'the workers env'}; Ctrl-C cancels (the learner checkpoints)", file=sys.stderr)
            future = handle.get_result_async()
            cancelled = False
            old_term = signal.signal(signal.SIGTERM, _interrupt)  # `kill` cancels like Ctrl-C
            try:
                s.spin_until(future.done, None)
            except KeyboardInterrupt:
                cancelled = True
                print("\ncancelling: waiting for the learner's checkpoint (Ctrl-C again to stop waiting)",
                      file=sys.stderr)
                handle.cancel_goal_async()
                s.spin_until(future.done, None)
            finally:
                signal.signal(signal.SIGTERM, old_term)
        finally:
            if bar is not None:
                bar.close()
            action.destroy()
    wrapped = future.result()
    result = wrapped.result
    if result.run_dir:
        print(f"run directory: {result.run_dir}")
    if wrapped.status == GoalStatus.STATUS_SUCCEEDED and result.success:
        if result.artifact_dir:
            print(f"artifact: {result.artifact_dir}")
        print(f"eval success rate: {result.success_rate:.3f}")
        return 0
    if cancelled and wrapped.status == GoalStatus.STATUS_CANCELED:
        print(f"cancelled: {result.message}")
        return 130
    raise UserError(f"{node.name}: {result.message or 'training did not succeed'}")


VERBS: dict[str, Callable[[argparse.Namespace], int]] = {
    "nodes": nodes_verb, "status": status_verb, "enable": enable_verb, "disable": disable_verb,
    "goal": goal_verb, "load-policy": load_policy_verb, "train": train_verb, "echo": echo_verb,
}


def ros_verb(args: argparse.Namespace) -> int:
    """`drl-control ros SUBVERB ...` (dispatch from cli.py)."""
    return VERBS[args.ros_verb](args)
