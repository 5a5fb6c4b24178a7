"""Models of a real arm driver's command path, between the action law's joint targets and the arm.

A policy is trained against an ideal position servo that takes each joint target at the control
rate (25 Hz). A real driver does not: it reads the latest command at its own update rate, may
hold it back a cycle or more, may smooth it, and reports measured positions with noise. A
`DriverModel` says how; a `Driver` runs one in the simulator, ticked once per physics step, and
hands its setpoint to the arm's position motors. The goal envs (`gym.make(id, driver="lbr")`),
sim_node robot mode (`-p driver:=lbr`, `sim.emulator`) and the transfer worlds (`learn.transfer`)
all use this one implementation.

The named models and where each parameter comes from (drivers' sources read late 2026, see
/work/shared/DESIGN.md section 3 and docs/SIM2REAL.md):

- `ideal`: our simulator's servo: the target is the motor setpoint at once, every control step;
  no smoothing, no latency, no noise.
- `lbr` (lbr_fri_ros2_stack, current versions): controller manager and FRI at 100 Hz (FRI 10 ms);
  the hardware interface smooths the commanded position exponentially with `joint_position_tau`
  = 0.04 s, per cycle  x += alpha (command - x), alpha = 1 - exp(-dt / tau)  (the stack's
  documented filter law). Latency 1 cycle: a command published between cycles is read at the next
  controller-manager update and reaches FRI one cycle later.
- `iiwa_ros2` (ICube): controller manager `update_rate: 225` Hz, FRI 5 ms, the command sent to FRI
  unfiltered; latency 1 cycle for the same reason.
- measurement noise of the named real drivers: 1e-4 rad (std) on each measured joint position.
  This one is an ASSUMPTION, not from the drivers' sources (FRI reports encoder positions; the
  figure bounds what a policy must tolerate); the sim2real preset randomizes it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class DriverModel:
    """One driver's command path. `update_hz` None: the ideal servo (setpoint = target at once)."""

    name: str
    update_hz: float | None = None
    tau: float = 0.0  # exponential smoothing time constant of the command (s); 0: unfiltered
    latency_cycles: int = 0  # driver cycles a command waits before it takes effect
    measurement_noise: float = 0.0  # std of the measured joint positions (rad)

    def __post_init__(self) -> None:
        if self.update_hz is not None and not (math.isfinite(self.update_hz) and self.update_hz > 0):
            raise ValueError(f"driver {self.name}: update_hz must be positive, got {self.update_hz}")
        if not (math.isfinite(self.tau) and self.tau >= 0):
            raise ValueError(f"driver {self.name}: tau must be >= 0 s, got {self.tau}")
        if int(self.latency_cycles) != self.latency_cycles or not 0 <= self.latency_cycles <= 10:
            raise ValueError(f"driver {self.name}: latency_cycles must be a whole number in [0, 10], "
                             f"got {self.latency_cycles}")
        if not (math.isfinite(self.measurement_noise) and 0 <= self.measurement_noise < 0.1):
            raise ValueError(f"driver {self.name}: measurement_noise must be in [0, 0.1) rad, "
                             f"got {self.measurement_noise}")
        if self.update_hz is None and (self.tau or self.latency_cycles):
            raise ValueError(f"driver {self.name}: smoothing and latency need an update_hz")

    @property
    def ideal(self) -> bool:
        return self.update_hz is None

    def alpha(self) -> float:
        """Share of the command taken per cycle (1: unfiltered)."""
        if not self.tau or self.update_hz is None:
            return 1.0
        return 1.0 - math.exp(-1.0 / (self.update_hz * self.tau))

    def expected_lag(self) -> float:
        """Seconds by which the setpoint trails a command: latency plus the filter's time constant
        (what a tracking check may allow before it calls the arm not following)."""
        if self.update_hz is None:
            return 0.0
        return self.latency_cycles / self.update_hz + self.tau

    def with_(self, **changes) -> DriverModel:
        return replace(self, **changes)


MEASUREMENT_NOISE_ASSUMED = 1e-4  # rad; see the module doc: an assumption, randomized in training
DRIVERS: dict[str, DriverModel] = {
    "ideal": DriverModel("ideal"),
    "lbr": DriverModel("lbr", update_hz=100.0, tau=0.04, latency_cycles=1,
                       measurement_noise=MEASUREMENT_NOISE_ASSUMED),
    "iiwa_ros2": DriverModel("iiwa_ros2", update_hz=225.0, tau=0.0, latency_cycles=1,
                             measurement_noise=MEASUREMENT_NOISE_ASSUMED),
}


def driver_model(driver: str | DriverModel | None) -> DriverModel:
    """A model by name (None: ideal), or the model itself; an unknown name is an error naming the choices."""
    if driver is None:
        return DRIVERS["ideal"]
    if isinstance(driver, DriverModel):
        return driver
    try:
        return DRIVERS[str(driver)]
    except KeyError:
        raise ValueError(f"driver: unknown driver {driver!r}, expected one of {sorted(DRIVERS)}") from None


class Driver:
    """Runs a DriverModel: `command()` posts a target (what lands on the command topic), `tick()`
    once per physics step runs the driver's cycles and `send`s its setpoint to the motors."""

    def __init__(self, model: DriverModel, physics_dt: float, send: Callable[[np.ndarray], None]) -> None:
        self.physics_dt = float(physics_dt)
        self.send = send
        self.model = model
        self.setpoint: np.ndarray | None = None
        self._command: np.ndarray | None = None
        self._pending: deque[np.ndarray] = deque()
        self._clock = 0.0
        self.configure(model)

    def configure(self, model: DriverModel) -> None:
        """Switch the model (a randomized one at reset); takes effect with the next `reset`."""
        self.model = model
        self._alpha = model.alpha()
        self._cycle_dt = 0.0 if model.ideal else 1.0 / model.update_hz

    def reset(self, q: np.ndarray, phase: float = 0.0) -> None:
        """Arm at rest at `q`: filter state, queue and command all start there. `phase` in [0, 1):
        where in its cycle the driver is at t = 0 (a real driver is not in step with the policy)."""
        q = np.array(q, dtype=float)
        self.setpoint = q.copy()
        self._command = q
        self._pending = deque([q] * int(self.model.latency_cycles))
        self._clock = float(phase) * self._cycle_dt

    def command(self, q_target: np.ndarray) -> None:
        """The latest joint position command; the ideal servo applies it at once."""
        if self.model.ideal:
            self.setpoint = q_target
            self.send(q_target)
        else:
            self._command = q_target

    def tick(self) -> None:
        """One physics step: run a driver cycle when one falls due in it."""
        if self.model.ideal:
            return
        self._clock -= self.physics_dt
        while self._clock < 1e-9:  # due at or before this physics step (rounding: ~0 is due)
            self._clock += self._cycle_dt
            self._cycle()

    def _cycle(self) -> None:
        command = self._command
        if self._pending:
            self._pending.append(command)
            command = self._pending.popleft()
        if self._alpha >= 1.0:
            self.setpoint = command
        else:
            self.setpoint = self.setpoint + self._alpha * (command - self.setpoint)
        self.send(self.setpoint)

    def measure(self, q: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """Measured joint positions as the driver reports them (with its noise)."""
        if not self.model.measurement_noise or rng is None:
            return q
        return q + rng.normal(0.0, self.model.measurement_noise, size=np.shape(q))
