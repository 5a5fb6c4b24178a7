"""The PyBullet world: one physics client, its clock, the ground, simple bodies and a camera."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pybullet as p

from drl_control.errors import UserError


class NoDisplayError(UserError, RuntimeError):
    """render_mode="human" (PyBullet's GUI) asked for where there is no display to open it on."""


def check_display() -> None:
    """Raise NoDisplayError unless an X or Wayland display is set.

    Checked before PyBullet is asked: its GUI connect on a machine without a display ends the whole
    process from inside the C library ("cannot connect to X server"), with nothing to catch.
    """
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise NoDisplayError('render_mode="human" needs a display, and DISPLAY is not set; use '
                             'render_mode="rgb_array" (off-screen frames) or run with a display')


class PhysicsClient:
    """PyBullet's module functions bound to one physics server.

    Like pybullet_utils' BulletClient, but it binds each function once and caches it (BulletClient
    rebuilds a partial on every attribute access, which shows up in per-step overhead) and it
    connects without printing to stdout.
    """

    def __init__(self, connection_mode: int) -> None:
        self._client = p.connect(connection_mode)
        if self._client < 0:
            raise RuntimeError("could not connect to a PyBullet physics server")

    def __getattr__(self, name: str):
        attr = getattr(p, name)
        if callable(attr):
            attr = functools.partial(attr, physicsClientId=self._client)
        setattr(self, name, attr)
        return attr


@dataclass(frozen=True)
class WorldConfig:
    """Physics and control rates. Defaults: 500 Hz physics, 25 Hz control (20 substeps)."""

    physics_hz: float = 500.0
    control_hz: float = 25.0
    gui: bool = False
    gravity: float = -9.81

    def __post_init__(self) -> None:
        if not self.physics_hz > 0:
            raise ValueError(f"physics_hz must be positive, got {self.physics_hz}")
        if not self.control_hz > 0:
            raise ValueError(f"control_hz must be positive, got {self.control_hz}")
        ratio = self.physics_hz / self.control_hz
        if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
            raise ValueError(
                f"substeps: physics_hz/control_hz must be a positive integer, got {ratio:g} "
                f"({self.physics_hz:g}/{self.control_hz:g})"
            )

    @property
    def substeps(self) -> int:
        return round(self.physics_hz / self.control_hz)

    @property
    def physics_dt(self) -> float:
        return 1.0 / self.physics_hz

    @property
    def control_dt(self) -> float:
        return 1.0 / self.control_hz


class World:
    """Owns a PyBullet client (DIRECT unless GUI is asked for) and advances it in control steps."""

    def __init__(self, config: WorldConfig | None = None) -> None:
        self.config = config or WorldConfig()
        if self.config.gui:
            check_display()
        self.client = PhysicsClient(p.GUI if self.config.gui else p.DIRECT)
        self.client.setGravity(0, 0, self.config.gravity)
        self.client.setPhysicsEngineParameter(deterministicOverlappingPairs=1)
        self._internal_substeps = 0
        self._set_internal_substeps(1)
        self.substeps = self.config.substeps
        self.time = 0.0
        self.generation = 0  # bumped whenever the physics state changes; readers cache against it
        self._ground = self._make_ground()

    def _make_ground(self) -> int:
        """The work surface: a large static box whose top is the plane z = 0."""
        shape = self.client.createCollisionShape(p.GEOM_BOX, halfExtents=[2.0, 2.0, 0.05])
        visual = self.client.createVisualShape(
            p.GEOM_BOX, halfExtents=[2.0, 2.0, 0.05], rgbaColor=[0.85, 0.85, 0.8, 1]
        )
        return self.client.createMultiBody(0, shape, visual, basePosition=[0, 0, -0.05])

    def step(self, substeps: int | None = None, before_substep: Callable[[], None] | None = None) -> None:
        """Advance one control period (or `substeps` physics steps, for control-period jitter).

        Without a per-substep hook, PyBullet runs all substeps inside one stepSimulation call
        (numSubSteps), which saves a Python round trip per physics step.
        """
        n = self.substeps if substeps is None else substeps
        if before_substep is None:
            self._set_internal_substeps(n)
            self.client.stepSimulation()
        else:
            self._set_internal_substeps(1)
            step = self.client.stepSimulation
            for _ in range(n):
                before_substep()
                step()
        self.time += n * self.config.physics_dt
        self.generation += 1

    def motor_forces(self, forces: list[float]) -> list[float]:
        """The `forces` argument of setJointMotorControl* that caps each motor's impulse per physics
        step at force x control_dt, however the world was stepped before.

        PyBullet turns a motor's force into that cap when the motor is set: force x its time-step
        parameter, which is the whole control period while the substeps run inside one
        stepSimulation call (numSubSteps = n) and one physics step otherwise. Set as is, the cap
        depended on the previous step's n: a fresh env's first step (set under n = 1) differed
        from the same step later (0.12-0.23 in the observation), so `reset(seed)` did not repeat
        an episode. Scaled by substeps / n here, the cap is the same in every step: the stiff
        servo every policy so far was trained on (force x control_dt, i.e. substeps x the force
        per physics step; with force x physics_dt the scripted PickAndPlace expert fell from >= 0.9
        to 0.84 success over 100 episodes, measured).
        """
        return [f * self.substeps / self._internal_substeps for f in forces]

    def _set_internal_substeps(self, n: int) -> None:
        if n != self._internal_substeps:
            self.client.setPhysicsEngineParameter(fixedTimeStep=n * self.config.physics_dt, numSubSteps=n)
            self._internal_substeps = n

    def touch(self) -> None:
        """Note a state change made outside `step` (a reset), so cached reads are refreshed."""
        self.generation += 1

    def create_box(
        self,
        half_extents: np.ndarray,
        mass: float,
        position: np.ndarray,
        rgba: tuple[float, float, float, float],
        ghost: bool = False,
        lateral_friction: float = 1.0,
    ) -> int:
        """A box body; `ghost` boxes (goal markers) have no collision shape."""
        visual = self.client.createVisualShape(p.GEOM_BOX, halfExtents=list(half_extents), rgbaColor=rgba)
        shape = -1 if ghost else self.client.createCollisionShape(p.GEOM_BOX, halfExtents=list(half_extents))
        body = self.client.createMultiBody(mass if not ghost else 0.0, shape, visual, basePosition=list(position))
        if not ghost:
            self.client.changeDynamics(body, -1, lateralFriction=lateral_friction)
        return body

    def create_sphere_marker(self, radius: float, position: np.ndarray, rgba: tuple) -> int:
        visual = self.client.createVisualShape(p.GEOM_SPHERE, radius=radius, rgbaColor=rgba)
        return self.client.createMultiBody(0.0, -1, visual, basePosition=list(position))

    def set_base_pose(self, body: int, position: np.ndarray, orientation=(0.0, 0.0, 0.0, 1.0)) -> None:
        self.client.resetBasePositionAndOrientation(body, list(position), list(orientation))
        self.client.resetBaseVelocity(body, [0, 0, 0], [0, 0, 0])

    def base_pose(self, body: int) -> tuple[np.ndarray, np.ndarray]:
        pos, orn = self.client.getBasePositionAndOrientation(body)
        return np.array(pos), np.array(orn)

    def base_velocity(self, body: int) -> tuple[np.ndarray, np.ndarray]:
        lin, ang = self.client.getBaseVelocity(body)
        return np.array(lin), np.array(ang)

    def render(
        self,
        width: int = 640,
        height: int = 480,
        target: tuple[float, float, float] = (0.42, 0.0, 0.28),
        distance: float = 1.2,
        yaw: float = 60.0,
        pitch: float = -22.0,
    ) -> np.ndarray:
        """An RGB frame from the off-screen TinyRenderer (works without a display). The default
        camera frames the arm and the goal workspace (x 0.35-0.75 m, |y| <= 0.35 m) from the front right."""
        view = self.client.computeViewMatrixFromYawPitchRoll(target, distance, yaw, pitch, 0, 2)
        proj = self.client.computeProjectionMatrixFOV(60, width / height, 0.05, 10.0)
        _, _, rgba, _, _ = self.client.getCameraImage(
            width, height, view, proj, renderer=p.ER_TINY_RENDERER
        )
        return np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[:, :, :3]

    def close(self) -> None:
        try:
            self.client.disconnect()
        except p.error:  # already disconnected
            pass
