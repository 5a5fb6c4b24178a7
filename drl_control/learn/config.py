"""Training configuration: `config/<algo>.yaml` defaults, per-task overrides, user files, `key=value`.

Hyperparameters live in one place (the YAML files); this module only merges and validates them, so
a typo (`algorithm.gama=0.9`) fails before a long run starts instead of being silently ignored.

Precedence (later wins): `config/<algo>.yaml` < its `tasks:` entries whose key occurs in the env id
(file order) < `--config FILE` < `key=value` overrides (nested keys with dots).
"""

from __future__ import annotations

import copy
import inspect
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

ALGOS = ("ddpg", "td3", "sac", "ppo")
OFF_POLICY = ("ddpg", "td3", "sac")
ACTIVATIONS = ("relu", "tanh", "elu", "leaky_relu", "gelu", "silu")
SPECTRAL_NORM = ("none", "actor", "critic", "both")
HER_STRATEGIES = ("future", "final", "episode")
NOISE_TYPES = ("none", "normal", "ornstein_uhlenbeck")

# Constructor arguments that the trainer sets itself; they are not configurable as plain values.
_MANAGED_ALGO_ARGS = {
    "self", "policy", "env", "replay_buffer_class", "replay_buffer_kwargs", "policy_kwargs",
    "action_noise", "seed", "device", "tensorboard_log", "verbose", "_init_setup_model",
    "rollout_buffer_class", "rollout_buffer_kwargs",
}


class ConfigError(ValueError):
    """A configuration key or value is invalid; the message names it."""


def config_dir() -> Path:
    """The directory with the default YAML files: the source tree, else the ament share dir."""
    here = Path(__file__).resolve().parents[2] / "config"
    if (here / "sac.yaml").is_file():
        return here
    return Path(sys.prefix) / "share" / "drl_control" / "config"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check(cond: bool, key: str, value: Any, what: str) -> None:
    if not cond:
        raise ConfigError(f"invalid value for {key}: {value!r} (expected {what})")


def _positive_int(key: str, v: Any) -> None:
    _check(_is_int(v) and v >= 1, key, v, "an integer >= 1")


def _non_negative_int(key: str, v: Any) -> None:
    _check(_is_int(v) and v >= 0, key, v, "an integer >= 0")


def _positive_num(key: str, v: Any) -> None:
    _check(_is_num(v) and v > 0, key, v, "a number > 0")


def _unit_interval(key: str, v: Any) -> None:
    _check(_is_num(v) and 0 < v <= 1, key, v, "a number in (0, 1]")


def _one_of(choices: Iterable[str]) -> Callable[[str, Any], None]:
    choices = tuple(choices)

    def check(key: str, v: Any) -> None:
        _check(v in choices, key, v, "one of " + ", ".join(choices))

    return check


def _boolean(key: str, v: Any) -> None:
    _check(isinstance(v, bool), key, v, "true or false")


def _number(key: str, v: Any) -> None:
    _check(_is_num(v), key, v, "a number")


def _net_arch(key: str, v: Any) -> None:
    def is_layers(x: Any) -> bool:
        return isinstance(x, list) and all(_is_int(n) and n >= 1 for n in x)

    ok = is_layers(v) or (
        isinstance(v, dict) and v and set(v) <= {"pi", "qf", "vf"} and all(is_layers(x) for x in v.values())
    )
    _check(bool(ok), key, v, "a list of layer sizes, or {pi: [...], qf|vf: [...]}")


# Validators of the non-SB3 sections; a section's valid keys are exactly these.
_SECTIONS: dict[str, dict[str, Callable[[str, Any], None]]] = {
    "policy": {
        "net_arch": _net_arch,
        "activation": _one_of(ACTIVATIONS),
        "n_critics": _positive_int,
        "spectral_norm": _one_of(SPECTRAL_NORM),
        "spectral_norm_iterations": _positive_int,
        "log_std_init": _number,
        "ortho_init": _boolean,
    },
    "her": {
        "enabled": _boolean,
        "goal_selection_strategy": _one_of(HER_STRATEGIES),
        "n_sampled_goal": _positive_int,
    },
    "normalize": {
        "enabled": _boolean,
        "clip": _positive_num,
        "eps": _positive_num,
        "shared_goal_stats": _boolean,
    },
    "noise": {
        "type": _one_of(NOISE_TYPES),
        "sigma": _positive_num,
    },
    "train": {
        "checkpoint_every": _positive_int,
        "keep_checkpoints": _positive_int,
        "torch_threads": _positive_int,
        "progress_every": _positive_int,
    },
    "eval": {
        "episodes": _positive_int,
        "seed_offset": _non_negative_int,
    },
}

