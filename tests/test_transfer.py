"""`drl-control transfer`: a policy through the deploy path in the transfer worlds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

import drl_control  # noqa: F401 - registers the env ids
from drl_control.learn.algos import build_model, make_env, wrap_normalizer
from drl_control.learn.config import randomization_preset, resolve_config
from drl_control.learn.export import export_model
from drl_control.learn.transfer import WORLDS, evaluate_world

ENV = "DrlControl/IiwaReach-v0"
METRICS = ("success_rate", "mean_final_distance", "median_time_to_goal", "mean_jerk", "safety_interventions")


class _ReachExpert:
    """A deploy-policy stand-in (spec, env_id, act): straight at the goal at full speed."""

    def __init__(self) -> None:
        self.env_id = ENV
        env = gym.make(ENV)
        self.spec = env.unwrapped.deploy_spec()
        env.close()

    def act(self, obs):
        return np.clip((obs["desired_goal"] - obs["achieved_goal"]) / 0.05, -1, 1)


def test_perturbed_world_lies_outside_every_sim2real_training_range():
    preset = randomization_preset("sim2real")
    world = WORLDS["perturbed"]
    driver = world.driver
    outside = {
        "driver_update_hz": driver.update_hz, "driver_tau": driver.tau, "driver_latency": driver.latency_cycles,
        "measurement_noise": driver.measurement_noise,
        **{key: world.dynamics[key][0] for key in ("joint_damping", "joint_friction", "link_mass")},
    }
    for key, value in outside.items():
        low, high = preset[key]
        assert not low <= value <= high, f"{key} = {value} lies inside the training range {preset[key]}"
    assert world.control_jitter > preset["control_jitter"]


def test_worlds_run_the_deploy_path_at_the_drivers_rate():
    policy = _ReachExpert()
    ticks: dict[str, list] = {}
    reports = {}
    for name in ("nominal", "lbr"):
        reports[name] = evaluate_world(policy, WORLDS[name], [11],
                                       on_step=lambda w, ep, rec: ticks.setdefault(w, []).append(rec))
    for name, report in reports.items():
        assert set(METRICS) <= set(report)
        assert report["success_rate"] == 1.0 and report["mean_final_distance"] < 0.02, (name, report)
    # the same goal in both worlds; the commands went through the controller (within the URDF limits)
    np.testing.assert_array_equal(ticks["nominal"][0].goal, ticks["lbr"][0].goal)
    assert all(rec.command is not None and rec.result.action is not None for rec in ticks["lbr"])
    # lbr's smoothing and latency: the arm trails its command, so the goal is reached later
    assert reports["lbr"]["median_time_to_goal"] > reports["nominal"]["median_time_to_goal"]
    lag = [np.abs(rec.command - rec.q).max() for rec in ticks["lbr"][:5]]
    lag_nominal = [np.abs(rec.command - rec.q).max() for rec in ticks["nominal"][:5]]
    assert max(lag) > max(lag_nominal)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    cfg = resolve_config("sac", ENV, overrides=["algorithm.buffer_size=1000"])
    venv = wrap_normalizer(DummyVecEnv([lambda: make_env(ENV)]), cfg)
    venv.reset()
    model = build_model(cfg, venv)
    out = export_model(model, venv, cfg, tmp_path_factory.mktemp("art") / "policy")
    venv.close()
    return out


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "drl_control.cli", *args], capture_output=True, text=True,
                          timeout=300)


def test_cli_prints_a_table_and_writes_the_json(artifact, tmp_path):
    out = tmp_path / "transfer.json"
    proc = _cli("transfer", str(artifact), "--episodes", "1", "--seed", "3", "--worlds", "nominal", "perturbed",
                "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "nominal" in proc.stdout and "perturbed" in proc.stdout
    report = json.loads(out.read_text())
    assert set(report["worlds"]) == {"nominal", "perturbed"}
    for world in report["worlds"].values():
        assert set(METRICS) <= set(world) and world["episodes"] == 1


@pytest.mark.parametrize("args,message", [
    (["/no/such/run"], "no such run or artifact"),
    (["ARTIFACT", "--worlds", "mars"], "unknown transfer world"),
    (["ARTIFACT", "--episodes", "0"], "--episodes must be >= 1"),
])
def test_bad_input_is_one_line_and_exit_2(artifact, args, message):
    proc = _cli("transfer", *[str(artifact) if a == "ARTIFACT" else a for a in args])
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_record_writes_one_rosbag2_mcap_per_world(artifact, tmp_path):
    """`--record DIR`: DIR/<world>.mcap per world, read back with the mcap package (not our reader):
    the URDF first, joint states of every tick (2 episodes x 50), time never backwards, the commands."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    out = tmp_path / "rec"
    proc = _cli("transfer", str(artifact), "--episodes", "2", "--seed", "3", "--worlds", "nominal", "lbr",
                "--record", str(out))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["lbr.mcap", "nominal.mcap"]
    for world in ("nominal", "lbr"):
        with open(out / f"{world}.mcap", "rb") as f:
            messages = list(make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages())
        topics = [channel.topic for _schema, channel, _message, _decoded in messages]
        assert topics[0] == "/robot_description"
        assert topics.count("/joint_states") == 100 and topics.count("/tf") == 100
        assert topics.count("/forward_position_controller/commands") > 0
        times = [message.log_time for _schema, _channel, message, _decoded in messages]
        assert times == sorted(times)
        names = next(d.name for _s, c, _m, d in messages if c.topic == "/joint_states")
        assert list(names) == [f"iiwa_joint_{i}" for i in range(1, 8)]


def test_record_to_an_unusable_directory_fails_before_any_work(artifact, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    proc = _cli("transfer", str(artifact), "--episodes", "1", "--record", str(blocker))
    assert proc.returncode == 2 and "cannot record to" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "world" not in proc.stdout  # no table: nothing was evaluated
