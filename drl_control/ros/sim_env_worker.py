"""`sim_node` in env mode: K gymnasium envs behind `~/spec`, `~/reset` and `~/step` for a RosVecEnv.

Each env counts the steps it executed and sends the count in its step info (`names.STEP_COUNT`;
RosVecEnv checks it and drops it, so dropped or duplicated steps show).

Sizes: `num_envs` is in [1, `max_num_envs`]; `max_num_envs` (default 16, at most MAX_NUM_ENVS = 64,
about 30 MB of PyBullet state per env) and every other parameter are fixed after start. `num_envs`
alone may change at run time (`ros2 param set`, refused with a reason outside the bounds): a
learner in `on_worker_failure:=continue` mode moves a lost worker's env slots here this way. New
envs need a reset before they step.

Training envs: `driver` (sim.drivers) and `randomization` (a preset of config/randomization or a
YAML file) are the envs' keyword arguments, as a training config's `env:` section gives them
in-process (drl_control.learn.algos.make_env). `~/spec` reports them in its deploy_spec_json under
names.ENV_KWARGS, so a learner can refuse a goal whose `env:` section the workers do not apply
(drl_control.ros.learner_goals.env_section).

Several clients: the services keep every request (history KEEP_ALL), so requests from several
clients are served in turn, in arrival order, never dropped. With the default KEEP_LAST(10) the
DDS reader of a busy worker silently replaced queued requests once more than 10 were waiting
(three clients with a few requests in flight each): a client lost its request and, as a training
learner, declared the worker lost. A flooding client (thousands in flight) delays the others by
its backlog (DDS bounds it) and loses answers it does not read in time: rclpy would raise out of
spin on such a send, so a failed send is logged and the node stays up. Interleaved steps of the
same envs by two clients still show as gaps in each client's step counts; this node does not
arbitrate between its clients.

This node never imports torch (it needs PyBullet and gymnasium only).
"""

from __future__ import annotations

import json
import time
from typing import Any

import gymnasium as gym
import numpy as np
from rcl_interfaces.msg import IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from drl_control.ros import conversions as conv
from drl_control.ros import names
from drl_control.ros.sim_base import VIS_RATE, SimNodeBase
from drl_control.ros.spin import Param
from drl_control.safe_io import load_json_text
from drl_control.sim.registration import import_env_packages
from drl_control_interfaces.srv import EnvReset, EnvSpec, EnvStep

MAX_OPTIONS_BYTES = 1 << 16  # ~/reset options_json: reset options are a few keys
MAX_NUM_ENVS = 64  # hard bound of max_num_envs (256 envs took 7.6 GB and blocked a node 12 s)
DEFAULT_MAX_NUM_ENVS = 16
IDLE_VIS_PERIOD = 1.0  # s: no reset/step since the last publish: republish this often only
# Every request is kept until served (see the module docstring); the depth is unused with KEEP_ALL.
SERVICE_QOS = QoSProfile(depth=10, history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)


def make_envs(env_id: str, num_envs: int, env_kwargs: dict[str, Any] | None = None) -> list[gym.Env]:
    import_env_packages(env_id)
    return [gym.make(env_id, **(env_kwargs or {})) for _ in range(num_envs)]


def worker_env_kwargs(driver: str, randomization: str) -> dict[str, Any]:
    """The envs' keyword arguments from the node's parameters (only those that are not the
    default, so an env without them, e.g. panda-gym's, still builds nominal)."""
    from drl_control.learn.config import randomization_preset
    from drl_control.sim.drivers import DRIVERS

    if driver not in DRIVERS:
        raise ValueError(f"driver must be one of {sorted(DRIVERS)}, got {driver!r}")
    kwargs: dict[str, Any] = {"driver": driver} if driver != "ideal" else {}
    if randomization:
        kwargs["randomization"] = randomization_preset(randomization)
    return kwargs


