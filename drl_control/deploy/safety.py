"""Safety filter between a policy (or any command source) and the arm. Pure numpy, no ROS.

Every call of `SafetyFilter.decide(now)` returns a `Decision(command, reason, holding)`:

- `command` is the 7 joint positions to send, or None: send NOTHING.
- `reason` says why the command is not the proposed one ("" when it passes unchanged).
- `holding` is True when `command` is the hold position instead of the proposal.

Rules, in order (the first that applies decides):

1. disabled (e-stop / not enabled)       -> None, "disabled". While disabled NOTHING is sent to
   the arm, not even a hold: a real driver keeps its last setpoint (FRI / ros2_control hold the
   last command), and an e-stopped arm must not receive setpoints that could fight the brakes or
   a person moving it by hand. Re-enabling starts from the measured position (the old hold is
   forgotten), so an arm moved while disabled is never pulled back to a stale setpoint.
2. no joint state yet                     -> None (nothing is known; nothing is safe to send).
3. non-finite joint state, or one outside the URDF limits by more than `state_tolerance`
   (no real encoder reports that: a corrupt message) -> hold, reason.
4. stale joint state: none received for more than `stale_periods` control periods -> hold.
5. no proposal yet, or none for more than `command_timeout_periods` periods, or the command
   source withheld its command (`withhold`: an input the policy needs is missing, e.g. no object
   pose accepted for `object_pose_timeout`) -> hold, with the source's reason.
6. non-finite proposal, or one of the wrong length -> hold.
7. the proposal is clamped into the joint limits shrunk by `limit_margin` (reason notes it).
8. the whole step from the reference (the last sent command, else the measured position) is
   scaled down, keeping its direction, so no joint moves faster than
   `velocity_scale x max_velocity` (reason notes it).
9. the flange position of the resulting command (numpy FK) must lie in the workspace box;
   a command leaving the box is refused -> hold.

Every command `decide` returns lies within the URDF limits shrunk by `limit_margin`, or, where
the arm stands in the margin (between the shrunk and the URDF limits, e.g. enabled there), no
farther out than the arm; never outside the URDF limits. The speed scaling of rule 8 moves from
the reference towards the clamped target, so such an arm comes back at the speed limit instead of
jumping up to `limit_margin` in one tick; the final clamp after it is to the URDF limits, so a
reference just outside them (a measured position within `state_tolerance`) cannot carry the
command out of them.

The hold position is the last command that passed every rule, else the measured position
(clamped into the URDF limits, not the shrunk ones: that would be a jump; an implausible
measured position is never held). Joint limits and speeds come from the URDF (`iiwa14()`), never retyped.

`StateGate` judges measured joint states before the filter sees them (header stamp absent, older
than `stamp_max_age` or ahead by more than `stamp_max_future` of the wall clock; a jump beyond the
datasheet speed x the time since the last accepted state + `jump_slack`, + `jump_tolerance`).
`ObjectPoseGate` applies the same stamp rules to the task object's pose (one owner: the rules live
in `StateGate.check`), with its own jump rule: the object's position may move at most
`object_max_speed` x (time since + `jump_slack`) + `object_jump_tolerance`, and its stamps must
increase (its velocities are differenced over them). A pose stream that is
refused, stops, or has not started holds the arm through rule 5 (`PolicyController` withholds its
command while no accepted pose is newer than `object_pose_timeout`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from drl_control.robot import iiwa14
from drl_control.robot.action_law import scale_step
from drl_control.robot.description import RobotSpec
from drl_control.robot.kinematics import forward


class Decision(NamedTuple):
    """What to send (None: send nothing), why, and whether it is the hold position."""

    command: np.ndarray | None
    reason: str
    holding: bool


@dataclass(frozen=True)
class SafetyConfig:
    """Tunable limits; see the module doc for how each is used. Times are in control periods."""

    control_dt: float = 0.04
    limit_margin: float = 0.05  # rad kept clear of every URDF joint limit
    velocity_scale: float = 1.0  # fraction of the URDF max joint speed
    # Flange box in the base frame (metres): in front of the robot, above the table.
    workspace_low: tuple[float, float, float] = (-0.2, -0.9, 0.05)
    workspace_high: tuple[float, float, float] = (1.0, 0.9, 1.2)
    stale_periods: float = 2.0  # joint state older than this many control periods -> hold
    command_timeout_periods: float = 3.0  # no new proposal for this many periods -> hold
    state_tolerance: float = 0.05  # rad a measured position may lie beyond a URDF limit
    check_workspace: bool = True
    # joint state plausibility (StateGate), in seconds / rad, not periods
    stamp_max_age: float = 0.5  # s a header stamp may lie behind the receiver's wall clock
    stamp_max_future: float = 0.05  # s it may lie ahead (clock skew)
    jump_slack: float = 0.02  # s of transport jitter added to the time between two states
    jump_tolerance: float = 0.02  # rad of encoder noise allowed beyond speed x time
    # task object pose (ObjectPoseGate, PolicyController), seconds / metres
    object_pose_timeout: float = 0.25  # s without an accepted object pose -> hold
    object_max_speed: float = 2.0  # m/s the object may move between two poses (beyond: a jump, refused)
    object_jump_tolerance: float = 0.01  # m of perception noise allowed beyond speed x time

    def __post_init__(self) -> None:
        if not self.control_dt > 0:
            raise ValueError(f"control_dt must be positive, got {self.control_dt}")
        if not 0 <= self.limit_margin < 0.5:
            raise ValueError(f"limit_margin must be in [0, 0.5) rad, got {self.limit_margin}")
        if not 0 < self.velocity_scale <= 1.0:
            raise ValueError(f"velocity_scale must be in (0, 1], got {self.velocity_scale}")
        if not np.all(np.asarray(self.workspace_low) < np.asarray(self.workspace_high)):
            raise ValueError(f"workspace_low {self.workspace_low} must be below workspace_high {self.workspace_high}")
        if len(self.workspace_low) != 3 or len(self.workspace_high) != 3:
            raise ValueError("workspace_low/high need 3 values (x, y, z)")
        if not self.stale_periods > 0 or not self.command_timeout_periods > 0:
            raise ValueError("stale_periods and command_timeout_periods must be positive")
        if not 0 <= self.state_tolerance < 0.5:
            raise ValueError(f"state_tolerance must be in [0, 0.5) rad, got {self.state_tolerance}")
        for key, high in (("stamp_max_age", 10.0), ("stamp_max_future", 1.0), ("jump_slack", 0.5),
                          ("jump_tolerance", 0.5), ("object_pose_timeout", 10.0), ("object_max_speed", 20.0),
                          ("object_jump_tolerance", 0.5)):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and 0 < value <= high):
                raise ValueError(f"{key} must be in (0, {high:g}], got {value}")
        for key in ("control_dt", "limit_margin", "velocity_scale", "stale_periods", "command_timeout_periods"):
            if not math.isfinite(getattr(self, key)):
                raise ValueError(f"{key} must be finite, got {getattr(self, key)}")
        if not all(math.isfinite(v) for v in (*self.workspace_low, *self.workspace_high)):
            raise ValueError("workspace_low/high must be finite")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None, **overrides: Any) -> SafetyConfig:
        """From a YAML/dict section; unknown keys are an error naming the key."""
        values = dict(values or {})
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"safety: unknown setting(s) {unknown}, expected some of {sorted(known)}")
        for key in ("workspace_low", "workspace_high"):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        return cls(**values)

    def with_rate(self, control_hz: float) -> SafetyConfig:
        return replace(self, control_dt=1.0 / float(control_hz))


class SafetyFilter:
    """Stateful filter: feed it measured states and proposed commands, ask it what to send."""

    def __init__(self, config: SafetyConfig | None = None, spec: RobotSpec | None = None) -> None:
        self.config = config or SafetyConfig()
        self.spec = spec or iiwa14()
        self.lower = self.spec.lower + self.config.limit_margin
        self.upper = self.spec.upper - self.config.limit_margin
        self.max_step = self.config.velocity_scale * self.spec.max_velocity * self.config.control_dt
        self.ws_low = np.asarray(self.config.workspace_low, dtype=float)
        self.ws_high = np.asarray(self.config.workspace_high, dtype=float)
        self.enabled = False
        self._state: np.ndarray | None = None
        self._state_time = -np.inf
        self._proposal: np.ndarray | None = None
        self._proposal_time = -np.inf
        self._withheld = ""  # why the command source has no command (rule 5)
        self._last_safe: np.ndarray | None = None  # last command that passed every rule

    # --- inputs ----------------------------------------------------------------------------
    def set_enabled(self, enabled: bool) -> None:
        if bool(enabled) != self.enabled:
            self._last_safe = None  # re-enabling starts from the measured position
            self._proposal = None
            self._proposal_time = -np.inf
            self._withheld = ""
        self.enabled = bool(enabled)

    def observe_state(self, q: np.ndarray, now: float) -> None:
        """A measured joint position vector (in the robot spec's joint order) received at `now`."""
        self._state = np.array(q, dtype=float).reshape(-1)
        self._state_time = float(now)

    def propose(self, command: np.ndarray, now: float) -> None:
        """A joint position command from the policy (or an upstream controller) at `now`."""
        self._proposal = np.array(command, dtype=float).reshape(-1)
        self._proposal_time = float(now)
        self._withheld = ""

    def withhold(self, reason: str) -> None:
        """The command source has no command to propose, and says why (rule 5: hold until it
        proposes again)."""
        self._proposal = None
        self._proposal_time = -np.inf
        self._withheld = str(reason) or "command withheld"

    @property
    def state_time(self) -> float:
        """When the latest measured state arrived (-inf: none yet)."""
        return self._state_time

    def state_fresh(self, now: float) -> bool:
        """A measured state arrived within `stale_periods` control periods before `now` (rule 4)."""
        return now - self._state_time <= self.config.stale_periods * self.config.control_dt

    @property
    def measured(self) -> np.ndarray | None:
        """The last accepted measured position, or None when there is none or it is implausible."""
        if self._state is None or self.state_problem(self._state):
            return None
        return self._state.copy()

    @property
    def last_safe(self) -> np.ndarray | None:
        return None if self._last_safe is None else self._last_safe.copy()

    # --- checks usable on their own -----------------------------------------------------------
    def in_workspace(self, q: np.ndarray) -> bool:
        flange = forward(q)[:3, 3]
        return bool(np.all(flange >= self.ws_low) and np.all(flange <= self.ws_high))

    def point_in_workspace(self, point: np.ndarray) -> bool:
        point = np.asarray(point, dtype=float)
        return bool(np.all(np.isfinite(point)) and np.all(point >= self.ws_low) and np.all(point <= self.ws_high))

    def clamp(self, q: np.ndarray) -> np.ndarray:
        return np.clip(q, self.lower, self.upper)

    def state_problem(self, q: np.ndarray | None) -> str:
        """Why a measured joint position vector is unusable ("" when it is fine)."""
        n = self.spec.n_joints
        if q is None:
            return "no joint state received yet"
        if len(q) != n or not np.all(np.isfinite(q)):
            return f"joint state is not {n} finite values: {np.round(q, 4).tolist()}"
        tol = self.config.state_tolerance
        bad = np.flatnonzero((q < self.spec.lower - tol) | (q > self.spec.upper + tol))
        if bad.size:
            j = int(bad[0])
            return (f"joint state outside the URDF limits: {self.spec.joint_names[j]} = {q[j]:.4g} rad "
                    f"not in [{self.spec.lower[j]:.4f}, {self.spec.upper[j]:.4f}]")
        return ""

    def scale_speed(self, reference: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Scale the whole step reference->target (same direction) so no joint exceeds its max step:
        the action law's speed scaling, at `velocity_scale` of the URDF speeds."""
        return scale_step(reference, target, self.max_step)

    # --- the decision ---------------------------------------------------------------------------
    def _hold(self, reason: str) -> Decision:
        if self._last_safe is not None:
            return Decision(self._last_safe.copy(), reason, True)
        if self._state is not None and not self.state_problem(self._state):
            # where the arm is (not pulled into the shrunk limits: that would be a jump)
            self._last_safe = np.clip(self._state, self.spec.lower, self.spec.upper)
            return Decision(self._last_safe.copy(), reason, True)
        return Decision(None, reason + "; nothing safe to hold (no valid joint state)", True)

    def decide(self, now: float) -> Decision:
        cfg = self.config
        n = self.spec.n_joints
        if not self.enabled:
            return Decision(None, "disabled", False)
        if self._state is None:
            return Decision(None, "no joint state received yet", True)
        problem = self.state_problem(self._state)
        if problem:
            return self._hold(problem)
        age = now - self._state_time
        if age > cfg.stale_periods * cfg.control_dt:
            return self._hold(f"stale joint state ({age * 1e3:.0f} ms old > {cfg.stale_periods:g} periods)")
        if self._proposal is None:
            return self._hold(self._withheld or "no command yet")
        cmd_age = now - self._proposal_time
        if cmd_age > cfg.command_timeout_periods * cfg.control_dt:
            return self._hold(f"command timeout ({cmd_age * 1e3:.0f} ms since the last command)")
        if len(self._proposal) != n or not np.all(np.isfinite(self._proposal)):
            return self._hold(f"command is not {n} finite values: {np.round(self._proposal, 4).tolist()}")
        notes = []
        command = self.clamp(self._proposal)
        if not np.array_equal(command, self._proposal):
            notes.append("clamped to joint limits")
        reference = self._last_safe if self._last_safe is not None else self._state
        scaled = self.scale_speed(reference, command)
        if not np.array_equal(scaled, command):
            notes.append("speed scaled")
            # The scaled step lies between the reference and the clamped target, so where the arm
            # stands in the margin (between the shrunk and the URDF limits, e.g. enabled there) it
            # comes back at the speed limit instead of jumping up to limit_margin in one tick; it
            # never moves farther out. Only the URDF limits themselves are hard here (a measured
            # state may lie up to state_tolerance beyond them).
            command = np.clip(scaled, self.spec.lower, self.spec.upper)
        if cfg.check_workspace and not self.in_workspace(command):
            flange = np.round(forward(command)[:3, 3], 3).tolist()
            return self._hold(f"command refused: flange {flange} outside workspace box")
        self._last_safe = command
        return Decision(command.copy(), "; ".join(notes), False)


# --- joint state plausibility, tracking, control rate ----------------------------------------


class StateGate:
    """Accepts or refuses measured states (see the module doc); counts what it refuses.

    The stamp rules are here once; a subclass states what it judges (`what`) and its jump rule."""

    what = "joint state"

    def __init__(self, config: SafetyConfig | None = None, spec: RobotSpec | None = None) -> None:
        self.config = config or SafetyConfig()
        self.spec = spec or iiwa14()
        self.rejected = 0
        self.last_problem = ""
        self._q: np.ndarray | None = None
        self._time = -np.inf
        self._stamp = -np.inf

    def check(self, q: np.ndarray, stamp: float, now: float, wall: float) -> str:
        """"" and the state is accepted, or why it is refused. `stamp`: the header stamp (s),
        `now`: arrival on the monotonic clock, `wall`: arrival on the wall clock (as the stamp)."""
        cfg = self.config
        q = np.asarray(q, dtype=float).reshape(-1)
        what = self.what
        problem = ""
        if not stamp > 0:
            problem = f"{what} has no header stamp"
        elif wall - stamp > cfg.stamp_max_age:
            problem = f"stale {what} stamp ({wall - stamp:.3f} s old > {cfg.stamp_max_age:g} s)"
        elif stamp - wall > cfg.stamp_max_future:
            problem = f"{what} stamp {stamp - wall:.3f} s in the future (> {cfg.stamp_max_future:g} s)"
        elif self._q is not None:
            problem = self.jump_problem(self._q, q, max(now - self._time, 0.0), stamp - self._stamp)
        self.last_problem = problem
        if problem:
            self.rejected += 1
            return problem
        self._q, self._time, self._stamp = q.copy(), float(now), float(stamp)
        return ""

    def jump_problem(self, last: np.ndarray, q: np.ndarray, dt: float, stamp_dt: float) -> str:
        """Why `q`, arriving `dt` seconds after the accepted `last` (stamped `stamp_dt` later), is not
        a motion the arm can make."""
        cfg = self.config
        allowed = self.spec.max_velocity * (dt + cfg.jump_slack) + cfg.jump_tolerance
        over = np.abs(q - last) - allowed
        j = int(np.argmax(over))
        if over[j] <= 0:
            return ""
        return (f"implausible joint state: {self.spec.joint_names[j]} jumped "
                f"{abs(q[j] - last[j]):.3f} rad in {dt * 1e3:.0f} ms (the arm can move {allowed[j]:.3f})")


class ObjectPoseGate(StateGate):
    """The task object's position (x, y, z in the base frame) under the joint states' stamp rules."""

    what = "object pose"

    def jump_problem(self, last: np.ndarray, position: np.ndarray, dt: float, stamp_dt: float) -> str:
        """Besides the distance rule: stamps must increase (the velocities are differenced over them)."""
        cfg = self.config
        if stamp_dt <= 0:
            return (f"object pose stamp {-stamp_dt * 1e3:.0f} ms before the last accepted one: out of order "
                    "or a second publisher")
        allowed = cfg.object_max_speed * (dt + cfg.jump_slack) + cfg.object_jump_tolerance
        moved = float(np.linalg.norm(position[:3] - last[:3]))
        if moved <= allowed:
            return ""
        return (f"implausible object pose: the object jumped {moved:.3f} m in {dt * 1e3:.0f} ms "
                f"(at most {allowed:.3f} m at object_max_speed {cfg.object_max_speed:g} m/s)")


@dataclass(frozen=True)
class TrackingConfig:
    """How far behind its command a following arm may be (per driver profile, seconds / rad)."""

    lag: float = 0.04  # s: the driver's command smoothing time constant (0: none)
    latency: float = 0.03  # s: command -> measured state (cycles of driver and relay, transport)
    tolerance: float = 0.05  # rad: beyond speed x (lag + latency)
    timeout: float = 0.5  # s the error may stay beyond the allowance before it is a fault
    stall: float = 0.005  # rad: a steady command farther than this from a steady arm is not being followed

    def __post_init__(self) -> None:
        for key, low, high in (("lag", 0.0, 1.0), ("latency", 0.0, 1.0), ("tolerance", 1e-3, 0.5),
                               ("timeout", 0.05, 10.0), ("stall", 1e-4, 0.1)):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and low <= value <= high):
                raise ValueError(f"tracking: {key} must be in [{low:g}, {high:g}], got {value}")


class TrackingMonitor:
    """Fault when the arm does not follow the last sent command. Two rules, one timeout:

    - lag: the measured position stays farther from the command than a follower with the driver's
      smoothing and latency can trail it (command speed x (lag + latency) + tolerance);
    - stall: command and arm both stand still (each within `stall` rad) while more than `stall`
      rad apart. A controller whose policy steps from the measured position (controller_node:
      every action law is relative to the measured joints) keeps its command within one step of
      a stalled arm, inside the lag allowance, and, its observation not changing, steady: only
      this rule sees that arm. A follower reaches a steady command within a few time constants,
      far within `timeout`; a command that keeps moving (a policy chattering at a constraint,
      the arm following it back and forth) is the lag rule's. An arm pressed against an obstacle
      trips it too.
    """

    def __init__(self, config: TrackingConfig, command_speed: np.ndarray, joint_names: list[str]) -> None:
        self.config = config
        self.allowance = np.asarray(command_speed, dtype=float) * (config.lag + config.latency) + config.tolerance
        self.joint_names = list(joint_names)
        self._since: float | None = None
        self._still: tuple[float, np.ndarray, np.ndarray] | None = None  # since, arm, command standing apart

    def reset(self) -> None:
        self._since = None
        self._still = None

    def update(self, commanded: np.ndarray, measured: np.ndarray, now: float) -> str:
        """"" while the arm follows; the fault once either rule has held for `timeout`."""
        measured = np.asarray(measured, dtype=float)
        error = np.abs(measured - np.asarray(commanded, dtype=float))
        lag, stall = self._lag(error, now), self._stall(error, measured, np.asarray(commanded, dtype=float), now)
        return lag or stall

    def _lag(self, error: np.ndarray, now: float) -> str:
        over = error - self.allowance
        j = int(np.argmax(over))
        if over[j] <= 0:
            self._since = None
            return ""
        if self._since is None:
            self._since = float(now)
        if now - self._since < self.config.timeout:
            return ""
        return (f"arm not following: {self.joint_names[j]} {error[j]:.3f} rad from the command "
                f"(allowed {self.allowance[j]:.3f}) for {now - self._since:.2f} s")

    def _stall(self, error: np.ndarray, measured: np.ndarray, commanded: np.ndarray, now: float) -> str:
        stall = self.config.stall
        if error.max() <= stall:  # at the command
            self._still = None
            return ""
        if (self._still is None or np.abs(measured - self._still[1]).max() > stall
                or np.abs(commanded - self._still[2]).max() > stall):  # arm or command moved: a new window
            self._still = (float(now), measured.copy(), commanded.copy())
            return ""
        since = self._still[0]
        if now - since < self.config.timeout:
            return ""
        j = int(np.argmax(error))
        return (f"arm not following: {self.joint_names[j]} {error[j]:.3f} rad from a steady command, "
                f"not moving, for {now - since:.2f} s")


MIN_CONTROL_HZ = 5.0  # below it one policy step spans 0.2 s of motion: not a control loop


def control_rate_problem(spec: Mapping[str, Any], tick_hz: float | None, highest_hz: float) -> str:
    """Why an artifact's deploy spec cannot run at `tick_hz` (None: its own rate) under a driver
    that takes at most `highest_hz` ("" when it can)."""
    hz = spec.get("control_hz")
    if isinstance(hz, bool) or not isinstance(hz, (int, float)) or not math.isfinite(hz):
        return f"control_hz {hz!r} is not a finite number"
    tick = float(hz) if tick_hz is None else float(tick_hz)
    for what, rate in (("the artifact's control_hz", float(hz)), ("the tick rate", tick)):
        if not MIN_CONTROL_HZ <= rate <= highest_hz:
            return f"{what} {rate:g} Hz is outside [{MIN_CONTROL_HZ:g}, {highest_hz:g}] Hz (this driver's range)"
    physics = spec.get("physics_hz")
    if isinstance(physics, (int, float)) and not isinstance(physics, bool):
        substeps = float(physics) / float(hz)
        if not (math.isfinite(substeps) and substeps >= 1 and abs(substeps - round(substeps)) < 1e-6):
            return f"control_hz {hz:g} does not divide the training physics rate {physics!r} Hz"
    action = spec.get("action") or {}
    if action.get("type") == "joint_delta":
        try:
            scale = np.asarray(action["scale"], dtype=float)
            vmax = np.asarray(spec["robot"]["max_velocity"], dtype=float)
            too_fast = bool(np.any(~np.isfinite(scale)) or np.any(np.abs(scale) > vmax / float(hz) * (1 + 1e-6)))
        except (KeyError, TypeError, ValueError) as exc:
            return f"joint_delta action scale unreadable ({exc})"
        if too_fast:
            return f"joint_delta action scale moves faster than the datasheet speed at {hz:g} Hz"
    return ""
