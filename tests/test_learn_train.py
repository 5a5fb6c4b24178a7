"""Each algorithm end to end on the real env: train → checkpoint → resume → export → load → same actions."""

from __future__ import annotations

import hashlib
import json
import pickle
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

from drl_control.deploy.policy import DeployPolicy
from drl_control.learn.algos import build_model, make_env, wrap_normalizer
from drl_control.learn.checkpoint import CheckpointError, latest_checkpoint, read_state, restore_checkpoint
from drl_control.learn.config import resolve_config
from drl_control.learn.evaluate import ModelActor
from drl_control.learn.export import export_model, export_run
from drl_control.learn.spectral import largest_singular_values, spectral_normalized_layers
from drl_control.learn.train import Trainer

ENV = "DrlControl/IiwaReach-v0"
SMOKE = {
    "sac": ["algorithm.learning_starts=100", "algorithm.buffer_size=5000"],
    "td3": ["algorithm.learning_starts=100", "algorithm.buffer_size=5000"],
    "ddpg": ["algorithm.learning_starts=100", "algorithm.buffer_size=5000", "her.goal_selection_strategy=final"],
    "ppo": ["algorithm.n_steps=100", "algorithm.batch_size=50", "algorithm.n_epochs=2"],
}


def smoke_config(algo: str, total: int, *extra: str) -> dict:
    cfg = resolve_config(algo, ENV, overrides=[*SMOKE[algo], "eval.episodes=1", "train.checkpoint_every=100", *extra])
    cfg["total_timesteps"] = total
    return cfg


