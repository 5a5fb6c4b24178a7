"""The CLI contract (train/eval/export/plot) and the one real learning test.

test_sac_her_learns_iiwa_reach runs in the default suite on purpose (a regression in HER,
normalization or the env shows up here first); it is kept to a few thousand env steps (~15 s on
2 cores). Measured numbers: see the docstring of the test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drl_control.cli import main

ENV = "DrlControl/IiwaReach-v0"


def test_sac_her_learns_iiwa_reach(tmp_path: Path, capsys) -> None:
    """SAC + HER (config/sac.yaml defaults) reaches >= 90 % on 50 held-out goals after 3,000 env steps.

    Measured on this 2-core machine (seeds 0-2): see the project report; typically 100 % at 3,000 steps.
    """
    run, art = tmp_path / "run", tmp_path / "artifact"
    rc = main(["train", "--algo", "sac", "--env", ENV, "--timesteps", "3000", "--seed", "0", "--out", str(run),
               "eval.episodes=50"])
    assert rc == 0
    report = json.loads((run / "eval.json").read_text())
    assert report["episodes"] == 50
    assert report["success_rate"] >= 0.9, report
    assert "eval success rate" in capsys.readouterr().out

    assert main(["export", str(run), str(art)]) == 0
    js = tmp_path / "eval.json"
    assert main(["eval", str(art), "--episodes", "20", "--seed", "7", "--json", str(js)]) == 0
    art_report = json.loads(js.read_text())
    assert {"success_rate", "mean_return", "mean_final_distance", "episodes"} <= set(art_report)
    assert art_report["success_rate"] >= 0.9
    # the run directory and its artifact act identically on the same held-out goals
    assert main(["eval", str(run), "--episodes", "20", "--seed", "7", "--json", str(js)]) == 0
    run_report = json.loads(js.read_text())
    assert run_report["successes"] == art_report["successes"]
    assert run_report["mean_final_distance"] == pytest.approx(art_report["mean_final_distance"], abs=1e-4)
    assert "success rate:" in capsys.readouterr().out

    (run / "learning_curve.png").unlink()
    assert main(["plot", str(run)]) == 0
    assert (run / "learning_curve.png").stat().st_size > 1000


def test_train_resume_via_cli(tmp_path: Path) -> None:
    run = tmp_path / "run"
    common = ["algorithm.learning_starts=100", "algorithm.buffer_size=2000", "eval.episodes=1"]
    assert main(["train", "--algo", "td3", "--env", ENV, "--timesteps", "150", "--seed", "1", "--out", str(run),
                 *common]) == 0
    assert main(["train", "--resume", str(run), "--timesteps", "250"]) == 0
    state = json.loads((run / "checkpoints" / (run / "checkpoints" / "LATEST").read_text().strip() / "state.json")
                       .read_text())
    assert state["num_timesteps"] == 250 and state["algo"] == "td3"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--algo", "sac", "--env", ENV, "--timesteps", "10", "--seed", "0", "algorithm.gama=0.9"],
         "unknown config key algorithm.gama"),
        (["--algo", "sac", "--env", ENV, "--timesteps", "10", "--seed", "0", "algorithm.gamma=2"],
         "invalid value for algorithm.gamma: 2"),
        (["--algo", "sac", "--env", ENV, "--seed", "0"], "--timesteps"),
    ],
)
def test_train_bad_arguments_exit_2(tmp_path: Path, capsys, argv: list[str], message: str) -> None:
    assert main(["train", *argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_eval_and_export_refuse_bad_targets(tmp_path: Path, capsys) -> None:
    assert main(["eval", str(tmp_path / "missing"), "--episodes", "1", "--seed", "0"]) == 2
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "policy.json").write_text("{}")
    (tmp_path / "bad" / "policy.safetensors").write_bytes(b"")
    assert main(["eval", str(tmp_path / "bad"), "--episodes", "1", "--seed", "0"]) == 2
    assert "missing required field" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing"), str(tmp_path / "out")]) == 2


def test_plot_compares_runs_and_refuses_what_it_cannot(tmp_path: Path, capsys) -> None:
    from drl_control.learn.plot import held_out_success

    runs = []
    for name, rate in (("seed0", 0.82), ("seed1", None)):
        run = tmp_path / name
        run.mkdir()
        rows = ["env_step,episode,return,length,success,final_distance,wall_time"]
        rows += [f"{50 * i},{i},-{50 - i % 50},50,{int(i > 40)},0.05,{i * 0.1:.1f}" for i in range(1, 81)]
        (run / "episodes.csv").write_text("\n".join(rows) + "\n")
        if rate is not None:
            (run / "eval.json").write_text(json.dumps({"success_rate": rate, "episodes": 100}))
        runs.append(run)
    assert held_out_success(runs[0]) == pytest.approx(0.82) and held_out_success(runs[1]) is None
    out = tmp_path / "cmp" / "push.png"
    assert main(["plot", str(runs[0]), str(runs[1]), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    capsys.readouterr()
    assert main(["plot", str(runs[0]), str(runs[1])]) == 2
    assert "needs --out" in capsys.readouterr().err
    assert main(["plot", str(runs[0]), str(out), "--out", str(tmp_path / "x.png")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    (runs[1] / "episodes.csv").write_text("env_step,episode\n1,x\n")
    assert main(["plot", str(runs[0]), str(runs[1]), "--out", str(out)]) == 2
    assert "malformed episodes.csv" in capsys.readouterr().err


def test_plot_against_wall_time_reads_minutes_and_names_a_missing_column(tmp_path: Path, capsys) -> None:
    """`--x wall`: the same episodes on a fast (GPU) and a slow run spread over their own minutes."""
    from drl_control.learn.plot import _episodes

    for name, seconds_per_episode in (("cuda", 1.5), ("cpu", 3.0)):
        run = tmp_path / name
        run.mkdir()
        rows = ["env_step,episode,return,length,success,final_distance,wall_time"]
        rows += [f"{50 * i},{i},-50,50,{int(i > 40)},0.05,{i * seconds_per_episode}" for i in range(1, 81)]
        (run / "episodes.csv").write_text("\n".join(rows) + "\n")
    x_cuda, success, _ = _episodes(tmp_path / "cuda", "wall")
    assert x_cuda[-1] == pytest.approx(2.0) and _episodes(tmp_path / "cpu", "wall")[0][-1] == pytest.approx(4.0)
    assert _episodes(tmp_path / "cuda")[0][-1] == 4000 and success.sum() == 40
    out = tmp_path / "speed.png"
    assert main(["plot", str(tmp_path / "cuda"), str(tmp_path / "cpu"), "--x", "wall", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot", str(tmp_path / "cuda"), "--x", "wall"]) == 2
    assert "--x applies to a comparison" in capsys.readouterr().err
    (tmp_path / "cpu" / "episodes.csv").write_text("env_step,episode,return,success\n50,1,-50,0\n")
    assert main(["plot", str(tmp_path / "cuda"), str(tmp_path / "cpu"), "--x", "wall", "--out", str(out)]) == 2
    assert "missing column 'wall_time'" in capsys.readouterr().err
