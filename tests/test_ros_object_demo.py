"""`drl-control demo --artifact DIR` on an object task (Push), end to end on a small budget.

The policy is untrained, so the test checks the mechanics, not the success rate: each episode is
the goal env's for its seed, the goals reached the controller, the controller ran the policy on
the sim arm, the object's poses came, and the summary adds up and is written where asked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from artifact_util import untrained_artifact
from ros_util import domain_id, ros_env

import drl_control  # noqa: F401  (registers the env ids)

BIN = Path(sys.executable).parent
ENV_ID = "DrlControl/IiwaPush-v0"


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    return untrained_artifact(ENV_ID, tmp_path_factory.mktemp("push") / "artifact")


def _demo(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "drl-control"), "demo", *args], env=ros_env(domain_id(49)),
                          capture_output=True, text=True, timeout=timeout)


def test_push_demo_runs_seeded_episodes_through_the_controller(artifact, tmp_path):
    out, json_path = tmp_path / "demo", tmp_path / "push.json"
    proc = _demo("--env", ENV_ID, "--artifact", str(artifact), "--goals", "2", "--seed", "4",
                 "--goal-timeout", "1.5", "--out", str(out), "--json", str(json_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + (out / "nodes.log").read_text()[-3000:]
    assert f"drl_control demo summary: {ENV_ID}" in proc.stdout
    summary = json.loads(json_path.read_text())
    assert summary == json.loads((out / "summary.json").read_text())
    episodes = summary["episodes"]
    assert [e["seed"] for e in episodes] == [4, 5]
    env = gym.make(ENV_ID)
    try:
        for episode in episodes:  # the sim's episode is the goal env's for that seed
            obs, _ = env.reset(seed=episode["seed"])
            np.testing.assert_allclose(episode["goal"], obs["desired_goal"], atol=2e-6)
            np.testing.assert_allclose(episode["object_start"], obs["achieved_goal"], atol=2e-6)
    finally:
        env.close()
    threshold = summary["success_distance_m"]
    for episode in episodes:
        final = np.linalg.norm(np.subtract(episode["object_final"], episode["goal"]))
        assert episode["final_distance"] == pytest.approx(final)
        assert episode["success"] == (final < threshold)
    assert summary["success_rate"] == pytest.approx(np.mean([e["success"] for e in episodes]))
    assert summary["mean_final_distance_m"] == pytest.approx(np.mean([e["final_distance"] for e in episodes]))
    assert summary["object_poses_received"] > 100  # 250 Hz over several seconds
    assert all(0.0 <= e["running_share"] <= 1.0 for e in episodes) and summary["mean_running_share"] > 0.0
    log = (out / "nodes.log").read_text()
    assert log.count("~/set_goal accepted") == 2, log[-3000:]
    # the controller ran the policy on the arm: its recording holds the commands it sent
    from mcap.reader import make_reader

    with open(summary["recording"], "rb") as f:
        stats = make_reader(f).get_summary()
    topics = {c.id: c.topic for c in stats.channels.values()}
    counts = {topics[k]: v for k, v in stats.statistics.channel_message_counts.items()}
    assert counts.get("/forward_position_controller/commands", 0) > 10, counts


def test_wrong_artifact_is_one_line_before_anything_starts(artifact, tmp_path):
    proc = _demo("--env", "DrlControl/IiwaReach-v0", "--artifact", str(artifact), "--out", str(tmp_path / "d"),
                 timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "artifact is for env 'DrlControl/IiwaPush-v0'" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "d").exists()
    proc = _demo("--env", ENV_ID, timeout=60)  # an object task is not trained by the demo
    assert proc.returncode == 2 and "--artifact" in proc.stderr, proc.stdout + proc.stderr


def test_a_policy_with_a_gripper_is_refused_in_one_line_naming_why(tmp_path):
    """PickAndPlace's action has a gripper dimension; controller_node commands the 7 arm joints only."""
    pnp = untrained_artifact("DrlControl/IiwaPickAndPlace-v0", tmp_path / "pnp")
    proc = _demo("--env", "DrlControl/IiwaPickAndPlace-v0", "--artifact", str(pnp), "--out", str(tmp_path / "d"),
                 timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "gripper dimension (task 'PickAndPlace')" in proc.stderr and "no gripper command interface" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "d").exists()
