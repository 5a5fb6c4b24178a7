"""Issue 15: runs never collide, errors a newcomer understands, Ctrl-C exits 130 after saving.

Real CLI (in-process through drl_control.cli.main where the exit status and stderr are the contract,
a real process where a dying process is), real envs, real training (a few hundred steps). Ctrl-C
during `train` (checkpoint, where, exit 130): tests/test_faults_signals.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from drl_control import cli
from drl_control.errors import EXIT_INTERRUPTED, UserError

ENV = "DrlControl/IiwaReach-v0"
DRL = str(Path(sys.executable).with_name("drl-control"))
SHORT = ["algorithm.learning_starts=100", "algorithm.buffer_size=2000", "eval.episodes=1"]


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip() and "pybullet build time" not in line]


@pytest.mark.parametrize("argv", [
    ["train", "--algo", "sac", "--env", "DrlControl/IiwaRech-v0", "--timesteps", "100"],
    ["train", "--algo", "sac", "--env", "DrlControl/IiwaRech-v0", "--timesteps", "100", "--out", "runs/x"],
    ["expert", "--env", "DrlControl/IiwaRech-v0", "--episodes", "1"],
])
def test_unknown_env_id_is_one_line_with_close_matches_and_nothing_on_disk(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1, lines
    assert "unknown env id 'DrlControl/IiwaRech-v0'" in lines[0] and "did you mean DrlControl/IiwaReach-v0" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_train_without_out_makes_a_new_run_dir_and_says_where(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--algo", "td3", "--env", ENV, "--timesteps", "150", *SHORT]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("IiwaReach-v0_td3_")
    assert f"run directory: {Path('runs') / runs[0].name}" in captured.out
    assert (runs[0] / "config.yaml").is_file() and (runs[0] / "eval.json").is_file()
    assert "warn" not in captured.err.lower()  # no warning at a normal start
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # nothing else in the working directory


def test_ctrl_c_during_eval_exits_130(monkeypatch, capsys):
    from drl_control.learn import cli_verbs

    def interrupted(_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_verbs, "eval_cli", interrupted)
    assert cli.main(["eval", "somewhere"]) == EXIT_INTERRUPTED
    assert "interrupted" in capsys.readouterr().err


def test_human_rendering_without_a_display_is_a_python_exception():
    """Before PyBullet is asked: its GUI connect without X ends the whole process, nothing to catch."""
    code = ("import gymnasium as gym, drl_control\n"
            "from drl_control.sim.world import NoDisplayError\n"
            "try:\n    gym.make('DrlControl/IiwaReach-v0', render_mode='human')\n"
            "except NoDisplayError as exc:\n    print('caught:', exc)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "caught: render_mode=\"human\" needs a display" in proc.stdout


def test_each_demo_gets_its_own_directory(tmp_path, monkeypatch):
    pytest.importorskip("rclpy", reason="drl_control.ros needs rclpy")
    from drl_control.ros.demo import demo_output_dir

    monkeypatch.chdir(tmp_path)
    first, second = demo_output_dir(None), demo_output_dir(None)
    assert first != second and first.parent == second.parent == Path("runs")
    (first / "summary.json").write_text("{}")
    with pytest.raises(UserError, match="not an empty directory"):
        demo_output_dir(str(first))
    assert demo_output_dir(str(tmp_path / "fresh")) == tmp_path / "fresh"


def test_cli_parses_options_and_list_items_in_any_order(capsys):
    """cli.py parses everything once (ros/stack.py takes the parsed options; it does not re-parse)."""
    args = cli._parse(["launch", "train", "--dry-run", "num_envs:=2", "--grace", "3", "workers:=[/a]"])
    assert (args.stack, args.assignments, args.dry_run, args.grace) == ("train", ["num_envs:=2", "workers:=[/a]"],
                                                                         True, 3.0)
    args = cli._parse(["train", "--algo", "sac", "seed=1", "--env", ENV, "eval.episodes=1"])
    assert args.overrides == ["seed=1", "eval.episodes=1"] and args.env == ENV
    with pytest.raises(SystemExit) as info:
        cli._parse(["launch", "train", "--bogus"])
    assert info.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err


@pytest.mark.parametrize(("exc", "status", "text"), [
    (UserError("bad file x"), 2, "error: bad file x"),
    (FileNotFoundError("no such dir y"), 2, "error: no such dir y"),
    (KeyError("config"), 1, "internal error: KeyError"),  # a bug, not the user's input (issue 13)
    (ValueError("shapes differ"), 1, "internal error: ValueError"),
])
def test_only_the_projects_user_error_is_reported_as_the_users(monkeypatch, capsys, exc, status, text):
    from drl_control.learn import cli_verbs

    def fail(_args):
        raise exc

    monkeypatch.setattr(cli_verbs, "plot_cli", fail)
    assert cli.main(["plot", "somewhere"]) == status
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and text in lines[0], lines
