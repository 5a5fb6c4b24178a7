"""The deploy artifact (contract): a directory with `policy.safetensors` and `policy.json`.

Only torch, safetensors, json and gymnasium's registry are needed to read it: no SB3, no pickle,
so loading an artifact can never execute code. `read_artifact` refuses anything it cannot fully
trust with an `ArtifactError` (a UserError and ValueError) that names the problem: unparsable,
incomplete, oversized or too deeply nested JSON (drl_control.safe_io), an unknown `format_version`,
an `env_id` that is not a registered id (the `module:Id` form, which would import a module, is
refused), a safetensors file that is truncated or does not match its recorded SHA-256, tensors
whose shapes disagree with the declared network or that are not finite floating point (bool and
integer weights are refused), a tensor file over MAX_TENSOR_BYTES (refused before it is read), or
a robot / observation layout other than the caller expects.

policy.json (format_version 1):
  format_version, kind="drl_control.policy", algorithm, env_id
  env_spec      the env's deploy_spec() as-is (control_hz, observation_layout, action scale,
                robot joint names/limits, tool, ...)
  observation   {keys: [dict keys in network input order], sizes: [...],
                 normalization: null | {eps, clip, mean: {key: [...]}, var: {key: [...]}}}
                 normalized = clip((x − mean)/(sqrt(var) + eps), ±clip), float64 math → float32
  network       {layers: [{weight, bias, in, out, activation}], output: "tanh"|"identity"}
  action        {dim, low, high, postprocess: "rescale"|"clip"}
                 rescale: low + (a + 1)/2·(high − low) after the tanh output; clip: clip(a, low, high)
  training      {timesteps, seed, config, metrics}
  versions      {drl_control, torch, stable_baselines3, ...}
  tensors       {file, sha256, shapes: {name: [...]}}
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from drl_control.errors import UserError
from drl_control.safe_io import DataError, read_json
from drl_control.sim.registration import EnvIdError, check_env_id

FORMAT_VERSION = 1
KIND = "drl_control.policy"
JSON_NAME = "policy.json"
TENSORS_NAME = "policy.safetensors"
ACTIVATIONS = ("relu", "tanh", "elu", "leaky_relu", "gelu", "silu", None)

REQUIRED: dict[str, type | tuple[type, ...]] = {
    "format_version": int,
    "kind": str,
    "algorithm": str,
    "env_id": str,
    "env_spec": dict,
    "observation": dict,
    "network": dict,
    "action": dict,
    "training": dict,
    "versions": dict,
    "tensors": dict,
}
# The largest policy.safetensors read (checked before hashing it): the biggest network the config
# bounds allow for this package's tasks is a few MB; a GB-sized file only blocks its reader.
MAX_TENSOR_BYTES = 256 << 20
REQUIRED_SPEC = ("control_hz", "observation_layout", "goal_layout", "action", "robot")


class ArtifactError(UserError, ValueError):
    """A deploy artifact is corrupt, incomplete, of another format, or for another robot/layout."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_artifact(out_dir: str | Path, meta: dict[str, Any], tensors: Mapping[str, Any]) -> Path:
    """Write the artifact atomically (temp dir, fsync, rename); fills meta['tensors']."""
    from safetensors.torch import save_file  # torch: imported by the functions that need it

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    save_file(tensors, tmp / TENSORS_NAME, metadata={"format_version": str(FORMAT_VERSION)})
    meta = dict(meta)
    meta["tensors"] = {
        "file": TENSORS_NAME,
        "sha256": sha256_file(tmp / TENSORS_NAME),
        "shapes": {k: list(v.shape) for k, v in tensors.items()},
    }
    (tmp / JSON_NAME).write_text(json.dumps(meta, indent=1))
    for name in (TENSORS_NAME, JSON_NAME):
        with open(tmp / name, "rb") as f:
            os.fsync(f.fileno())
    if out.exists() and not out.is_dir():
        shutil.rmtree(tmp)
        raise ArtifactError(f"{out}: exists and is not a directory; refusing to overwrite")
    if out.exists():
        if not (out / JSON_NAME).is_file() and any(out.iterdir()):
            shutil.rmtree(tmp)
            raise ArtifactError(f"{out}: exists and is not an artifact directory; refusing to overwrite")
        shutil.rmtree(out)
    os.rename(tmp, out)
    return out


