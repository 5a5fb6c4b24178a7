"""Checkpoints that load without executing code, written atomically.

SB3's `save()`/`load()` pickle the whole algorithm object; loading such a file runs arbitrary
code. A checkpoint here is a directory of plain data instead:
  policy.safetensors   every network weight (online and target nets, spectral-norm vectors)
  variables.safetensors  extra tensors (SAC's log_ent_coef)
  optimizers.pt        optimizer state dicts, read back with torch.load(weights_only=True)
  replay_buffer.npz    replay arrays, read back with np.load(allow_pickle=False)
  normalizer.json      running statistics
  state.json           counters
Resume = build a fresh model from the run's saved config, then `restore_checkpoint`.
A checkpoint is written into a temporary directory, fsynced, then renamed; `LATEST` is replaced
atomically afterwards, so a kill at any moment leaves the previous `LATEST` intact.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

CHECKPOINT_FORMAT = 1
LATEST = "LATEST"
_BUFFER_ARRAYS = ("actions", "rewards", "dones", "timeouts")
_HER_ARRAYS = ("ep_start", "ep_length")


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete or does not fit the model."""


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1))


def atomic_write_text(path: Path, text: str) -> None:
    """Replace `path` with `text` so readers see the old or the new content, never a mix."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share storage
    return {k: v.detach().cpu().clone().contiguous() for k, v in state.items()}


def _replay_arrays(buffer: Any) -> dict[str, np.ndarray]:
    n = buffer.buffer_size if buffer.full else buffer.pos
    arrays: dict[str, np.ndarray] = {
        "pos": np.asarray(buffer.pos), "full": np.asarray(buffer.full), "buffer_size": np.asarray(buffer.buffer_size),
        "n_envs": np.asarray(buffer.n_envs),
    }
    for name in ("observations", "next_observations"):
        value = getattr(buffer, name, None)
        if isinstance(value, dict):
            for key, arr in value.items():
                arrays[f"{name}/{key}"] = arr[:n]
        elif value is not None:
            arrays[name] = value[:n]
    for name in _BUFFER_ARRAYS + _HER_ARRAYS:
        if hasattr(buffer, name):
            arrays[name] = getattr(buffer, name)[:n]
    if hasattr(buffer, "_current_ep_start"):
        arrays["_current_ep_start"] = buffer._current_ep_start
    return arrays


def _restore_replay(buffer: Any, path: Path) -> None:
    with np.load(path, allow_pickle=False) as data:
        if int(data["buffer_size"]) != buffer.buffer_size or int(data["n_envs"]) != buffer.n_envs:
            raise CheckpointError(
                f"{path}: replay buffer of size {int(data['buffer_size'])} x {int(data['n_envs'])} envs does not fit "
                f"the model's {buffer.buffer_size} x {buffer.n_envs} (change algorithm.buffer_size / --n-envs back)"
            )
        buffer.pos = int(data["pos"])
        buffer.full = bool(data["full"])
        for name in data.files:
            if name in ("pos", "full", "buffer_size", "n_envs"):
                continue
            if "/" in name:
                attr, key = name.split("/", 1)
                target = getattr(buffer, attr)[key]
            elif name == "_current_ep_start":
                buffer._current_ep_start = data[name].copy()
                continue
            else:
                target = getattr(buffer, name)
            arr = data[name]
            target[: len(arr)] = arr
    if hasattr(buffer, "truncate_last_trajectory"):
        # HER: the interrupted episode never finished; close it so relabelling stays inside it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            buffer.truncate_last_trajectory()


def save_checkpoint(run_dir: str | Path, model: Any, normalizer: Any = None, extra: dict[str, Any] | None = None,
                    keep: int = 2) -> Path:
    """Write `checkpoints/step_<N>` atomically, point LATEST at it, keep the newest `keep`."""
    ckpt_root = Path(run_dir) / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    name = f"step_{model.num_timesteps:010d}"
    tmp = ckpt_root / f".tmp-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()

    state_dicts, variables = model._get_torch_save_params()
    params = model.get_parameters()
    save_file(_tensors(params["policy"]), tmp / "policy.safetensors")
    opt_states = {k: v for k, v in params.items() if k != "policy"}
    torch.save(opt_states, tmp / "optimizers.pt")
    var_tensors = {}
    for var in variables:
        value = getattr(model, var, None)
        if isinstance(value, torch.Tensor):
            var_tensors[var] = value
    save_file(_tensors(var_tensors), tmp / "variables.safetensors")
    if getattr(model, "replay_buffer", None) is not None:
        np.savez(tmp / "replay_buffer.npz", **_replay_arrays(model.replay_buffer))
    if normalizer is not None:
        _write_json(tmp / "normalizer.json", normalizer.state_dict())
    state = {
        "format": CHECKPOINT_FORMAT,
        "algo": type(model).__name__.lower(),
        "num_timesteps": int(model.num_timesteps),
        "n_updates": int(getattr(model, "_n_updates", 0)),
        "episode_num": int(getattr(model, "_episode_num", 0)),
        "state_dicts": state_dicts,
        "saved_at": time.time(),
        **(extra or {}),
    }
    _write_json(tmp / "state.json", state)
    for f in tmp.iterdir():
        _fsync_file(f)
    _fsync_dir(tmp)

    final = ckpt_root / name
    old = None
    if final.exists():  # same step saved twice (periodic + final): replace it
        old = ckpt_root / f".old-{name}-{os.getpid()}"
        os.rename(final, old)
    os.rename(tmp, final)
    _fsync_dir(ckpt_root)
    atomic_write_text(ckpt_root / LATEST, name + "\n")
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    for stale in sorted(p for p in ckpt_root.iterdir() if p.is_dir() and p.name.startswith("step_"))[:-keep]:
        if stale.name != name:
            shutil.rmtree(stale, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: str | Path) -> Path:
    """The checkpoint LATEST points to (raises CheckpointError naming what is missing)."""
    root = Path(run_dir) / "checkpoints"
    pointer = root / LATEST
    if not pointer.is_file():
        raise CheckpointError(f"{run_dir}: no checkpoint (missing {pointer})")
    path = root / pointer.read_text().strip()
    if not (path / "state.json").is_file():
        raise CheckpointError(f"{run_dir}: LATEST names {path.name}, which is missing or incomplete")
    return path


def read_state(ckpt: Path) -> dict[str, Any]:
    return json.loads((ckpt / "state.json").read_text())


def restore_checkpoint(model: Any, ckpt: str | Path, normalizer: Any = None, replay: bool = True) -> dict[str, Any]:
    """Load a checkpoint into a freshly built `model` (and normalizer); returns state.json."""
    ckpt = Path(ckpt)
    state = read_state(ckpt)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{ckpt}: checkpoint format {state.get('format')} (expected {CHECKPOINT_FORMAT})")
    algo = type(model).__name__.lower()
    if state.get("algo") != algo:
        raise CheckpointError(f"{ckpt}: checkpoint is for {state.get('algo')}, model is {algo}")
    try:
        params: dict[str, Any] = {"policy": load_file(ckpt / "policy.safetensors")}
        params.update(torch.load(ckpt / "optimizers.pt", weights_only=True))
        variables = load_file(ckpt / "variables.safetensors")
    except (OSError, RuntimeError, pickle.UnpicklingError) as exc:
        # weights_only=True refuses anything but tensors/containers: a file that tries to run code lands here
        raise CheckpointError(f"{ckpt}: unreadable checkpoint: {exc}") from exc
    try:
        model.set_parameters(params, exact_match=True)
    except (RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{ckpt}: weights do not fit the model built from the config: {exc}") from exc
    for var, value in variables.items():
        # in place: optimizers hold references to these tensors
        getattr(model, var).data.copy_(value)
    model.num_timesteps = int(state["num_timesteps"])
    model._n_updates = int(state["n_updates"])
    model._episode_num = int(state["episode_num"])
    if replay and getattr(model, "replay_buffer", None) is not None and (ckpt / "replay_buffer.npz").is_file():
        _restore_replay(model.replay_buffer, ckpt / "replay_buffer.npz")
    if normalizer is not None:
        path = ckpt / "normalizer.json"
        if not path.is_file():
            raise CheckpointError(f"{ckpt}: normalization is enabled but normalizer.json is missing")
        normalizer.load_state_dict(json.loads(path.read_text()))
    return state
