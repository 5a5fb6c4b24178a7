"""Turn a resolved config into envs and an SB3 model. SB3 does the learning; this is wiring only."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from torch import nn

from drl_control.learn.config import OFF_POLICY, ConfigError, algo_class
from drl_control.sim.registration import import_env_packages  # noqa: F401  (its callers' old home)

VecEnvFactory = Callable[[int, int], Any]
"""(n_envs, seed) -> SB3 VecEnv. The ROS learner passes its own (a RosVecEnv)."""

ACTIVATION_CLASSES: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU, "silu": nn.SiLU,
}


def make_env(env_id: str, rank: int = 0, seed: int | None = None,
             env_kwargs: Mapping[str, Any] | None = None) -> gym.Env:
    """One monitored env (top-level function so SubprocVecEnv can pickle it); `env_kwargs` (the
    config's `env` section: driver, randomization) go to gym.make."""
    import multiprocessing
    import signal

    from stable_baselines3.common.monitor import Monitor

    if multiprocessing.parent_process() is not None:
        # SubprocVecEnv worker: Ctrl-C in a terminal (or `kill -TERM -<pgid>`) reaches the whole
        # process group; the parent turns it into "checkpoint and stop", which needs the workers
        # alive until it closes them. A worker still exits when its parent dies (its pipe closes).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    import_env_packages(env_id)
    env = gym.make(env_id, **{k: v for k, v in (env_kwargs or {}).items() if v is not None})
    env = Monitor(env, info_keywords=("is_success",))
    if seed is not None:
        env.action_space.seed(seed + rank)
    return env


def default_vec_env_factory(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> VecEnvFactory:
    """In-process envs: DummyVecEnv for one, SubprocVecEnv (forkserver) for several."""

    def factory(n_envs: int, seed: int) -> Any:
        from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

        fns = [functools.partial(make_env, env_id, rank, seed, env_kwargs) for rank in range(n_envs)]
        venv = DummyVecEnv(fns) if n_envs == 1 else SubprocVecEnv(fns)
        venv.seed(seed)
        return venv

    return factory


def wrap_normalizer(venv: Any, cfg: Mapping[str, Any], training: bool = True) -> Any:
    """Wrap `venv` in ObsNormalizer when the config enables it."""
    norm = cfg.get("normalize", {})
    if not norm.get("enabled", False):
        return venv
    from drl_control.learn.normalize import ObsNormalizer

    return ObsNormalizer(
        venv,
        training=training,
        clip=float(norm.get("clip", 5.0)),
        eps=float(norm.get("eps", 1e-2)),
        shared_goal_stats=bool(norm.get("shared_goal_stats", True)),
        raw_terminal_obs=cfg["algo"] in OFF_POLICY,
    )


def policy_spec(cfg: Mapping[str, Any]) -> tuple[type, dict[str, Any]]:
    """Policy class and policy_kwargs for the config's algorithm."""
    from drl_control.learn.spectral import SNPPOPolicy, SNSACPolicy, SNTD3Policy, SNTQCPolicy

    algo = cfg["algo"]
    p = cfg.get("policy", {})
    kwargs: dict[str, Any] = {
        "net_arch": p.get("net_arch", [64, 64]),
        "activation_fn": ACTIVATION_CLASSES[p.get("activation", "relu")],
        "spectral_norm": p.get("spectral_norm", "none"),
        "spectral_norm_iterations": p.get("spectral_norm_iterations", 5),
    }
    if algo in OFF_POLICY:
        kwargs["n_critics"] = p.get("n_critics", 1 if algo == "ddpg" else 2)
    if algo in ("sac", "tqc", "ppo") and "log_std_init" in p:
        kwargs["log_std_init"] = p["log_std_init"]
    if algo == "tqc" and "n_quantiles" in p:
        kwargs["n_quantiles"] = p["n_quantiles"]
    if algo == "ppo" and "ortho_init" in p:
        kwargs["ortho_init"] = p["ortho_init"]
    cls = {"sac": SNSACPolicy, "tqc": SNTQCPolicy, "td3": SNTD3Policy, "ddpg": SNTD3Policy, "ppo": SNPPOPolicy}[algo]
    return cls, kwargs


def resolve_device(name: str) -> str:
    """`train.device` (--device): auto takes a CUDA GPU when torch sees one; cuda without one is refused."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda: torch sees no CUDA GPU on this machine (use --device auto or cpu)")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {name!r} (expected auto, cpu or cuda)")
    return name


def build_model(cfg: Mapping[str, Any], venv: Any, tensorboard_log: str | None = None, device: str = "cpu") -> Any:
    """A fresh SB3 model for `cfg` on `venv` (used for new runs AND for resume, before loading states).

    `device` is a resolved torch device; the trainer passes `train.device`, evaluation and export act on the CPU.
    """
    from stable_baselines3 import HerReplayBuffer
    from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

    from drl_control.learn import demos
    from drl_control.learn.spectral import finalize_spectral_norm

    algo = cfg["algo"]
    if not isinstance(venv.observation_space, gym.spaces.Dict):
        raise ValueError(f"{cfg.get('env_id')}: expected a goal env with Dict observations")
    policy_cls, policy_kwargs = policy_spec(cfg)
    kwargs = dict(cfg.get("algorithm", {}))
    if isinstance(kwargs.get("train_freq"), list):
        kwargs["train_freq"] = tuple(kwargs["train_freq"])
    if algo in OFF_POLICY and cfg.get("her", {}).get("enabled", False):
        her = cfg["her"]
        kwargs["replay_buffer_class"] = HerReplayBuffer
        kwargs["replay_buffer_kwargs"] = {
            "goal_selection_strategy": her.get("goal_selection_strategy", "future"),
            "n_sampled_goal": her.get("n_sampled_goal", 4),
        }
    if algo in ("td3", "ddpg"):
        noise = cfg.get("noise", {})
        dim = venv.action_space.shape[0]
        sigma = float(noise.get("sigma", 0.1)) * np.ones(dim)
        if noise.get("type", "normal") == "normal":
            kwargs["action_noise"] = NormalActionNoise(np.zeros(dim), sigma)
        elif noise.get("type") == "ornstein_uhlenbeck":
            kwargs["action_noise"] = OrnsteinUhlenbeckActionNoise(np.zeros(dim), sigma)
    cls = demos.demo_model_options(cfg, algo_class(algo), kwargs)
    model = cls(
        policy_cls,
        venv,
        policy_kwargs=policy_kwargs,
        seed=cfg.get("seed", 0),
        device=device,
        verbose=0,
        tensorboard_log=tensorboard_log,
        **kwargs,
    )
    finalize_spectral_norm(model)
    demos.configure_model(cfg, model)
    return model


def actor_module(model: Any) -> nn.Module:
    """The network whose weights determine deterministic actions (for spectral-norm checks etc.)."""
    if cfg_algo(model) == "ppo":
        return model.policy.mlp_extractor.policy_net
    return model.actor


def cfg_algo(model: Any) -> str:
    return type(model).__name__.lower()
