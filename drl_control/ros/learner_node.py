"""`learner_node`: trains an SB3 agent over `sim_node` workers through the `~/train` action.

    ros2 run drl_control learner_node --ros-args -p workers:="['/sim0', '/sim1']" -p run_root:=runs

Goal: algorithm, env id (empty: the workers'), config overrides, timesteps, seed, run dir. The
envs' `env:` section (driver, randomization) is the workers' (sim_node parameters): a goal asking
for another is refused naming the keys (learner_goals.env_section), never trained nominal.
Feedback: timesteps, success rate, env steps/s, mean return. Result: run dir, exported deploy
artifact, final success rate. Cancel checkpoints and stops (result success=false, "cancelled").
`~/status` (LearnerStatus) is published periodically.

The training itself is drl_control.learn.train.Trainer on a RosVecEnv; this node only wires the
action to it. Training runs in its own thread (the action's execute callback on a
MultiThreadedExecutor), so status, cancel and feedback stay responsive.

Run directory: `run_dir` ("" = a new one) stays inside the `run_root` parameter and an existing run
is written into only when the goal asks to resume it (`overrides: ["resume=true"]`); the rules are
drl_control.ros.learner_goals'. A goal that breaks one is rejected; nothing is written.

Worker failure (a sim_node killed, hung or gone) is handled by drl_control.ros.worker_pool: the
step is not stored, a checkpoint is written and training goes on from it on a rebuilt RosVecEnv;
`on_worker_failure` (pause | continue, read per goal) says over which workers. Every rebuild resets
all envs: the episodes in flight then are truncated (counted, reported in the result message).
Resumed segment k reseeds its resets with seed + k * SEED_STRIDE. The status topic's
workers_alive is false for a lost worker until it answers again.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from pathlib import Path
from typing import Any

from rcl_interfaces.msg import SetParametersResult
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from drl_control.ros import names
from drl_control.ros.learner_goals import (
    claim_run_dir,
    env_section,
    goal_overrides,
    goal_problem,
    split_resume,
)
from drl_control.ros.spin import Param, declare_parameters, run_node
from drl_control.ros.worker_pool import FAILURE_POLICIES, WorkerPool
from drl_control_interfaces.action import Train
from drl_control_interfaces.msg import LearnerStatus

SEED_STRIDE = 1_000_003  # reset seeds of resumed segment k: seed + k * SEED_STRIDE
SHUTDOWN_TIMEOUT = 120.0  # s: Ctrl-C waits this long at most for the run's checkpoint


def _nan_to(value: float, default: float = 0.0) -> float:
    return default if value is None or math.isnan(value) else float(value)


class LearnerNode(Node):
    # read-only after start but on_worker_failure, which each goal reads (a bad value is refused)
    PARAMETERS = tuple(Param(p.name, p.default, p.description, read_only=p.name != "on_worker_failure") for p in (
        Param("workers", [names.DEFAULT_SIM_NAMESPACE], "namespaces of the sim_node workers"),
        Param("run_root", "runs", "directory under which the runs of train goals are written"),
        Param("algorithm", "sac", "algorithm of a train goal that names none (ddpg, td3, sac, tqc, ppo)"),
        Param("worker_timeout", 30.0, "s a worker may take to answer a step before it counts as lost"),
        Param("connect_timeout", 30.0, "s to wait for the workers' services at the start of a goal"),
        Param("status_rate", 2.0, "~/status messages per second"),
        Param("export", True, "export a deploy artifact at the end of a run"),
        Param("on_worker_failure", "pause", "after losing a worker: pause (wait for it) or continue "
              "(move its envs to the others); read per goal"),
        Param("probe_period", 1.0, "s between checks whether a lost worker answers again"),
    ))

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(names.LEARNER_NODE, **kwargs)
        v = declare_parameters(self, self.PARAMETERS)
        self.workers: list[str] = list(v["workers"])
        self.run_root = Path(v["run_root"]).resolve()
        self.default_algorithm, self.export = v["algorithm"], bool(v["export"])
        self.add_on_set_parameters_callback(lambda params: SetParametersResult(successful=all(
            p.name != "on_worker_failure" or p.value in FAILURE_POLICIES for p in params),
            reason=f"on_worker_failure must be one of {FAILURE_POLICIES}"))

        self._group = ReentrantCallbackGroup()
        self._lock = threading.Lock()
        self._busy = False
        self._cancel = threading.Event()
        self._status = LearnerStatus(state="idle", workers=list(self.workers))
        self.pool = WorkerPool(self, self.workers, self._group, float(v["worker_timeout"]), float(v["connect_timeout"]),
                               set_state=lambda state: self._set_status(state=state))
        self.status_pub = self.create_publisher(LearnerStatus, names.STATUS, 10)
        self.create_timer(1.0 / max(float(v["status_rate"]), 0.1), self._publish_status, callback_group=self._group)
        self.create_timer(max(float(v["probe_period"]), 0.05), self.pool.probe_lost, callback_group=self._group)
        self._server = ActionServer(self, Train, names.TRAIN, execute_callback=self._execute, goal_callback=self._on_goal,
                                    cancel_callback=self._on_cancel, callback_group=self._group)
        self.get_logger().info(f"ready: {names.TRAIN} over sim workers {self.workers}, runs under {self.run_root}")

    # --- action callbacks --------------------------------------------------------------------
    def _on_goal(self, goal: Train.Goal) -> GoalResponse:
        from drl_control.learn.config import ALGOS

        algo = (goal.algorithm or self.default_algorithm).lower()
        problem = (f"unknown algorithm {goal.algorithm!r} (one of {ALGOS})" if algo not in ALGOS
                   else goal_problem(goal, algo, self.run_root))
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

    def _on_cancel(self, _goal_handle: Any) -> CancelResponse:
        self.get_logger().info("cancel requested: checkpointing and stopping")
        self.request_stop()
        return CancelResponse.ACCEPT

    def request_stop(self) -> None:
        """Cancel (or shutdown): checkpoint and stop the current run."""
        self._cancel.set()
        self.pool.stop.set()

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
        self.pool.begin(self.get_parameter("on_worker_failure").value)
        try:
            return self._train(goal_handle)
        except Exception as exc:  # noqa: BLE001 - a failed run is reported in the result, node stays up
            message = f"training failed: {type(exc).__name__}: {exc}"
            self.get_logger().error(message)
            self._set_status(state="failed")
            self._tell(goal_handle.abort)
            return Train.Result(success=False, message=message, run_dir=self._status.run_dir)
        finally:
            self.pool.end_segment()
            with self._lock:
                self._busy = False

    def _train(self, goal_handle: Any) -> Train.Result:
        from drl_control.learn.config import resolve_config
        from drl_control.learn.train import Progress, Trainer
        from drl_control.ros.vec_env import WorkerError

        goal = goal_handle.request
        algo = (goal.algorithm or self.default_algorithm).lower()
        pool = self.pool
        self._set_status(state="connecting", timesteps=0, success_rate=0.0, env_steps_per_second=0.0, run_dir="")
        venv = pool.connect(self.workers)
        pool.base = {w.name: w.num_envs for w in venv.workers}  # each worker's own env count
        try:
            env_id = goal.env_id or venv.env_id
            if env_id != venv.env_id:
                raise ValueError(f"goal env_id {env_id!r} differs from the sim workers' {venv.env_id!r}")
            overrides = goal_overrides(goal, algo, env_id)
            overrides["n_envs"] = venv.num_envs
            cfg = resolve_config(algo, env_id, overrides=overrides)
            cfg["env"] = env_section(cfg.get("env"), venv.env_kwargs)  # refused unless the workers apply it
            resume = split_resume(goal.overrides)[0]  # a checkpoint of this run exists
            run_dir = claim_run_dir(self.run_root, goal.run_dir, resume, f"{algo}_{env_id.split('/')[-1]}")
        except BaseException:
            venv.close()
            raise
        self._set_status(state="training", run_dir=str(run_dir))
        self.get_logger().info(f"training {algo} on {env_id} with {venv.num_envs} envs over {self.workers} "
                               f"for {cfg['total_timesteps']} steps -> {run_dir} (on_worker_failure={pool.policy}, "
                               f"env {cfg['env'] or 'nominal'})")

        def on_progress(p: Progress) -> None:
            self._set_status(timesteps=p.timesteps, success_rate=_nan_to(p.success_rate), env_steps_per_second=p.fps)
            self._tell(goal_handle.publish_feedback, Train.Feedback(
                timesteps=int(p.timesteps), success_rate=_nan_to(p.success_rate, float("nan")),
                env_steps_per_second=float(p.fps), mean_return=_nan_to(p.mean_return, float("nan")),
            ))

        t_start = time.monotonic()
        segment = 0
        while True:
            if venv is None:
                try:
                    venv = pool.connect(pool.plan())
                except WorkerError as exc:
                    pool.worker_lost(exc.worker, str(exc))
                    if not pool.recover(self._cancel, counted=False):
                        break
                    continue
            venv.on_failure = pool.worker_lost
            seed_offset = segment * SEED_STRIDE

            def factory(_n_envs: int, seed: int, _venv: Any = venv, _offset: int = seed_offset) -> Any:
                from stable_baselines3.common.vec_env import VecMonitor

                _venv.seed(seed + _offset)
                return VecMonitor(_venv, info_keywords=("is_success",))

            stop = pool.start_segment(cancelled=self._cancel.is_set())
            self._set_status(state="training")
            trainer = Trainer(cfg, run_dir, vec_env_factory=factory, on_progress=on_progress, cancel=stop,
                              resume_from=run_dir if resume else None)
            try:
                result = trainer.train()  # closes the venv
            except WorkerError as exc:  # connect-time reset of a resumed segment: nothing stepped
                pool.worker_lost(exc.worker, str(exc))
                result = None
            finally:
                venv = None
                pool.end_segment()
            if result is not None:
                resume = True  # every ended segment writes a checkpoint
                if not result.cancelled:
                    break
            if self._cancel.is_set() or not pool.recover(self._cancel, counted=result is not None):
                break
            segment += 1
            self.get_logger().info(f"resuming at {trainer.model.num_timesteps if trainer.model else 0} steps "
                                   f"(segment {segment}) over {pool.plan()}")
        faults = pool.faults.text()
        if result is None or result.cancelled:
            steps = result.timesteps if result is not None else 0
            self._set_status(state="cancelled", timesteps=steps)
            self._tell(goal_handle.canceled)
            ckpt = result.checkpoint if result is not None else "none"
            return Train.Result(success=False, run_dir=str(run_dir),
                                message=f"cancelled at {steps} steps; checkpoint {ckpt}{faults}")
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
                            message=f"trained {result.timesteps} steps in {time.monotonic() - t_start:.1f} s{faults}")

    # --- status ------------------------------------------------------------------------------
    def _set_status(self, **fields: Any) -> None:
        with self._lock:
            for key, value in fields.items():
                setattr(self._status, key, value)

    def _publish_status(self) -> None:
        try:
            alive = self.pool.alive()
        except Exception:  # noqa: BLE001 - node shutting down
            return
        with self._lock:
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