_TOP_LEVEL: dict[str, Callable[[str, Any], None]] = {
    "algo": _one_of(ALGOS),
    "env_id": lambda k, v: _check(isinstance(v, str) and bool(v), k, v, "an env id string"),
    "total_timesteps": _positive_int,
    "seed": _non_negative_int,
    "n_envs": _positive_int,
}

# Range checks for common SB3 arguments (type checks for all others come from SB3's defaults).
_ALGO_CHECKS: dict[str, Callable[[str, Any], None]] = {
    "learning_rate": _positive_num,
    "gamma": _unit_interval,
    "tau": _unit_interval,
    "batch_size": _positive_int,
    "buffer_size": _positive_int,
    "learning_starts": _non_negative_int,
    "gradient_steps": lambda k, v: _check(_is_int(v) and (v >= 1 or v == -1), k, v, "an integer >= 1 or -1"),
    "n_steps": _positive_int,
    "n_epochs": _positive_int,
    "gae_lambda": _unit_interval,
    "clip_range": _positive_num,
    "policy_delay": _positive_int,
    "target_policy_noise": lambda k, v: _check(_is_num(v) and v >= 0, k, v, "a number >= 0"),
    "target_noise_clip": lambda k, v: _check(_is_num(v) and v >= 0, k, v, "a number >= 0"),
    "max_grad_norm": _positive_num,
    "vf_coef": lambda k, v: _check(_is_num(v) and v >= 0, k, v, "a number >= 0"),
    "target_kl": lambda k, v: _check(v is None or (_is_num(v) and v > 0), k, v, "null or a number > 0"),
    "ent_coef": lambda k, v: _check(
        _is_num(v) or (isinstance(v, str) and v.startswith("auto")), k, v, "a number or 'auto'/'auto_<init>'"
    ),
    "target_entropy": lambda k, v: _check(_is_num(v) or v == "auto", k, v, "a number or 'auto'"),
    "train_freq": lambda k, v: _check(
        (_is_int(v) and v >= 1)
        or (isinstance(v, list) and len(v) == 2 and _is_int(v[0]) and v[1] in ("step", "episode")),
        k, v, "an integer >= 1 or [n, step|episode]",
    ),
}


def algo_class(algo: str) -> type:
    """The SB3 class of an algorithm name (imported lazily: SB3 pulls in torch)."""
    from stable_baselines3 import DDPG, PPO, SAC, TD3

    return {"ddpg": DDPG, "td3": TD3, "sac": SAC, "ppo": PPO}[algo]


