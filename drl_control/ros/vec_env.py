"""RosVecEnv: an SB3 VecEnv over the envs of one or more `sim_node` workers.

Each worker (a sim_node namespace, e.g. "/sim0") serves K envs; the VecEnv's env i is worker w's
env j in worker order. `step_async` sends one EnvStep request to every worker at once and
`step_wait` collects them, so workers on different cores or machines step in parallel.

Worker failure: without `on_failure` a worker that does not answer within `timeout` (or whose
service leaves the ROS graph) raises WorkerError naming it. With `on_failure(worker, reason)`,
`step_wait` reports the lost worker(s) instead and returns a placeholder step for their envs (last
observation, reward 0, not done, info `worker_lost`). The caller MUST stop before that step is
stored (learner_node sets the Trainer's cancel event: SB3 then stops before `_store_transition`),
checkpoint, and rebuild the VecEnv; nothing bogus reaches the replay buffer. A ROS shutdown
(Ctrl-C) with a request out is reported the same way (every worker), so a run stopped by Ctrl-C
also ends with a checkpoint.

Step accounting: every sim env reports the steps it executed (`names.STEP_COUNT` in its info); the
VecEnv checks each one against the steps it sent that env (a gap = a dropped step, a repeat = a
duplicated one), drops the key from the infos, and keeps the counts in `stats()`.

HER relabelling calls `env_method("compute_reward", ...)`: it is answered LOCALLY with
drl_control.sim.rewards and the spec's reward_type / distance_threshold, never over ROS.
"""

from __future__ import annotations

import inspect
import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import rclpy
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.parameter import Parameter
from rclpy.task import Task
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from drl_control.ros import conversions as conv
from drl_control.ros import names
from drl_control.ros.answer_wait import AnswerWait
from drl_control.ros.spin import LeanExecutor
from drl_control.safe_io import load_json_text
from drl_control.sim import rewards
from drl_control_interfaces.srv import EnvReset, EnvSpec, EnvStep


class WorkerError(RuntimeError):
    """A sim worker did not answer in time or refused a request; the message (and `.worker`) name it."""

    def __init__(self, message: str, worker: str = "") -> None:
        super().__init__(message)
        self.worker = worker


