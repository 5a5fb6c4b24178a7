"""`drl-control plot F.mcap`: one PNG of a recording: the end-effector path (top and side views, with
the goals), and every joint's position and speed against the URDF's limits."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from drl_control.record.reader import read_recording, trajectory
from drl_control.robot import iiwa14


def plot_recording(path: str | Path, out: str | Path | None = None) -> tuple[Path, bool]:
    """Write the PNG (default: beside the recording, .png); returns (its path, recording truncated)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    traj = trajectory(read_recording(path))
    out = Path(out) if out is not None else path.with_suffix(".png")
    spec = iiwa14()
    index = {name: i for i, name in enumerate(spec.joint_names)}
    n = len(traj.joint_names)
    fig = plt.figure(figsize=(11, 3.2 + 1.5 * n))
    grid = fig.add_gridspec(n + 2, 2, height_ratios=[2.2, 0.25] + [1] * n, hspace=0.35)
    for col, (a, b, label) in enumerate(((0, 1, "y"), (0, 2, "z"))):
        ax = fig.add_subplot(grid[0, col])
        ax.plot(traj.ee[:, a], traj.ee[:, b], color="tab:orange", lw=1.2, label="end effector")
        if len(traj.ee):
            ax.plot(*traj.ee[0, [a, b]], "o", color="tab:orange", ms=4)
        goals = traj.goals[~np.isnan(traj.goals).any(axis=1)]
        if len(goals):
            unique = np.unique(goals.round(4), axis=0)
            ax.plot(unique[:, a], unique[:, b], "*", color="tab:green", ms=10, label="goal")
        ax.set_xlabel("x (m)")
        ax.set_ylabel(f"{label} (m)")
        ax.set_aspect("equal", adjustable="datalim")
        ax.grid(alpha=0.3)
        ax.set_title("top view" if label == "y" else "side view", fontsize=9)
        if col == 0:
            ax.legend(loc="best", fontsize=8)
    for row, name in enumerate(traj.joint_names):
        i = index.get(name)
        for col, (values, unit) in enumerate(((traj.q[:, row], "rad"), (traj.qd[:, row], "rad/s"))):
            ax = fig.add_subplot(grid[row + 2, col])
            ax.plot(traj.t, values, color="tab:blue", lw=1)
            if i is not None:
                lo, hi = ((spec.lower[i], spec.upper[i]) if col == 0
                          else (-spec.max_velocity[i], spec.max_velocity[i]))
                ax.axhline(lo, color="tab:red", ls="--", lw=0.8)
                ax.axhline(hi, color="tab:red", ls="--", lw=0.8)
            ax.set_ylabel(f"{name.replace('iiwa_', '')}\n{unit}", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title("position (limits dashed)" if col == 0 else "speed (limits dashed)", fontsize=9)
            if row == n - 1:
                ax.set_xlabel("time (s)")
    title = f"{path.name}: {len(traj.t)} joint states, {traj.t[-1] if len(traj.t) else 0:.1f} s"
    fig.suptitle(title + (" (recording cut short)" if traj.truncated else ""))
    fig.savefig(out, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return out, traj.truncated
