"""`learner_node`: trains an SB3 agent over `sim_node` workers through the `~/train` action.

    ros2 run drl_control learner_node --ros-args -p workers:="['/sim0', '/sim1']" -p run_root:=runs

Goal: algorithm, env id (empty: the workers'), config overrides, timesteps, seed, run dir.
Feedback: timesteps, success rate, env steps/s, mean return. Result: run dir, exported deploy
artifact, final success rate. Cancel checkpoints and stops (result success=false, "cancelled").
`~/status` (LearnerStatus) is published periodically.

The training itself is drl_control.learn.train.Trainer on a RosVecEnv; this node only wires the
action to it. Training runs in its own thread (the action's execute callback on a
MultiThreadedExecutor), so status, cancel and feedback stay responsive.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from pathlib import Path
from typing import Any

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from drl_control.ros import names
from drl_control.ros.spin import run_node
from drl_control_interfaces.action import Train
from drl_control_interfaces.msg import LearnerStatus
from drl_control_interfaces.srv import EnvStep


def _nan_to(value: float, default: float = 0.0) -> float:
    return default if value is None or math.isnan(value) else float(value)


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

        self._group = ReentrantCallbackGroup()
        self._lock = threading.Lock()
        self._busy = False
        self._cancel = threading.Event()
        self._venv: Any = None
        self._status = LearnerStatus(state="idle", workers=list(self.workers))
        # Liveness probes of the workers while idle (graph queries only, no calls).
        self._probes = [self.create_client(EnvStep, names.sim_service(w, names.STEP), callback_group=self._group)
                        for w in self.workers]
        self.status_pub = self.create_publisher(LearnerStatus, names.STATUS, 10)
        self.create_timer(1.0 / max(status_rate, 0.1), self._publish_status, callback_group=self._group)
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
        if algo not in ALGOS:
            self.get_logger().warning(f"rejected train goal: unknown algorithm {goal.algorithm!r} (one of {ALGOS})")
            return GoalResponse.REJECT
        with self._lock:
            if self._busy:
                self.get_logger().warning("rejected train goal: a training run is already in progress")
                return GoalResponse.REJECT
            self._busy = True
        return GoalResponse.ACCEPT

    def _on_cancel(self, _goal_handle: Any) -> CancelResponse:
        self.get_logger().info("cancel requested: checkpointing and stopping")
        self._cancel.set()
        return CancelResponse.ACCEPT

    def _execute(self, goal_handle: Any) -> Train.Result:
        self._cancel.clear()
        try:
            return self._train(goal_handle)
        except Exception as exc:  # noqa: BLE001 - a failed run is reported in the result, node stays up
            message = f"training failed: {type(exc).__name__}: {exc}"
            self.get_logger().error(message)
            self._set_status(state="failed")
            goal_handle.abort()
            return Train.Result(success=False, message=message, run_dir=self._status.run_dir)
        finally:
            self._venv = None
            with self._lock:
                self._busy = False

    def _train(self, goal_handle: Any) -> Train.Result:
        from drl_control.learn.config import parse_overrides, resolve_config
        from drl_control.learn.train import Progress, Trainer
        from drl_control.ros.vec_env import RosVecEnv

        goal = goal_handle.request
        algo = (goal.algorithm or self.default_algorithm).lower()
        self._set_status(state="connecting", timesteps=0, success_rate=0.0, env_steps_per_second=0.0, run_dir="")
        venv = RosVecEnv(self.workers, context=self.context, node_name=f"{self.get_name()}_vec_env",
                         timeout=self.worker_timeout, connect_timeout=self.connect_timeout)
        self._venv = venv
        try:
            env_id = goal.env_id or venv.env_id
            if env_id != venv.env_id:
                raise ValueError(f"goal env_id {env_id!r} differs from the sim workers' {venv.env_id!r}")
            overrides = parse_overrides(list(goal.overrides))
            overrides["n_envs"] = venv.num_envs
            if goal.timesteps > 0:
                overrides["total_timesteps"] = int(goal.timesteps)
            if goal.seed >= 0:
                overrides["seed"] = int(goal.seed)
            cfg = resolve_config(algo, env_id, overrides=overrides)
        except BaseException:
            venv.close()
            raise
        run_dir = Path(goal.run_dir) if goal.run_dir else self._new_run_dir(algo, env_id)
        self._set_status(state="training", run_dir=str(run_dir))
        self.get_logger().info(f"training {algo} on {env_id} with {venv.num_envs} envs over {self.workers} "
                               f"for {cfg['total_timesteps']} steps -> {run_dir}")

        def factory(_n_envs: int, seed: int) -> Any:
            from stable_baselines3.common.vec_env import VecMonitor

            venv.seed(seed)
            return VecMonitor(venv, info_keywords=("is_success",))

        def on_progress(p: Progress) -> None:
            self._set_status(timesteps=p.timesteps, success_rate=_nan_to(p.success_rate), env_steps_per_second=p.fps)
            goal_handle.publish_feedback(Train.Feedback(
                timesteps=int(p.timesteps), success_rate=_nan_to(p.success_rate, float("nan")),
                env_steps_per_second=float(p.fps), mean_return=_nan_to(p.mean_return, float("nan")),
            ))

        trainer = Trainer(cfg, run_dir, vec_env_factory=factory, on_progress=on_progress, cancel=self._cancel)
        result = trainer.train()  # closes the venv
        if result.cancelled:
            self._set_status(state="cancelled", timesteps=result.timesteps)
            goal_handle.canceled()
            return Train.Result(success=False, run_dir=str(run_dir),
                                message=f"cancelled at {result.timesteps} steps; checkpoint {result.checkpoint}")
        success_rate = float((result.eval or {}).get("success_rate", float("nan")))
        artifact_dir = ""
        if self.export:
            from drl_control.learn.export import export_model

            self._set_status(state="exporting")
            metrics = {k: v for k, v in (result.eval or {}).items() if k != "successes"}
            artifact_dir = str(export_model(trainer.model, trainer.normalizer, trainer.cfg, run_dir / "artifact",
                                            metrics))
        self._set_status(state="done", timesteps=result.timesteps, success_rate=_nan_to(success_rate))
        goal_handle.succeed()
        return Train.Result(success=True, run_dir=str(run_dir), artifact_dir=artifact_dir, success_rate=success_rate,
                            message=f"trained {result.timesteps} steps in {result.wall_time_s:.1f} s")

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
            alive = [c.service_is_ready() for c in self._probes]
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
                    on_shutdown=lambda node: node._cancel.set())

if __name__ == "__main__":
    sys.exit(main())