def _require(cond: bool, path: Path, message: str) -> None:
    if not cond:
        raise ArtifactError(f"{path}: {message}")


def validate_meta(meta: Any, path: Path) -> None:
    """Schema and internal consistency of policy.json."""
    _require(isinstance(meta, dict), path, "policy.json is not a JSON object")
    if "format_version" in meta and meta["format_version"] != FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: unsupported format_version {meta['format_version']!r} (this drl_control reads {FORMAT_VERSION})"
        )
    for key, typ in REQUIRED.items():
        _require(key in meta, path, f"policy.json is missing required field {key!r}")
        _require(isinstance(meta[key], typ), path, f"policy.json field {key!r} has the wrong type")
    _require(meta["kind"] == KIND, path, f"policy.json kind is {meta['kind']!r}, expected {KIND!r}")
    try:
        check_env_id(meta["env_id"])
    except EnvIdError as exc:
        raise ArtifactError(f"{path}: policy.json env_id: {exc}") from None
    spec = meta["env_spec"]
    for key in REQUIRED_SPEC:
        _require(key in spec, path, f"policy.json env_spec is missing required field {key!r}")
    obs = meta["observation"]
    for key in ("keys", "sizes", "normalization"):
        _require(key in obs, path, f"policy.json observation is missing required field {key!r}")
    _require(len(obs["keys"]) == len(obs["sizes"]), path, "observation keys and sizes differ in length")
    layout_size = sum(int(s) for _, s in spec["observation_layout"])
    sizes = dict(zip(obs["keys"], obs["sizes"], strict=True))
    if "observation" in sizes:
        _require(sizes["observation"] == layout_size, path,
                 f"observation size {sizes['observation']} does not match env_spec observation_layout ({layout_size})")
    norm = obs["normalization"]
    if norm is not None:
        for key in ("eps", "clip", "mean", "var"):
            _require(key in norm, path, f"policy.json observation.normalization is missing {key!r}")
        for k, n in sizes.items():
            _require(len(norm["mean"].get(k, [])) == n and len(norm["var"].get(k, [])) == n, path,
                     f"normalization statistics for {k!r} do not have size {n}")
    net = meta["network"]
    _require(isinstance(net.get("layers"), list) and len(net["layers"]) > 0, path, "network.layers is missing or empty")
    _require(net.get("output") in ("tanh", "identity"), path, f"network.output {net.get('output')!r} is unknown")
    act = meta["action"]
    for key in ("dim", "low", "high", "postprocess"):
        _require(key in act, path, f"policy.json action is missing required field {key!r}")
    _require(act["postprocess"] in ("rescale", "clip"), path, f"action.postprocess {act['postprocess']!r} is unknown")
    _require(len(act["low"]) == act["dim"] == len(act["high"]), path, "action low/high do not match action dim")
    expected_in = sum(int(s) for s in obs["sizes"])
    shapes = meta["tensors"].get("shapes", {})
    for i, layer in enumerate(net["layers"]):
        for key in ("weight", "bias", "in", "out", "activation"):
            _require(key in layer, path, f"network.layers[{i}] is missing {key!r}")
        _require(layer["activation"] in ACTIVATIONS, path, f"network.layers[{i}] activation {layer['activation']!r}")
        _require(layer["in"] == expected_in, path, f"network.layers[{i}] takes {layer['in']} inputs, expected {expected_in}")
        _require(shapes.get(layer["weight"]) == [layer["out"], layer["in"]], path,
                 f"tensor {layer['weight']!r} shape {shapes.get(layer['weight'])} != [{layer['out']}, {layer['in']}]")
        _require(shapes.get(layer["bias"]) == [layer["out"]], path, f"tensor {layer['bias']!r} has the wrong shape")
        expected_in = layer["out"]
    _require(expected_in == act["dim"], path, f"network outputs {expected_in} values but action dim is {act['dim']}")