def env_observations(n: int = 60) -> dict[str, np.ndarray]:
    env = make_env(ENV)
    obs, _ = env.reset(seed=123)
    rows = []
    for _ in range(n):
        rows.append(obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


@pytest.mark.parametrize("algo", ["sac", "td3", "ddpg", "ppo"])
def test_train_resume_export_roundtrip(algo: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = Trainer(smoke_config(algo, 200), run)
    res = first.train()
    assert not res.cancelled and res.timesteps == 200
    for name in ("config.yaml", "episodes.csv", "learning_curve.png", "eval.json"):
        assert (run / name).is_file(), name
    assert any((run / "tb").rglob("events.out.tfevents*"))
    assert json.loads((run / "eval.json").read_text())["episodes"] == 1
    ckpt = latest_checkpoint(run)
    assert read_state(ckpt)["num_timesteps"] == 200
    saved_pos = first.model.replay_buffer.pos if algo != "ppo" else None

    # fresh model from the saved config + checkpoint: counters and replay buffer come back
    venv = wrap_normalizer(DummyVecEnv([lambda: make_env(ENV)]), first.cfg)
    fresh = build_model(first.cfg, venv)
    restore_checkpoint(fresh, ckpt, venv)
    assert fresh.num_timesteps == 200
    if algo != "ppo":
        assert fresh.replay_buffer.pos == saved_pos == 200
        np.testing.assert_array_equal(fresh.replay_buffer.actions[:200], first.model.replay_buffer.actions[:200])
    obs = env_observations()
    np.testing.assert_allclose(ModelActor(fresh, venv)(_row(obs, 7)), ModelActor(first.model, first.normalizer)(_row(obs, 7)),
                               atol=1e-6)
    venv.close()

    second = Trainer(smoke_config(algo, 300), run, resume_from=run)
    res2 = second.train()
    assert res2.timesteps == 300 and second.model.num_timesteps == 300
    if algo != "ppo":
        assert second.model.replay_buffer.pos == 300  # 200 restored + 100 new
    rows = (run / "episodes.csv").read_text().splitlines()
    assert rows[0].startswith("env_step") and int(rows[-1].split(",")[0]) > 200

    art = export_run(run, tmp_path / "artifact")
    policy = DeployPolicy.load(art, joint_names=_joint_names(), env_id=ENV)
    normed = second.normalizer.normalize_obs(obs)
    expected, _ = second.model.predict(normed, deterministic=True)
    np.testing.assert_allclose(policy.act(obs), expected, atol=1e-5, rtol=0)
    for i in (0, 30):  # single observations too
        np.testing.assert_allclose(policy.act(_row(obs, i)), expected[i], atol=1e-5, rtol=0)
    assert policy.algorithm == algo and policy.control_hz > 0


def _row(obs: dict, i: int) -> dict:
    return {k: v[i] for k, v in obs.items()}


def _joint_names() -> list[str]:
    env = make_env(ENV)
    names = env.unwrapped.deploy_spec()["robot"]["joint_names"]
    env.close()
    return names


@pytest.mark.parametrize(("algo", "nets"), [("sac", ("actor", "critic", "critic_target")),
                                            ("td3", ("actor", "actor_target", "critic", "critic_target")),
                                            ("ppo", ("policy",))])
def test_spectral_norm_keeps_unit_sigma_after_training(algo: str, nets: tuple, tmp_path: Path) -> None:
    extra = ["policy.spectral_norm=both"]
    trainer = Trainer(smoke_config(algo, 400, *extra), tmp_path / "run")
    trainer.train()
    model = trainer.model
    for name in nets:
        net = model.policy if name == "policy" else getattr(model, name)
        layers = spectral_normalized_layers(net)
        assert layers, f"{name} has no spectral-normalized layers"
        sig = largest_singular_values(net)
        assert np.all(np.abs(np.array(sig) - 1.0) < 0.05), (name, sig)
    # optimizers own the parametrized originals, so training moved them
    if algo != "ppo":
        opt_params = {id(p) for g in model.actor.optimizer.param_groups for p in g["params"]}
        for layer in spectral_normalized_layers(model.actor):
            assert id(layer.parametrizations.weight.original) in opt_params
        # target nets follow the online nets (polyak on originals; σ of their own weights, above)
        online = spectral_normalized_layers(model.critic)[0]
        target = spectral_normalized_layers(model.critic_target)[0]
        assert not torch.equal(online.parametrizations.weight.original, target.parametrizations.weight.original)
    # the exported artifact still reproduces the spectral-normalized policy
    art = export_model(model, trainer.normalizer, trainer.cfg, tmp_path / "art")
    obs = env_observations(20)
    expected, _ = model.predict(trainer.normalizer.normalize_obs(obs), deterministic=True)
    np.testing.assert_allclose(DeployPolicy.load(art).act(obs), expected, atol=1e-5, rtol=0)


def test_cancel_checkpoints_and_stops(tmp_path: Path) -> None:
    cancel = threading.Event()
    seen = []

    def on_progress(p) -> None:
        seen.append(p.timesteps)
        if p.timesteps >= 150:
            cancel.set()

    cfg = smoke_config("sac", 10_000, "train.progress_every=50")
    res = Trainer(cfg, tmp_path / "run", on_progress=on_progress, cancel=cancel).train()
    assert res.cancelled and 150 <= res.timesteps < 300
    assert read_state(latest_checkpoint(tmp_path / "run"))["num_timesteps"] == res.timesteps
    assert seen and seen[-1] == res.timesteps
    assert not (tmp_path / "run" / "eval.json").exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_checkpoint_loading_never_unpickles_code(tmp_path: Path) -> None:
    run = tmp_path / "run"
    trainer = Trainer(smoke_config("sac", 120), run)
    trainer.train()
    ckpt = latest_checkpoint(run)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (ckpt / "optimizers.pt").write_bytes(pickle.dumps({"actor.optimizer": Evil()}))
    # an attacker can rewrite state.json's SHA-256 too: the loader itself must refuse the pickle
    state = read_state(ckpt)
    state["files"]["optimizers.pt"] = hashlib.sha256((ckpt / "optimizers.pt").read_bytes()).hexdigest()
    (ckpt / "state.json").write_text(json.dumps(state))
    venv = wrap_normalizer(DummyVecEnv([lambda: make_env(ENV)]), trainer.cfg)
    with pytest.raises(CheckpointError, match="unreadable checkpoint"):
        restore_checkpoint(build_model(trainer.cfg, venv), ckpt, venv)
    assert not marker.exists()
    venv.close()


def test_interrupted_save_keeps_latest(tmp_path: Path) -> None:
    run = tmp_path / "run"
    trainer = Trainer(smoke_config("sac", 120), run)
    trainer.train()
    good = latest_checkpoint(run)
    # a save killed half-way leaves only a temp dir behind; LATEST still names the complete one
    (run / "checkpoints" / ".tmp-step_0000000999-1").mkdir()
    (run / "checkpoints" / ".tmp-step_0000000999-1" / "policy.safetensors").write_bytes(b"\0" * 10)
    assert latest_checkpoint(run) == good
    (run / "checkpoints" / "LATEST").write_text("step_0000000999\n")
    with pytest.raises(CheckpointError, match="missing or incomplete"):
        latest_checkpoint(run)
