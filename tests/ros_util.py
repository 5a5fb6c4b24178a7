"""Helpers of the ROS test modules: nodes as real processes, and an in-process probe node.

Each test module picks its own ROS domain (`domain_id(offset)`: from the pid and a per-module
offset), so modules and parallel runs on one machine do not hear each other. No mocks: every node
runs in its own process, as `drl-control launch` or `ros2 run` would start it, and talks over
FastDDS.

- `NodeProcess`: one node in a subprocess on a domain, output in a log file, stopped by SIGINT then
  SIGKILL (by its own pid).
- `RosClient`: a private rclpy context on a domain with one probe node spun by an executor thread,
  with `call` (a service, blocking) and `collect` (a topic, into a list).
- `RosHarness`: a RosClient that also owns the node processes of a test module.
- `wait_for` (-> bool), `wait_until` (raises), `wait_future`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

from rclpy.executors import SingleThreadedExecutor

TIMEOUT = 20.0
BIN = Path(sys.executable).parent  # the venv's console scripts (drl-control, sim_node, ...)


def stamp_now(msg):
    """`msg` with header.stamp = now (wall clock, as a node's ROS clock): the real-robot side
    refuses unstamped or old joint states (drl_control.deploy.safety.StateGate)."""
    t = time.time()
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(t), int((t % 1) * 1e9)
    return msg


def domain_id(offset: int) -> int:
    # Domain ids 1..100 keep DDS ports in the range that is safe on Linux.
    return 1 + (os.getpid() + offset) % 100


def ros_env(domain: int, **extra: str) -> dict[str, str]:
    return dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                PYTHONUNBUFFERED="1", **extra)


# --- waiting -----------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], object], timeout: float = TIMEOUT, period: float = 0.02) -> bool:
    """Poll `predicate` until it is true or `timeout` passes; returns its last truth."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(period)
    return bool(predicate())


def wait_until(cond: Callable[[], object], timeout: float = TIMEOUT, what: str = "condition") -> None:
    if not wait_for(cond, timeout):
        raise AssertionError(f"timed out waiting for {what}")


def wait_future(future, timeout: float = TIMEOUT, what: str = "a ROS response"):
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    assert done.wait(timeout), f"timed out waiting for {what}"
    return future.result()


# --- node processes ----------------------------------------------------------------------------


class NodeProcess:
    """One node in a subprocess; output goes to a log file (read with `.log()`).

    `command`: a module run by `python -m` (drl_control.ros.sim_node), or without a dot a console
    script of this venv (controller_node). `log`: the log file (default: a temp file).
    """

    def __init__(self, command: str, domain: int, ros_args: Sequence[str] = (), *, log: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.command = command
        if log is None:
            name = command.rsplit(".", 1)[-1]
            with tempfile.NamedTemporaryFile(prefix=name + "_", suffix=".log", delete=False) as f:
                log = Path(f.name)
        self.log_path = Path(log)
        argv = [sys.executable, "-m", command] if "." in command else [str(BIN / command)]
        with open(self.log_path, "w") as out:
            self.proc = subprocess.Popen([*argv, "--ros-args", *ros_args], env=env or ros_env(domain),
                                         stdout=out, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def interrupt(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def wait(self, timeout: float = 10.0) -> int:
        """Wait for the exit (kill after `timeout`); returns the exit status."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT, wait, then kill; returns the exit status."""
        self.interrupt()
        return self.wait(timeout)


def stop_all(procs: Iterable[NodeProcess], timeout: float = 10.0) -> list[int]:
    """SIGINT to every process first (they shut down in parallel), then wait for each."""
    procs = list(procs)
    for proc in procs:
        proc.interrupt()
    return [proc.wait(timeout) for proc in procs]


def sim_node(domain: int, namespace: str, **params: object) -> NodeProcess:
    args = ["-r", f"__ns:={namespace}"]
    for key, value in params.items():
        args += ["-p", f"{key}:={value}"]
    return NodeProcess("drl_control.ros.sim_node", domain, args)


# --- the probe node ----------------------------------------------------------------------------


class RosClient:
    """A private rclpy context on `domain` spun by a SingleThreadedExecutor thread.

    Not a MultiThreadedExecutor: while one thread runs a callback of a mutually exclusive group,
    the others find the same subscription ready and spin on it, holding the GIL; under a 250 Hz
    topic the probe then fell to ~10 messages/s and read positions seconds old (measured).
    """

    wait_for = staticmethod(wait_for)

    def __init__(self, domain: int, name: str) -> None:
        self.domain_id = domain
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True, name=name)
        self.thread.start()

    def logs(self) -> str:
        """What the nodes under test wrote (for assertion messages); none here."""
        return ""

    def call(self, srv_type, name: str, request, timeout: float = 15.0):
        """Call service `name` and wait for its response."""
        client = self.node.create_client(srv_type, name)
        try:
            assert client.wait_for_service(timeout_sec=timeout), f"service {name} not available\n{self.logs()}"
            return wait_future(client.call_async(request), timeout, what=f"a response from {name}")
        finally:
            self.on_executor(self.node.destroy_client, client)

    def collect(self, msg_type, topic: str, qos: int = 50) -> tuple[list, object]:
        """Subscribe; returns (list receiving (monotonic time of arrival, msg) tuples, subscription)."""
        got: list = []
        sub = self.node.create_subscription(msg_type, topic, lambda m: got.append((time.monotonic(), m)), qos)
        return got, sub

    def on_executor(self, fn: Callable, *args, timeout: float = 10.0):
        """Run `fn(*args)` on the executor's own thread and return its result.

        Destroying a subscription, client or publisher (its QoS event handlers are waitables) from
        the test thread while the executor waits on it killed the executor thread (seen in CI): the
        probe then heard nothing more, and the subscription stayed matched, so the node under test
        still saw a subscriber.
        """
        result = wait_future(self.executor.create_task(fn, *args), timeout, what=f"the probe to run {fn.__name__}")
        assert self.thread.is_alive(), "the probe's executor thread died"
        return result

    def unsubscribe(self, sub) -> None:
        self.on_executor(self.node.destroy_subscription, sub)

    def collect_sent(self, msg_type, topic: str, qos: int = 100) -> tuple[list, object]:
        """Like `collect`, but each message comes with its PUBLISHER's time (DDS source timestamp,
        in `time.time()` seconds): when it was sent, however late a busy probe takes it.

        "Nothing is sent after X" is then decided by the node's own send times, not by arrival
        times that a starved probe process can delay by hundreds of milliseconds.
        """
        got: list = []
        sub = self.node.create_subscription(msg_type, topic,
                                            lambda m, info: got.append((info["source_timestamp"] * 1e-9, m)), qos)
        return got, sub

    def publisher(self, msg_type, topic: str, depth: int = 10, subscribers: int = 1):
        """A publisher of the probe node, returned once `subscribers` subscriptions match it."""
        pub = self.node.create_publisher(msg_type, topic, depth)
        self.wait_matched(pub, subscribers)
        return pub

    def wait_matched(self, publisher, count: int = 1, timeout: float = 30.0) -> None:
        """Wait until `count` subscriptions match `publisher` (DDS discovery): a message published
        before that is lost, which on a loaded machine can take seconds."""
        wait_until(lambda: publisher.get_subscription_count() >= count, timeout,
                   what=f"{count} subscriber(s) of {publisher.topic_name}\n{self.logs()}")

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self.thread.join(timeout=5.0)


class RosHarness(RosClient):
    """A probe node ("test_probe") plus the node processes of a test module, logs in `log_dir`."""

    def __init__(self, domain: int, log_dir: Path) -> None:
        super().__init__(domain, "test_probe")
        self.log_dir = Path(log_dir)
        self.env = ros_env(domain, OMP_NUM_THREADS="1")
        self.procs: list[NodeProcess] = []

    def start(self, executable: str, *ros_args: str, name: str | None = None) -> NodeProcess:
        proc = NodeProcess(executable, self.domain_id, ros_args, log=self.log_dir / f"{name or executable}.log",
                           env=self.env)
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.log()[-3000:]}" for p in self.procs if p.log_path.exists())

    def close(self) -> None:
        stop_all(self.procs, timeout=5.0)
        super().close()
