"""`learner_node`: trains an SB3 agent over `sim_node` workers through the `~/train` action.

    ros2 run drl_control learner_node --ros-args -p workers:="['/sim0', '/sim1']" -p run_root:=runs

Goal: algorithm, env id (empty: the workers'), config overrides, timesteps, seed, run dir.
Feedback: timesteps, success rate, env steps/s, mean return. Result: run dir, exported deploy
artifact, final success rate. Cancel checkpoints and stops (result success=false, "cancelled").
`~/status` (LearnerStatus) is published periodically.

The training itself is drl_control.learn.train.Trainer on a RosVecEnv; this node only wires the
action to it. Training runs in its own thread (the action's execute callback on a
MultiThreadedExecutor), so status, cancel and feedback stay responsive.

Worker failure (a sim_node killed, hung or gone): a worker that does not answer a step within
`worker_timeout` s (or whose service leaves the ROS graph) is logged by name and training stops
BEFORE that step is stored (the Trainer's cancel path), writes a checkpoint, and goes on from it
on a rebuilt RosVecEnv. Why a rebuild: SB3 cannot change n_envs mid-run, and the dead envs' last
observation has no true successor, so stopping before the step is stored is the one way that puts
no bogus transition into the replay buffer. `on_worker_failure` (read per goal) says how to go on:
  pause     wait (status "paused") until the worker's ~/spec answers again (the same namespace
            restarted), then go on over all workers;
  continue  go on at once: the lost worker's env slots move to the surviving workers (their
            `num_envs` parameter is raised), so n_envs stays the same; when the lost worker
            answers again, training stops once more and the slots move back (rejoin).
Every rebuild resets all envs: the episodes in flight then are truncated (counted, reported in
the result message). Resumed segment k reseeds its resets with seed + k * SEED_STRIDE.
The status topic's workers_alive is false for a lost worker until it answers again.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from drl_control.ros import names
from drl_control.ros.spin import run_node
from drl_control_interfaces.action import Train
from drl_control_interfaces.msg import LearnerStatus
from drl_control_interfaces.srv import EnvSpec, EnvStep

FAILURE_POLICIES = ("pause", "continue")
SEED_STRIDE = 1_000_003  # reset seeds of resumed segment k: seed + k * SEED_STRIDE
SHUTDOWN_TIMEOUT = 120.0  # s: Ctrl-C waits this long at most for the run's checkpoint
PROBE_TIMEOUT = 2.0  # s: a ~/spec probe of a lost worker unanswered this long is dropped and resent


def _nan_to(value: float, default: float = 0.0) -> float:
    return default if value is None or math.isnan(value) else float(value)


def goal_overrides(goal: Train.Goal, algo: str, env_id: str | None) -> dict[str, Any]:
    """The config overrides a train goal asks for: its `overrides` validated as written (a bad
    value is refused even where the goal's timesteps or seed field would replace it), then those
    fields. Raises ValueError naming the bad key or value."""
    from drl_control.learn.config import parse_overrides, resolve_config

    overrides = parse_overrides(list(goal.overrides))
    resolve_config(algo, env_id, overrides=overrides)
    if goal.timesteps > 0:
        overrides["total_timesteps"] = int(goal.timesteps)
    if goal.seed >= 0:
        overrides["seed"] = int(goal.seed)
    return overrides


@dataclass
class _Faults:
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


class LearnerNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(names.LEARNER_NODE, **kwargs)
        self.workers: list[str] = list(self.declare_parameter("workers", [names.DEFAULT_SIM_NAMESPACE]).value)
        self.run_root = Path(self.declare_parameter("run_root", "runs").value)
        self.default_algorithm = self.declare_parameter("algorithm", "sac").value
        self.worker_timeout = float(self.declare_parameter("worker_timeout", 30.0).value)
        self.connect_timeout = float(self.declare_parameter("connect_timeout", 30.0).value)
        status_rate = float(self.declare_parameter("status_rate", 2.0).value)
        self.export = bool(self.declare_parameter("export", True).value)
        self.declare_parameter("on_worker_failure", "pause")  # pause | continue (read per goal)
        probe_period = float(self.declare_parameter("probe_period", 1.0).value)

        self._group = ReentrantCallbackGroup()
        self._lock = threading.Lock()
        self._busy = False
        self._cancel = threading.Event()
        self._venv: Any = None
        self._stop = threading.Event()  # the current training segment's cancel event
        self._lost: dict[str, str] = {}  # worker -> why it was lost (until it answers again)
        self._returned: set[str] = set()  # lost workers whose ~/spec answered again
        self._probing: dict[str, tuple[Any, float]] = {}
        self._spec_probes = {w: self.create_client(EnvSpec, names.sim_service(w, names.SPEC),
                                                   callback_group=self._group) for w in self.workers}
        self._training = False
        self._status = LearnerStatus(state="idle", workers=list(self.workers))
        # Liveness probes of the workers while idle (graph queries only, no calls).
        self._probes = [self.create_client(EnvStep, names.sim_service(w, names.STEP), callback_group=self._group)
                        for w in self.workers]
        self.status_pub = self.create_publisher(LearnerStatus, names.STATUS, 10)
        self.create_timer(1.0 / max(status_rate, 0.1), self._publish_status, callback_group=self._group)
        self.create_timer(max(probe_period, 0.05), self._probe_lost, callback_group=self._group)
        self._server = ActionServer(
            self, Train, names.TRAIN,
            execute_callback=self._execute,
            goal_callback=self._on_goal,
            cancel_callback=self._on_cancel,
            callback_group=self._group,
        )
        self.get_logger().info(f"ready: {names.TRAIN} over sim workers {self.workers}, runs under {self.run_root}")

    # --- action callbacks --------------------------------------------------------------------
    def _on_goal(self, goal: Train.Goal) -> GoalResponse:
        from drl_control.learn.config import ALGOS

        algo = (goal.algorithm or self.default_algorithm).lower()
        problem = (f"unknown algorithm {goal.algorithm!r} (one of {ALGOS})" if algo not in ALGOS
                   else self._goal_problem(goal, algo))
        if problem:
            self.get_logger().warning(f"rejected train goal: {problem}")
            return GoalResponse.REJECT
        policy = self.get_parameter("on_worker_failure").value
        if policy not in FAILURE_POLICIES:
            self.get_logger().warning(f"rejected train goal: parameter on_worker_failure is {policy!r} "
                                      f"(one of {FAILURE_POLICIES})")
            return GoalResponse.REJECT
        with self._lock:
            if self._busy:
                self.get_logger().warning("rejected train goal: a training run is already in progress")
                return GoalResponse.REJECT
            self._busy = True
        return GoalResponse.ACCEPT

    @staticmethod
    def _goal_problem(goal: Train.Goal, algo: str) -> str:
        """Why a train goal cannot start ("" when it can), found before it is accepted: an unknown
        env id, overrides that do not parse or validate, a run_dir that is a file. (Whether the env id
        is the workers' is known only once they are connected.)"""
        import gymnasium as gym

        from drl_control.learn.algos import import_env_packages
        from drl_control.learn.config import resolve_config

        try:
            if goal.env_id:
                import_env_packages(goal.env_id)
                gym.spec(goal.env_id)
            resolve_config(algo, goal.env_id or None, overrides=goal_overrides(goal, algo, goal.env_id or None))
        except Exception as exc:  # noqa: BLE001 - any bad field is a rejection with its reason
            return f"{type(exc).__name__}: {exc}"
        if goal.run_dir and Path(goal.run_dir).exists() and not Path(goal.run_dir).is_dir():
            return f"run_dir {goal.run_dir!r} exists and is not a directory"
        return ""

    def _on_cancel(self, _goal_handle: Any) -> CancelResponse:
        self.get_logger().info("cancel requested: checkpointing and stopping")
        self.request_stop()
        return CancelResponse.ACCEPT

    def request_stop(self) -> None:
        """Cancel (or shutdown): checkpoint and stop the current run."""
        self._cancel.set()
        self._stop.set()

    def shutdown(self, timeout: float = SHUTDOWN_TIMEOUT) -> None:
        """Ctrl-C / SIGTERM: stop the run and wait (at most `timeout` s) for its checkpoint before
        the process goes; the training thread is not a daemon of ours to abandon mid-save."""
        self.request_stop()
        end = time.monotonic() + timeout
        while self._busy and time.monotonic() < end:
            time.sleep(0.05)
        if self._busy:
            self.get_logger().error(f"the training run did not stop within {timeout:g} s; exiting without it")

    def _tell(self, update: Any, *args: Any) -> None:
        """A goal-handle update (feedback, final state). After Ctrl-C the ROS context is gone and
        nobody is listening: the run still ends with its checkpoint, so the update is dropped."""
        try:
            update(*args)
        except Exception:  # noqa: BLE001 - only while shutting down, else re-raised
            if self.context.ok():
                raise

    def _execute(self, goal_handle: Any) -> Train.Result:
        self._cancel.clear()
        with self._lock:
            self._lost.clear()
            self._returned.clear()
        try:
            return self._train(goal_handle)
        except Exception as exc:  # noqa: BLE001 - a failed run is reported in the result, node stays up
            message = f"training failed: {type(exc).__name__}: {exc}"
            self.get_logger().error(message)
            self._set_status(state="failed")
            self._tell(goal_handle.abort)
            return Train.Result(success=False, message=message, run_dir=self._status.run_dir)
        finally:
            self._venv = None
            with self._lock:
                self._busy = False
                self._training = False

    def _train(self, goal_handle: Any) -> Train.Result:
        from drl_control.learn.config import resolve_config
        from drl_control.learn.train import Progress, Trainer
        from drl_control.ros.vec_env import WorkerError

        goal = goal_handle.request
        algo = (goal.algorithm or self.default_algorithm).lower()
        policy = self.get_parameter("on_worker_failure").value
        self._set_status(state="connecting", timesteps=0, success_rate=0.0, env_steps_per_second=0.0, run_dir="")
        venv = self._connect(self.workers)
        base = {w.name: w.num_envs for w in venv.workers}  # each worker's own env count
        try:
            env_id = goal.env_id or venv.env_id
            if env_id != venv.env_id:
                raise ValueError(f"goal env_id {env_id!r} differs from the sim workers' {venv.env_id!r}")
            overrides = goal_overrides(goal, algo, env_id)
            overrides["n_envs"] = venv.num_envs
            cfg = resolve_config(algo, env_id, overrides=overrides)
        except BaseException:
            venv.close()
            raise
        run_dir = Path(goal.run_dir) if goal.run_dir else self._new_run_dir(algo, env_id)
        self._set_status(state="training", run_dir=str(run_dir))
        self.get_logger().info(f"training {algo} on {env_id} with {venv.num_envs} envs over {self.workers} "
                               f"for {cfg['total_timesteps']} steps -> {run_dir} (on_worker_failure={policy})")

        def on_progress(p: Progress) -> None:
            self._set_status(timesteps=p.timesteps, success_rate=_nan_to(p.success_rate), env_steps_per_second=p.fps)
            self._tell(goal_handle.publish_feedback, Train.Feedback(
                timesteps=int(p.timesteps), success_rate=_nan_to(p.success_rate, float("nan")),
                env_steps_per_second=float(p.fps), mean_return=_nan_to(p.mean_return, float("nan")),
            ))

        faults = _Faults()
        t_start = time.monotonic()
        resume = False  # a checkpoint of this run exists (every ended segment writes one)
        segment = 0
        while True:
            if venv is None:
                try:
                    venv = self._connect(self._plan(policy, base))
                except WorkerError as exc:
                    self._worker_lost(exc.worker, str(exc))
                    if not self._recover(policy, base, faults, counted=False):
                        break
                    continue
            venv.on_failure = self._worker_lost
            seed_offset = segment * SEED_STRIDE

            def factory(_n_envs: int, seed: int, _venv: Any = venv, _offset: int = seed_offset) -> Any:
                from stable_baselines3.common.vec_env import VecMonitor

                _venv.seed(seed + _offset)
                return VecMonitor(_venv, info_keywords=("is_success",))

            stop = threading.Event()
            with self._lock:
                self._stop = stop
                self._training = True
            if self._cancel.is_set():
                stop.set()
            self._set_status(state="training")
            trainer = Trainer(cfg, run_dir, vec_env_factory=factory, on_progress=on_progress, cancel=stop,
                              resume_from=run_dir if resume else None)
            try:
                result = trainer.train()  # closes the venv
            except WorkerError as exc:  # connect-time reset of a resumed segment: nothing stepped
                self._worker_lost(exc.worker, str(exc))
                result = None
            finally:
                venv = None
                with self._lock:
                    self._training = False
            if result is not None:
                resume = True
                if not result.cancelled:
                    break
            if self._cancel.is_set() or not self._recover(policy, base, faults, counted=result is not None):
                break
            segment += 1
            self.get_logger().info(f"resuming at {trainer.model.num_timesteps if trainer.model else 0} steps "
                                   f"(segment {segment}) over {self._plan(policy, base)}")
        if result is None or result.cancelled:
            steps = result.timesteps if result is not None else 0
            self._set_status(state="cancelled", timesteps=steps)
            self._tell(goal_handle.canceled)
            ckpt = result.checkpoint if result is not None else "none"
            return Train.Result(success=False, run_dir=str(run_dir),
                                message=f"cancelled at {steps} steps; checkpoint {ckpt}{faults.text()}")
        success_rate = float((result.eval or {}).get("success_rate", float("nan")))
        artifact_dir = ""
        if self.export:
            from drl_control.learn.export import export_model

            self._set_status(state="exporting")
            metrics = {k: v for k, v in (result.eval or {}).items() if k != "successes"}
            artifact_dir = str(export_model(trainer.model, trainer.normalizer, trainer.cfg, run_dir / "artifact",
                                            metrics))
        self._set_status(state="done", timesteps=result.timesteps, success_rate=_nan_to(success_rate))
        self._tell(goal_handle.succeed)
        return Train.Result(success=True, run_dir=str(run_dir), artifact_dir=artifact_dir, success_rate=success_rate,
                            message=f"trained {result.timesteps} steps in {time.monotonic() - t_start:.1f} s"
                                    f"{faults.text()}")

    # --- worker failure ----------------------------------------------------------------------
    def _connect(self, workers: list[str]) -> Any:
        from drl_control.ros.vec_env import RosVecEnv

        venv = RosVecEnv(workers, context=self.context, node_name=f"{self.get_name()}_vec_env",
                         timeout=self.worker_timeout, connect_timeout=self.connect_timeout)
        self._venv = venv
        return venv

    def _worker_lost(self, worker: str, reason: str) -> None:
        """RosVecEnv's on_failure (training thread): log which worker, stop before the step is stored."""
        with self._lock:
            first = worker not in self._lost
            first_of_all = not self._lost
            self._lost[worker] = reason
            self._returned.discard(worker)
            self._stop.set()
        if not self.context.ok():  # Ctrl-C: every worker reports it; nothing was lost
            if first_of_all:
                self.get_logger().info("ROS is shutting down: checkpointing and stopping")
        elif first:
            policy = self.get_parameter("on_worker_failure").value
            self.get_logger().error(f"sim worker {worker} lost: {reason}; checkpointing "
                                    f"(on_worker_failure={policy})")

    def _plan(self, policy: str, base: dict[str, int]) -> list[str]:
        """The workers of the next segment (configured order); in continue mode, survivors first
        get their own env count back, then the lost workers' slots round-robin."""
        with self._lock:
            alive = [w for w in self.workers if w not in self._lost]
        if policy == "pause" or not alive:
            return list(self.workers)
        return alive

    def _targets(self, base: dict[str, int], alive: list[str]) -> dict[str, int]:
        targets = {w: base[w] for w in alive}
        spare = sum(n for w, n in base.items() if w not in alive)
        i = 0
        while spare > 0:
            targets[alive[i % len(alive)]] += 1
            spare -= 1
            i += 1
        return targets

    def _recover(self, policy: str, base: dict[str, int], faults: _Faults, counted: bool) -> bool:
        """After a segment stopped for a worker (lost or returned): wait (pause, or nobody left) and
        move env slots; False when the goal was cancelled meanwhile."""
        n_envs = sum(base.values())
        with self._lock:
            lost = dict(self._lost)
        if counted:
            faults.truncated += n_envs
        new = [w for w in lost if w not in faults.seen]
        faults.seen.update(new)
        faults.failures += len(new)
        faults.lost_envs += sum(base[w] for w in new)
        alive = [w for w in self.workers if w not in lost]
        if policy == "pause" or not alive:
            self._set_status(state="paused")
            self.get_logger().warning(f"paused: waiting for {sorted(lost)} to answer {names.SPEC} again")
            while not self._cancel.is_set():
                with self._lock:
                    if (policy == "pause" and set(self._lost) <= self._returned) or \
                            (policy == "continue" and self._returned):
                        break
                time.sleep(0.05)
            if self._cancel.is_set():
                return False
        with self._lock:
            for w in self._returned:
                self._lost.pop(w, None)
                faults.rejoined += 1
                self.get_logger().info(f"sim worker {w} answers again: rejoining")
            self._returned.clear()
            alive = [w for w in self.workers if w not in self._lost]
        self._set_status(state="recovering")
        targets = self._targets(base, alive)
        for w, n in targets.items():
            if not self._set_num_envs(w, n):
                self._worker_lost(w, f"could not set num_envs:={n}")
                return self._recover(policy, base, faults, counted=False)
        if any(targets[w] != base[w] for w in alive):
            self.get_logger().warning(f"continuing on {alive} with env slots {targets}")
        return True

    def _set_num_envs(self, worker: str, n: int) -> bool:
        """Set a sim worker's `num_envs` parameter (its set_parameters service); True when taken."""
        from rcl_interfaces.srv import SetParameters

        namespace, node = names.split_worker(worker)
        client = self.create_client(SetParameters, names.join(namespace, node, "set_parameters"),
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
            return all(r.successful for r in future.result().results)
        finally:
            self.destroy_client(client)

    def _probe_lost(self) -> None:
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
            if self._training and self.get_parameter("on_worker_failure").value == "continue":
                self._stop.set()  # move the slots back at the next step
        self.get_logger().info(f"sim worker {worker} answers {names.SPEC} again")

    def _new_run_dir(self, algo: str, env_id: str) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = env_id.split("/")[-1]
        path = self.run_root / f"{algo}_{name}_{stamp}"
        i = 1
        while path.exists():
            path = self.run_root / f"{algo}_{name}_{stamp}_{i}"
            i += 1
        return path

    # --- status ------------------------------------------------------------------------------
    def _set_status(self, **fields: Any) -> None:
        with self._lock:
            for key, value in fields.items():
                setattr(self._status, key, value)

    def _publish_status(self) -> None:
        try:
            ready = [c.service_is_ready() for c in self._probes]
        except Exception:  # noqa: BLE001 - node shutting down
            return
        with self._lock:
            alive = [r and w not in self._lost for w, r in zip(self.workers, ready)]
            msg = LearnerStatus(state=self._status.state, timesteps=self._status.timesteps,
                                success_rate=self._status.success_rate,
                                env_steps_per_second=self._status.env_steps_per_second,
                                workers=[names.join(w) for w in self.workers], workers_alive=alive,
                                run_dir=self._status.run_dir)
        msg.header.stamp = self.get_clock().now().to_msg()
        self.status_pub.publish(msg)


def main(args: list[str] | None = None) -> int:
    return run_node(LearnerNode, args, executor=lambda: MultiThreadedExecutor(num_threads=3),
                    on_shutdown=LearnerNode.shutdown)

if __name__ == "__main__":
    sys.exit(main())
