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
atomically afterwards, so a kill at any moment leaves the previous `LATEST` intact. A directory
that LATEST names is never modified (a second save of one step goes to `step_<N>_<k>`).
state.json lists every other file with its SHA-256; a missing, truncated or corrupt file is
refused with a CheckpointError (a ValueError) naming it, as is anything that does not fit the model.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from drl_control.deploy.artifact import sha256_file
from drl_control.errors import UserError
from drl_control.safe_io import read_json

CHECKPOINT_FORMAT = 1
LATEST = "LATEST"
_BUFFER_ARRAYS = ("actions", "rewards", "dones", "timeouts")
_HER_ARRAYS = ("ep_start", "ep_length")


class CheckpointError(UserError, ValueError):
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
        pos = int(data["pos"])
        if not 0 <= pos <= buffer.buffer_size:
            raise CheckpointError(f"{path}: replay position {pos} outside the buffer of size {buffer.buffer_size}")
        buffer.pos = pos
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


_NAME = re.compile(r"step_(\d{10})(?:_(\d+))?")


def _order(name: str) -> tuple[int, int]:
    m = _NAME.fullmatch(name)
    return (int(m.group(1)), int(m.group(2) or 0)) if m else (-1, -1)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_leftovers(ckpt_root: Path) -> None:
    """Temp dirs of saves that were killed half-way (their process is gone)."""
    for p in ckpt_root.iterdir():
        m = re.fullmatch(r"\.tmp-step_\d+(?:_\d+)?-(\d+)", p.name)
        if m and p.is_dir() and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(p, ignore_errors=True)


def save_checkpoint(run_dir: str | Path, model: Any, normalizer: Any = None, extra: dict[str, Any] | None = None,
                    keep: int = 2) -> Path:
    """Write `checkpoints/step_<N>` atomically, point LATEST at it, keep the newest `keep`.

    A directory LATEST names is never modified or replaced: a second save of the same step
    (periodic + final) goes to `step_<N>_<k>`, so a kill at any moment leaves LATEST complete.
    """
    ckpt_root = Path(run_dir) / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(ckpt_root)
    name = f"step_{model.num_timesteps:010d}"
    k = 0
    while (ckpt_root / name).exists():
        k += 1
        name = f"step_{model.num_timesteps:010d}_{k}"
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
    for f in tmp.iterdir():
        _fsync_file(f)
    state = {
        "format": CHECKPOINT_FORMAT,
        "algo": type(model).__name__.lower(),
        "num_timesteps": int(model.num_timesteps),
        "n_updates": int(getattr(model, "_n_updates", 0)),
        "episode_num": int(getattr(model, "_episode_num", 0)),
        "state_dicts": state_dicts,
        "saved_at": time.time(),
        # every other file with its SHA-256: a truncated, corrupt or missing file is refused on load
        "files": {f.name: sha256_file(f) for f in sorted(tmp.iterdir())},
        **(extra or {}),
    }
    _write_json(tmp / "state.json", state)
    _fsync_file(tmp / "state.json")
    _fsync_dir(tmp)

    final = ckpt_root / name
    os.rename(tmp, final)
    _fsync_dir(ckpt_root)
    atomic_write_text(ckpt_root / LATEST, name + "\n")
    steps = sorted((p for p in ckpt_root.iterdir() if p.is_dir() and _NAME.fullmatch(p.name)),
                   key=lambda p: _order(p.name))
    for stale in steps[:-keep]:
        if stale.name != name:
            shutil.rmtree(stale, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: str | Path) -> Path:
    """The checkpoint LATEST points to (raises CheckpointError naming what is missing)."""
    root = Path(run_dir) / "checkpoints"
    pointer = root / LATEST
    if not pointer.is_file():
        raise CheckpointError(f"{run_dir}: no checkpoint (missing {pointer})")
    try:
        name = pointer.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{pointer}: unreadable ({exc})") from None
    if not _NAME.fullmatch(name):
        raise CheckpointError(f"{pointer}: does not name a checkpoint (got {name[:40]!r})")
    path = root / name
    if not (path / "state.json").is_file():
        raise CheckpointError(f"{run_dir}: LATEST names {path.name}, which is missing or incomplete")
    return path


