"""Worker failure over ROS, for real: SIGKILL a sim_node worker while learner_node trains.

Three processes on a private ROS domain (two sim workers of one env each, the learner), this test
as the action client. The learner's `worker_timeout` is 3 s. For each `on_worker_failure` policy
one worker is killed mid-training (SIGKILL: no goodbye on the ROS graph), then started again in
the same namespace; the learner must stay up, name the worker, show it dead in `workers_alive`,
go on (pause: after the worker returns; continue: at once, on the survivor, which takes the dead
worker's env slot), finish all its timesteps, and leave a checkpoint that loads.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from ros_util import RosHarness, domain_id, wait_future, wait_until

rclpy = pytest.importorskip("rclpy")

from action_msgs.msg import GoalStatus
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter

from drl_control.ros import names
from drl_control.ros.spin import ThreadSafeActionClient
from drl_control_interfaces.action import Train
from drl_control_interfaces.msg import LearnerStatus

DOMAIN = domain_id(91)
WORKERS = ["/w0", "/w1"]
QUICK = ["algorithm.learning_starts=100", "algorithm.batch_size=32", "algorithm.buffer_size=20000",
         "eval.episodes=1", "train.progress_every=50", "train.checkpoint_every=100000"]


class Rig:
    def __init__(self, h: RosHarness, run_root: Path) -> None:
        self.h = h
        self.run_root = run_root
        self.sims = {w: self.start_sim(w, 0) for w in WORKERS}
        self.learner = h.start("drl_control.ros.learner_node", "-p", f"workers:={WORKERS}",
                               "-p", f"run_root:={run_root}", "-p", "status_rate:=10.0", "-p", "worker_timeout:=3.0",
                               "-p", "probe_period:=0.3", name="learner")
        self.status: list[tuple[float, LearnerStatus]] = []
        h.node.create_subscription(LearnerStatus, "/learner_node/status",
                                   lambda m: self.status.append((time.monotonic(), m)), 10)
        self.action = ThreadSafeActionClient(h.node, Train, names.private("/", names.LEARNER_NODE, names.TRAIN))
        self.restarts = 0

    def start_sim(self, worker: str, seed: int):
        return self.h.start("drl_control.ros.sim_node", "-r", f"__ns:={worker}", "-p", f"seed:={seed}",
                            name=f"sim{worker.replace('/', '_')}_{time.monotonic_ns()}")

    def set_policy(self, policy: str) -> None:
        request = SetParameters.Request(parameters=[Parameter("on_worker_failure", value=policy).to_parameter_msg()])
        response = self.h.call(SetParameters, "/learner_node/set_parameters", request)
        assert response.results[0].successful

    def alive_view(self) -> list[bool] | None:
        return list(self.status[-1][1].workers_alive) if self.status else None


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    h = RosHarness(DOMAIN, tmp_path_factory.mktemp("worker_fault_logs"))
    rig = Rig(h, tmp_path_factory.mktemp("runs"))
    try:
        assert rig.action.wait_for_server(timeout_sec=40), h.logs()
        yield rig
    finally:
        rig.action.destroy()
        h.close()


def _train(rig: Rig, run_dir: Path, timesteps: int, kill: str, policy: str):
    """Start a goal, SIGKILL `kill` once training is under way, return (handle, feedback, t_kill, steps_at_kill)."""
    rig.set_policy(policy)
    feedback: list[tuple[float, int]] = []
    goal = Train.Goal(algorithm="sac", timesteps=timesteps, seed=5, run_dir=str(run_dir), overrides=QUICK)
    handle = wait_future(rig.action.send_goal_async(
        goal, feedback_callback=lambda m: feedback.append((time.monotonic(), int(m.feedback.timesteps)))), 30)
    assert handle.accepted
    wait_until(lambda: feedback and feedback[-1][1] >= 300, 60.0, what=f"training feedback\n{rig.h.logs()}")
    steps_at_kill = feedback[-1][1]
    rig.sims[kill].proc.send_signal(signal.SIGKILL)
    rig.sims[kill].proc.wait(5)
    return handle, feedback, time.monotonic(), steps_at_kill


def _check_result(rig: Rig, handle, run_dir: Path, timesteps: int):
    wrapped = wait_future(handle.get_result_async(), 120, what=f"the train result\n{rig.h.logs()}")
    assert wrapped.status == GoalStatus.STATUS_SUCCEEDED, f"{wrapped.result.message}\n{rig.h.logs()}"
    result = wrapped.result
    assert result.success and "worker failures: 1" in result.message, result.message
    assert rig.learner.alive()
    # The last checkpoint is complete and loads into a fresh model (hashes, shapes, counters).
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv

    from drl_control.learn.algos import build_model, wrap_normalizer
    from drl_control.learn.checkpoint import latest_checkpoint, read_state, restore_checkpoint
    from drl_control.learn.train import load_run_config

    cfg = load_run_config(run_dir)
    ckpt = latest_checkpoint(run_dir)
    assert read_state(ckpt)["num_timesteps"] == timesteps
    venv = wrap_normalizer(DummyVecEnv([lambda: gym.make(cfg["env_id"]) for _ in range(cfg["n_envs"])]), cfg)
    model = build_model(cfg, venv)
    restore_checkpoint(model, ckpt, venv)
    assert model.num_timesteps == timesteps
    assert model.replay_buffer.pos * cfg["n_envs"] == timesteps  # buffer and counter agree
    venv.close()
    assert len(list((run_dir / "checkpoints").glob("step_*"))) >= 1
    return result


def test_pause_waits_for_the_killed_worker_and_finishes(rig):
    run_dir, total = rig.run_root / "pause", 1200
    handle, feedback, t_kill, at_kill = _train(rig, run_dir, total, "/w1", "pause")
    # Noticed within worker_timeout (+ status period and slack), named, shown dead, paused.
    wait_until(lambda: rig.status and rig.status[-1][1].state == "paused", 10.0, what=f"'paused'\n{rig.h.logs()}")
    assert time.monotonic() - t_kill < 3.0 + 5.0
    assert rig.alive_view() == [True, False]
    assert "sim worker /w1 lost" in rig.learner.log()
    stalled = feedback[-1][1]
    time.sleep(1.0)
    assert feedback[-1][1] == stalled and rig.learner.alive()  # no stepping while paused
    rig.sims["/w1"] = rig.start_sim("/w1", 1)
    wait_until(lambda: rig.alive_view() == [True, True] and rig.status[-1][1].state == "training", 40.0,
               what=f"the restarted worker to rejoin\n{rig.h.logs()}")
    result = _check_result(rig, handle, run_dir, total)
    assert feedback[-1][1] == total and max(s for _, s in feedback) > at_kill
    assert "1 rejoined" in result.message and "2 in-flight episodes truncated" in result.message


def test_continue_moves_the_slot_to_the_survivor_then_rejoins(rig):
    run_dir, total = rig.run_root / "continue", 2400
    handle, feedback, t_kill, at_kill = _train(rig, run_dir, total, "/w0", "continue")
    wait_until(lambda: rig.alive_view() == [False, True], 10.0, what=f"/w0 shown dead\n{rig.h.logs()}")
    assert "sim worker /w0 lost" in rig.learner.log()
    # Training goes on over /w1 alone, which now serves 2 envs.
    wait_until(lambda: feedback[-1][1] >= at_kill + 200, 30.0, what=f"progress without /w0\n{rig.h.logs()}")
    assert rig.alive_view() == [False, True]
    assert "num_envs 1 -> 2" in rig.sims["/w1"].log()
    rig.sims["/w0"] = rig.start_sim("/w0", 0)
    wait_until(lambda: "rejoining" in rig.learner.log(), 40.0, what=f"/w0 to rejoin\n{rig.h.logs()}")
    result = _check_result(rig, handle, run_dir, total)
    assert feedback[-1][1] == total
    assert "num_envs 2 -> 1" in rig.sims["/w1"].log()
    assert "1 rejoined" in result.message and "4 in-flight episodes truncated" in result.message