def check_expectations(
    meta: Mapping[str, Any],
    path: Path,
    *,
    joint_names: Sequence[str] | None = None,
    observation_layout: Sequence[Sequence[Any]] | None = None,
    env_id: str | None = None,
) -> None:
    """Refuse an artifact trained for another robot, observation layout or env."""
    spec = meta["env_spec"]
    if joint_names is not None:
        have = list(spec["robot"].get("joint_names", []))
        if have != list(joint_names):
            raise ArtifactError(f"{path}: artifact is for joints {have}, this robot has {list(joint_names)}")
    if observation_layout is not None:
        have_layout = [[str(n), int(s)] for n, s in spec["observation_layout"]]
        want = [[str(n), int(s)] for n, s in observation_layout]
        if have_layout != want:
            raise ArtifactError(f"{path}: artifact observation layout {have_layout} differs from expected {want}")
    if env_id is not None and meta["env_id"] != env_id:
        raise ArtifactError(f"{path}: artifact is for env {meta['env_id']!r}, expected {env_id!r}")


def read_artifact(
    path: str | Path,
    *,
    joint_names: Sequence[str] | None = None,
    observation_layout: Sequence[Sequence[Any]] | None = None,
    env_id: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(meta, tensors) of a verified artifact; raises ArtifactError naming what is wrong."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_dir():
        raise ArtifactError(f"{path}: not an artifact directory")
    for name in (JSON_NAME, TENSORS_NAME):
        if not (path / name).is_file():
            raise ArtifactError(f"{path}: incomplete artifact, missing {name}")
    try:
        meta = read_json(path / JSON_NAME)
    except DataError as exc:
        raise ArtifactError(f"{path}: policy.json refused: {exc}") from None
    try:
        validate_meta(meta, path)
    except ArtifactError:
        raise
    except (TypeError, AttributeError, KeyError, ValueError, IndexError) as exc:
        # a field of the wrong shape deep inside policy.json (a list where a mapping belongs, ...)
        raise ArtifactError(f"{path}: policy.json is malformed ({type(exc).__name__}: {exc})") from None
    check_expectations(meta, path, joint_names=joint_names, observation_layout=observation_layout, env_id=env_id)
    size = (path / TENSORS_NAME).stat().st_size
    if size > MAX_TENSOR_BYTES:
        raise ArtifactError(f"{path}: {TENSORS_NAME} is {size} bytes, larger than the {MAX_TENSOR_BYTES} accepted")
    digest = sha256_file(path / TENSORS_NAME)
    if digest != meta["tensors"].get("sha256"):
        raise ArtifactError(f"{path}: {TENSORS_NAME} is corrupt or truncated (SHA-256 does not match policy.json)")
    try:
        tensors = load_file(path / TENSORS_NAME)
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise ArtifactError(f"{path}: {TENSORS_NAME} is unreadable ({exc})") from None
    shapes = {k: list(v.shape) for k, v in tensors.items()}
    if shapes != meta["tensors"]["shapes"]:
        raise ArtifactError(f"{path}: tensors {sorted(shapes)} do not match policy.json's declared tensors")
    for name, tensor in tensors.items():
        if not tensor.is_floating_point():
            raise ArtifactError(f"{path}: tensor {name!r} is {tensor.dtype}, expected floating point weights")
        if not bool(tensor.isfinite().all()):
            raise ArtifactError(f"{path}: tensor {name!r} has non-finite values")
    return meta, tensors
