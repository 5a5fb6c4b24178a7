"""Forward kinematics, Jacobian and damped-least-squares IK of the iiwa 14 from its DH model.

Pure numpy so that the deploy layer (safety filter, observation building) needs no simulator.
The DH table is the datasheet's; tests check that the URDF agrees with it within 2 mm.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg.lapack import dposv

# Standard DH (a = 0 for all joints): d_i in metres, alpha_i in radians.
DH_D = np.array([0.360, 0.0, 0.420, 0.0, 0.400, 0.0, 0.126])
DH_ALPHA = np.array([-np.pi / 2, np.pi / 2, np.pi / 2, -np.pi / 2, -np.pi / 2, np.pi / 2, 0.0])


def _dh(theta: float, d: float, alpha: float) -> np.ndarray:
    ct, st, ca, sa = np.cos(theta), np.sin(theta), np.cos(alpha), np.sin(alpha)
    return np.array(
        [[ct, -st * ca, st * sa, 0.0], [st, ct * ca, -ct * sa, 0.0], [0.0, sa, ca, d], [0, 0, 0, 1.0]]
    )


def frames(q: np.ndarray, tool_offset: float = 0.0) -> list[np.ndarray]:
    """Homogeneous transforms of the base, each joint frame and the tool point (offset on flange z)."""
    transforms = [np.eye(4)]
    for theta, d, alpha in zip(q, DH_D, DH_ALPHA):
        transforms.append(transforms[-1] @ _dh(theta, d, alpha))
    if tool_offset:
        tool = np.eye(4)
        tool[2, 3] = tool_offset
        transforms[-1] = transforms[-1] @ tool
    return transforms


def forward(q: np.ndarray, tool_offset: float = 0.0) -> np.ndarray:
    """4x4 pose of the flange (or the tool point `tool_offset` metres along its z) in the base frame."""
    return frames(np.asarray(q, dtype=float), tool_offset)[-1]


def jacobian(q: np.ndarray, tool_offset: float = 0.0) -> np.ndarray:
    """6x7 geometric Jacobian (linear rows first) of the tool point."""
    fr = frames(np.asarray(q, dtype=float), tool_offset)
    stacked = np.array(fr[: len(q)])  # (n, 4, 4): one cross product for all joints (this runs every tick)
    z, p = stacked[:, :3, 2], stacked[:, :3, 3]
    jac = np.empty((6, len(q)))
    jac[:3] = np.cross(z, fr[-1][:3, 3] - p).T
    jac[3:] = z.T
    return jac


def _rotation_error(current: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Axis-angle-like error (small-angle) that rotates `current` onto `target`.

    Equals 0.5 * sum_i current[:, i] x target[:, i], written via the skew part of target @ current.T
    because np.cross is slow for one vector and this runs every control step.
    """
    m = target @ current.T
    return 0.5 * np.array([m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1]])


def inverse(
    target_pos: np.ndarray,
    q0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    target_rot: np.ndarray | None = None,
    tool_offset: float = 0.0,
    damping: float = 0.05,
    iterations: int = 20,
    tolerance: float = 1e-4,
    q_rest: np.ndarray | None = None,
    nullspace_gain: float = 0.1,
) -> np.ndarray:
    """Damped-least-squares IK: joint positions near `q0` that put the tool at `target_pos`.

    With `target_rot` (3x3) the orientation is also matched. The redundant DOF is pulled
    towards `q_rest` through the null space, and every iterate is clipped to the limits.
    """
    q = np.array(q0, dtype=float)
    rows = slice(0, 6) if target_rot is not None else slice(0, 3)
    for _ in range(iterations):
        pose = forward(q, tool_offset)
        err = target_pos - pose[:3, 3]
        if target_rot is not None:
            err = np.concatenate([err, _rotation_error(pose[:3, :3], target_rot)])
        if np.linalg.norm(err) < tolerance:
            break
        jac = jacobian(q, tool_offset)[rows]
        jjt = jac @ jac.T + damping**2 * np.eye(jac.shape[0])
        dq = jac.T @ np.linalg.solve(jjt, err)
        if q_rest is not None:
            pinv = jac.T @ np.linalg.solve(jjt, np.eye(jac.shape[0]))
            dq += (np.eye(len(q)) - pinv @ jac) @ (nullspace_gain * (q_rest - q))
        q = np.clip(q + dq, lower, upper)
    return q


# Orientation that points the flange z axis straight down with its y axis along world +y.
FLANGE_DOWN = np.diag([-1.0, 1.0, -1.0])


def rotation_error(current: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Small-angle rotation vector taking `current` onto `target` (both 3x3, base frame)."""
    return _rotation_error(current, target)


def dls_step(
    jac: np.ndarray,
    error: np.ndarray,
    q: np.ndarray,
    damping: float,
    q_rest: np.ndarray | None = None,
    nullspace_gain: float = 0.0,
) -> np.ndarray:
    """One damped-least-squares step dq = J^T (J J^T + lambda^2 I)^-1 e, plus a null-space pull to `q_rest`.

    This is the end-effector control law of both the simulator and the deployed controller;
    `jac` comes from PyBullet in the sim and from `jacobian()` on the robot (they agree).
    """
    # With pull p: dq = J+ e + (I - J+ J) p = J+ (e - J p) + p, one solve instead of a pseudo-inverse.
    pull = nullspace_gain * (q_rest - q) if (q_rest is not None and nullspace_gain) else None
    jjt = jac @ jac.T
    jjt.flat[:: jjt.shape[0] + 1] += damping * damping
    rhs = error if pull is None else error - jac @ pull
    # J J^T + lambda^2 I is symmetric positive definite: LAPACK's Cholesky solve, called directly,
    # costs a quarter of np.linalg.solve's wrapper, and this runs every control step.
    _, y, info = dposv(jjt, rhs)
    if info != 0:
        raise np.linalg.LinAlgError(f"DLS system not positive definite (LAPACK info {info})")
    return jac.T @ y if pull is None else jac.T @ y + pull
