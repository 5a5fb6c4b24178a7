"""benchmarks/object_failures.py: how an object policy's held-out episodes are classed (real PyBullet)."""

import gymnasium as gym
import numpy as np
import pytest
from bench_util import load_benchmark

from drl_control.learn.evaluate import evaluate_actor
from drl_control.sim.experts import make_expert


def _module():
    return load_benchmark("object_failures")


@pytest.mark.parametrize("end, outcome", [
    ((0.30, 0.00), "overshoot"),     # 10 cm past a goal 20 cm toward the base
    ((0.55, 0.00), "short"),         # 15 cm before it
    ((0.40, 0.08), "off the line"),  # level with it, 8 cm to the side
])
def test_a_failed_move_is_classed_by_where_the_object_ended(end, outcome):
    move = _module().classify(np.array([0.6, 0.0]), np.array([0.4, 0.0]), np.array(end), False, 0.05)
    assert move["outcome"] == outcome
    assert move["direction"] == "toward the base"
    assert move["distance"] == pytest.approx(0.2)


def test_the_hook_traces_every_episode_of_an_evaluation():
    module = _module()
    env = gym.make("DrlControl/IiwaPush-v0")
    expert = make_expert(env)
    trace = module.MoveTrace()
    try:
        report = evaluate_actor(lambda obs: expert.act(), "DrlControl/IiwaPush-v0", episodes=4, seed=3, env=env,
                                hook=trace)
    finally:
        env.close()
    assert len(trace.moves) == 4
    assert [m["outcome"] == "success" for m in trace.moves] == [s == 1.0 for s in report["successes"]]
    assert all(0.05 < m["distance"] < 0.5 for m in trace.moves)
    assert "| toward the base |" in module.table(trace.moves)
    assert all(m["peak_speed"] > 0.05 for m in trace.moves)  # the expert moved every cube
    counts = [int(row.split("|")[2]) for row in module.speed_table(trace.moves).splitlines()[2:]]
    assert counts == [sum(low <= m["peak_speed"] < high for m in trace.moves) for low, high in module.SPEED_BANDS]
    assert sum(counts) == 4


def test_the_expert_is_classed_on_the_same_goals(monkeypatch, capsys):
    module = _module()
    monkeypatch.setattr("sys.argv", ["object_failures.py", "--expert", "DrlControl/IiwaPush-v0", "--episodes", "2",
                                     "--seed", "3"])
    assert module.main() == 0
    out = capsys.readouterr().out
    assert out.startswith("expert: DrlControl/IiwaPush-v0, 2 held-out goals (seed 3)")
    assert "| peak object speed (m/s) | goals | success |" in out


def test_a_run_and_the_expert_together_are_refused(monkeypatch, tmp_path):
    monkeypatch.setattr("sys.argv", ["object_failures.py", str(tmp_path), "--expert", "DrlControl/IiwaPush-v0"])
    with pytest.raises(SystemExit) as stop:
        _module().main()
    assert stop.value.code == 2