def read_state(ckpt: Path) -> dict[str, Any]:
    """state.json of a checkpoint, checked for the fields a restore needs."""
    path = Path(ckpt) / "state.json"
    try:
        state = read_json(path)
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or bytes that are not UTF-8
        raise CheckpointError(f"{path}: unreadable or not JSON ({exc})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(state).__name__}")
    for key in ("num_timesteps", "n_updates", "episode_num"):
        if not isinstance(state.get(key), int) or isinstance(state.get(key), bool) or state[key] < 0:
            raise CheckpointError(f"{path}: field {key!r} is missing or not a non-negative integer")
    files = state.get("files", {})
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise CheckpointError(f"{path}: field 'files' is not a mapping of file name to SHA-256")
    return state


def verify_files(ckpt: Path, state: dict[str, Any]) -> None:
    """Every file state.json lists exists and has its recorded SHA-256 (older checkpoints list none)."""
    for name, digest in state.get("files", {}).items():
        path = ckpt / name
        if "/" in name or not path.is_file():
            raise CheckpointError(f"{ckpt}: incomplete checkpoint, {name} is missing")
        if sha256_file(path) != digest:
            raise CheckpointError(f"{ckpt}: {name} is corrupt or truncated (SHA-256 does not match state.json)")


def checked_latest(run_dir: str | Path) -> Path:
    """LATEST of a run, with state.json and every file's SHA-256 checked: a cheap refusal before
    an env or a model is built (`restore_checkpoint` checks again what it loads)."""
    ckpt = latest_checkpoint(run_dir)
    verify_files(ckpt, read_state(ckpt))
    return ckpt


def restore_checkpoint(model: Any, ckpt: str | Path, normalizer: Any = None, replay: bool = True) -> dict[str, Any]:
    """Load a checkpoint into a freshly built `model` (and normalizer); returns state.json."""
    ckpt = Path(ckpt)
    state = read_state(ckpt)
    verify_files(ckpt, state)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{ckpt}: checkpoint format {state.get('format')} (expected {CHECKPOINT_FORMAT})")
    algo = type(model).__name__.lower()
    if state.get("algo") != algo:
        raise CheckpointError(f"{ckpt}: checkpoint is for {state.get('algo')}, model is {algo}")
    try:
        params: dict[str, Any] = {"policy": load_file(ckpt / "policy.safetensors")}
        # map_location: a run trained on a GPU resumes or evaluates on a CPU-only machine
        params.update(torch.load(ckpt / "optimizers.pt", weights_only=True, map_location="cpu"))
        variables = load_file(ckpt / "variables.safetensors")
    except (OSError, RuntimeError, ValueError, EOFError, SafetensorError, pickle.UnpicklingError) as exc:
        # weights_only=True refuses anything but tensors/containers: a file that tries to run code lands here
        raise CheckpointError(f"{ckpt}: unreadable checkpoint: {exc}") from exc
    try:
        model.set_parameters(params, exact_match=True)
        for var, value in variables.items():
            # in place: optimizers hold references to these tensors
            getattr(model, var).data.copy_(value)
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{ckpt}: weights do not fit the model built from the config: {exc}") from exc
    model.num_timesteps = int(state["num_timesteps"])
    model._n_updates = int(state["n_updates"])
    model._episode_num = int(state["episode_num"])
    if replay and getattr(model, "replay_buffer", None) is not None:
        path = ckpt / "replay_buffer.npz"
        if path.is_file():
            try:
                _restore_replay(model.replay_buffer, path)
            except CheckpointError:
                raise
            except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError, EOFError,
                    zipfile.BadZipFile) as exc:
                # allow_pickle=False: a pickle (or object array) posing as .npz lands here, unexecuted
                raise CheckpointError(f"{path}: unreadable or does not fit the replay buffer: {exc}") from None
        elif "files" in state:
            raise CheckpointError(f"{ckpt}: incomplete checkpoint, replay_buffer.npz is missing")
    if normalizer is not None:
        path = ckpt / "normalizer.json"
        if not path.is_file():
            raise CheckpointError(f"{ckpt}: normalization is enabled but normalizer.json is missing")
        try:
            normalizer.load_state_dict(read_json(path))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{path}: unreadable or does not fit the observation normalizer: {exc}") from None
    return state