class _Executor(LeanExecutor):
    """The executor of a RosVecEnv's own node, spun by the thread that waits for a response
    (`spin_for`) rather than by a thread of its own: a response then wakes the very thread that
    needs it, with no hand-over between threads. Like every LeanExecutor it is not woken again by
    its own callbacks, and its future's done-callbacks run at once instead of each being queued as
    a task (rclpy's way: one more wake-up and wait-set rebuild per callback, two callbacks per
    service response)."""

    def __init__(self, context: Any) -> None:
        super().__init__(context=context)
        self._spin_thread: int | None = None

    def spin_for(self, timeout: float) -> None:
        """Handle what is ready, waiting at most `timeout` s for something to be."""
        self._spin_thread = threading.get_ident()
        self.spin_once(timeout_sec=timeout)

    def create_task(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> Task:
        if self._spin_thread != threading.get_ident() or inspect.iscoroutinefunction(callback):
            return super().create_task(callback, *args, **kwargs)
        task = Task(callback, args, kwargs, executor=self)
        task()  # a plain callback: runs to completion here
        return task


GRAPH_GRACE = 1.0  # s: a service absent from the ROS graph this long after a call counts as lost


class _Worker:
    def __init__(self, node: Any, worker: str, group: Any = None) -> None:
        self.name = worker
        self.spec_client = node.create_client(EnvSpec, names.sim_service(worker, names.SPEC), callback_group=group)
        self.reset_client = node.create_client(EnvReset, names.sim_service(worker, names.RESET), callback_group=group)
        self.step_client = node.create_client(EnvStep, names.sim_service(worker, names.STEP), callback_group=group)
        self.num_envs = 0
        self.offset = 0
        self.pending: Any = None
        self.last_obs: Any = None  # this worker's latest observation batch (placeholder source)
        self.sent: np.ndarray = np.zeros(0, dtype=np.int64)  # steps sent per env (answered)
        self.reported: np.ndarray = np.zeros(0, dtype=np.int64)  # last STEP_COUNT per env (-1: none)
        self.first: np.ndarray = np.zeros(0, dtype=np.int64)  # first STEP_COUNT seen per env
        self.gaps = 0
        self.repeats = 0

    def clients(self) -> list[Any]:
        return [self.spec_client, self.reset_client, self.step_client]


def _shut_down(worker: _Worker, client: Any, what: str) -> WorkerError:
    """A ROS shutdown (Ctrl-C, SIGTERM: rclpy shuts every context down) while a request is out:
    reported like a lost worker, so the learner stops before storing the step and checkpoints."""
    return WorkerError(f"sim worker {worker.name}: ROS shut down with {client.srv_name} pending ({what})", worker.name)


def _wait(worker: _Worker, client: Any, future: Any, deadline: float, what: str,
          spin: Callable[[float], None] | None = None) -> Any:
    """The response of `future`; WorkerError at `deadline`, or once the service has left the ROS
    graph for GRAPH_GRACE s (a worker shut down: no answer can come).

    spin(timeout): spins the executor of the client's node in this thread (RosVecEnv's own node);
    without it, someone else's executor completes the future and this thread waits for that.
    """
    give_up = getattr(future, "give_up", None) or (lambda: client.remove_pending_request(future))
    if spin is None:
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        spin = done.wait
    gone_since: float | None = None
    # future.done() first: a done-callback added to a finished future runs later, as an executor task.
    while not future.done():
        try:
            spin(min(0.25, max(deadline - time.monotonic(), 0.0)))
        except Exception as exc:  # noqa: BLE001 - Ctrl-C shut the ROS context down under us
            if client.context.ok():
                raise
            raise _shut_down(worker, client, what) from exc
        if future.done():
            break
        if not client.context.ok():
            raise _shut_down(worker, client, what)
        now = time.monotonic()
        if now >= deadline:
            give_up()
            raise WorkerError(f"sim worker {worker.name}: no answer to {client.srv_name} ({what}) "
                              f"within the timeout", worker.name)
        if client.service_is_ready():
            gone_since = None
        elif gone_since is None:
            gone_since = now
        elif now - gone_since >= GRAPH_GRACE:
            give_up()
            raise WorkerError(f"sim worker {worker.name}: {client.srv_name} left the ROS graph ({what})", worker.name)
    exc = future.exception()
    if exc is not None:
        raise WorkerError(f"sim worker {worker.name}: {client.srv_name} failed: {exc}", worker.name) from exc
    return future.result()


class RosVecEnv(VecEnv):
    """SB3 VecEnv whose envs live in sim_node processes, reached over ROS 2 services.

    `node`: an rclpy node spun by someone else's executor, whose clients then live in a reentrant
    callback group. Without one, the VecEnv makes its own node (`node_name`) in `context` (or in a
    context of its own, domain from ROS_DOMAIN_ID) and spins it while it waits for an answer, in
    the thread that calls reset/step (one thread at a time), which keeps the step round trips off
    a busy executor (the learner_node's action server) and off any thread hand-over; there the step
    answers are taken on a wait set of their own (`direct_answers`, answer_wait.py).
    """

    def __init__(self, workers: Sequence[str], node: Any = None, *, context: Any = None,
                 node_name: str = "ros_vec_env", timeout: float = 30.0, connect_timeout: float = 30.0,
                 on_failure: Callable[[str, str], None] | None = None, direct_answers: bool = True) -> None:
        if not workers:
            raise ValueError("RosVecEnv needs at least one sim worker namespace")
        self.timeout = float(timeout)
        self.on_failure = on_failure
        self.lost: list[str] = []  # workers reported to on_failure
        self._own: tuple[Any, _Executor, bool] | None = None
        self._steps: AnswerWait | None = None  # set once connected (below)
        group = None
        if node is None:
            own_context = context is None
            if own_context:
                context = rclpy.Context()
                rclpy.init(context=context)
            # clients only: no parameter / type description services to rebuild into every wait set
            node = rclpy.create_node(node_name, context=context, start_parameter_services=False,
                                     parameter_overrides=[Parameter("start_type_description_service", value=False)])
            executor = _Executor(context)
            executor.add_node(node)
            self._own = (context, executor, own_context)
        else:
            group = ReentrantCallbackGroup()
        self.node = node
        self.workers = [_Worker(node, w, group) for w in workers]
        if len({w.step_client.srv_name for w in self.workers}) != len(self.workers):
            raise ValueError(f"duplicate sim workers in {list(workers)}")
        try:
            self._connect(connect_timeout)
        except BaseException:
            self.close()
            raise
        # step answers on a wait set of their own where this VecEnv spins its node itself (answer_wait.py;
        # direct_answers=False keeps them on the executor, to compare: benchmarks/profile_ros_round.py)
        self._steps = (AnswerWait(node.context, [w.step_client for w in self.workers])
                       if direct_answers and self._own is not None and AnswerWait.supported() else None)
        super().__init__(self._num_envs, self.observation_space_, self.action_space_)
        self._actions: np.ndarray | None = None

    @property
    def _spin(self) -> Callable[[float], None] | None:
        return self._own[1].spin_for if self._own is not None else None

    # --- setup -------------------------------------------------------------------------------
    def _connect(self, connect_timeout: float) -> None:
        deadline = time.monotonic() + connect_timeout
        for w in self.workers:
            for client in w.clients():
                if not client.wait_for_service(timeout_sec=max(deadline - time.monotonic(), 0.01)):
                    raise WorkerError(f"sim worker {w.name}: service {client.srv_name} not available "
                                      f"after {connect_timeout:g} s (is its sim_node running on this ROS domain?)",
                                      w.name)
        futures = [(w, w.spec_client.call_async(EnvSpec.Request())) for w in self.workers]
        specs = [_wait(w, w.spec_client, f, deadline, "spec", self._spin) for w, f in futures]
        first = specs[0]
        offset = 0
        for w, spec in zip(self.workers, specs):
            for field in ("env_id", "observation_space_json", "action_space_json"):
                if getattr(spec, field) != getattr(first, field):
                    raise ValueError(f"sim worker {w.name}: {field} differs from worker {self.workers[0].name}'s "
                                     f"({getattr(spec, field)[:80]!r} vs {getattr(first, field)[:80]!r})")
            w.num_envs, w.offset = int(spec.num_envs), offset
            w.sent = np.zeros(w.num_envs, dtype=np.int64)
            w.reported = np.full(w.num_envs, -1, dtype=np.int64)
            w.first = np.full(w.num_envs, -1, dtype=np.int64)
            offset += w.num_envs
        self._num_envs = offset
        self.env_id = first.env_id
        self.control_hz = float(first.control_hz)
        self.deploy_spec: dict[str, Any] = load_json_text(first.deploy_spec_json, "~/spec deploy_spec_json") if first.deploy_spec_json else {}
        self.env_kwargs = self._env_kwargs(specs)
        self.deploy_spec.pop(names.ENV_KWARGS, None)  # the env's own deploy spec, as in-process
        self.reward_type = self.deploy_spec.get("reward_type")
        self.distance_threshold = self.deploy_spec.get("distance_threshold")
        self.observation_space_ = conv.space_from_json(first.observation_space_json)
        self.action_space_ = conv.space_from_json(first.action_space_json)
        self.render_mode = None

    def _env_kwargs(self, specs: list[Any]) -> dict[str, Any] | None:
        """The envs' driver and randomization every worker reports (None: a worker does not);
        workers that differ are refused, like a differing env id."""
        seen = []
        for w, spec in zip(self.workers, specs):
            data = load_json_text(spec.deploy_spec_json, "~/spec deploy_spec_json") if spec.deploy_spec_json else {}
            seen.append(data.get(names.ENV_KWARGS) if isinstance(data, dict) else None)
            if seen[-1] != seen[0]:
                raise ValueError(f"sim worker {w.name}: env options {seen[-1]} differ from worker "
                                 f"{self.workers[0].name}'s {seen[0]}")
        return seen[0]

    # --- VecEnv API --------------------------------------------------------------------------
    def reset(self) -> VecEnvObs:
        deadline = time.monotonic() + self.timeout
        futures = []
        for w in self.workers:
            seeds = self._seeds[w.offset:w.offset + w.num_envs]
            options = self._options[w.offset:w.offset + w.num_envs]
            if any(o != options[0] for o in options):
                raise NotImplementedError(f"sim worker {w.name}: per-env reset options differ within one worker")
            request = EnvReset.Request(
                seeds=[int(s) for s in seeds] if all(s is not None for s in seeds) else [],
                options_json=json.dumps(conv.to_jsonable(options[0])) if options[0] else "",
            )
            futures.append((w, w.reset_client.call_async(request)))
        parts = []
        for w, f in futures:
            response = _wait(w, w.reset_client, f, deadline, "reset", self._spin)
            if not response.success:
                raise WorkerError(f"sim worker {w.name}: reset refused: {response.message}", w.name)
            w.last_obs = conv.msg_to_batch(response.batch, self.observation_space)
            parts.append(w.last_obs)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return conv.concat_obs(parts)

    def step_async(self, actions: np.ndarray) -> None:
        actions = np.asarray(actions, dtype=np.float32).reshape(self.num_envs, -1)
        for i, w in enumerate(self.workers):
            rows = actions[w.offset:w.offset + w.num_envs]
            request = EnvStep.Request(actions=np.ascontiguousarray(rows).ravel(), action_dim=rows.shape[1])
            try:
                w.pending = self._steps.send(i, request) if self._steps else w.step_client.call_async(request)
            except Exception:  # noqa: BLE001 - Ctrl-C shut the ROS context down: step_wait says so
                if w.step_client.context.ok():
                    raise
                w.pending = _shut_down(w, w.step_client, "step")

    def step_wait(self) -> VecEnvStepReturn:
        deadline = time.monotonic() + self.timeout
        parts, rews, dones, infos = [], [], [], []
        for w in self.workers:
            future, w.pending = w.pending, None
            if future is None:
                raise RuntimeError("step_wait() without step_async()")
            try:
                if isinstance(future, WorkerError):
                    raise future
                response = _wait(w, w.step_client, future, deadline, "step",
                                 self._steps.spin if self._steps else self._spin)
                if not response.success:
                    raise WorkerError(f"sim worker {w.name}: step refused: {response.message}", w.name)
                obs = conv.msg_to_batch(response.batch, self.observation_space)
                w_infos = conv.infos_from_json(response.infos_json, self.observation_space)
                if len(w_infos) != w.num_envs:
                    raise WorkerError(f"sim worker {w.name}: {len(w_infos)} envs answered, {w.num_envs} expected "
                                      "(restarted or resized?)", w.name)
            except WorkerError as exc:
                if self.on_failure is None:
                    raise
                self._lose(w, str(exc))
                parts.append(w.last_obs)
                rews.append(np.zeros(w.num_envs, dtype=np.float32))
                dones.append(np.zeros(w.num_envs, dtype=bool))
                infos.extend({"worker_lost": w.name} for _ in range(w.num_envs))
                continue
            self._count(w, w_infos)
            w.last_obs = obs
            parts.append(obs)
            rews.append(np.frombuffer(response.rewards, dtype=np.float32))
            dones.append(np.logical_or(np.asarray(response.terminated, dtype=bool),
                                       np.asarray(response.truncated, dtype=bool)))
            infos.extend(w_infos)
        return conv.concat_obs(parts), np.concatenate(rews).copy(), np.concatenate(dones), infos

    def _lose(self, w: _Worker, reason: str) -> None:
        if w.name not in self.lost:
            self.lost.append(w.name)
            assert self.on_failure is not None
            self.on_failure(w.name, reason)

    def _count(self, w: _Worker, infos: list[dict[str, Any]]) -> None:
        """Check each env's executed-step count against the steps sent to it; drop the key."""
        w.sent += 1
        for j, info in enumerate(infos):
            count = info.pop(names.STEP_COUNT, None)
            if count is None:
                continue
            count = int(count)
            if w.first[j] < 0:
                w.first[j] = count
            elif count > w.reported[j] + 1:
                w.gaps += 1
            elif count <= w.reported[j]:
                w.repeats += 1
            w.reported[j] = count

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per worker: step requests answered, env steps sent, env steps the sim says it executed
        (last count - first count + 1, per env), gaps (dropped steps) and repeats (duplicated)."""
        out = {}
        for w in self.workers:
            executed = [int(r - f + 1) if f >= 0 else 0 for f, r in zip(w.first, w.reported)]
            out[w.name] = {"requests": int(w.sent.max(initial=0)), "env_steps_sent": int(w.sent.sum()),
                           "env_steps_executed": int(sum(executed)), "sim_counts": [int(r) for r in w.reported],
                           "gaps": w.gaps, "repeats": w.repeats}
        return out

    def close(self) -> None:
        steps, self._steps = getattr(self, "_steps", None), None
        if steps is not None:
            steps.close()
        node = getattr(self, "node", None)
        if node is not None:
            for w in getattr(self, "workers", []):
                for client in w.clients():
                    node.destroy_client(client)
        if self._own is not None:
            context, executor, own_context = self._own
            self._own = None
            executor.shutdown()
            node.destroy_node()
            if own_context:
                rclpy.try_shutdown(context=context)

    # --- attributes and methods (local; nothing here goes over ROS) -------------------------
    _ATTRS = ("render_mode", "reward_type", "distance_threshold", "deploy_spec", "env_id", "control_hz")

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        if attr_name not in self._ATTRS:
            raise AttributeError(f"RosVecEnv: attribute {attr_name!r} of remote envs is not available "
                                 f"(known: {', '.join(self._ATTRS)})")
        value = getattr(self, attr_name, None)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise AttributeError(f"RosVecEnv: cannot set {attr_name!r} on remote envs")

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, _info: Any = None) -> np.ndarray:
        if self.reward_type is None or self.distance_threshold is None:
            raise ValueError(f"{self.env_id}: the sim's spec has no reward_type/distance_threshold; "
                             "cannot compute rewards locally (HER)")
        return rewards.compute_reward(achieved_goal, desired_goal, self.reward_type, float(self.distance_threshold))

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        if method_name == "compute_reward":
            value = self.compute_reward(*method_args, **method_kwargs)
            return [value for _ in self._get_indices(indices)]
        raise AttributeError(f"RosVecEnv: method {method_name!r} of remote envs is not available")

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> list[None]:
        return [None for _ in range(self.num_envs)]

    def workers_alive(self) -> list[bool]:
        """Whether each worker is not lost and its step service is discoverable (cheap graph query)."""
        return [w.name not in self.lost and w.step_client.service_is_ready() for w in self.workers]

    @property
    def worker_names(self) -> list[str]:
        return [w.name for w in self.workers]
