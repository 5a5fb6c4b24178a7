"""Export a run's latest checkpoint as the deploy artifact (see drl_control/deploy/artifact.py).

Spectral-normalized layers are exported as plain Linear layers holding the effective weight
W/σ (computed in eval mode, exactly what SB3's predict uses), so deployment needs no
parametrization code.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from drl_control.deploy.artifact import FORMAT_VERSION, KIND, write_artifact
from drl_control.safe_io import DataError, read_json

_ACT_NAMES = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.ELU: "elu", nn.LeakyReLU: "leaky_relu", nn.GELU: "gelu",
              nn.SiLU: "silu"}


def _mlp_layers(modules: list[nn.Module], prefix: str) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor], bool]:
    """Flatten Linear/activation modules into layer specs; returns (layers, tensors, ends_with_tanh)."""
    layers: list[dict[str, Any]] = []
    tensors: dict[str, torch.Tensor] = {}
    ends_tanh = False
    flat: list[nn.Module] = []
    for m in modules:
        flat.extend(m if isinstance(m, nn.Sequential) else [m])
    for i, m in enumerate(flat):
        if isinstance(m, nn.Linear):
            name = f"{prefix}.{len(layers)}"
            tensors[f"{name}.weight"] = m.weight.detach().clone()  # effective weight if parametrized
            tensors[f"{name}.bias"] = m.bias.detach().clone()
            layers.append({"weight": f"{name}.weight", "bias": f"{name}.bias", "in": m.in_features,
                           "out": m.out_features, "activation": None})
        elif type(m) in _ACT_NAMES:
            if i == len(flat) - 1 and isinstance(m, nn.Tanh):
                ends_tanh = True  # TD3 actor's squashing output
            elif not layers or layers[-1]["activation"] is not None:
                raise ValueError(f"cannot export network: activation {m} does not follow a Linear layer")
            else:
                layers[-1]["activation"] = _ACT_NAMES[type(m)]
        else:
            raise ValueError(f"cannot export network: unsupported module {type(m).__name__}")
    return layers, tensors, ends_tanh


def _check_flatten_only(extractor: nn.Module) -> list[str]:
    if any(True for _ in extractor.parameters()):
        raise ValueError("cannot export: the features extractor has parameters (only flatten/concat is supported)")
    return list(extractor.extractors.keys())


def actor_description(model: Any) -> dict[str, Any]:
    """Network layers, tensors, key order and action postprocessing of the deterministic actor."""
    algo = type(model).__name__.lower()
    model.policy.set_training_mode(False)
    with torch.no_grad():
        if algo in ("sac", "tqc"):  # TQC's actor is SAC's (only its critics are distributional)
            keys = _check_flatten_only(model.actor.features_extractor)
            layers, tensors, _ = _mlp_layers([model.actor.latent_pi, model.actor.mu], "actor")
            output, post = "tanh", "rescale"
        elif algo in ("td3", "ddpg"):
            keys = _check_flatten_only(model.actor.features_extractor)
            layers, tensors, ends_tanh = _mlp_layers([model.actor.mu], "actor")
            if not ends_tanh:
                raise ValueError("cannot export: TD3/DDPG actor does not end with tanh")
            output, post = "tanh", "rescale"
        elif algo == "ppo":
            keys = _check_flatten_only(model.policy.pi_features_extractor)
            layers, tensors, _ = _mlp_layers([model.policy.mlp_extractor.policy_net, model.policy.action_net], "actor")
            output, post = "identity", "clip"
        else:
            raise ValueError(f"cannot export algorithm {algo}")
    spaces = model.observation_space.spaces
    return {
        "keys": keys,
        "sizes": [int(np.prod(spaces[k].shape)) for k in keys],
        "layers": layers,
        "tensors": tensors,
        "output": output,
        "postprocess": post,
    }


def env_deploy_spec(env_id: str) -> dict[str, Any]:
    """The env's deploy_spec(); a minimal one for envs without it (panda-gym, during development)."""
    import gymnasium as gym

    from drl_control.sim.registration import import_env_packages

    import_env_packages(env_id)
    env = gym.make(env_id)
    try:
        base = env.unwrapped
        if hasattr(base, "deploy_spec"):
            return json.loads(json.dumps(base.deploy_spec()))
        obs_space = env.observation_space
        return {
            "env_id": env_id,
            "task": None,
            "control": "ee",
            "control_hz": None,
            "observation_layout": [["observation", int(obs_space["observation"].shape[0])]],
            "goal_layout": [["goal", int(obs_space["desired_goal"].shape[0])]],
            "action": {"type": "unknown", "dim": int(env.action_space.shape[0]), "scale": None, "gripper": None},
            "robot": {"name": "unknown", "joint_names": []},
            "distance_threshold": getattr(getattr(base, "task", None), "distance_threshold", None),
            "reward_type": getattr(getattr(base, "task", None), "reward_type", None),
        }
    finally:
        env.close()


