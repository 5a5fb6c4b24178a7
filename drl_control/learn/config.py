"""Training configuration: `config/<algo>.yaml` defaults, per-task overrides, user files, `key=value`.

Hyperparameters live in one place (the YAML files); this module only merges and validates them, so
a typo (`algorithm.gama=0.9`) fails before a long run starts instead of being silently ignored.

Precedence (later wins): `config/<algo>.yaml` < its `tasks:` entries whose key occurs in the env id
(file order) < `--config FILE` < `key=value` overrides (nested keys with dots).
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from drl_control.errors import UserError
from drl_control.paths import data_path
from drl_control.safe_io import DataError, load_yaml_text
from drl_control.sim.registration import EnvIdError, check_env_id

ALGOS = ("ddpg", "td3", "sac", "tqc", "ppo")
OFF_POLICY = ("ddpg", "td3", "sac", "tqc")
ACTIVATIONS = ("relu", "tanh", "elu", "leaky_relu", "gelu", "silu")
SPECTRAL_NORM = ("none", "actor", "critic", "both")
HER_STRATEGIES = ("future", "final", "episode")
NOISE_TYPES = ("none", "normal", "ornstein_uhlenbeck")
DEVICES = ("auto", "cpu", "cuda")

# Constructor arguments that the trainer sets itself; they are not configurable as plain values.
_MANAGED_ALGO_ARGS = {
    "self", "policy", "env", "replay_buffer_class", "replay_buffer_kwargs", "policy_kwargs",
    "action_noise", "seed", "device", "tensorboard_log", "verbose", "_init_setup_model",
    "rollout_buffer_class", "rollout_buffer_kwargs",
}


# Upper bounds of sizes: far above any useful run, low enough that a typo (buffer_size=1e11,
# net_arch=[100000000]) is refused up front instead of exhausting memory mid-run.
MAX_LAYER = 8192  # units of one hidden layer
MAX_LAYERS = 16
MAX_BUFFER = 10_000_000  # transitions, all held in memory
MAX_BATCH = 1 << 16
MAX_TIMESTEPS = 1_000_000_000
MAX_ENVS = 64
MAX_SEED = 2**32 - 1  # numpy's seed range
MAX_COUNT = 10_000  # epochs, gradient steps, critics, sampled goals, kept checkpoints, ...
MAX_INT = 2**31 - 1  # any other integer argument
MAX_OVERRIDES = 100
MAX_OVERRIDE_CHARS = 4096


class ConfigError(UserError, ValueError):
    """A configuration key or value is invalid; the message names it."""


def config_dir() -> Path:
    """The directory with the default YAML files (see drl_control.paths)."""
    return data_path("config")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    """A finite number of sane magnitude (nan, inf and 1e400-sized integers are not numbers here)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v) and abs(v) <= 1e12
    except OverflowError:
        return False


def _shown(value: Any) -> str:
    """repr(value) cut to one short line (a 4,000-digit integer has no repr at all in Python 3.11)."""
    try:
        text = repr(value)
    except ValueError:
        return f"<{type(value).__name__} too large to print>"
    return text if len(text) <= 80 else text[:77] + "..."


def _check(cond: bool, key: str, value: Any, what: str) -> None:
    if not cond:
        raise ConfigError(f"invalid value for {key}: {_shown(value)} (expected {what})")


def _int_in(low: int, high: int) -> Callable[[str, Any], None]:
    def check(key: str, v: Any) -> None:
        _check(_is_int(v) and low <= v <= high, key, v, f"an integer in [{low}, {high}]")

    return check


_positive_int = _int_in(1, MAX_INT)
_non_negative_int = _int_in(0, MAX_INT)
_count = _int_in(1, MAX_COUNT)


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
        return isinstance(x, list) and len(x) <= MAX_LAYERS and all(_is_int(n) and 1 <= n <= MAX_LAYER for n in x)

    ok = is_layers(v) or (
        isinstance(v, dict) and v and set(v) <= {"pi", "qf", "vf"} and all(is_layers(x) for x in v.values())
    )
    _check(bool(ok), key, v, f"a list of at most {MAX_LAYERS} layer sizes in [1, {MAX_LAYER}], "
           "or {pi: [...], qf|vf: [...]}")


def _driver(key: str, v: Any) -> None:
    from drl_control.sim.drivers import DRIVERS

    _check(v in DRIVERS, key, v, "one of " + ", ".join(DRIVERS))


def _randomization(key: str, v: Any) -> None:
    from drl_control.sim.randomization import Randomization

    _check(v is None or isinstance(v, dict), key, v, "a mapping of randomization ranges")
    try:
        Randomization.from_dict(v)
    except ValueError as exc:
        raise ConfigError(f"invalid value for {key}: {exc}") from None


