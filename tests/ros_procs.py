"""Helpers for ROS tests that run nodes as separate processes on a private ROS domain.

`RosHarness` owns: a domain id, the node subprocesses (started with that domain, logs in a temp
dir, stopped by SIGINT then SIGKILL, each by its own pid) and one in-process probe node (own rclpy
context, spun by an executor thread) that tests use to publish, subscribe and call services.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import rclpy
from rclpy.executors import MultiThreadedExecutor

BIN = Path(sys.executable).parent


class RosHarness:
    def __init__(self, domain_id: int, log_dir: Path) -> None:
        self.domain_id = domain_id
        self.log_dir = Path(log_dir)
        self.env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                        PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
        self.procs: list[tuple[subprocess.Popen, Path]] = []
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.node = rclpy.create_node("test_probe", context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True, name="probe")
        self.thread.start()

    def start(self, executable: str, *ros_args: str, name: str | None = None) -> subprocess.Popen:
        log = self.log_dir / f"{name or executable}.log"
        cmd = [str(BIN / executable), "--ros-args", *ros_args]
        proc = subprocess.Popen(cmd, env=self.env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
        self.procs.append((proc, log))
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for _, log in self.procs if log.exists())

    def call(self, srv_type, name: str, request, timeout: float = 15.0):
        client = self.node.create_client(srv_type, name)
        try:
            assert client.wait_for_service(timeout_sec=timeout), f"service {name} not available\n{self.logs()}"
            future = client.call_async(request)
            done = threading.Event()
            future.add_done_callback(lambda _f: done.set())
            assert done.wait(timeout), f"no response from {name}"
            return future.result()
        finally:
            self.node.destroy_client(client)

    def collect(self, msg_type, topic: str, qos: int = 50) -> tuple[list, object]:
        """Subscribe; returns (list receiving (monotonic time, msg) tuples, subscription)."""
        got: list = []
        sub = self.node.create_subscription(msg_type, topic, lambda m: got.append((time.monotonic(), m)), qos)
        return got, sub

    @staticmethod
    def wait_for(predicate, timeout: float, period: float = 0.02) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            time.sleep(period)
        return bool(predicate())

    def close(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc, _ in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
        self.thread.join(timeout=5)
