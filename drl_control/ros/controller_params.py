"""controller_node's parameters: the one table (declared by the node, printed by `--help`) and the
checks they pass at start. Every parameter is read-only: set with -p at start, never at run time
(drl_control.ros.guards), so a value read back is the value in force."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drl_control.deploy.profiles import load_profile
from drl_control.deploy.safety import MIN_CONTROL_HZ, SafetyConfig, TrackingConfig
from drl_control.ros.guards import ParameterError
from drl_control.ros.spin import Param

COMMAND_INTERFACES = ("position", "trajectory")
DEFAULT_MAX_HZ = 100.0  # highest control rate without a driver profile: the profiles' relay rate
MAX_PATH_LENGTH = 100_000
SAFETY_KEYS = ("limit_margin", "velocity_scale", "workspace_low", "workspace_high", "stale_periods",
               "command_timeout_periods", "object_pose_timeout", "object_max_speed")

PARAMETERS = tuple(Param(p.name, p.default, p.description, read_only=True) for p in (
    Param("artifact", "", "deploy artifact directory loaded at start (empty: load one with ~/load_policy)"),
    Param("command_interface", "position", "position (forward_position_controller) or trajectory "
          "(joint_trajectory_controller)"),
    Param("autostart", False, "start enabled (otherwise disabled until ~/enable true; disabled sends nothing)"),
    Param("rate_hz", 0.0, "control rate in Hz (0: the artifact's control rate)"),
    Param("goal", [0.0], "goal (x, y, z) in the base frame at start: the TCP's (Reach) or the object's (Push) "
          "(any other length: none)"),
    Param("path_length", 500, "end-effector positions kept for the path marker"),
    Param("realtime_priority", 0, "SCHED_FIFO priority of the process (0: normal scheduling)"),
    Param("profile", "", "driver profile commanded: its rate bounds the control rate (empty: at most 100 Hz), "
          "its interfaces limit the policies (none has a gripper), its tracking allowance checks the arm "
          "follows (empty: no tracking check)"),
    Param("record", "", "write what the node receives and sends to this rosbag2 MCAP file (empty: no recording)"),
    Param("limit_margin", SafetyConfig.limit_margin, "rad kept clear of every URDF joint limit"),
    Param("velocity_scale", SafetyConfig.velocity_scale, "fraction of the URDF joint speeds allowed"),
    Param("workspace_low", list(SafetyConfig.workspace_low), "workspace box lower corner (x, y, z), m"),
    Param("workspace_high", list(SafetyConfig.workspace_high), "workspace box upper corner (x, y, z), m"),
    Param("stale_periods", SafetyConfig.stale_periods, "joint state older than this many periods: hold"),
    Param("command_timeout_periods", SafetyConfig.command_timeout_periods, "no new action for this many periods: hold"),
    Param("object_pose_timeout", SafetyConfig.object_pose_timeout, "object tasks: no accepted object_pose for this "
          "many seconds: hold"),
    Param("object_max_speed", SafetyConfig.object_max_speed, "object tasks: m/s the object may move between two "
          "poses (a farther jump is refused)"),
))


@dataclass(frozen=True)
class ControllerSettings:
    artifact: str
    command_interface: str
    autostart: bool  # enable as soon as enabling is allowed
    rate_override: float  # 0: the artifact's control rate
    goal: list[float]
    path_length: int
    realtime_priority: int  # SCHED_FIFO; 0: normal scheduling
    record: str
    profile: str  # driver profile name ("": none)
    safety: SafetyConfig
    max_rate: float  # the driver profile's rate (or DEFAULT_MAX_HZ): the control rate's upper bound
    tracking: TrackingConfig | None = None  # the driver profile's allowance; None: no profile, no check


def controller_settings(v: dict[str, Any]) -> ControllerSettings:
    """The declared values, checked; ParameterError (one line, exit 2) names the first bad one."""
    try:
        profile = load_profile(str(v["profile"])) if v["profile"] else None
        s = ControllerSettings(
            artifact=str(v["artifact"]), command_interface=str(v["command_interface"]), autostart=bool(v["autostart"]),
            rate_override=float(v["rate_hz"]), goal=list(v["goal"]), path_length=int(v["path_length"]),
            realtime_priority=int(v["realtime_priority"]), record=str(v["record"]), profile=str(v["profile"]),
            safety=SafetyConfig.from_dict({k: v[k] for k in SAFETY_KEYS}),
            max_rate=profile.rate_hz if profile else DEFAULT_MAX_HZ,
            tracking=profile.tracking_config() if profile else None,
        )
        if s.command_interface not in COMMAND_INTERFACES:
            raise ValueError(f"command_interface must be one of {COMMAND_INTERFACES}, got {s.command_interface!r}")
        if s.rate_override and not MIN_CONTROL_HZ <= s.rate_override <= s.max_rate:
            raise ValueError(f"rate_hz {s.rate_override:g} is outside [{MIN_CONTROL_HZ:g}, {s.max_rate:g}] Hz")
        if not 2 <= s.path_length <= MAX_PATH_LENGTH:
            raise ValueError(f"path_length must be in [2, {MAX_PATH_LENGTH}], got {s.path_length}")
    except (ValueError, OSError) as exc:
        raise ParameterError(str(exc)) from None
    return s
