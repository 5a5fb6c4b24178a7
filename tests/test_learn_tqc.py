"""TQC (sb3-contrib) as `--algo tqc`: config, train, checkpoint/resume, export to the deploy artifact;
and the `--device` option."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sb3_contrib import TQC

from drl_control.cli import main
from drl_control.deploy.policy import DeployPolicy
from drl_control.learn.algos import resolve_device
from drl_control.learn.checkpoint import latest_checkpoint, read_state
from drl_control.learn.config import ConfigError, resolve_config
from drl_control.learn.export import export_model, export_run
from drl_control.learn.spectral import largest_singular_values
from drl_control.learn.train import Trainer

ENV = "DrlControl/IiwaReach-v0"
SMOKE = ["algorithm.learning_starts=100", "algorithm.buffer_size=5000", "eval.episodes=1", "train.checkpoint_every=100",
         "policy.net_arch=[32,32]", "policy.n_quantiles=5"]


def _config(total: int, *extra: str) -> dict:
    cfg = resolve_config("tqc", ENV, overrides=[*SMOKE, *extra])
    cfg["total_timesteps"] = total
    return cfg


def _observations(model, n: int = 32) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {k: rng.uniform(-1, 1, size=(n, *s.shape)).astype(np.float32)
            for k, s in model.observation_space.spaces.items()}


def test_config_defaults_and_validation() -> None:
    cfg = resolve_config("tqc", "DrlControl/IiwaPush-v0")
    assert cfg["algorithm"]["top_quantiles_to_drop_per_net"] == 2 and cfg["policy"]["n_quantiles"] == 25
    assert cfg["policy"]["net_arch"] == [256, 256, 256] and cfg["her"]["enabled"]
    with pytest.raises(ConfigError, match="algorithm.top_quantiles_to_drop_per_net"):
        resolve_config("tqc", ENV, overrides=["algorithm.top_quantiles_to_drop_per_net=1.5"])
    with pytest.raises(ConfigError, match="policy.n_quantiles"):
        resolve_config("tqc", ENV, overrides=["policy.n_quantiles=0"])


def test_train_resume_export_acts_like_the_model(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = Trainer(_config(200), run)
    assert first.train().timesteps == 200
    assert isinstance(first.model, TQC) and first.model.critic.n_quantiles == 5
    assert read_state(latest_checkpoint(run))["algo"] == "tqc"
    second = Trainer(_config(300), run, resume_from=run)
    second.train()
    assert second.model.num_timesteps == 300 and second.model.replay_buffer.pos == 300
    art = export_run(run, tmp_path / "artifact")
    policy = DeployPolicy.load(art)
    assert policy.algorithm == "tqc"
    obs = _observations(second.model)
    expected, _ = second.model.predict(second.normalizer.normalize_obs(obs), deterministic=True)
    np.testing.assert_allclose(policy.act(obs), expected, atol=1e-5, rtol=0)


def test_spectral_norm_and_export(tmp_path: Path) -> None:
    trainer = Trainer(_config(150, "policy.spectral_norm=both"), tmp_path / "run")
    trainer.train()
    model = trainer.model
    for net in (model.actor, model.critic):
        sig = largest_singular_values(net)
        assert sig and np.all(np.abs(np.array(sig) - 1.0) < 0.05), sig
    art = export_model(model, trainer.normalizer, trainer.cfg, tmp_path / "art")
    obs = _observations(model)
    expected, _ = model.predict(trainer.normalizer.normalize_obs(obs), deterministic=True)
    np.testing.assert_allclose(DeployPolicy.load(art).act(obs), expected, atol=1e-5, rtol=0)


def test_device_option(tmp_path: Path, capsys) -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="train.device"):
        resolve_config("tqc", ENV, overrides=["train.device=tpu"])
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: the refusal of --device cuda cannot be shown here")
    run = tmp_path / "run"
    assert main(["train", "--algo", "tqc", "--env", ENV, "--timesteps", "100", "--out", str(run),
                 "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "device cuda: torch sees no CUDA GPU" in err and len(err.strip().splitlines()) == 1
    assert not run.exists()  # refused before anything was written
