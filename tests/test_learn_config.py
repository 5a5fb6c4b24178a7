"""Config resolution and validation: defaults, task overrides, key=value, errors that name the key."""

from __future__ import annotations

import pytest

from drl_control.learn.config import ALGOS, ConfigError, parse_overrides, resolve_config


@pytest.mark.parametrize("algo", ALGOS)
def test_defaults_resolve(algo: str) -> None:
    cfg = resolve_config(algo, "DrlControl/IiwaReach-v0")
    assert cfg["algo"] == algo and cfg["env_id"] == "DrlControl/IiwaReach-v0"
    assert "tasks" not in cfg
    if algo != "ppo":
        assert cfg["her"]["goal_selection_strategy"] == "future" and cfg["her"]["n_sampled_goal"] == 4


def test_sac_reference_defaults() -> None:
    cfg = resolve_config("sac", "DrlControl/IiwaReach-v0")
    a = cfg["algorithm"]
    assert (a["batch_size"], a["learning_rate"], a["gamma"], a["tau"], a["learning_starts"]) == (256, 1e-3, 0.95, 0.05, 1000)
    assert cfg["policy"]["net_arch"] == [64, 64]


def test_task_override_applies_by_env_id() -> None:
    assert resolve_config("sac", "DrlControl/IiwaPushDense-v0")["policy"]["net_arch"] == [256, 256, 256]
    assert resolve_config("sac", "DrlControl/IiwaReach-v0")["policy"]["net_arch"] == [64, 64]


def test_cli_overrides_nested_and_typed(tmp_path) -> None:
    user = tmp_path / "user.yaml"
    user.write_text("algorithm: {gamma: 0.9}\npolicy: {spectral_norm: actor}\n")
    cfg = resolve_config(
        "td3", "DrlControl/IiwaReach-v0", config_file=user,
        overrides=["algorithm.gamma=0.98", "her.goal_selection_strategy=final", "policy.net_arch=[32,32]",
                   "normalize.enabled=false"],
    )
    assert cfg["algorithm"]["gamma"] == 0.98  # key=value beats --config
    assert cfg["policy"]["spectral_norm"] == "actor"
    assert cfg["her"]["goal_selection_strategy"] == "final"
    assert cfg["policy"]["net_arch"] == [32, 32]
    assert cfg["normalize"]["enabled"] is False
    # any SB3 constructor argument is accepted and type-checked
    assert resolve_config("td3", overrides=["algorithm.target_noise_clip=0.3"])["algorithm"]["target_noise_clip"] == 0.3


def test_parse_overrides() -> None:
    assert parse_overrides(["a.b.c=1", "a.d=x", "e=[1, 2]"]) == {"a": {"b": {"c": 1}, "d": "x"}, "e": [1, 2]}
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["gamma"])


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("algorithm.gama=0.9", r"unknown config key algorithm\.gama.*valid keys:.*algorithm\.gamma"),
        ("policy.spectral=actor", r"unknown config key policy\.spectral.*policy\.spectral_norm"),
        ("bogus=1", r"unknown config key 'bogus'.*valid keys:.*algorithm"),
        ("algorithm.gamma=1.5", r"algorithm\.gamma: 1\.5"),
        ("algorithm.batch_size=0", r"algorithm\.batch_size: 0"),
        ("algorithm.batch_size=abc", r"algorithm\.batch_size: 'abc'"),
        ("policy.spectral_norm=all", r"policy\.spectral_norm: 'all'.*none, actor, critic, both"),
        ("her.goal_selection_strategy=random", r"her\.goal_selection_strategy"),
        ("policy.net_arch=[64, -1]", r"policy\.net_arch"),
        ("normalize.clip=-1", r"normalize\.clip"),
        ("algorithm.learning_starts=1.5", r"algorithm\.learning_starts"),
    ],
)
def test_bad_configs_name_the_problem(override: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        resolve_config("sac", "DrlControl/IiwaReach-v0", overrides=[override])


def test_section_not_valid_for_algo() -> None:
    with pytest.raises(ConfigError, match="unknown config key 'her' for ppo"):
        resolve_config("ppo", "DrlControl/IiwaReach-v0", overrides=["her.enabled=true"])
    with pytest.raises(ConfigError, match="algorithm.learning_starts for ppo"):
        resolve_config("ppo", overrides=["algorithm.learning_starts=10"])


def test_missing_config_file() -> None:
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        resolve_config("sac", config_file="nope.yaml")