def algorithm_arguments(algo: str) -> dict[str, Any]:
    """Configurable SB3 constructor arguments of `algo` with their SB3 defaults."""
    sig = inspect.signature(algo_class(algo).__init__)
    return {
        name: (None if p.default is inspect.Parameter.empty else p.default)
        for name, p in sig.parameters.items()
        if name not in _MANAGED_ALGO_ARGS and p.kind is not inspect.Parameter.VAR_KEYWORD
    }


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping (safe loader: YAML tags cannot construct Python objects).

    Every way a file can be bad (missing, a directory, unreadable, not UTF-8, a syntax error, a
    `!!python/...` tag, empty, not a mapping) raises ConfigError / FileNotFoundError with one line.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, expected a YAML file")
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if data is None:
        raise ConfigError(f"{path}: empty file (expected a YAML mapping of config keys)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge `override` into a copy of `base` (mappings merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict) and key != "net_arch":
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Turn `["algorithm.gamma=0.9", "her.enabled=false"]` into a nested dict (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r} has an empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: cannot parse value: {exc}") from None
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with another override of {p}")
        node[parts[-1]] = value
    return out


def task_overrides(defaults: dict[str, Any], env_id: str | None) -> list[dict[str, Any]]:
    """The `tasks:` entries that apply to `env_id` (key occurs in the env id), in file order."""
    tasks = defaults.get("tasks") or {}
    if not isinstance(tasks, dict):
        raise ConfigError("tasks: expected a mapping of task name -> overrides")
    if not env_id:
        return []
    name = env_id.split("/")[-1]
    return [v or {} for k, v in tasks.items() if str(k) in name]


def resolve_config(
    algo: str,
    env_id: str | None = None,
    *,
    config_file: str | Path | None = None,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    base: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the validated configuration of one run.

    `base` replaces `config/<algo>.yaml` (used by --resume with the run's saved config).
    """
    if algo not in ALGOS:
        raise ConfigError(f"invalid value for algo: {algo!r} (expected one of {', '.join(ALGOS)})")
    if base is None:
        defaults = load_yaml(config_dir() / f"{algo}.yaml")
        cfg = {k: v for k, v in defaults.items() if k != "tasks"}
        for extra in task_overrides(defaults, env_id):
            cfg = deep_merge(cfg, extra)
    else:
        cfg = copy.deepcopy(dict(base))
    if config_file is not None:
        user = load_yaml(config_file)
        user.pop("tasks", None)
        cfg = deep_merge(cfg, user)
    if not isinstance(overrides, Mapping):
        overrides = parse_overrides(overrides)
    cfg = deep_merge(cfg, overrides)
    cfg["algo"] = cfg.get("algo", algo)
    if cfg["algo"] != algo:
        raise ConfigError(f"config is for algo {cfg['algo']!r} but --algo is {algo!r}")
    if env_id is not None:
        cfg["env_id"] = env_id
    cfg.setdefault("seed", 0)
    cfg.setdefault("n_envs", 1)
    validate_config(cfg)
    return cfg


def validate_config(cfg: Mapping[str, Any]) -> None:
    """Raise ConfigError naming the first unknown key or bad value."""
    algo = cfg.get("algo")
    _TOP_LEVEL["algo"]("algo", algo)
    sections = ["algorithm", "policy", "normalize", "train", "eval"]
    if algo in OFF_POLICY:
        sections.append("her")
    if algo in ("ddpg", "td3"):
        sections.append("noise")
    valid_top = sorted([*_TOP_LEVEL, *sections])
    for key, value in cfg.items():
        if key in _TOP_LEVEL:
            _TOP_LEVEL[key](key, value)
        elif key not in sections:
            raise ConfigError(f"unknown config key {key!r} for {algo}; valid keys: {', '.join(valid_top)}")
        elif not isinstance(value, dict):
            raise ConfigError(f"invalid value for {key}: expected a mapping, got {value!r}")
    for section in sections:
        values = cfg.get(section) or {}
        if section == "algorithm":
            _validate_algorithm(algo, values)
            continue
        checks = _SECTIONS[section]
        for key, value in values.items():
            if key not in checks:
                raise ConfigError(
                    f"unknown config key {section}.{key}; valid keys: "
                    + ", ".join(f"{section}.{k}" for k in checks)
                )
            checks[key](f"{section}.{key}", value)


def _validate_algorithm(algo: str, values: Mapping[str, Any]) -> None:
    valid = algorithm_arguments(algo)
    for key, value in values.items():
        name = f"algorithm.{key}"
        if key not in valid:
            raise ConfigError(
                f"unknown config key {name} for {algo}; valid keys: "
                + ", ".join(f"algorithm.{k}" for k in valid)
            )
        if key in _ALGO_CHECKS:
            _ALGO_CHECKS[key](name, value)
            continue
        default = valid[key]
        if default is None or value is None:
            continue
        if isinstance(default, bool):
            _boolean(name, value)
        elif isinstance(default, (int, float)):
            _check(_is_num(value) and (not _is_int(default) or _is_int(value)), name, value,
                   "an integer" if _is_int(default) else "a number")
        elif isinstance(default, str):
            _check(isinstance(value, str), name, value, "a string")


def dump_config(cfg: Mapping[str, Any], path: str | Path) -> None:
    """Write the resolved config as YAML (what a run actually used)."""
    Path(path).write_text(yaml.safe_dump(dict(cfg), sort_keys=False))
