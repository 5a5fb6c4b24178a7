"""Domain randomization for sim-to-real: off by default, every knob set by configuration."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, fields

import numpy as np

from drl_control.sim.drivers import DriverModel


def _range(name: str, value, low_bound: float = 0.0) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"randomization.{name} must be [low, high], got {value!r}") from None
    if not (np.isfinite(low) and np.isfinite(high)) or low < low_bound or high < low:
        raise ValueError(f"randomization.{name} must satisfy {low_bound} <= low <= high, got {value!r}")
    return low, high


@dataclass(frozen=True)
class Randomization:
    """Ranges are sampled uniformly at every reset; None (the default) leaves a property as modelled.

    joint_damping, joint_friction: absolute values (N·m·s/rad, N·m) for all arm joints.
    link_mass: scale factor of every arm link's mass (payload, model error).
    object_mass: scale factor of the object's mass; object_friction: its lateral friction.
    observation_noise: std of Gaussian noise on the observation vector (metres, rad, m/s).
    action_latency: (min, max) control steps an action waits before it is applied (0..2).
    control_jitter: fraction by which the number of physics substeps of a step may vary.
    driver_update_hz, driver_tau, driver_latency, measurement_noise: the driver model's update
    rate (Hz), command smoothing time constant (s), latency (whole driver cycles, 0..10) and
    joint measurement noise (rad), sampled per episode around the env's driver (`sim.drivers`).
    ideal_driver_share: the share of episodes that keep the env's own driver unrandomized (the ideal
    servo for the default envs). A policy that only ever meets lagging drivers learns to push
    through the lag and chatters around the goal on an arm that follows at once; these episodes
    make it hold still there too (docs/results.md § 5).
    """

    joint_damping: tuple[float, float] | None = None
    joint_friction: tuple[float, float] | None = None
    object_mass: tuple[float, float] | None = None
    object_friction: tuple[float, float] | None = None
    observation_noise: float = 0.0
    action_latency: tuple[int, int] = (0, 0)
    control_jitter: float = 0.0
    link_mass: tuple[float, float] | None = None
    driver_update_hz: tuple[float, float] | None = None
    driver_tau: tuple[float, float] | None = None
    driver_latency: tuple[int, int] | None = None
    measurement_noise: tuple[float, float] | None = None
    ideal_driver_share: float = 0.0

    @classmethod
    def from_dict(cls, config: dict | None) -> Randomization:
        config = dict(config or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"randomization: unknown key(s) {unknown}; valid keys are {sorted(known)}")
        for key in ("joint_damping", "joint_friction", "object_friction"):
            config[key] = _range(key, config.get(key))
        config["object_mass"] = _range("object_mass", config.get("object_mass"), low_bound=1e-3)
        config["link_mass"] = _range("link_mass", config.get("link_mass"), low_bound=1e-3)
        config["driver_update_hz"] = _range("driver_update_hz", config.get("driver_update_hz"), low_bound=1.0)
        config["driver_tau"] = _range("driver_tau", config.get("driver_tau"))
        config["measurement_noise"] = _range("measurement_noise", config.get("measurement_noise"))
        if config["measurement_noise"] and config["measurement_noise"][1] >= 0.1:
            raise ValueError(f"randomization.measurement_noise must lie in [0, 0.1) rad, got {config['measurement_noise']}")
        cycles = _range("driver_latency", config.get("driver_latency"))
        if cycles is not None:
            if cycles[1] > 10 or cycles != tuple(round(v) for v in cycles):
                raise ValueError(f"randomization.driver_latency must be whole cycles within [0, 10], got {cycles}")
            cycles = (round(cycles[0]), round(cycles[1]))
        config["driver_latency"] = cycles
        latency = _range("action_latency", config.get("action_latency", (0, 0)))
        if latency[1] > 2 or latency != tuple(round(v) for v in latency):
            raise ValueError(f"randomization.action_latency must be whole steps within [0, 2], got {latency}")
        config["action_latency"] = (round(latency[0]), round(latency[1]))
        noise = float(config.get("observation_noise", 0.0))
        if not 0.0 <= noise < 1.0:
            raise ValueError(f"randomization.observation_noise must be in [0, 1), got {noise}")
        config["observation_noise"] = noise
        jitter = float(config.get("control_jitter", 0.0))
        if not 0.0 <= jitter < 1.0:
            raise ValueError(f"randomization.control_jitter must be in [0, 1), got {jitter}")
        config["control_jitter"] = jitter
        share = float(config.get("ideal_driver_share", 0.0))
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"randomization.ideal_driver_share must be in [0, 1], got {share}")
        config["ideal_driver_share"] = share
        return cls(**config)

    @property
    def enabled(self) -> bool:
        return self != Randomization()

    @property
    def driver_randomized(self) -> bool:
        return any(r is not None for r in (self.driver_update_hz, self.driver_tau, self.driver_latency,
                                           self.measurement_noise))


class Randomizer:
    """Applies a `Randomization` to one env: dynamics at reset, latency/jitter/noise per step."""

    def __init__(self, config: Randomization) -> None:
        self.config = config
        self._pending: deque[np.ndarray] = deque()
        self._latency = 0
        self.friction: np.ndarray | None = None
        self._link_masses: list[float] | None = None

    @property
    def driver_randomized(self) -> bool:
        return self.config.driver_randomized

    def driver(self, rng: np.random.Generator, base: DriverModel) -> DriverModel:
        """This episode's driver model: `base` with the randomized parameters sampled."""
        c = self.config
        if not c.driver_randomized:
            return base
        if c.ideal_driver_share and rng.random() < c.ideal_driver_share:
            return base
        changes: dict = {}
        if c.driver_update_hz:
            changes["update_hz"] = float(rng.uniform(*c.driver_update_hz))
        if c.driver_tau:
            changes["tau"] = float(rng.uniform(*c.driver_tau))
        if c.driver_latency:
            changes["latency_cycles"] = int(rng.integers(c.driver_latency[0], c.driver_latency[1] + 1))
        if c.measurement_noise:
            changes["measurement_noise"] = float(rng.uniform(*c.measurement_noise))
        return base.with_(name=f"{base.name}~randomized", **changes)

    def on_reset(self, rng: np.random.Generator, client, arm_body: int, arm_joints, obj: int | None,
                 base_mass: float | None) -> None:
        c = self.config
        for joint in arm_joints:
            if c.joint_damping:
                client.changeDynamics(arm_body, joint, jointDamping=rng.uniform(*c.joint_damping))
        if c.link_mass:
            if self._link_masses is None:  # as built, so the scale never compounds over resets
                self._link_masses = [client.getDynamicsInfo(arm_body, j)[0] for j in arm_joints]
            for joint, mass in zip(arm_joints, self._link_masses):
                client.changeDynamics(arm_body, joint, mass=mass * rng.uniform(*c.link_mass))
        if obj is not None:
            if c.object_mass and base_mass is not None:
                client.changeDynamics(obj, -1, mass=base_mass * rng.uniform(*c.object_mass))
            if c.object_friction:
                client.changeDynamics(obj, -1, lateralFriction=rng.uniform(*c.object_friction))
        self.friction = rng.uniform(*c.joint_friction, size=len(arm_joints)) if c.joint_friction else None
        self._latency = int(rng.integers(c.action_latency[0], c.action_latency[1] + 1))
        self._pending.clear()

    def apply_joint_friction(self, client, body: int, joints: list[int], axes: np.ndarray) -> None:
        """Coulomb friction torque opposing each joint's motion, for one physics substep.

        PyBullet has no joint-friction parameter, so the torque is applied by hand to the child
        link (and its reaction to the parent); `axes` are the joint axes in the link frames.
        """
        states = client.getJointStates(body, joints)
        links = client.getLinkStates(body, joints)
        for i, (joint, state, link) in enumerate(zip(joints, states, links)):
            rotation = np.array(client.getMatrixFromQuaternion(link[5])).reshape(3, 3)
            torque = -self.friction[i] * np.tanh(state[1] / 0.01) * (rotation @ axes[i])
            client.applyExternalTorque(body, joint, torque.tolist(), 2)  # 2 = WORLD_FRAME
            if joint > 0:
                client.applyExternalTorque(body, joint - 1, (-torque).tolist(), 2)

    def delay(self, action: np.ndarray, hold: np.ndarray) -> np.ndarray:
        """The action to apply now: `action` itself, or one from `latency` steps ago (`hold` before that)."""
        if self._latency == 0:
            return action
        self._pending.append(action)
        return self._pending.popleft() if len(self._pending) > self._latency else hold

    def substeps(self, rng: np.random.Generator, nominal: int) -> int:
        if not self.config.control_jitter:
            return nominal
        spread = max(1, round(nominal * self.config.control_jitter))
        return max(1, nominal + int(rng.integers(-spread, spread + 1)))

    def noisy(self, rng: np.random.Generator, observation: np.ndarray) -> np.ndarray:
        if not self.config.observation_noise:
            return observation
        return observation + rng.normal(0.0, self.config.observation_noise, size=observation.shape)