def randomization_preset(name: str) -> dict[str, Any]:
    """A named preset `config/randomization/<name>.yaml`, or a YAML file path, as a mapping."""
    path = Path(name)
    if not path.suffix:
        path = config_dir() / "randomization" / f"{name}.yaml"
        if not path.is_file():
            known = sorted(f.stem for f in (config_dir() / "randomization").glob("*.yaml"))
            raise ConfigError(f"randomization preset {name!r} not found; presets: {', '.join(known)}")
    preset = load_yaml(path)
    _randomization("randomization", preset)
    return preset


# Validators of the non-SB3 sections; a section's valid keys are exactly these.
_SECTIONS: dict[str, dict[str, Callable[[str, Any], None]]] = {
    "policy": {
        "net_arch": _net_arch,
        "activation": _one_of(ACTIVATIONS),
        "n_critics": _int_in(1, 10),
        "spectral_norm": _one_of(SPECTRAL_NORM),
        "spectral_norm_iterations": _int_in(1, 100),
        "log_std_init": lambda k, v: _check(_is_num(v) and abs(v) <= 20, k, v, "a number in [-20, 20]"),
        "ortho_init": _boolean,
        "n_quantiles": _int_in(1, 1000),  # TQC
    },
    "her": {
        "enabled": _boolean,
        "goal_selection_strategy": _one_of(HER_STRATEGIES),
        "n_sampled_goal": _int_in(1, 64),
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
        "keep_checkpoints": _count,
        "torch_threads": _int_in(1, 1024),
        "progress_every": _positive_int,
        "device": _one_of(DEVICES),
    },
    "eval": {
        "episodes": _int_in(1, 100_000),
        "seed_offset": _non_negative_int,
    },
    # learning from demonstrations (drl_control/learn/demos.py, docs/DEMOS.md); off-policy + HER only
    "demos": {
        "episodes": _non_negative_int,  # N seeded scripted-expert episodes (0 = none) ...
        "file": lambda k, v: _check(v is None or (isinstance(v, str) and bool(v)), k, v, "null or a file path"),
        "fraction": _unit_interval,  # share of every batch drawn from the demo buffer
        "bc_weight": lambda k, v: _check(_is_num(v) and v >= 0, k, v, "a number >= 0"),
        "q_filter": _boolean,
        "bc_decay_steps": lambda k, v: _check(v is None or (_is_int(v) and v >= 1), k, v, "null or an integer >= 1"),
        "expert_labels": _boolean,  # BC on the agent's replayed states too, labelled by the expert (Push, ee)
    },
    # keyword arguments of the training envs (sim/env.py): the driver model and domain randomization
    "env": {
        "driver": _driver,
        "randomization": _randomization,
    },
}

def _env_id(v: Any) -> None:
    try:
        check_env_id(v)
    except EnvIdError as exc:
        raise ConfigError(f"invalid value for env_id: {exc}") from None


_TOP_LEVEL: dict[str, Callable[[str, Any], None]] = {
    "algo": _one_of(ALGOS),
    "env_id": lambda k, v: _env_id(v),
    "total_timesteps": _int_in(1, MAX_TIMESTEPS),
    "seed": _int_in(0, MAX_SEED),
    "n_envs": _int_in(1, MAX_ENVS),
}

def _auto_ent_coef(v: Any) -> bool:
    if not isinstance(v, str) or not (v == "auto" or v.startswith("auto_")):
        return False
    if v == "auto":
        return True
    try:
        init = float(v[len("auto_"):])
    except ValueError:
        return False
    return math.isfinite(init) and 0 < init <= 1e6


