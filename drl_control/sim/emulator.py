"""A position-controlled arm in real time: what `sim_node` robot mode runs.

It emulates the ros2_control contract of a real arm driver without any ROS: a forward position
controller (one vector of joint positions, held until the next) and a joint trajectory controller
(points with times from start, interpolated linearly). The drive tracks its setpoint with the
datasheet's joint speed limits, like a real controller would; commands outside the URDF limits,
of the wrong size or not finite are refused with a reason (ValueError), leaving the arm as it was.
Between that setpoint and the motors runs a driver model (`sim.drivers`: `ideal`, `lbr`,
`iiwa_ros2`), the same one the goal envs use: its update rate, smoothing, latency, and the noise of
the joint positions it reports.

With a `task` (sim.tasks: Reach, Push, PickAndPlace) the world also holds that task's bodies,
built by the task class the goal envs use: an object task's cube rests on the table (at the
centre of its sampling area until the first episode). `reset_episode(rng)` starts an episode as
the goal env's reset does: the arm at its home pose, then the task's object and goal sampled from
`rng` (same generator state, same object and goal as `env.reset`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from drl_control.robot.description import RobotSpec
from drl_control.sim.arm import Arm, ArmConfig
from drl_control.sim.drivers import DriverModel
from drl_control.sim.tasks import TASK_CLASSES, ObjectTask, Task
from drl_control.sim.world import World, WorldConfig


class RobotEmulator:
    """World + Arm stepped in physics steps; commands set the drive's desired joint positions."""

    def __init__(self, tool: str | None = None, physics_hz: float = 500.0, spec: RobotSpec | None = None,
                 initial: np.ndarray | None = None, driver: str | DriverModel | None = None,
                 seed: int | None = None, task: str | None = None, distance_threshold: float | None = None) -> None:
        """`task`: build that task's bodies (its tool is `tool`'s business); `distance_threshold`:
        the task's success distance (default: the task's)."""
        if task is not None and task not in TASK_CLASSES:
            raise ValueError(f"task: unknown task {task!r}, expected one of {sorted(TASK_CLASSES)}")
        self.world = World(WorldConfig(physics_hz=physics_hz, control_hz=physics_hz))
        self.arm = Arm(self.world, ArmConfig(control="joints", tool=tool), spec, driver=driver)
        self.arm.noise_rng = np.random.default_rng(seed)
        self.spec = self.arm.spec
        self.joint_names = list(self.spec.joint_names)
        self.task: Task | None = None
        if task is not None:
            extra = {} if distance_threshold is None else {"distance_threshold": distance_threshold}
            self.task = TASK_CLASSES[task](self.world, self.arm, **extra)
        self._max_step = self.spec.max_velocity * self.world.config.physics_dt
        self.steps = 0
        self._home(initial)

    def _home(self, q: np.ndarray | None) -> None:
        """Put the arm at `q` (default: home) at rest, the drive holding it."""
        self.arm.reset(q)
        self.setpoint = self.arm.joint_state()[0].copy()
        self._desired = self.setpoint.copy()
        self._trajectory: tuple[float, np.ndarray, np.ndarray] | None = None

    # --- task --------------------------------------------------------------------------------
    @property
    def has_object(self) -> bool:
        return isinstance(self.task, ObjectTask)

    def reset_episode(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A new episode, as the goal env's reset: the arm home (a jump, not a motion: whoever
        commands the arm should be stopped), then the task's goal and object from `rng`.
        Returns (achieved goal, desired goal): the object (or TCP) position and the goal."""
        if self.task is None:
            raise ValueError("no task: this emulator was built without one")
        self._home(None)
        self.task.reset(rng)
        return self.task.achieved_goal().copy(), self.task.goal.copy()

    def object_pose(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The task object's position and orientation quaternion (x, y, z, w), base frame; None
        without an object task. (The arm's base sits at the world origin: world = base frame.)"""
        if not self.has_object:
            return None
        return self.world.base_pose(self.task.object)

    @property
    def time(self) -> float:
        return self.world.time

    # --- commands ----------------------------------------------------------------------------
    def check_positions(self, q: Sequence[float]) -> np.ndarray:
        """`q` as an array if it is a valid joint position vector, else ValueError with the reason."""
        q = np.asarray(q, dtype=float).ravel()
        n = self.spec.n_joints
        if q.size != n:
            raise ValueError(f"expected {n} joint positions, got {q.size}")
        if not np.all(np.isfinite(q)):
            raise ValueError(f"joint positions must be finite, got {q.tolist()}")
        bad = np.flatnonzero((q < self.spec.lower) | (q > self.spec.upper))
        if bad.size:
            j = int(bad[0])
            raise ValueError(
                f"{self.joint_names[j]} = {q[j]:.4f} rad is outside its limits "
                f"[{self.spec.lower[j]:.4f}, {self.spec.upper[j]:.4f}]"
            )
        return q

    def command_positions(self, q: Sequence[float]) -> None:
        """Forward position controller: go to `q` (joint order of the spec) and hold it."""
        self._desired = self.check_positions(q)
        self._trajectory = None

    def command_trajectory(self, joint_names: Sequence[str], times: Sequence[float],
                           positions: np.ndarray) -> None:
        """Joint trajectory controller: follow `positions` (m, n) at `times` (s from now).

        Joint names may come in any order but must name every joint once. An empty trajectory
        stops the current one and holds the current setpoint.
        """
        names = list(joint_names)
        times = np.asarray(times, dtype=float).ravel()
        positions = np.asarray(positions, dtype=float).reshape(len(times), -1) if len(times) else np.zeros((0, 0))
        if len(times) == 0:
            self._desired = self.setpoint.copy()
            self._trajectory = None
            return
        if sorted(names) != sorted(self.joint_names) or len(set(names)) != len(names):
            raise ValueError(f"joint_names must name each of {self.joint_names} once, got {names}")
        if positions.shape[1] != len(names):
            raise ValueError(f"points have {positions.shape[1]} positions for {len(names)} joints")
        if not np.all(np.isfinite(times)) or np.any(times < 0) or np.any(np.diff(times) <= 0):
            raise ValueError(f"time_from_start must be >= 0 and strictly increasing, got {times.tolist()}")
        order = [names.index(n) for n in self.joint_names]
        positions = positions[:, order]
        for i, q in enumerate(positions):
            try:
                self.check_positions(q)
            except ValueError as exc:
                raise ValueError(f"point {i}: {exc}") from None
        if times[0] > 0:  # start from where the drive is now
            times = np.concatenate([[0.0], times])
            positions = np.vstack([self.setpoint, positions])
        self._trajectory = (self.time, times, positions)

    def desired(self, t: float) -> np.ndarray:
        """The commanded position at sim time `t` (trajectory interpolation, else the last command)."""
        if self._trajectory is None:
            return self._desired
        t0, times, positions = self._trajectory
        s = t - t0
        if s >= times[-1]:
            self._desired = positions[-1].copy()
            self._trajectory = None
            return self._desired
        return np.array([np.interp(s, times, positions[:, j]) for j in range(positions.shape[1])])

    # --- physics -----------------------------------------------------------------------------
    def _before_substep(self) -> None:
        desired = self.desired(self.world.time)
        self.setpoint = self.setpoint + np.clip(desired - self.setpoint, -self._max_step, self._max_step)
        self.arm.drive(self.setpoint)
        self.arm.driver.tick()

    def advance(self, steps: int) -> None:
        """Run `steps` physics steps (the node calls this in real-time chunks)."""
        if steps <= 0:
            return
        for _ in range(steps):
            self._before_substep()
            self.world.step(1)
        self.steps += steps

    def joint_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Joint positions (as the driver measures them), velocities and applied motor torques."""
        states = self.world.client.getJointStates(self.arm.body, self.arm.joint_ids)
        q = self.arm.driver.measure(np.array([s[0] for s in states]), self.arm.noise_rng)
        return q, np.array([s[1] for s in states]), np.array([s[3] for s in states])

    def tcp_position(self) -> np.ndarray:
        return self.arm.tcp_state()[0]

    def close(self) -> None:
        self.world.close()
