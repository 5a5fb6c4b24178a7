"""The sim workers of a `learner_node`: which answer, what a training run does when one is lost,
and how it comes back.

A worker that does not answer a step within `worker_timeout` s (or whose service leaves the ROS
graph) is reported by RosVecEnv (`worker_lost`): it is logged by name and the current training
segment's stop event is set, so the Trainer stops BEFORE that step is stored (its cancel path),
writes a checkpoint, and goes on from it on a rebuilt RosVecEnv. Why a rebuild: SB3 cannot change
n_envs mid-run, and the dead envs' last observation has no true successor, so stopping before the
step is stored is the one way that puts no bogus transition into the replay buffer.

`policy` (the learner's `on_worker_failure`, read per goal) says how to go on (`recover`):
  pause     wait (state "paused") until the worker's ~/spec answers again (the same namespace
            restarted), then go on over all workers;
  continue  go on at once: the lost worker's env slots move to the surviving workers (their
            `num_envs` parameter is raised), so n_envs stays the same; when the lost worker
            answers again, training stops once more and the slots move back (rejoin).
A lost worker's ~/spec is probed every `probe_period` s (`probe_lost`, a timer of the node).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rclpy.node import Node
from rclpy.parameter import Parameter

from drl_control.ros import names
from drl_control_interfaces.srv import EnvSpec, EnvStep

FAILURE_POLICIES = ("pause", "continue")
PROBE_TIMEOUT = 2.0  # s: a ~/spec probe of a lost worker unanswered this long is dropped and resent


@dataclass
class Faults:
    """Worker faults of one training run (reported in the result message)."""

    failures: int = 0  # workers lost
    lost_envs: int = 0  # env slots they served
    truncated: int = 0  # episodes in flight when a segment stopped (all envs reset at the rebuild)
    rejoined: int = 0
    seen: set[str] = field(default_factory=set)

    def text(self) -> str:
        if not self.failures and not self.rejoined:
            return ""
        return (f"; worker failures: {self.failures} ({', '.join(sorted(self.seen))}), {self.lost_envs} env slots, "
                f"{self.truncated} in-flight episodes truncated, {self.rejoined} rejoined")


class WorkerPool:
    """Worker health of one learner node; its clients live on that node (callback group `group`)."""

    def __init__(self, node: Node, workers: list[str], group: Any, worker_timeout: float, connect_timeout: float,
                 set_state: Callable[[str], None]) -> None:
        self.node = node
        self.workers = list(workers)
        self.worker_timeout = worker_timeout
        self.connect_timeout = connect_timeout
        self._group = group
        self._set_state = set_state
        self._lock = threading.Lock()
        self._lost: dict[str, str] = {}  # worker -> why it was lost (until it answers again)
        self._returned: set[str] = set()  # lost workers whose ~/spec answered again
        self._probing: dict[str, tuple[Any, float]] = {}
        self._spec_probes = {w: node.create_client(EnvSpec, names.sim_service(w, names.SPEC), callback_group=group)
                             for w in self.workers}
        # Liveness of the workers for the status topic (graph queries only, no calls).
        self._step_probes = [node.create_client(EnvStep, names.sim_service(w, names.STEP), callback_group=group)
                             for w in self.workers]
        self.stop = threading.Event()  # the current training segment's cancel event
        self.training = False
        self.policy = FAILURE_POLICIES[0]
        self.base: dict[str, int] = {}  # each worker's own env count (from the first connect)
        self.faults = Faults()

    def begin(self, policy: str) -> None:
        """A new training run: no worker lost, no fault counted."""
        with self._lock:
            self._lost.clear()
            self._returned.clear()
            self.policy = policy
            self.faults = Faults()

    def start_segment(self, cancelled: bool) -> threading.Event:
        """A fresh stop event for the next Trainer segment (already set when the goal was cancelled)."""
        stop = threading.Event()
        with self._lock:
            self.stop = stop
            self.training = True
        if cancelled:
            stop.set()
        return stop

    def end_segment(self) -> None:
        with self._lock:
            self.training = False

    def connect(self, workers: list[str]) -> Any:
        from drl_control.ros.vec_env import RosVecEnv

        return RosVecEnv(workers, context=self.node.context, node_name=f"{self.node.get_name()}_vec_env",
                         timeout=self.worker_timeout, connect_timeout=self.connect_timeout)

    def worker_lost(self, worker: str, reason: str) -> None:
        """RosVecEnv's on_failure (training thread): log which worker, stop before the step is stored."""
        with self._lock:
            first = worker not in self._lost
            first_of_all = not self._lost
            self._lost[worker] = reason
            self._returned.discard(worker)
            self.stop.set()
        log = self.node.get_logger()
        if not self.node.context.ok():  # Ctrl-C: every worker reports it; nothing was lost
            if first_of_all:
                log.info("ROS is shutting down: checkpointing and stopping")
        elif first:
            log.error(f"sim worker {worker} lost: {reason}; checkpointing (on_worker_failure={self.policy})")

    def plan(self) -> list[str]:
        """The workers of the next segment (configured order): all in pause mode (or when none is
        alive), the alive ones in continue mode."""
        with self._lock:
            alive = [w for w in self.workers if w not in self._lost]
        if self.policy == "pause" or not alive:
            return list(self.workers)
        return alive

    def targets(self, alive: list[str]) -> dict[str, int]:
        """Env counts of the alive workers: their own first, then the lost workers' slots round-robin."""
        targets = {w: self.base[w] for w in alive}
        spare = sum(n for w, n in self.base.items() if w not in alive)
        for i in range(spare):
            targets[alive[i % len(alive)]] += 1
        return targets

    def recover(self, cancel: threading.Event, counted: bool) -> bool:
        """After a segment stopped for a worker (lost or returned): wait (pause, or nobody left) and
        move env slots; False when the goal was cancelled meanwhile. `counted`: the segment ran,
        so its in-flight episodes were truncated."""
        if counted:
            self.faults.truncated += sum(self.base.values())
        while True:
            with self._lock:
                lost = dict(self._lost)
            new = [w for w in lost if w not in self.faults.seen]
            self.faults.seen.update(new)
            self.faults.failures += len(new)
            self.faults.lost_envs += sum(self.base[w] for w in new)
            if (self.policy == "pause" or len(lost) == len(self.workers)) and not self._wait_for_return(lost, cancel):
                return False
            alive = self._rejoin()
            self._set_state("recovering")
            targets = self.targets(alive)
            failed = next((w for w, n in targets.items() if not self.set_num_envs(w, n)), None)
            if failed is None:
                if any(targets[w] != self.base[w] for w in alive):
                    self.node.get_logger().warning(f"continuing on {alive} with env slots {targets}")
                return True
            self.worker_lost(failed, f"could not set num_envs:={targets[failed]}")

    def _wait_for_return(self, lost: dict[str, str], cancel: threading.Event) -> bool:
        """Pause until every lost worker (pause) or any (continue, none left) answers again; False
        when the goal is cancelled or ROS shuts down meanwhile."""
        if not self.node.context.ok():  # Ctrl-C: no worker will answer a node that is going
            return False
        self._set_state("paused")
        self.node.get_logger().warning(f"paused: waiting for {sorted(lost)} to answer {names.SPEC} again")
        while not cancel.is_set() and self.node.context.ok():
            with self._lock:
                if (self.policy == "pause" and set(self._lost) <= self._returned) or \
                        (self.policy == "continue" and self._returned):
                    return True
            time.sleep(0.05)
        return False

    def _rejoin(self) -> list[str]:
        """Take the returned workers back; the alive ones in configured order."""
        with self._lock:
            for w in self._returned:
                self._lost.pop(w, None)
                self.faults.rejoined += 1
                self.node.get_logger().info(f"sim worker {w} answers again: rejoining")
            self._returned.clear()
            return [w for w in self.workers if w not in self._lost]

    def set_num_envs(self, worker: str, n: int) -> bool:
        """Set a sim worker's `num_envs` parameter (its set_parameters service); True when taken."""
        from rcl_interfaces.srv import SetParameters

        namespace, node_name = names.split_worker(worker)
        client = self.node.create_client(SetParameters, names.join(namespace, node_name, "set_parameters"),
                                         callback_group=self._group)
        try:
            if not client.wait_for_service(timeout_sec=self.connect_timeout):
                return False
            request = SetParameters.Request(parameters=[Parameter("num_envs", value=int(n)).to_parameter_msg()])
            future = client.call_async(request)
            done = threading.Event()
            future.add_done_callback(lambda _f: done.set())
            if not done.wait(self.worker_timeout + 10.0) or future.result() is None:
                client.remove_pending_request(future)
                return False
            results = future.result().results
            for r in results:
                if not r.successful:
                    self.node.get_logger().error(f"sim worker {worker} refused num_envs:={n}: {r.reason}")
            return all(r.successful for r in results)
        finally:
            self.node.destroy_client(client)

    def probe_lost(self) -> None:
        """Timer: call ~/spec of each lost worker; an answer marks it returned (rejoin). In
        continue mode a return also stops the running segment so its env slots move back."""
        with self._lock:
            lost = [w for w in self._lost if w not in self._returned]
        now = time.monotonic()
        for w in lost:
            pending = self._probing.get(w)
            if pending is not None:
                future, sent = pending
                if not future.done() and now - sent < PROBE_TIMEOUT:
                    continue
                if not future.done():
                    self._spec_probes[w].remove_pending_request(future)
                self._probing.pop(w, None)
            client = self._spec_probes[w]
            if not client.service_is_ready():
                continue
            future = client.call_async(EnvSpec.Request())
            self._probing[w] = (future, now)
            future.add_done_callback(lambda f, w=w: self._on_probe(w, f))

    def _on_probe(self, worker: str, future: Any) -> None:
        if future.cancelled() or future.exception() is not None or future.result() is None:
            return
        with self._lock:
            if worker not in self._lost or worker in self._returned:
                return
            self._returned.add(worker)
            if self.training and self.policy == "continue":
                self.stop.set()  # move the slots back at the next step
        self.node.get_logger().info(f"sim worker {worker} answers {names.SPEC} again")

    def alive(self) -> list[bool]:
        """Per configured worker: its step service is on the graph and it is not lost."""
        ready = [c.service_is_ready() for c in self._step_probes]
        with self._lock:
            return [r and w not in self._lost for w, r in zip(self.workers, ready)]
