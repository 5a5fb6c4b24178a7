"""Joint state plausibility (StateGate), tracking (TrackingMonitor) and the control-rate check of
deploy/safety.py, and the driver profiles' facts: pure numpy, no ROS."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drl_control.deploy.profiles import load_profile, load_profiles
from drl_control.deploy.safety import (
    MIN_CONTROL_HZ,
    SafetyConfig,
    SafetyFilter,
    StateGate,
    TrackingConfig,
    TrackingMonitor,
    control_rate_problem,
)
from drl_control.robot import iiwa14

SPEC = iiwa14()
HOME = SPEC.home
WALL = 1.8e9  # a wall-clock time (s) for stamps


def _gate(**kw) -> StateGate:
    return StateGate(SafetyConfig(**kw), SPEC)


# --- StateGate --------------------------------------------------------------------------------


def test_unstamped_old_and_future_stamps_are_refused_and_counted():
    gate = _gate()
    assert "no header stamp" in gate.check(HOME, 0.0, 0.0, WALL)
    assert "stale joint state stamp (60.000 s old" in gate.check(HOME, WALL - 60.0, 0.0, WALL)  # a replay
    assert "in the future" in gate.check(HOME, WALL + 1.0, 0.0, WALL)
    assert gate.rejected == 3 and gate.last_problem
    assert gate.check(HOME, WALL - 0.01, 0.0, WALL) == "" and gate.last_problem == ""
    assert gate.rejected == 3


def test_a_jump_beyond_datasheet_speed_is_refused_and_the_reference_stays():
    gate = _gate()
    assert gate.check(HOME, WALL, 0.0, WALL) == ""
    jumped = HOME.copy()
    jumped[3] += 0.78  # the second publisher's state in the issue: 0.78 rad away, 1 ms later
    problem = gate.check(jumped, WALL + 0.001, 0.001, WALL + 0.001)
    assert "implausible joint state: iiwa_joint_4 jumped 0.780 rad in 1 ms" in problem
    # still judged against the accepted state: the arm's next state passes, the rogue's does not
    assert gate.check(HOME + 0.001, WALL + 0.01, 0.01, WALL + 0.01) == ""
    assert gate.check(jumped, WALL + 0.011, 0.011, WALL + 0.011)
    assert gate.rejected == 2


@settings(max_examples=200, deadline=None)
@given(fraction=st.lists(st.floats(-1.0, 1.0), min_size=7, max_size=7), dt=st.floats(0.0, 0.2))
def test_motion_at_up_to_datasheet_speed_is_always_accepted(fraction, dt):
    gate = _gate()
    assert gate.check(HOME, WALL, 0.0, WALL) == ""
    q = HOME + np.asarray(fraction) * SPEC.max_velocity * dt
    assert gate.check(q, WALL + dt, dt, WALL + dt) == ""


@settings(max_examples=200, deadline=None)
@given(joint=st.integers(0, 6), excess=st.floats(1e-3, 5.0), dt=st.floats(0.0, 0.2), sign=st.sampled_from([-1, 1]))
def test_a_jump_beyond_speed_times_time_plus_tolerance_is_always_refused(joint, excess, dt, sign):
    cfg = SafetyConfig()
    gate = StateGate(cfg, SPEC)
    assert gate.check(HOME, WALL, 0.0, WALL) == ""
    q = HOME.copy()
    q[joint] += sign * (SPEC.max_velocity[joint] * (dt + cfg.jump_slack) + cfg.jump_tolerance + excess)
    assert SPEC.joint_names[joint] in gate.check(q, WALL + dt, dt, WALL + dt)


def test_two_interleaved_publishers_only_one_stream_is_accepted():
    gate = _gate()
    arm, rogue = HOME.copy(), HOME + np.array([0.0, 0.78, 0.0, 0.0, 0.0, 0.0, 0.0])
    accepted = []
    for k in range(200):  # 1 kHz, alternating sources
        t = k * 0.001
        source = arm if k % 2 == 0 else rogue
        if gate.check(source, WALL + t, t, WALL + t) == "":
            accepted.append(k % 2)
    assert set(accepted) == {0} and gate.rejected == 100


@pytest.mark.parametrize("key,value", [("stamp_max_age", 0.0), ("stamp_max_age", math.inf),
                                       ("jump_slack", -1.0), ("jump_tolerance", math.nan),
                                       ("velocity_scale", math.nan), ("stale_periods", math.inf),
                                       ("workspace_high", (1.0, 0.9, math.inf))])
def test_config_refuses_non_finite_and_absurd_values(key, value):
    with pytest.raises(ValueError, match=key.split("_")[0]):
        SafetyConfig(**{key: value})


# --- TrackingMonitor ----------------------------------------------------------------------------


def _run_driver(profile: str, follow, seconds: float = 3.0, target_offset: float = 0.4) -> tuple[str, float]:
    """The relay's filter at the profile's rate commanding a target `target_offset` rad away on
    every joint; `follow(q, command)` is the driver/arm. Returns (fault or "", time of the fault)."""
    prof = load_profile(profile)
    cfg = prof.safety_config()
    f = SafetyFilter(cfg, SPEC)
    f.set_enabled(True)
    monitor = TrackingMonitor(prof.tracking_config(), f.max_step / cfg.control_dt, list(SPEC.joint_names))
    q = HOME.copy()
    sent = None
    for k in range(int(seconds * prof.rate_hz)):
        t = k * cfg.control_dt
        f.observe_state(q, t)
        if sent is not None:
            fault = monitor.update(sent, q, t)
            if fault:
                return fault, t
        f.propose(HOME + target_offset * np.sign(np.arange(7) % 2 - 0.5), t)
        sent = f.decide(t).command
        q = follow(q, sent)
    return "", math.inf


def test_tracking_an_arm_with_the_lbr_lag_does_not_trip():
    alpha = 1.0 - math.exp(-0.01 / 0.04)  # first-order, tau 0.04 s, 100 Hz (lbr joint_position_tau)
    fault, _ = _run_driver("lbr", lambda q, cmd: q + alpha * (cmd - q))
    assert fault == ""


def test_tracking_an_arm_with_the_older_lbr_smoothing_under_its_profile_does_not_trip():
    fault, _ = _run_driver("lbr_humble", lambda q, cmd: q + 0.1 * (cmd - q))  # 0.1 x error per 10 ms
    assert fault == ""


def test_tracking_an_arm_that_does_not_move_trips_within_the_timeout():
    fault, t = _run_driver("lbr", lambda q, cmd: q)
    allowance = load_profile("lbr").tracking_config()
    assert "arm not following" in fault
    assert allowance.timeout <= t <= allowance.timeout + 0.3  # the error passes the allowance within ~0.1 s


def test_tracking_an_ideal_servo_never_trips_on_any_profile():
    for name in load_profiles():
        assert _run_driver(name, lambda q, cmd: cmd, seconds=1.0)[0] == ""


def _run_stepping_controller(policy, follow, seconds: float = 3.0, hz: float = 20.0) -> tuple[str, float]:
    """controller_node's pattern under the lbr profile's tracking: every tick (`hz`) the policy steps
    from the MEASURED position (`policy(q, k)` -> target), through the filter at that rate; the
    driver `follow(q, command, dt)` and the monitor run at 100 Hz. Returns (fault or "", time)."""
    cfg = SafetyConfig().with_rate(hz)
    f = SafetyFilter(cfg, SPEC)
    f.set_enabled(True)
    monitor = TrackingMonitor(load_profile("lbr").tracking_config(), f.max_step / cfg.control_dt,
                              list(SPEC.joint_names))
    q, sent, every = HOME.copy(), None, round(100 / hz)
    for k in range(int(seconds * 100)):
        t = k * 0.01
        f.observe_state(q, t)
        if sent is not None:
            fault = monitor.update(sent, q, t)
            if fault:
                return fault, t
        if k % every == 0:
            f.propose(policy(q, k // every), t)
            sent = f.decide(t).command
        q = follow(q, sent, 0.01)
    return "", math.inf


def _lbr(q, cmd, dt):
    return q + (1.0 - math.exp(-dt / 0.04)) * (cmd - q)


def test_tracking_a_stalled_arm_under_a_policy_stepping_from_it_trips_on_the_steady_command():
    def policy(q, k):
        return q + 0.03  # a step from the measured position: the command stays 0.03 rad ahead

    monitor = TrackingMonitor(load_profile("lbr").tracking_config(), SPEC.max_velocity, list(SPEC.joint_names))
    assert np.all(monitor.allowance > 0.03)  # the lag rule alone cannot see this arm
    fault, t = _run_stepping_controller(policy, lambda q, cmd, dt: q)
    assert "from a steady command, not moving" in fault and 0.5 <= t <= 0.6, (fault, t)


def test_tracking_a_following_arm_under_a_stepping_or_chattering_policy_does_not_trip():
    goal = HOME + 0.4 * np.sign(np.arange(7) % 2 - 0.5)
    assert _run_stepping_controller(lambda q, k: q + np.clip(goal - q, -0.03, 0.03), _lbr) == ("", math.inf)
    # at a constraint a policy may flip its step every tick: the arm follows it back and forth
    assert _run_stepping_controller(lambda q, k: q + 0.02 * (-1) ** k, _lbr) == ("", math.inf)


def test_tracking_config_is_validated():
    with pytest.raises(ValueError, match="timeout"):
        TrackingConfig(timeout=0.0)
    with pytest.raises(ValueError, match="stall"):
        TrackingConfig(stall=0.0)
    with pytest.raises(ValueError, match="lag"):
        TrackingConfig(lag=math.nan)


# --- control rate ---------------------------------------------------------------------------------


def _spec(**kw):
    spec = {"control_hz": 25.0, "physics_hz": 250.0, "action": {"type": "ee_displacement", "scale": [0.05] * 3},
            "robot": {"max_velocity": SPEC.max_velocity.tolist()}}
    spec.update(kw)
    return spec


@pytest.mark.parametrize("hz", [1e-12, 0.5, 4.9, 5000.0, math.nan, math.inf, -25.0, "25", True, None])
def test_control_rates_outside_the_range_or_not_numbers_are_refused(hz):
    assert control_rate_problem(_spec(control_hz=hz), None, 100.0)


def test_control_rate_range_and_training_consistency():
    assert control_rate_problem(_spec(), None, 100.0) == ""
    assert control_rate_problem(_spec(), 100.0, 100.0) == ""  # an explicit tick rate within the range
    assert "tick rate 500" in control_rate_problem(_spec(), 500.0, 100.0)
    assert "outside [5, 20]" in control_rate_problem(_spec(), None, 20.0)  # a slower driver
    assert "does not divide" in control_rate_problem(_spec(control_hz=30.0), None, 100.0)
    fast = {"type": "joint_delta", "scale": (SPEC.max_velocity / 25.0 * 2).tolist()}
    assert "faster than the datasheet" in control_rate_problem(_spec(action=fast), None, 100.0)
    ok = {"type": "joint_delta", "scale": (SPEC.max_velocity / 25.0).tolist()}
    assert control_rate_problem(_spec(action=ok), None, 100.0) == ""
    assert MIN_CONTROL_HZ == 5.0


# --- driver profiles -------------------------------------------------------------------------------


def test_profiles_carry_the_driver_facts():
    profiles = load_profiles()
    assert profiles["lbr"].joint_names == tuple(f"lbr_A{i}" for i in range(1, 8))
    assert profiles["lbr_humble"].joint_names == tuple(f"A{i}" for i in range(1, 8))
    assert profiles["lbr"].base_frame == profiles["lbr_humble"].base_frame == "lbr_link_0"
    assert profiles["iiwa_ros2"].base_frame == "link_0"
    assert profiles["lbr"].driver_rate_hz == 100.0 and profiles["iiwa_ros2"].driver_rate_hz == 225.0
    assert profiles["lbr"].tracking_config().lag == 0.04 and profiles["iiwa_ros2"].tracking_config().lag == 0.0


def test_profile_tracking_and_rates_are_validated(tmp_path):
    base = "joint_states: /a, position_commands: /b, joint_trajectory: /c, joint_names: [a, b, c, d, e, f, g]"
    bad = tmp_path / "p.yaml"
    for extra, match in (("tracking: {lagg: 1}", "tracking has unknown"), ("rate_hz: 1.0e-12", "rate_hz"),
                         ("driver_rate_hz: .nan", "driver_rate_hz"), ("tracking: {timeout: -1}", "timeout")):
        bad.write_text(f"profiles:\n  x: {{{base}, {extra}}}\n")
        with pytest.raises(ValueError, match=match):
            load_profiles(bad)
