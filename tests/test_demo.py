"""The main job end to end, on a small budget: train over ROS, export, deploy, summarize.

`make demo` runs the same code with 4,000 steps and 20 goals; here the policy is barely
trained, so the test checks that every stage ran and produced its files, not the success rate.
"""

import json
import subprocess
import sys
from pathlib import Path

from ros_util import domain_id, ros_env

BIN = Path(sys.executable).parent


def test_demo_runs_every_stage(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [str(BIN / "drl-control"), "demo", "--out", str(out), "--timesteps", "1200", "--goals", "2"],
        env=ros_env(domain_id(59)), capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "drl_control demo summary" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["goals"]) == 2
    assert 0.0 <= summary["deploy_success_rate"] <= 1.0
    for key in ("learning_curve_png", "trajectory_png", "gif"):
        assert Path(summary[key]).stat().st_size > 1000, key
    assert (Path(summary["artifact_dir"]) / "policy.safetensors").is_file()
    # the deployment was recorded by controller_node: a closed MCAP with the arm's joint states and commands
    from mcap.reader import make_reader

    with open(summary["recording"], "rb") as f:
        stats = make_reader(f).get_summary()
    topics = {c.id: c.topic for c in stats.channels.values()}
    counts = {topics[k]: v for k, v in stats.statistics.channel_message_counts.items()}
    assert counts["/robot_description"] == 1 and counts["/joint_states"] > 20, counts
    assert counts["/forward_position_controller/commands"] > 20, counts
    started = [line.split()[2] for line in (out / "nodes.log").read_text().splitlines()
               if line.startswith("[launch] started ")]
    assert started == ["/sim0/sim_node", "/sim1/sim_node", "learner_node", "sim_node", "controller_node"]
