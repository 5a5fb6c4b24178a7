"""Deploy artifact: loads with torch + safetensors only; corrupt, incomplete or mismatched ones are refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

from drl_control.deploy.artifact import FORMAT_VERSION, ArtifactError, read_artifact
from drl_control.deploy.policy import DeployPolicy
from drl_control.learn.algos import build_model, make_env, wrap_normalizer
from drl_control.learn.config import resolve_config
from drl_control.learn.export import export_model

ENV = "DrlControl/IiwaReach-v0"


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    cfg = resolve_config("sac", ENV, overrides=["algorithm.buffer_size=1000"])
    venv = wrap_normalizer(DummyVecEnv([lambda: make_env(ENV)]), cfg)
    venv.reset()
    for _ in range(30):  # non-trivial normalization statistics
        venv.step(np.array([venv.action_space.sample()]))
    model = build_model(cfg, venv)
    out = export_model(model, venv, cfg, tmp_path_factory.mktemp("art") / "policy")
    venv.close()
    return out


@pytest.fixture
def copy(artifact: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "a"
    shutil.copytree(artifact, dst)
    return dst


def _edit(path: Path, fn) -> None:
    meta = json.loads((path / "policy.json").read_text())
    fn(meta)
    (path / "policy.json").write_text(json.dumps(meta))


def test_contents(artifact: Path) -> None:
    assert sorted(p.name for p in artifact.iterdir()) == ["policy.json", "policy.safetensors"]
    meta, tensors = read_artifact(artifact)
    assert meta["format_version"] == FORMAT_VERSION and meta["algorithm"] == "sac" and meta["env_id"] == ENV
    spec = meta["env_spec"]
    assert spec["robot"]["joint_names"] and spec["control_hz"] > 0 and spec["observation_layout"]
    assert meta["observation"]["normalization"]["clip"] == 5.0
    assert set(meta["versions"]) >= {"drl_control", "torch", "stable_baselines3"}
    assert all(t.dtype.is_floating_point for t in tensors.values())


def test_loader_needs_no_sb3(artifact: Path) -> None:
    code = (
        "import sys, numpy as np\n"
        "sys.modules['stable_baselines3'] = None  # any import of SB3 fails\n"
        "from drl_control.deploy.policy import DeployPolicy\n"
        f"p = DeployPolicy.load({str(artifact)!r})\n"
        "obs = {k: np.zeros(n, np.float32) for k, n in zip(p.keys, p.sizes)}\n"
        "a = p.act(obs); assert a.shape == (p.action_dim,) and np.all(np.abs(a) <= 1)\n"
        "assert 'stable_baselines3' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_truncated_safetensors(copy: Path) -> None:
    data = (copy / "policy.safetensors").read_bytes()
    (copy / "policy.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="corrupt or truncated"):
        DeployPolicy.load(copy)


def test_flipped_byte(copy: Path) -> None:
    data = bytearray((copy / "policy.safetensors").read_bytes())
    data[-5] ^= 0xFF
    (copy / "policy.safetensors").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="SHA-256"):
        DeployPolicy.load(copy)


@pytest.mark.parametrize("field", ["env_spec", "network", "observation", "action", "tensors", "format_version"])
def test_missing_json_field(copy: Path, field: str) -> None:
    _edit(copy, lambda m: m.pop(field))
    with pytest.raises(ArtifactError, match=f"missing required field '{field}'"):
        DeployPolicy.load(copy)


def test_missing_file_and_bad_json(copy: Path) -> None:
    (copy / "policy.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        DeployPolicy.load(copy)
    (copy / "policy.json").unlink()
    with pytest.raises(ArtifactError, match="missing policy.json"):
        DeployPolicy.load(copy)


def test_other_format_version(copy: Path) -> None:
    _edit(copy, lambda m: m.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(ArtifactError, match="unsupported format_version"):
        DeployPolicy.load(copy)


def test_wrong_joint_names(artifact: Path) -> None:
    names = DeployPolicy.load(artifact).joint_names
    DeployPolicy.load(artifact, joint_names=names)
    with pytest.raises(ArtifactError, match="artifact is for joints"):
        DeployPolicy.load(artifact, joint_names=[f"lbr_A{i}" for i in range(1, 8)])


def test_wrong_observation_layout(artifact: Path) -> None:
    layout = DeployPolicy.load(artifact).spec["observation_layout"]
    DeployPolicy.load(artifact, observation_layout=layout)
    with pytest.raises(ArtifactError, match="observation layout"):
        DeployPolicy.load(artifact, observation_layout=[["ee_pos", 3], ["object_pos", 3]])


def test_inconsistent_shapes(copy: Path) -> None:
    _edit(copy, lambda m: m["network"]["layers"][0].update({"in": 99}))
    with pytest.raises(ArtifactError, match="takes 99 inputs"):
        DeployPolicy.load(copy)


def test_normalization_applied(artifact: Path) -> None:
    p = DeployPolicy.load(artifact)
    meta, _ = read_artifact(artifact)
    norm = meta["observation"]["normalization"]
    obs = {k: np.full(n, 0.3, np.float32) for k, n in zip(p.keys, p.sizes)}
    x = p.network_input(obs)
    k0 = p.keys[0]
    expected = np.clip((np.float64(np.float32(0.3)) - np.array(norm["mean"][k0])) / (np.sqrt(norm["var"][k0]) + norm["eps"]), -5, 5)
    np.testing.assert_allclose(x[0, : p.sizes[0]], expected, rtol=1e-6, atol=1e-6)
