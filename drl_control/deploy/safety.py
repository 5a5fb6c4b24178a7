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
5. no proposal yet, or none for more than `command_timeout_periods` periods -> hold.
6. non-finite proposal, or one of the wrong length -> hold.
7. the proposal is clamped into the joint limits shrunk by `limit_margin` (reason notes it).
8. the whole step from the reference (the last sent command, else the measured position) is
   scaled down, keeping its direction, so no joint moves faster than
   `velocity_scale x max_velocity` (reason notes it).
9. the flange position of the resulting command (numpy FK) must lie in the workspace box;
   a command leaving the box is refused -> hold.

Every command `decide` returns lies within the URDF limits shrunk by `limit_margin`: the speed
scaling of rule 8 is followed by a final clamp, so a reference just outside the shrunk limits
(a measured position within `state_tolerance`) cannot carry the command out of them.

The hold position is the last command that passed every rule, else the measured position
(clamped into the limits; an implausible measured position is never held). Joint limits and speeds come from the URDF (`iiwa14()`), never retyped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from drl_control.robot import iiwa14
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
        self._last_safe: np.ndarray | None = None  # last command that passed every rule

    # --- inputs ----------------------------------------------------------------------------
    def set_enabled(self, enabled: bool) -> None:
        if bool(enabled) != self.enabled:
            self._last_safe = None  # re-enabling starts from the measured position
            self._proposal = None
            self._proposal_time = -np.inf
        self.enabled = bool(enabled)

    def observe_state(self, q: np.ndarray, now: float) -> None:
        """A measured joint position vector (in the robot spec's joint order) received at `now`."""
        self._state = np.array(q, dtype=float).reshape(-1)
        self._state_time = float(now)

    def propose(self, command: np.ndarray, now: float) -> None:
        """A joint position command from the policy (or an upstream controller) at `now`."""
        self._proposal = np.array(command, dtype=float).reshape(-1)
        self._proposal_time = float(now)

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
        """Scale the whole step reference->target (same direction) so no joint exceeds its max step."""
        step = target - reference
        ratio = float(np.max(np.abs(step) / self.max_step))
        return reference + step / ratio if ratio > 1.0 else target

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
            return self._hold("no command yet")
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
