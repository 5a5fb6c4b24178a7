"""The URDF against the KUKA datasheet and the DH model (real PyBullet)."""

import math
import xml.etree.ElementTree as ET

import numpy as np
import pybullet as p
import pytest

from drl_control.robot import arm_urdf_path, forward, iiwa14, inverse, jacobian
from drl_control.robot.tools import composed_urdf_path, tool_tip_offset

# Datasheet, KUKA LBR iiwa 14 R820 (typed independently of the URDF on purpose).
RANGE_DEG = [170, 120, 170, 120, 170, 120, 175]
SPEED_DEG_S = [85, 85, 100, 75, 130, 135, 135]
TORQUE_NM = [320, 320, 176, 176, 110, 40, 40]


@pytest.fixture(scope="module")
def bullet():
    client = p.connect(p.DIRECT)
    yield client
    p.disconnect(client)


def _load(client, path):
    return p.loadURDF(str(path), useFixedBase=True, flags=p.URDF_USE_INERTIA_FROM_FILE, physicsClientId=client)


def test_limits_match_datasheet():
    spec = iiwa14()
    assert spec.joint_names == tuple(f"iiwa_joint_{i}" for i in range(1, 8))
    np.testing.assert_allclose(spec.upper, np.radians(RANGE_DEG), atol=1e-12)
    np.testing.assert_allclose(spec.lower, -np.radians(RANGE_DEG), atol=1e-12)
    np.testing.assert_allclose(spec.max_velocity, np.radians(SPEED_DEG_S), atol=1e-12)
    np.testing.assert_allclose(spec.max_effort, TORQUE_NM)


def test_links_and_total_mass(bullet):
    body = _load(bullet, arm_urdf_path())
    names = [p.getJointInfo(body, i, physicsClientId=bullet)[12].decode() for i in range(p.getNumJoints(body, physicsClientId=bullet))]
    assert names == [f"iiwa_link_{i}" for i in range(1, 8)] + ["iiwa_link_ee"]
    # PyBullet reports a fixed base as massless, so weigh the links as written in the URDF.
    root = ET.parse(arm_urdf_path()).getroot()
    masses = [float(link.find("inertial/mass").get("value")) for link in root.findall("link")]
    assert 28.0 <= sum(masses) <= 32.0  # datasheet: about 30 kg
    assert all(m > 0 for m in masses)


def test_zero_pose_flange_straight_up():
    np.testing.assert_allclose(forward(np.zeros(7))[:3, 3], [0, 0, 1.306], atol=1e-9)


def test_urdf_fk_matches_dh_within_2mm_over_the_joint_range(bullet):
    spec = iiwa14()
    body = _load(bullet, arm_urdf_path())
    rng = np.random.default_rng(7)
    samples = np.vstack([rng.uniform(spec.lower, spec.upper, size=(300, 7)), spec.lower, spec.upper])
    worst = 0.0
    for q in samples:
        for i, angle in enumerate(q):
            p.resetJointState(body, i, angle, physicsClientId=bullet)
        link = p.getLinkState(body, 7, computeForwardKinematics=True, physicsClientId=bullet)
        worst = max(worst, float(np.linalg.norm(np.array(link[4]) - forward(q)[:3, 3])))
    assert worst < 0.002


def test_dh_jacobian_matches_finite_differences():
    q = np.array([0.3, -0.5, 0.2, -1.2, 0.4, 0.9, -0.3])
    jac = jacobian(q, tool_offset=0.1)
    eps = 1e-6
    for i in range(7):
        dq = np.zeros(7)
        dq[i] = eps
        fd = (forward(q + dq, 0.1)[:3, 3] - forward(q - dq, 0.1)[:3, 3]) / (2 * eps)
        np.testing.assert_allclose(jac[:3, i], fd, atol=1e-6)


def test_ik_reaches_reachable_targets_within_limits():
    spec = iiwa14()
    rng = np.random.default_rng(3)
    for _ in range(20):
        q_true = rng.uniform(spec.lower * 0.6, spec.upper * 0.6)
        target = forward(q_true)[:3, 3]
        q = inverse(target, spec.home, spec.lower, spec.upper, iterations=200, damping=0.02)
        assert np.all(q >= spec.lower) and np.all(q <= spec.upper)
        assert np.linalg.norm(forward(q)[:3, 3] - target) < 2e-3


@pytest.mark.parametrize("tool", ["pusher", "gripper"])
def test_tool_composition_keeps_the_arm_and_adds_a_tcp(bullet, tool):
    body = _load(bullet, composed_urdf_path(tool))
    links = {p.getJointInfo(body, i, physicsClientId=bullet)[12].decode(): i for i in range(p.getNumJoints(body, physicsClientId=bullet))}
    assert "iiwa_link_ee" in links and "tool_tip" in links
    for i, angle in enumerate(iiwa14().home):
        p.resetJointState(body, i, angle, physicsClientId=bullet)
    tip = p.getLinkState(body, links["tool_tip"], computeForwardKinematics=True, physicsClientId=bullet)[4]
    expected = forward(iiwa14().home, tool_offset=tool_tip_offset(tool))[:3, 3]
    assert np.linalg.norm(np.array(tip) - expected) < 1e-4
    assert math.isclose(tool_tip_offset(tool), {"pusher": 0.105, "gripper": 0.09}[tool])
