"""Helpers of the tests/test_ros_*.py modules: nodes as real processes, and an rclpy context.

Each test module picks its own ROS domain (from the pid and a per-module offset), so modules
and parallel runs on one machine do not hear each other. No mocks: every node runs in its own
process, as `drl-control launch` or `ros2 run` would start it, and talks over FastDDS.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

from rclpy.executors import MultiThreadedExecutor

TIMEOUT = 20.0


def domain_id(offset: int) -> int:
    # Domain ids 1..100 keep DDS ports in the range that is safe on Linux.
    return 1 + (os.getpid() + offset) % 100


def ros_env(domain: int) -> dict[str, str]:
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(domain)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["PYTHONUNBUFFERED"] = "1"
    return env


class NodeProcess:
    """One node in a subprocess; output goes to a log file (read with `.log()`)."""

    def __init__(self, module: str, domain: int, ros_args: Sequence[str] = ()) -> None:
        self.module = module
        self._log = tempfile.NamedTemporaryFile(prefix=module.rsplit(".", 1)[-1] + "_", suffix=".log", delete=False)
        cmd = [sys.executable, "-m", module, "--ros-args", *ros_args]
        self.proc = subprocess.Popen(cmd, env=ros_env(domain), stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT, wait, then kill; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def sim_node(domain: int, namespace: str, **params: object) -> NodeProcess:
    args = ["-r", f"__ns:={namespace}"]
    for key, value in params.items():
        args += ["-p", f"{key}:={value}"]
    return NodeProcess("drl_control.ros.sim_node", domain, args)


class RosClient:
    """A private rclpy context on `domain` spun by a MultiThreadedExecutor thread."""

    def __init__(self, domain: int, name: str) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True, name=name)
        self.thread.start()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self.thread.join(timeout=5.0)


def wait_future(future, timeout: float = TIMEOUT):
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    assert done.wait(timeout), "timed out waiting for a ROS response"
    return future.result()


def wait_until(cond: Callable[[], bool], timeout: float = TIMEOUT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
