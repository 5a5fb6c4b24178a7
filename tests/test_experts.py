"""Scripted experts prove each task solvable (real PyBullet, 100 seeded episodes for the ee envs)."""

import json

import pytest

from drl_control.cli import main
from drl_control.sim.experts import run_episodes


@pytest.mark.parametrize(
    "env_id, episodes, minimum",
    [
        ("DrlControl/IiwaReach-v0", 100, 1.0),
        ("DrlControl/IiwaPush-v0", 100, 0.9),
        ("DrlControl/IiwaPickAndPlace-v0", 100, 0.9),
        # Joint-action variants use iterative IK per step, so fewer episodes keep the suite quick.
        ("DrlControl/IiwaReachJoints-v0", 10, 1.0),
        ("DrlControl/IiwaPushDenseJoints-v0", 20, 0.85),
        ("DrlControl/IiwaPickAndPlaceJoints-v0", 10, 0.8),
    ],
)
def test_expert_success_rate(env_id, episodes, minimum):
    summary = run_episodes(env_id, episodes=episodes, seed=1000)
    assert summary["episodes"] == episodes
    assert summary["success_rate"] >= minimum, summary


def test_expert_cli_prints_rate_and_writes_gif_and_json(tmp_path, capsys):
    gif, out = tmp_path / "reach.gif", tmp_path / "summary.json"
    code = main(["expert", "--env", "DrlControl/IiwaReach-v0", "--episodes", "2", "--seed", "3",
                 "--gif", str(gif), "--json", str(out)])
    assert code == 0
    assert "expert success rate 100.0%" in capsys.readouterr().out
    assert gif.read_bytes()[:6] in (b"GIF87a", b"GIF89a")
    assert json.loads(out.read_text())["success_rate"] == 1.0


def test_expert_cli_rejects_unknown_env(capsys):
    assert main(["expert", "--env", "DrlControl/IiwaStack-v0", "--episodes", "1"]) == 2
    assert "unknown env id" in capsys.readouterr().err
