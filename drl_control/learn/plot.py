"""Learning-curve PNG from a run's episodes.csv (success rate and return vs env steps, or vs wall
time to compare the speed of runs on different machines or devices)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from drl_control.learn.progress import SUCCESS_LABEL, SUCCESS_WINDOW
from drl_control.safe_io import DataError, read_json


def _rolling(x: np.ndarray, window: int) -> np.ndarray:
    if len(x) == 0:
        return x
    c = np.cumsum(np.insert(x, 0, 0.0))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


# x axis of a comparison: episodes.csv column, scale, label
X_AXES = {"steps": ("env_step", 1.0, "env steps"), "wall": ("wall_time", 1 / 60, "wall time (min)")}


def _episodes(run_dir: Path, x: str = "steps") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x: env steps or wall minutes, success, return) per training episode of a run; DataError when
    malformed."""
    column, scale, _label = X_AXES[x]
    path = run_dir / "episodes.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no episodes.csv (not a run directory?)")
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        steps = np.array([float(r[column]) for r in rows]) * scale
        success = np.array([float(r["success"]) for r in rows])
        returns = np.array([float(r["return"]) for r in rows])
    except (OSError, UnicodeDecodeError, csv.Error, KeyError, TypeError, ValueError) as exc:
        what = f"missing column {exc}" if isinstance(exc, KeyError) else str(exc)
        raise DataError(f"{path}: malformed episodes.csv ({what})") from None
    return steps, success, returns


def _pyplot():  # noqa: ANN202 - matplotlib's module; imported late, only the plot verb needs it
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_run(run_dir: str | Path, window: int = SUCCESS_WINDOW) -> Path:
    """Write run_dir/learning_curve.png; returns its path. The default window is the console's, so the
    curve's last point is the success rate the training bar showed last."""
    run_dir = Path(run_dir)
    steps, success, returns = _episodes(run_dir)
    plt = _pyplot()
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


def held_out_success(run_dir: Path) -> float | None:
    """The success rate of the run's held-out evaluation (eval.json, written at the end of training)."""
    path = run_dir / "eval.json"
    if not path.is_file():
        return None
    report = read_json(path)
    value = report.get("success_rate") if isinstance(report, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def plot_runs(run_dirs: list[str | Path], out: str | Path, window: int = SUCCESS_WINDOW, x: str = "steps") -> Path:
    """One PNG comparing runs (seeds, with and without an option): each run's rolling training
    success, and its held-out success (eval.json) as a dot at its last point, labelled by run name.
    `x`: "steps" (env steps) or "wall" (minutes since the run started: a GPU against a CPU run)."""
    runs = [(Path(d), *_episodes(Path(d), x)[:2]) for d in run_dirs]
    out = Path(out)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for run_dir, steps, success in runs:
        held_out = held_out_success(run_dir)
        label = run_dir.name + (f" (held-out {held_out:.0%})" if held_out is not None else "")
        (line,) = ax.plot(steps, _rolling(success, window), label=label)
        if held_out is not None and len(steps):
            ax.plot([steps[-1]], [held_out], "o", color=line.get_color())
    ax.set_ylabel(SUCCESS_LABEL if window == SUCCESS_WINDOW else f"success (last {window} ep.)")
    ax.set_xlabel(X_AXES[x][2])
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