def versions() -> dict[str, str]:
    import gymnasium
    import safetensors
    import stable_baselines3

    import drl_control

    return {
        "drl_control": drl_control.__version__, "torch": torch.__version__, "numpy": np.__version__,
        "stable_baselines3": stable_baselines3.__version__, "gymnasium": gymnasium.__version__,
        "safetensors": safetensors.__version__, "python": platform.python_version(),
    }


def export_model(model: Any, normalizer: Any, cfg: dict[str, Any], out_dir: str | Path,
                 metrics: dict[str, Any] | None = None) -> Path:
    """Write the artifact for an in-memory model, then check it reproduces the model's actions."""
    desc = actor_description(model)
    norm = None
    if normalizer is not None:
        norm = {
            "eps": float(normalizer.epsilon),
            "clip": float(normalizer.clip_obs),
            "mean": {k: normalizer.obs_rms[k].mean.tolist() for k in desc["keys"]},
            "var": {k: normalizer.obs_rms[k].var.tolist() for k in desc["keys"]},
        }
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "algorithm": cfg["algo"],
        "env_id": cfg["env_id"],
        "env_spec": env_deploy_spec(cfg["env_id"]),
        "observation": {"keys": desc["keys"], "sizes": desc["sizes"], "normalization": norm},
        "network": {"layers": desc["layers"], "output": desc["output"]},
        "action": {
            "dim": int(model.action_space.shape[0]),
            "low": model.action_space.low.astype(float).tolist(),
            "high": model.action_space.high.astype(float).tolist(),
            "postprocess": desc["postprocess"],
        },
        "training": {"timesteps": int(model.num_timesteps), "seed": cfg.get("seed"), "config": cfg,
                     "metrics": metrics or {}},
        "versions": versions(),
    }
    out = write_artifact(out_dir, meta, desc["tensors"])
    _self_check(model, normalizer, out)
    return out


def _self_check(model: Any, normalizer: Any, out: Path, n: int = 64, tol: float = 1e-5) -> None:
    """Refuse to leave an artifact that does not act like the model (random in-range observations)."""
    from drl_control.deploy.policy import DeployPolicy

    policy = DeployPolicy.load(out)
    rng = np.random.default_rng(0)
    obs = {}
    for key, space in model.observation_space.spaces.items():
        lo = np.maximum(space.low, -2.0)
        hi = np.minimum(space.high, 2.0)
        obs[key] = rng.uniform(lo, hi, size=(n, *space.shape)).astype(np.float32)
    normed = normalizer.normalize_obs(obs) if normalizer is not None else obs
    expected, _ = model.predict(normed, deterministic=True)
    got = policy.act(obs)
    err = float(np.max(np.abs(expected - got)))
    if err > tol:
        raise RuntimeError(f"exported policy differs from the model by {err:.2e} (> {tol}); artifact {out} is wrong")


def export_run(run_dir: str | Path, out_dir: str | Path) -> Path:
    """`drl-control export RUN_DIR OUT_DIR`: artifact from the run's latest checkpoint."""
    from drl_control.learn.evaluate import load_run_model

    run_dir = Path(run_dir)
    model, normalizer, cfg = load_run_model(run_dir)
    metrics = {}
    if (run_dir / "eval.json").is_file():
        metrics = read_json(run_dir / "eval.json")
        if not isinstance(metrics, dict):
            raise DataError(f"{run_dir / 'eval.json'}: expected a JSON object")
        metrics.pop("successes", None)
    try:
        return export_model(model, normalizer, cfg, out_dir, metrics)
    finally:
        model.env.close()
