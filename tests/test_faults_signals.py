"""Issue 5, faults A: real signals to real processes.

- SIGINT / SIGTERM to a running `drl-control train` (also --n-envs 2, also Ctrl-C to the whole
  process group as a terminal sends it): it checkpoints (model, replay buffer, normalizer,
  counters) and exits 0; `--resume` continues from exactly that step count and buffer size.
- SIGKILL at random moments while checkpoints of a sizable replay buffer are being saved:
  LATEST always names a complete checkpoint that loads and is self-consistent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from drl_control.cli import main
from drl_control.learn.checkpoint import latest_checkpoint, read_state

ENV = "DrlControl/IiwaReach-v0"
DRL = str(Path(sys.executable).with_name("drl-control"))
FAST = ["algorithm.learning_starts=200", "algorithm.buffer_size=20000", "train.checkpoint_every=50",
        "eval.episodes=1"]


def _buffer_pos(ckpt: Path) -> int:
    with np.load(ckpt / "replay_buffer.npz", allow_pickle=False) as data:
        return int(data["pos"])


def _start_train(run: Path, n_envs: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [DRL, "train", "--algo", "sac", "--env", ENV, "--timesteps", "1000000", "--seed", "3", "--out", str(run),
         "--n-envs", str(n_envs), *FAST],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )


def _wait_training(proc: subprocess.Popen, run: Path, timeout: float = 90.0) -> None:
    """Until the first periodic checkpoint exists: the training loop is running."""
    deadline = time.monotonic() + timeout
    while not (run / "checkpoints" / "LATEST").is_file():
        if proc.poll() is not None:
            raise AssertionError(f"train exited early ({proc.returncode}): {proc.communicate()[1][-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("training did not reach its first checkpoint")
        time.sleep(0.1)
    time.sleep(0.3)  # well inside the loop, past the first checkpoint


@pytest.mark.parametrize(
    ("sig", "n_envs", "group"),
    [
        (signal.SIGINT, 1, False),
        (signal.SIGTERM, 2, False),
        # Ctrl-C in a terminal: SIGINT to every process of the group (the SubprocVecEnv workers too)
        pytest.param(signal.SIGINT, 2, True, marks=pytest.mark.slow),
    ],
    ids=["sigint", "sigterm-2envs", "ctrl-c-group-2envs"],
)
def test_signal_checkpoints_exits_130_and_resume_continues(tmp_path: Path, sig: int, n_envs: int, group: bool) -> None:
    run = tmp_path / "run"
    proc = _start_train(run, n_envs)
    _wait_training(proc, run)
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert proc.returncode == 130, err[-3000:]  # saved but not finished: `train && eval` stops (issue 15)
    assert "Traceback" not in err, err[-3000:]
    assert f"checkpoint saved in {run}" in out and f"--resume {run}" in out
    ckpt = latest_checkpoint(run)
    state = read_state(ckpt)
    steps = state["num_timesteps"]
    assert steps >= 50
    for name in ("policy.safetensors", "optimizers.pt", "variables.safetensors", "replay_buffer.npz",
                 "normalizer.json", "state.json"):
        assert (ckpt / name).is_file(), name
    # counters and buffer agree: every counted step is in the buffer (none lost to the stop)
    assert _buffer_pos(ckpt) * n_envs == steps
    assert not (run / "eval.json").exists()  # a stopped run is not evaluated

    # resume (in-process: same code path as the CLI) for 30 more steps per env
    target = steps + 30 * n_envs
    assert main(["train", "--resume", str(run), "--timesteps", str(target), "train.checkpoint_every=100000"]) == 0
    resumed = latest_checkpoint(run)
    assert read_state(resumed)["num_timesteps"] == target
    assert _buffer_pos(resumed) == _buffer_pos(ckpt) + 30  # continued from exactly that buffer
    assert json.loads((run / "eval.json").read_text())["timesteps"] == target


# --- SIGKILL during checkpoint saves ---------------------------------------------------------------

_SAVER = textwrap.dedent(
    """
    import json, os, random, signal, sys, time
    import numpy as np, torch
    torch.set_num_threads(1)
    from stable_baselines3.common.vec_env import DummyVecEnv
    from drl_control.learn.algos import build_model, make_env, wrap_normalizer
    from drl_control.learn.checkpoint import latest_checkpoint, restore_checkpoint, save_checkpoint
    from drl_control.learn.config import resolve_config

    run, kills, fill, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    cfg = resolve_config("sac", "DrlControl/IiwaReach-v0", overrides=[f"algorithm.buffer_size={fill + 1000}"])
    venv = wrap_normalizer(DummyVecEnv([lambda: make_env(cfg["env_id"])]), cfg)
    model = build_model(cfg, venv)
    buf = model.replay_buffer
    gen = np.random.default_rng(seed)
    for key in buf.observations:
        buf.observations[key][:fill] = gen.standard_normal(buf.observations[key][:fill].shape)
        buf.next_observations[key][:fill] = gen.standard_normal(buf.next_observations[key][:fill].shape)
    buf.actions[:fill] = gen.uniform(-1, 1, buf.actions[:fill].shape)
    buf.ep_start[:fill] = (np.arange(fill) // 50 * 50)[:, None]
    buf.ep_length[:fill] = 50
    buf.pos = fill

    def stamp(step):
        # the counter is written into the weights, the buffer and the normalizer: a restored
        # checkpoint must carry the same number in all of them and in state.json
        model.num_timesteps = step
        buf.rewards[0, 0] = step
        with torch.no_grad():
            next(model.policy.parameters()).view(-1)[0] = float(step)
        venv.obs_rms["observation"].count = float(step)

    step = 1
    stamp(step)
    t0 = time.perf_counter()
    save_checkpoint(run, model, venv)
    save_s = time.perf_counter() - t0
    mid_save = repeats = 0
    for i in range(kills):
        step += 1000
        pid = os.fork()
        if pid == 0:  # child: save forever (every third save repeats a step: step_N_k names)
            k = 0
            while True:
                k += 1
                stamp(step + (k // 3))
                save_checkpoint(run, model, venv)
        time.sleep(rng.uniform(0.0, 2.5 * save_s))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        root = os.path.join(run, "checkpoints")
        mid_save += any(n.startswith(".tmp-") and n.endswith(f"-{pid}") for n in os.listdir(root))
        repeats += any("_" in n[len("step_"):] for n in os.listdir(root))
        ckpt = latest_checkpoint(run)
        state = restore_checkpoint(model, ckpt, venv)
        n = state["num_timesteps"]
        assert model.replay_buffer.pos == fill, model.replay_buffer.pos
        assert buf.rewards[0, 0] == n, (buf.rewards[0, 0], n)
        assert next(model.policy.parameters()).view(-1)[0].item() == float(n)
        assert venv.obs_rms["observation"].count == float(n)
        step = max(step, n)
    size_mb = os.path.getsize(os.path.join(str(latest_checkpoint(run)), "replay_buffer.npz")) / 1e6
    print(json.dumps({"kills": kills, "mid_save": mid_save, "repeat_names_seen": repeats, "save_s": save_s,
                      "buffer_mb": size_mb}))
    """
)


def _sigkill_saves(tmp_path: Path, kills: int, fill: int, seed: int) -> dict:
    script = tmp_path / "saver.py"
    script.write_text(_SAVER)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "run"), str(kills), str(fill), str(seed)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    print(report)
    return report


def test_sigkill_during_checkpoint_saves_never_corrupts_latest(tmp_path: Path) -> None:
    report = _sigkill_saves(tmp_path, kills=20, fill=100_000, seed=0)
    assert report["kills"] == 20 and report["buffer_mb"] > 5
    assert report["mid_save"] >= 5  # the kills really landed inside saves


@pytest.mark.slow
def test_sigkill_during_checkpoint_saves_many(tmp_path: Path) -> None:
    report = _sigkill_saves(tmp_path, kills=200, fill=200_000, seed=1)
    assert report["mid_save"] >= 50
