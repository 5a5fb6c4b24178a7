"""Safety filter (pure numpy): limits with margin, direction-keeping speed scaling, workspace box,
stale-state watchdog, command timeout, enable/e-stop and non-finite inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drl_control.deploy.safety import SafetyConfig, SafetyFilter
from drl_control.robot import forward, iiwa14

DT = 0.04
HOME = iiwa14().home


def _filter(**kw) -> SafetyFilter:
    f = SafetyFilter(SafetyConfig(control_dt=DT, **kw))
    f.set_enabled(True)
    f.observe_state(HOME, 0.0)
    return f


def test_passes_a_small_step_unchanged():
    f = _filter()
    cmd = HOME + 0.01
    f.propose(cmd, 0.0)
    d = f.decide(0.0)
    assert not d.holding and d.reason == ""
    np.testing.assert_array_equal(d.command, cmd)


def test_clamps_to_limits_with_margin():
    spec = iiwa14()
    f = _filter(limit_margin=0.1, velocity_scale=1.0, check_workspace=False)
    q = spec.upper - 0.05  # inside the URDF range, outside the margin
    f.observe_state(q, 0.0)
    f.propose(spec.upper + 1.0, 0.0)
    d = f.decide(0.0)
    assert "clamped" in d.reason and not d.holding
    assert np.all(d.command <= spec.upper - 0.1 + 1e-12)
    np.testing.assert_allclose(d.command, spec.upper - 0.1)


def test_speed_scaling_keeps_direction():
    spec = iiwa14()
    f = _filter(velocity_scale=0.5, check_workspace=False)
    step = np.array([0.5, -0.2, 0.1, 0.0, 0.3, -0.4, 0.05])
    f.propose(HOME + step, 0.0)
    d = f.decide(0.0)
    moved = d.command - HOME
    assert "speed scaled" in d.reason
    limit = 0.5 * spec.max_velocity * DT
    assert np.all(np.abs(moved) <= limit + 1e-12)
    assert np.isclose(np.max(np.abs(moved) / limit), 1.0)  # the binding joint is at its limit
    cos = moved @ step / (np.linalg.norm(moved) * np.linalg.norm(step))
    assert cos == pytest.approx(1.0, abs=1e-12)


def test_speed_is_measured_from_the_last_sent_command():
    spec = iiwa14()
    f = _filter(check_workspace=False)
    target = HOME + 1.0
    sent = [HOME]
    for k in range(5):  # the same far proposal, decided each period: moves at max speed towards it
        f.propose(target, k * DT)
        f.observe_state(HOME, k * DT)
        sent.append(f.decide(k * DT).command)
    steps = np.diff(np.array(sent), axis=0)
    assert np.all(np.abs(steps) <= spec.max_velocity * DT + 1e-12)
    assert np.all(np.max(np.abs(steps) / (spec.max_velocity * DT), axis=1) > 0.999)


def test_workspace_refusal_holds():
    f = _filter(workspace_low=(0.3, -0.5, 0.2), workspace_high=(0.9, 0.5, 0.8))
    assert f.in_workspace(HOME)
    f.propose(HOME + 0.01, 0.0)
    first = f.decide(0.0)
    assert not first.holding
    q_out = HOME.copy()
    q_out[1] = 0.0  # straight up: flange at z ~ 1.2 m, outside the box
    q_out[3] = 0.0
    f = _filter(workspace_low=(0.3, -0.5, 0.2), workspace_high=(0.9, 0.5, 0.8), velocity_scale=1.0)
    f.propose(HOME + 0.01, 0.0)
    f.decide(0.0)
    # a sequence of steps up towards the top: refused as soon as the flange leaves the box
    refused = None
    for k in range(1, 60):
        f.observe_state(HOME, k * DT)
        f.propose(q_out, k * DT)
        d = f.decide(k * DT)
        if d.holding:
            refused = d
            break
        assert f.in_workspace(d.command)
    assert refused is not None and "outside workspace" in refused.reason
    assert f.in_workspace(refused.command)
    assert np.all(forward(refused.command)[:3, 3] <= 0.8)


def test_watchdog_holds_within_two_control_periods():
    f = _filter()
    f.propose(HOME + 0.01, 0.0)
    last_sent = f.decide(0.0)
    assert not last_sent.holding
    held = None
    t = 0.0
    while t < 10 * DT:
        t += DT / 4
        f.propose(HOME + 0.01 + t, t)  # the policy keeps proposing; joint_states stopped at t=0
        d = f.decide(t)
        if d.holding:
            held = (t, d)
            break
        last_sent = d
    assert held is not None
    t_hold, d = held
    assert t_hold <= 2 * DT + DT / 4 + 1e-9
    assert "stale joint state" in d.reason
    np.testing.assert_array_equal(d.command, last_sent.command)  # the last safe position


def test_command_timeout_holds():
    f = _filter(command_timeout_periods=2)
    f.propose(HOME + 0.01, 0.0)
    assert not f.decide(0.0).holding
    f.observe_state(HOME + 0.01, 3 * DT)
    d = f.decide(3 * DT)
    assert d.holding and "command timeout" in d.reason
    np.testing.assert_array_equal(d.command, HOME + 0.01)


@pytest.mark.parametrize("where", ["state", "command"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_holds_with_reason(where, bad):
    f = _filter()
    f.propose(HOME + 0.01, 0.0)
    good = f.decide(0.0).command
    value = HOME.copy()
    value[3] = bad
    if where == "state":
        f.observe_state(value, DT)
        f.propose(HOME + 0.02, DT)
    else:
        f.observe_state(HOME, DT)
        f.propose(value, DT)
    d = f.decide(DT)
    assert d.holding and "finite" in d.reason
    np.testing.assert_array_equal(d.command, good)
    assert np.all(np.isfinite(d.command))


def test_disabled_sends_nothing_and_reenable_starts_from_measured():
    f = _filter()
    f.propose(HOME + 0.05, 0.0)
    assert f.decide(0.0).command is not None
    f.set_enabled(False)
    d = f.decide(DT)
    assert d.command is None and d.reason == "disabled"
    moved = HOME + 0.2  # moved by hand while disabled
    f.observe_state(moved, 2 * DT)
    f.set_enabled(True)
    d = f.decide(2 * DT)
    assert d.holding and "no command" in d.reason
    np.testing.assert_allclose(d.command, moved)  # not pulled back to the old setpoint


def test_no_state_sends_nothing():
    f = SafetyFilter(SafetyConfig(control_dt=DT))
    f.set_enabled(True)
    f.propose(HOME, 0.0)
    d = f.decide(0.0)
    assert d.command is None and "no joint state" in d.reason


def test_config_rejects_unknown_and_bad_values():
    with pytest.raises(ValueError, match="unknown setting"):
        SafetyConfig.from_dict({"velocity_scal": 0.5})
    with pytest.raises(ValueError, match="velocity_scale"):
        SafetyConfig(velocity_scale=1.5)
    cfg = SafetyConfig.from_dict({"workspace_low": [0, 0, 0]}, limit_margin=0.1)
    assert cfg.workspace_low == (0.0, 0.0, 0.0) and cfg.limit_margin == 0.1


_finite = st.floats(-4.0, 4.0, allow_nan=False)
_any = st.one_of(_finite, st.just(np.nan), st.just(np.inf), st.just(-np.inf))


@settings(max_examples=200, deadline=None)
@given(state=st.lists(_finite, min_size=7, max_size=7), proposals=st.lists(st.lists(_any, min_size=7, max_size=7),
                                                                           min_size=1, max_size=6),
       scale=st.floats(0.1, 1.0))
def test_every_sent_command_is_within_limits_speed_and_box(state, proposals, scale):
    """Whatever comes in, a sent command is finite, in the box, inside the shrunk limits or (arm
    standing in the margin) no farther out than the arm, never outside the URDF limits, and moved
    at most one speed-limited step from the previously sent command."""
    spec = iiwa14()
    f = SafetyFilter(SafetyConfig(control_dt=DT, velocity_scale=scale))
    f.set_enabled(True)
    q = np.clip(np.array(state), spec.lower, spec.upper)
    previous = None
    for k, proposal in enumerate(proposals):
        f.observe_state(q, k * DT)
        f.propose(np.array(proposal), k * DT)
        d = f.decide(k * DT)
        assert d.command is not None  # a finite state is always known here
        assert np.all(np.isfinite(d.command))
        # inside the shrunk limits, or (arm standing in the margin) no farther out than the arm
        lower, upper = np.minimum(f.lower, q), np.maximum(f.upper, q)
        assert np.all(d.command >= lower - 1e-12) and np.all(d.command <= upper + 1e-12)
        if not d.holding:
            assert f.in_workspace(d.command)
            reference = previous if previous is not None else q
            assert np.all(np.abs(d.command - reference) <= f.max_step + 1e-9)
        elif previous is not None:
            np.testing.assert_array_equal(d.command, previous)
        previous = d.command


def test_arm_in_the_margin_comes_back_at_the_speed_limit_not_in_a_jump():
    # Found by the hypothesis test above in a CI run: joint 7 standing at its URDF limit (inside
    # limit_margin of it) was pulled into the shrunk limits in one tick, a 0.05 rad step when the
    # speed limit allowed 0.047 (and up to limit_margin, 0.1 rad in the lbr profile, in general).
    spec = iiwa14()
    f = SafetyFilter(SafetyConfig(control_dt=DT, velocity_scale=0.5))
    f.set_enabled(True)
    q = spec.home.copy()
    q[6] = spec.upper[6]  # in the margin: beyond the shrunk limit, within the URDF one
    assert q[6] > f.upper[6]
    f.observe_state(q, 0.0)
    f.propose(spec.home, 0.0)
    steps, previous = [], q
    for k in range(200):
        d = f.decide(k * DT)
        assert not d.holding and d.command[6] <= q[6] + 1e-12
        steps.append(abs(d.command[6] - previous[6]))
        previous = d.command
        f.observe_state(d.command, (k + 1) * DT)
        f.propose(spec.home, (k + 1) * DT)
    assert max(steps) <= f.max_step[6] + 1e-9
    np.testing.assert_allclose(previous, spec.home, atol=1e-9)  # and arrives


def test_hold_without_a_sent_command_is_where_the_arm_is():
    spec = iiwa14()
    f = SafetyFilter(SafetyConfig(control_dt=DT))
    f.set_enabled(True)
    q = spec.home.copy()
    q[6] = spec.upper[6]  # in the margin
    f.observe_state(q, 0.0)
    d = f.decide(0.0)  # no command yet -> hold
    assert d.holding
    np.testing.assert_array_equal(d.command, q)  # not pulled into the shrunk limits (a jump)
