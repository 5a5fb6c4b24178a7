"""Soak over ROS (opt-in: pytest -m soak): 100,000 env steps through two sim_node workers.

A RosVecEnv in this process steps random actions (no learning) over two sim_node processes on a
private ROS domain; benchmarks/bench_soak.py does the work and prints the same numbers. Asserts:
RSS growth after warm-up under 50 MB for this process and for each sim_node, and no dropped or
duplicated transitions: per worker, env steps sent == env steps the sim executed (its per-env
step counter, sent in every step info), no gaps, no repeats, and the sims' final counts equal the
steps sent (fresh sims: nothing else stepped them). About 2-3 minutes on 2 cores.
"""

from __future__ import annotations

import pytest
from bench_util import load_benchmark
from ros_util import domain_id

pytest.importorskip("rclpy")

STEPS = 100_000
GROWTH_MB = 50.0


def _bench():
    return load_benchmark("bench_soak")


@pytest.mark.soak
@pytest.mark.timeout(900)
def test_soak_100k_steps_two_workers(tmp_path):
    result = _bench().soak(STEPS, workers=2, envs_per_worker=1, warmup=10_000, domain=domain_id(97),
                           log_dir=tmp_path)
    print(result)
    assert result["steps"] >= STEPS and result["sims_alive"]
    for proc, growth in result["rss_growth_mb"].items():
        assert growth < GROWTH_MB, f"{proc}: RSS grew {growth:.1f} MB after warm-up ({result})"
    for worker, s in result["accounting"].items():
        assert s["gaps"] == 0 and s["repeats"] == 0, (worker, s)
        assert s["env_steps_sent"] == s["env_steps_executed"] == STEPS // 2, (worker, s)
        assert s["sim_counts"] == [STEPS // 2], (worker, s)
    assert result["episodes"] == STEPS // 50  # Reach episodes are 50 steps; none lost, none extra
