"""What a person looks at: the GIF of an episode, the training progress bar, the learning curve.

- an expert GIF is 640x480, shows the goal (green pixels of the goal sphere near where the camera
  sees the goal), and carries an overlay that changes with the step and says success at the end;
- the recorder's goal sphere follows the goal and does not touch the physics;
- the progress bar's first rate is the run's, not steps over the few ms since the bar was made;
- console bar and learning curve average the success over the same window, and say which.
"""

from __future__ import annotations

import csv
import io

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
import pytest

import drl_control  # noqa: F401 - registers the envs
from drl_control.learn.plot import _rolling, plot_run
from drl_control.learn.progress import SUCCESS_LABEL, SUCCESS_WINDOW, TrainingBar
from drl_control.sim.experts import run_episodes
from drl_control.sim.media import EpisodeRecorder, overlay


def _green(frame: np.ndarray) -> np.ndarray:
    """Green pixels: the goal sphere, or the overlay's "success" (its other text is white or orange)."""
    r, g, b = (frame[..., i].astype(int) for i in range(3))
    return (g > 120) & (g > r + 60) & (g > b + 60)


def test_expert_gif_is_640x480_with_the_goal_and_an_overlay(tmp_path):
    summary = run_episodes("DrlControl/IiwaReach-v0", episodes=1, seed=3, gif=str(tmp_path / "reach.gif"))
    frames = imageio.mimread(tmp_path / "reach.gif")
    assert len(frames) == 50 and frames[0].shape[:2] == (480, 640)
    first, last = (np.asarray(f)[..., :3] for f in (frames[0], frames[-1]))
    scene = (slice(100, None), slice(None))  # below the overlay box
    assert _green(first[scene]).sum() > 30, "goal not visible"
    box = (slice(0, 60), slice(0, 150))
    assert first[box].mean() < 160, "no dark overlay box in the top-left corner (the sky there is white)"
    assert not np.array_equal(frames[0][box], frames[1][box]), "overlay does not change with the step"
    assert summary["success_rate"] == 1.0
    # "success" is written in green at the end of a successful episode, "not yet" in orange at the start
    assert _green(last[:90, :220]).sum() > 20 and _green(first[:90, :220]).sum() == 0


def test_goal_sphere_follows_the_goal_and_leaves_physics_alone():
    plain = gym.make("DrlControl/IiwaPush-v0")
    recorded = gym.make("DrlControl/IiwaPush-v0")
    recorder = EpisodeRecorder(recorded, size=(64, 48))
    actions = np.random.default_rng(0).uniform(-1, 1, size=(30, 3)).astype(np.float32)
    for seed in (1, 2):
        a, _ = plain.reset(seed=seed)
        b, _ = recorded.reset(seed=seed)
        recorder.new_episode()
        for action in actions:
            a, *_ = plain.step(action)
            b, *_, info = recorded.step(action)
            assert recorder.capture(info).shape == (48, 64, 3)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
        task = recorded.unwrapped.task
        position, _ = recorded.unwrapped.world.base_pose(recorder.marker)
        np.testing.assert_allclose(position, task.goal, atol=1e-6)
    assert (recorder.episode, recorder.step, len(recorder.frames)) == (2, 30, 60)
    plain.close()
    recorded.close()


def test_overlay_writes_on_a_copy():
    frame = np.full((48, 64, 3), 200, dtype=np.uint8)
    out = overlay(frame, [("step 1", (255, 255, 255))])
    assert out.shape == frame.shape and (frame == 200).all() and out[:10, :10].mean() < 200


def test_progress_bar_rate_and_eta_are_right_from_the_first_tick():
    out = io.StringIO()
    bar = TrainingBar(10_000, file=out)
    bar.update(500, fps=250.0, success_rate=float("nan"), episodes=10)  # 500 steps in 2 s of training
    first = out.getvalue()
    assert "250step/s" in first and "00:38" in first, first  # (10000 - 500) / 250 = 38 s to go
    assert f"{SUCCESS_LABEL} -" in first
    bar.update(1000, fps=240.0, success_rate=0.5, episodes=20)
    assert bar.rate is not None and bar.rate > 0 and f"{SUCCESS_LABEL} 0.50" in out.getvalue()
    bar.close()


def test_progress_rate_follows_the_drop_when_gradient_steps_start(monkeypatch):
    clock = iter([0.0, 1.0, 34.0, 67.0])  # 500 steps in 1 s of warm-up, then 500 steps per 33 s
    monkeypatch.setattr("drl_control.learn.progress.time.monotonic", lambda: next(clock))
    bar = TrainingBar(60_000, file=io.StringIO())
    bar.update(500, fps=500.0, success_rate=float("nan"))
    bar.update(1000, fps=500.0, success_rate=float("nan"))
    assert bar.rate == pytest.approx(500.0)  # same regime: smoothed
    bar.update(1500, fps=40.0, success_rate=float("nan"))
    assert bar.rate == pytest.approx(500 / 33)  # 33x slower: the bar starts over from the new rate
    bar.update(2000, fps=30.0, success_rate=float("nan"))
    assert bar.rate == pytest.approx(500 / 33)
    bar.close()


def test_console_and_plot_use_one_success_window(tmp_path):
    from drl_control.learn.train import EPISODE_FIELDS

    rng = np.random.default_rng(0)
    success = (rng.uniform(size=300) < np.linspace(0, 1, 300)).astype(float)
    with open(tmp_path / "episodes.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(EPISODE_FIELDS)
        for i, s in enumerate(success):
            writer.writerow([50 * (i + 1), i + 1, -50 + 50 * s, 50, s, 0.01, i])
    assert plot_run(tmp_path).is_file()
    assert "last 100 ep." in SUCCESS_LABEL and SUCCESS_WINDOW == 100
    # the curve's last point is what the console's deque of the last SUCCESS_WINDOW episodes shows
    assert _rolling(success, SUCCESS_WINDOW)[-1] == pytest.approx(success[-SUCCESS_WINDOW:].mean())