class EnvWorkerNode(SimNodeBase):
    PARAMETERS = SimNodeBase.PARAMETERS + (
        Param("max_num_envs", DEFAULT_MAX_NUM_ENVS, f"most envs num_envs may ask for (at most {MAX_NUM_ENVS})",
              read_only=True),
        Param("num_envs", 1, "envs served by ~/step (may change at run time, within max_num_envs)"),
        Param("seed", -1, "seed of the first reset (negative: unseeded)", read_only=True),
        Param("randomization", "", "domain randomization of the envs: a preset of config/randomization "
              "(e.g. sim2real) or a YAML file (empty: none)", read_only=True),
    )

    def __init__(self, **kwargs: Any) -> None:
        from drl_control.robot.tools import composed_urdf_path

        super().__init__("env", VIS_RATE, **kwargs)
        self.max_num_envs = int(self.fixed("max_num_envs"))
        if not 1 <= self.max_num_envs <= MAX_NUM_ENVS:
            raise ValueError(f"max_num_envs must be in [1, {MAX_NUM_ENVS}], got {self.max_num_envs}")
        self.num_envs = int(self.declare_parameter("num_envs", self.param("num_envs").default, ParameterDescriptor(
            description=self.param("num_envs").description,
            integer_range=[IntegerRange(from_value=1, to_value=self.max_num_envs, step=1)])).value)
        self.seed = int(self.fixed("seed"))
        self.env_kwargs = worker_env_kwargs(str(self.fixed("driver")), str(self.fixed("randomization")))
        self.envs = make_envs(self.env_id, self.num_envs, self.env_kwargs)
        self._env_steps = [0] * self.num_envs
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._pending_seed = self.seed if self.seed >= 0 else None
        self._arm = getattr(self.envs[0].unwrapped, "arm", None)
        self._vis_ids, self._vis_names = self._visual_joints()
        self._unsent = 0  # responses DDS would not take
        for srv_type, name, callback in ((EnvSpec, names.SPEC, self._on_spec), (EnvReset, names.RESET, self._on_reset),
                                         (EnvStep, names.STEP, self._on_step)):
            self._guard_responses(self.create_service(srv_type, name, callback, qos_profile=SERVICE_QOS))
        self._env_changed = True  # a reset or step since the last visualization publish
        self.create_timer(1.0 / self.publish_rate, self._publish_env_vis)
        self._announce(composed_urdf_path(self._arm.config.tool if self._arm is not None else None),
                       f"{self.env_id} x{self.num_envs} (at most {self.max_num_envs})"
                       f"{', env ' + json.dumps(self.env_kwargs) if self.env_kwargs else ''}")

    def _guard_responses(self, service: Any) -> None:
        """rclpy raises out of spin (the node dies) when DDS will not take a response: a client
        that does not read its answers fast enough (a flood of thousands in flight) fills the
        reply history. That client loses those answers, logged; the node stays up for the rest."""
        send = service.send_response

        def guarded(response: Any, header: Any) -> None:
            try:
                send(response, header)
            except Exception as exc:  # noqa: BLE001 - rclpy's RCLError is not public
                self._unsent += 1
                if self._unsent in (1, 10, 100) or self._unsent % 1000 == 0:
                    self.get_logger().error(f"{self._unsent} response(s) of {service.srv_name} not sent "
                                            f"(a client not reading its answers?): {exc}")

        service.send_response = guarded

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """`num_envs` at run time: add envs (to be reset before they step) or close the last ones.
        (rclpy refuses a value outside the declared range before this runs.)"""
        for param in params:
            if param.name != "num_envs":
                continue
            if param.type_ != Parameter.Type.INTEGER or not 1 <= param.value <= self.max_num_envs:
                return SetParametersResult(successful=False, reason=f"num_envs must be an integer in "
                                                                    f"[1, {self.max_num_envs}], got {param.value!r}")
            n = int(param.value)
            if n > len(self.envs):
                self.envs.extend(make_envs(self.env_id, n - len(self.envs), self.env_kwargs))
                self._env_steps.extend([0] * (n - len(self._env_steps)))
            while len(self.envs) > n:
                self.envs.pop().close()
                self._env_steps.pop()
            if n != self.num_envs:
                self.get_logger().info(f"num_envs {self.num_envs} -> {n}")
            self.num_envs = n
        return SetParametersResult(successful=True)

    def _visual_joints(self) -> tuple[list[int], list[str]]:
        if self._arm is None:
            return [], []
        ids = list(self._arm.joint_ids) + list(self._arm.finger_ids)
        client = self._arm.client
        return ids, [client.getJointInfo(self._arm.body, j)[1].decode() for j in ids]

    def _on_spec(self, _request: EnvSpec.Request, response: EnvSpec.Response) -> EnvSpec.Response:
        env = self.envs[0]
        base = env.unwrapped
        spec = base.deploy_spec() if hasattr(base, "deploy_spec") else {}
        response.env_id = self.env_id
        response.num_envs = self.num_envs
        response.observation_space_json = conv.space_to_json(env.observation_space)
        response.action_space_json = conv.space_to_json(env.action_space)
        response.control_hz = float(spec.get("control_hz") or env.metadata.get("render_fps", 0.0) or 0.0)
        response.deploy_spec_json = json.dumps(conv.to_jsonable({**spec, names.ENV_KWARGS: self.env_kwargs}))
        return response

    def _refuse(self, response: Any, service: str, reason: str) -> Any:
        """A rejected env request: success=false, the reason in the response and the log."""
        response.success = False
        response.message = reason
        self.get_logger().warning(f"rejected {service} request: {reason}")
        return response

    def _on_reset(self, request: EnvReset.Request, response: EnvReset.Response) -> EnvReset.Response:
        seeds = [int(s) for s in request.seeds]
        problem = ""
        if seeds and len(seeds) != self.num_envs:
            problem = f"expected {self.num_envs} seeds (one per env) or none, got {len(seeds)}"
        elif any(s < 0 for s in seeds):
            problem = f"seeds must be >= 0, got {seeds}"
        options = None
        if not problem and request.options_json.strip():
            try:
                options = load_json_text(request.options_json, "options_json", max_bytes=MAX_OPTIONS_BYTES)
            except ValueError as exc:  # not JSON, too big or too deep (safe_io.DataError)
                problem = str(exc)
            else:
                if not isinstance(options, dict):
                    problem = f"options_json must be a JSON object, got {type(options).__name__}"
        if problem:  # refused before any env is touched
            return self._refuse(response, names.RESET, problem)
        if not seeds and self._pending_seed is not None:
            seeds = [self._pending_seed + i for i in range(self.num_envs)]
        self._pending_seed = None
        try:
            obs = [env.reset(seed=seeds[i] if seeds else None, options=options or None)[0]
                   for i, env in enumerate(self.envs)]
        except Exception as exc:  # noqa: BLE001 - reported to the caller, node stays up
            response.success = False
            response.message = f"reset failed: {type(exc).__name__}: {exc}"
            self.get_logger().error(response.message)
            return response
        self.trail.clear()
        self._env_changed = True
        conv.batch_to_msg(conv.stack_obs(obs), response.batch)
        response.success = True
        return response

    def _on_step(self, request: EnvStep.Request, response: EnvStep.Response) -> EnvStep.Response:
        """One step of every env, with SB3 VecEnv auto-reset semantics (as DummyVecEnv): an env
        whose episode ended (terminated or truncated) is reset at once; its final observation goes
        in `info["terminal_observation"]`, the returned observation is the reset one, and
        `info["TimeLimit.truncated"]` is true for a time-limit end that was not a termination."""
        try:
            actions = conv.actions_from_msg(request.actions, int(request.action_dim), self.num_envs)
        except ValueError as exc:
            return self._refuse(response, names.STEP, str(exc))
        dim = int(np.prod(self.envs[0].action_space.shape))
        if actions.shape[1] != dim:  # refused before any env steps: no half-stepped batch
            return self._refuse(response, names.STEP, f"action_dim must be {dim}, got {actions.shape[1]}")
        if not np.all(np.isfinite(actions)):
            bad = sorted({int(i) for i in np.flatnonzero(~np.all(np.isfinite(actions), axis=1))})
            return self._refuse(response, names.STEP, f"actions must be finite (env(s) {bad})")
        n = self.num_envs
        obs_list, infos = [], []
        rewards = np.zeros(n, dtype=np.float32)
        terminated = [False] * n
        truncated = [False] * n
        try:
            for i, env in enumerate(self.envs):
                obs, reward, term, trunc, info = env.step(actions[i])
                rewards[i] = reward
                terminated[i], truncated[i] = bool(term), bool(trunc)
                info = dict(info)
                info["TimeLimit.truncated"] = bool(trunc and not term)
                self._env_steps[i] += 1
                info[names.STEP_COUNT] = self._env_steps[i]
                if term or trunc:
                    info["terminal_observation"] = obs
                    obs, _ = env.reset()
                    if i == 0:
                        self.trail.clear()
                obs_list.append(obs)
                infos.append(info)
        except Exception as exc:  # noqa: BLE001 - e.g. step before reset; node stays up
            response.success = False
            response.message = f"step failed: {type(exc).__name__}: {exc}"
            self.get_logger().error(response.message)
            return response
        if self._arm is not None:
            self.trail.append(self._arm.tcp_state()[0])
        self._env_changed = True
        conv.batch_to_msg(conv.stack_obs(obs_list), response.batch)
        response.rewards = rewards
        response.terminated = terminated
        response.truncated = truncated
        response.infos_json = conv.infos_to_json(infos)
        response.success = True
        return response

    def _publish_env_vis(self) -> None:
        """Joint states and markers of env 0; an idle worker (nothing stepped) republishes them
        once per IDLE_VIS_PERIOD only, so spare workers cost next to no CPU (at VIS_RATE ~2% of a
        core each, measured)."""
        now = time.monotonic()
        if self._arm is None or not self._env_changed and now - self._last_vis < IDLE_VIS_PERIOD:
            return
        self._env_changed = False
        self._last_vis = now
        client, body = self._arm.client, self._arm.body
        states = client.getJointStates(body, self._vis_ids)
        self._publish_joint_states(self._vis_names, [s[0] for s in states], [s[1] for s in states],
                                   [s[3] for s in states])
        task = getattr(self.envs[0].unwrapped, "task", None)
        goal = getattr(task, "goal", None)
        self.goal = None if goal is None else np.asarray(goal, dtype=float)
        self._publish_markers()

    def close(self) -> None:
        for env in self.envs:
            env.close()
