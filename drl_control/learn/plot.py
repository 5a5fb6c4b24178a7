"""Learning-curve PNG from a run's episodes.csv (success rate and return vs env steps)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from drl_control.learn.progress import SUCCESS_LABEL, SUCCESS_WINDOW
from drl_control.safe_io import DataError


def _rolling(x: np.ndarray, window: int) -> np.ndarray:
    if len(x) == 0:
        return x
    c = np.cumsum(np.insert(x, 0, 0.0))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_run(run_dir: str | Path, window: int = SUCCESS_WINDOW) -> Path:
    """Write run_dir/learning_curve.png; returns its path. The default window is the console's, so the
    curve's last point is the success rate the training bar showed last."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    path = run_dir / "episodes.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no episodes.csv (not a run directory?)")
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        steps = np.array([float(r["env_step"]) for r in rows])
        success = np.array([float(r["success"]) for r in rows])
        returns = np.array([float(r["return"]) for r in rows])
    except (OSError, UnicodeDecodeError, csv.Error, KeyError, TypeError, ValueError) as exc:
        what = f"missing column {exc}" if isinstance(exc, KeyError) else str(exc)
        raise DataError(f"{path}: malformed episodes.csv ({what})") from None
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    ax1.plot(steps, _rolling(success, window), color="tab:green")
    ax1.set_ylabel(SUCCESS_LABEL if window == SUCCESS_WINDOW else f"success (last {window} ep.)")
    ax1.set_ylim(-0.02, 1.02)
    ax1.grid(alpha=0.3)
    ax2.plot(steps, returns, color="tab:blue", alpha=0.25, lw=0.8, label="episode")
    ax2.plot(steps, _rolling(returns, window), color="tab:blue", label=f"mean of last {window} ep.")
    ax2.set_ylabel("return")
    ax2.set_xlabel("env steps")
    ax2.grid(alpha=0.3)
    ax2.legend(loc="lower right")
    fig.suptitle(run_dir.name)
    fig.tight_layout()
    out = run_dir / "learning_curve.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
