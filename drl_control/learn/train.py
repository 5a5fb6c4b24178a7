"""Training as a library function: `train(config, run_dir, ...)`.

The CLI and the ROS learner node both call this. The node passes its own VecEnv factory (a
RosVecEnv over sim nodes), an `on_progress` callback (feedback: timesteps, success rate, fps) and a
`cancel` event (the action's cancel: checkpoint, then stop).

Run directory:
  config.yaml            resolved configuration
  checkpoints/           step_<N>/ + LATEST (see checkpoint.py)
  tb/                    TensorBoard logs (SB3's logger)
  episodes.csv           one row per finished training episode
  learning_curve.png     success rate and return vs env steps
  eval.json              final evaluation on held-out seeded goals
"""

from __future__ import annotations

import collections
import csv
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drl_control.errors import UserError
from drl_control.learn.algos import (
    VecEnvFactory,
    build_model,
    default_vec_env_factory,
    resolve_device,
    wrap_normalizer,
)
from drl_control.learn.checkpoint import (
    checked_latest,
    latest_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from drl_control.learn.config import dump_config, load_run_config, validate_config
from drl_control.learn.evaluate import ModelActor, evaluate_actor
from drl_control.learn.plot import plot_run
from drl_control.learn.progress import SUCCESS_WINDOW

log = logging.getLogger(__name__)
__all__ = ["Progress", "TrainResult", "Trainer", "claim_run_dir", "load_run_config", "train"]

EPISODE_FIELDS = ("env_step", "episode", "return", "length", "success", "final_distance", "wall_time")


@dataclass
class Progress:
    """Feedback for progress bars and the ROS train action."""

    timesteps: int
    total_timesteps: int
    episodes: int
    success_rate: float  # over the last SUCCESS_WINDOW training episodes (nan before the first)
    mean_return: float
    fps: float


@dataclass
class TrainResult:
    run_dir: str
    timesteps: int
    cancelled: bool
    checkpoint: str
    wall_time_s: float
    eval: dict[str, Any] | None = field(default=None)


def _final_distance(info: Mapping[str, Any]) -> float:
    obs = info.get("terminal_observation_raw", info.get("terminal_observation"))
    if isinstance(obs, Mapping) and "achieved_goal" in obs and "desired_goal" in obs:
        return float(np.linalg.norm(np.asarray(obs["achieved_goal"]) - np.asarray(obs["desired_goal"])))
    return float("nan")


def _run_callback(*args: Any, **kwargs: Any) -> Any:
    # Built on first use: the class derives from SB3's, and importing SB3 (~1.3 s after torch,
    # python -X importtime) is paid only once a run starts, not by every importer of this module.
    from stable_baselines3.common.callbacks import BaseCallback

    class RunCallback(BaseCallback):
        """Episode CSV, periodic checkpoints, progress feedback and cancellation."""

        def __init__(self, trainer: Trainer) -> None:
            super().__init__()
            self.t = trainer
            self.returns: np.ndarray | None = None
            self.lengths: np.ndarray | None = None
            self.recent_success: collections.deque[float] = collections.deque(maxlen=SUCCESS_WINDOW)
            self.recent_return: collections.deque[float] = collections.deque(maxlen=SUCCESS_WINDOW)
            self.last_progress = 0
            self.last_ckpt = 0
            self.start_steps = 0
            self.start_time = time.time()

        def _on_training_start(self) -> None:
            n = self.training_env.num_envs
            self.returns = np.zeros(n)
            self.lengths = np.zeros(n, dtype=np.int64)
            self.last_ckpt = self.last_progress = self.start_steps = self.model.num_timesteps
            self.start_time = time.time()

        def progress(self) -> Progress:
            # The trainer's model: this also answers when a cancel came before learn() started
            # (SB3 then never attached the model to the callback).
            steps = self.t.model.num_timesteps
            elapsed = max(time.time() - self.start_time, 1e-9)
            return Progress(
                timesteps=steps,
                total_timesteps=self.t.total_timesteps,
                episodes=self.t.episodes,
                success_rate=float(np.mean(self.recent_success)) if self.recent_success else float("nan"),
                mean_return=float(np.mean(self.recent_return)) if self.recent_return else float("nan"),
                fps=(steps - self.start_steps) / elapsed,
            )

        def _on_step(self) -> bool:
            assert self.returns is not None and self.lengths is not None
            if self.t.cancel.is_set():
                # SB3 stops before storing this step's transition; count it as not taken, so the
                # checkpoint's num_timesteps matches its replay buffer and a resume continues exactly.
                if getattr(self.model, "replay_buffer", None) is not None:
                    self.model.num_timesteps -= self.training_env.num_envs
                return False
            rewards = np.asarray(self.locals["rewards"], dtype=np.float64)
            dones = self.locals["dones"]
            infos = self.locals["infos"]
            self.returns += rewards
            self.lengths += 1
            for i in np.flatnonzero(dones):
                if infos[i].get("physics_error"):
                    self.t.physics_errors += 1
                    log.warning("physics blow-up in env %d at step %d: episode truncated, env reset (%d so far)",
                                i, self.model.num_timesteps, self.t.physics_errors)
                success = float(bool(infos[i].get("is_success", False)))
                self.t.episodes += 1
                self.recent_success.append(success)
                self.recent_return.append(float(self.returns[i]))
                self.t.write_episode(
                    env_step=self.model.num_timesteps, episode=self.t.episodes, ret=float(self.returns[i]),
                    length=int(self.lengths[i]), success=success, final_distance=_final_distance(infos[i]),
                )
                self.returns[i] = 0.0
                self.lengths[i] = 0
            if self.t.on_progress and self.model.num_timesteps - self.last_progress >= self.t.progress_every:
                self.last_progress = self.model.num_timesteps
                self.t.on_progress(self.progress())
            return True

        def _on_rollout_end(self) -> None:
            # Checkpoint here, not in _on_step: SB3 stores the step's transition after on_step.
            if self.model.num_timesteps - self.last_ckpt >= self.t.checkpoint_every:
                self.last_ckpt = self.model.num_timesteps
                self.t.checkpoint()

    return RunCallback(*args, **kwargs)


class Trainer:
    """One training run in `run_dir`; `resume_from` continues a run (counters, buffer, normalizer)."""

    def __init__(
        self,
        config: Mapping[str, Any],
        run_dir: str | Path,
        *,
        vec_env_factory: VecEnvFactory | None = None,
        resume_from: str | Path | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        validate_config(config)
        self.cfg = dict(config)
        for key in ("env_id", "total_timesteps"):
            if key not in self.cfg:
                raise ValueError(f"config needs {key!r}")
        self.run_dir = Path(run_dir)
        self.total_timesteps = int(self.cfg["total_timesteps"])
        self.factory = vec_env_factory or default_vec_env_factory(self.cfg["env_id"], self.cfg.get("env"))
        self.resume_from = Path(resume_from) if resume_from else None
        self.on_progress = on_progress
        self.cancel = cancel or threading.Event()
        train_cfg = self.cfg.get("train", {})
        self.checkpoint_every = int(train_cfg.get("checkpoint_every", 10_000))
        self.keep = int(train_cfg.get("keep_checkpoints", 2))
        self.progress_every = int(train_cfg.get("progress_every", 500))
        self.device = resolve_device(train_cfg.get("device", "auto"))  # refuse cuda without a GPU up front
        self.episodes = 0
        self.physics_errors = 0
        self.model: Any = None
        self.normalizer: Any = None
        self._csv: Any = None
        self._csv_writer: Any = None
        self._t0 = time.time()

    # --- pieces used by the callback ---------------------------------------------------------
    def write_episode(self, *, env_step: int, episode: int, ret: float, length: int, success: float,
                      final_distance: float) -> None:
        self._csv_writer.writerow([env_step, episode, f"{ret:.6g}", length, int(success), f"{final_distance:.6g}",
                                   f"{time.time() - self._t0:.3f}"])
        self._csv.flush()

    def checkpoint(self) -> Path:
        return save_checkpoint(self.run_dir, self.model, self.normalizer, extra={"episodes": self.episodes},
                               keep=self.keep)

    # --- the run -----------------------------------------------------------------------------
    def train(self) -> TrainResult:
        """Train until total_timesteps (or cancel), checkpoint, evaluate, plot."""
        torch.set_num_threads(int(self.cfg.get("train", {}).get("torch_threads", 1)))
        if self.resume_from is not None:
            checked_latest(self.resume_from)  # refuse a broken checkpoint before envs start
        from drl_control.learn.demos import prepare_demos

        demos = prepare_demos(self.cfg)  # a bad demo file is refused before anything is written
        self.run_dir.mkdir(parents=True, exist_ok=True)
        dump_config(self.cfg, self.run_dir / "config.yaml")
        venv = self.factory(int(self.cfg.get("n_envs", 1)), int(self.cfg.get("seed", 0)))
        try:
            return self._train(venv, demos)
        finally:
            if self._csv is not None:
                self._csv.close()
            venv.close()

    def _train(self, venv: Any, demos: Any = None) -> TrainResult:
        venv = wrap_normalizer(venv, self.cfg, training=True)
        self.normalizer = venv if hasattr(venv, "state_dict") else None
        self.model = build_model(self.cfg, venv, tensorboard_log=str(self.run_dir / "tb"), device=self.device)
        if self.resume_from is not None:
            state = restore_checkpoint(self.model, latest_checkpoint(self.resume_from), self.normalizer)
            self.episodes = int(state.get("episodes", 0))
        if demos is not None:  # not in checkpoints: rebuilt from the config's demo source on resume
            from drl_control.learn.demos import attach_demos

            attach_demos(self.model, demos, self.cfg["env_id"], str(self.cfg["demos"].get("file") or "demonstrations"))
        csv_path = self.run_dir / "episodes.csv"
        new_csv = not csv_path.is_file()
        self._csv = open(csv_path, "a", newline="")  # noqa: SIM115 (closed in train())
        self._csv_writer = csv.writer(self._csv)
        if new_csv:
            self._csv_writer.writerow(EPISODE_FIELDS)
        self._t0 = time.time()
        remaining = self.total_timesteps - self.model.num_timesteps
        callback = _run_callback(self)
        if remaining > 0 and not self.cancel.is_set():
            self.model.learn(
                total_timesteps=remaining,
                callback=callback,
                reset_num_timesteps=self.resume_from is None,
                tb_log_name=self.cfg["algo"],
            )
        ckpt = self.checkpoint()
        cancelled = self.cancel.is_set()
        if self.on_progress:
            self.on_progress(callback.progress())
        result = TrainResult(run_dir=str(self.run_dir), timesteps=int(self.model.num_timesteps), cancelled=cancelled,
                             checkpoint=str(ckpt), wall_time_s=time.time() - self._t0)
        try:
            plot_run(self.run_dir)
        except Exception as exc:  # a missing plot must not lose a finished run
            print(f"warning: could not plot learning curve: {exc}")
        if not cancelled:
            result.eval = self.final_eval()
        return result

    def final_eval(self) -> dict[str, Any]:
        """Evaluate the trained model on held-out seeded goals and write eval.json."""
        ev = self.cfg.get("eval", {})
        if self.normalizer is not None:
            self.normalizer.training = False  # frozen statistics from here on
        actor = ModelActor(self.model, self.normalizer)
        report = evaluate_actor(actor, self.cfg["env_id"], episodes=int(ev.get("episodes", 50)),
                                seed=int(self.cfg.get("seed", 0)), seed_offset=int(ev.get("seed_offset", 1_000_000)))
        report["timesteps"] = int(self.model.num_timesteps)
        (self.run_dir / "eval.json").write_text(json.dumps(report, indent=1))
        return report


def train(
    config: Mapping[str, Any],
    run_dir: str | Path,
    *,
    vec_env_factory: VecEnvFactory | None = None,
    resume_from: str | Path | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
) -> TrainResult:
    """Train one run; see `Trainer`. Returns where things went and the final evaluation."""
    return Trainer(config, run_dir, vec_env_factory=vec_env_factory, resume_from=resume_from,
                   on_progress=on_progress, cancel=cancel).train()


def claim_run_dir(path: str | Path, *, force: bool = False) -> Path:
    """`path` as a fresh run directory: absent or empty; an existing run only with `force`.

    Runs never collide: training into an existing run would mix its checkpoints, episodes.csv and
    eval.json with the new run's. `force` deletes an existing run directory (one with config.yaml)
    first; any other non-empty directory, or a file, is refused even then.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        if not (path / "config.yaml").is_file():
            raise UserError(f"{path}: not empty and not a run directory; choose another output directory")
        if not force:
            raise UserError(f"{path}: a run already exists there; continue it with --resume {path}, "
                            "or replace it with --force")
        shutil.rmtree(path)
    return path


def progress_dict(p: Progress) -> dict[str, Any]:
    return asdict(p)
