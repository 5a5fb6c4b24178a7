"""Robot interface profiles and the joint-name map (pure, no ROS)."""

from __future__ import annotations

import numpy as np
import pytest

from drl_control.deploy.profiles import JointMap, load_profile, load_profiles
from drl_control.robot import iiwa14

OURS = list(iiwa14().joint_names)


def test_shipped_profiles_are_valid():
    profiles = load_profiles()
    assert {"lbr", "iiwa_ros2", "sim"} <= set(profiles)
    for profile in profiles.values():
        cfg = profile.safety_config()
        assert cfg.control_dt == pytest.approx(1 / profile.rate_hz)
        assert all(t.startswith("/") for t in (profile.joint_states, profile.position_commands,
                                               profile.joint_trajectory))


def test_unknown_profile_and_keys_are_named(tmp_path):
    with pytest.raises(ValueError, match="unknown robot profile 'kuka'"):
        load_profile("kuka")
    bad = tmp_path / "p.yaml"
    bad.write_text("profiles:\n  x: {joint_states: /a, position_commands: /b, joint_trajectory: /c,\n"
                   "      joint_names: [a, b, c, d, e, f, g], rate: 5}\n")
    with pytest.raises(ValueError, match="unknown key"):
        load_profiles(bad)
    bad.write_text("profiles:\n  x: {joint_states: /a, position_commands: /b, joint_trajectory: /c,\n"
                   "      joint_names: [a, b, c, d, e, f, g], safety: {velocity: 1}}\n")
    with pytest.raises(ValueError, match="unknown setting"):
        load_profiles(bad)


def test_overrides_replace_only_given_fields():
    lbr = load_profile("lbr")
    other = lbr.with_overrides(joint_states="/robot/joint_states", joint_names=None, rate_hz=None)
    assert other.joint_states == "/robot/joint_states" and other.joint_names == lbr.joint_names
    with pytest.raises(ValueError, match="7 distinct names"):
        lbr.with_overrides(joint_names=["a"] * 7)


def test_joint_map_renames_and_reorders_states_and_commands():
    theirs = [f"lbr_A{i}" for i in range(1, 8)]
    jm = JointMap(OURS, theirs)
    order = [4, 2, 0, 6, 1, 5, 3]
    names = ["extra"] + [theirs[i] for i in order]
    q = np.arange(7) * 0.1
    mapped = jm.state_to_ours(names, [9.0] + [q[i] for i in order], [0.0] * 8, [])
    assert mapped is not None
    np.testing.assert_allclose(mapped[0], q)
    assert mapped[1] is not None and mapped[2] is None  # no efforts given
    assert jm.state_to_ours(names[:-1], list(range(7)), [], []) is None  # a joint missing
    cmd = jm.command_to_ours([OURS[i] for i in order], [q[i] for i in order])
    np.testing.assert_allclose(cmd, q)
    assert jm.command_to_ours(theirs, list(q)) is None  # driver names are not ours