# Range checks for common SB3 arguments (type checks for all others come from SB3's defaults).
_ALGO_CHECKS: dict[str, Callable[[str, Any], None]] = {
    "learning_rate": lambda k, v: _check(_is_num(v) and 0 < v <= 1, k, v, "a number in (0, 1]"),
    "gamma": _unit_interval,
    "tau": _unit_interval,
    "batch_size": _int_in(1, MAX_BATCH),
    "buffer_size": _int_in(1, MAX_BUFFER),
    "learning_starts": _int_in(0, MAX_TIMESTEPS),
    "gradient_steps": lambda k, v: _check(_is_int(v) and (1 <= v <= MAX_COUNT or v == -1), k, v,
                                          f"an integer in [1, {MAX_COUNT}] or -1"),
    "n_steps": _int_in(1, 1 << 20),
    "n_epochs": _count,
    "gae_lambda": _unit_interval,
    "clip_range": _positive_num,
    "policy_delay": _count,
    "target_policy_noise": lambda k, v: _check(_is_num(v) and v >= 0, k, v, "a number >= 0"),
    "target_noise_clip": lambda k, v: _check(_is_num(v) and v >= 0, k, v, "a number >= 0"),
    "max_grad_norm": _positive_num,
    "vf_coef": lambda k, v: _check(_is_num(v) and v >= 0, k, v, "a number >= 0"),
    "target_kl": lambda k, v: _check(v is None or (_is_num(v) and v > 0), k, v, "null or a number > 0"),
    "ent_coef": lambda k, v: _check(
        (_is_num(v) and v >= 0) or _auto_ent_coef(v), k, v, "a number >= 0 or 'auto'/'auto_<init>' (init > 0)"
    ),
    "target_entropy": lambda k, v: _check(_is_num(v) or v == "auto", k, v, "a number or 'auto'"),
    "train_freq": lambda k, v: _check(
        (_is_int(v) and 1 <= v <= MAX_COUNT)
        or (isinstance(v, list) and len(v) == 2 and _is_int(v[0]) and 1 <= v[0] <= MAX_COUNT
            and v[1] in ("step", "episode")),
        k, v, f"an integer in [1, {MAX_COUNT}] or [n, step|episode]",
    ),
}


def algo_class(algo: str) -> type:
    """The SB3 class of an algorithm name (imported lazily: SB3 pulls in torch)."""
    from sb3_contrib import TQC
    from stable_baselines3 import DDPG, PPO, SAC, TD3

    return {"ddpg": DDPG, "td3": TD3, "sac": SAC, "tqc": TQC, "ppo": PPO}[algo]


def algorithm_arguments(algo: str) -> dict[str, Any]:
    """Configurable SB3 constructor arguments of `algo` with their SB3 defaults."""
    sig = inspect.signature(algo_class(algo).__init__)
    return {
        name: (None if p.default is inspect.Parameter.empty else p.default)
        for name, p in sig.parameters.items()
        if name not in _MANAGED_ALGO_ARGS and p.kind is not inspect.Parameter.VAR_KEYWORD
    }


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with drl_control.safe_io's loader (no Python tags, no aliases, bounded).

    Every way a file can be bad (missing, a directory, unreadable, not UTF-8, a syntax error, a
    `!!python/...` tag, an alias, too big or deep, empty, not a mapping) raises ConfigError /
    FileNotFoundError with one line.
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
    data = _yaml(text, str(path))
    if data is None:
        raise ConfigError(f"{path}: empty file (expected a YAML mapping of config keys)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _yaml(text: str, source: str) -> Any:
    try:
        return load_yaml_text(text, source)
    except DataError as exc:
        raise ConfigError(str(exc)) from None


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
    """Turn `["algorithm.gamma=0.9", "her.enabled=false"]` into a nested dict (values parsed as YAML).

    Also the learner's Train goal overrides: bounded in number and length, parsed by the same loader
    as config files.
    """
    out: dict[str, Any] = {}
    items = list(items)
    if len(items) > MAX_OVERRIDES:
        raise ConfigError(f"{len(items)} overrides, more than the {MAX_OVERRIDES} accepted")
    for item in items:
        if not isinstance(item, str) or len(item) > MAX_OVERRIDE_CHARS:
            raise ConfigError(f"override {str(item)[:60]!r}...: longer than {MAX_OVERRIDE_CHARS} characters")
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r} has an empty key")
        value = _yaml(raw, f"override {key.strip()!r}") if raw.strip() else ""
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
    sections = ["algorithm", "policy", "normalize", "train", "eval", "env"]
    if algo in OFF_POLICY:
        sections += ["her", "demos"]
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
            _check(value is None or isinstance(value, (bool, str)) or _is_num(value), name, value,
                   "a finite number, a string or true/false")
            continue
        if isinstance(default, bool):
            _boolean(name, value)
        elif isinstance(default, (int, float)):
            _check(_is_num(value) and (not _is_int(default) or (_is_int(value) and abs(value) <= MAX_INT)), name,
                   value, "an integer" if _is_int(default) else "a finite number")
        elif isinstance(default, str):
            _check(isinstance(value, str), name, value, "a string")


def load_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The resolved config a run was trained with (validated: a file on disk is input like any other)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: not a run directory (missing config.yaml)")
    cfg = load_yaml(path)
    validate_config(cfg)
    return cfg


def dump_config(cfg: Mapping[str, Any], path: str | Path) -> None:
    """Write the resolved config as YAML (what a run actually used)."""
    Path(path).write_text(yaml.safe_dump(dict(cfg), sort_keys=False))
