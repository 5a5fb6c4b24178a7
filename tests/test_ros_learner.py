"""learner_node over two sim_node workers: the ~/train action end to end, and its cancel.

Three processes (two sim workers of one env each, the learner) on a private ROS domain; this test
is the action client, as `ros2 action send_goal` would be.
"""

from __future__ import annotations

import json
import math
import time

import pytest
from ros_util import NodeProcess, RosClient, domain_id, sim_node, wait_future, wait_until

rclpy = pytest.importorskip("rclpy")

from action_msgs.msg import GoalStatus

from drl_control.ros import names
from drl_control.ros.spin import ThreadSafeActionClient
from drl_control_interfaces.action import Train
from drl_control_interfaces.msg import LearnerStatus

DOMAIN = domain_id(67)
QUICK = ["algorithm.learning_starts=100", "eval.episodes=2", "train.progress_every=100"]


@pytest.fixture(scope="module")
def learner(tmp_path_factory):
    run_root = tmp_path_factory.mktemp("runs")
    procs = [sim_node(DOMAIN, "/w0", seed=0), sim_node(DOMAIN, "/w1", seed=1),
             NodeProcess("drl_control.ros.learner_node", DOMAIN,
                         ["-p", "workers:=['/w0', '/w1']", "-p", f"run_root:={run_root}", "-p", "status_rate:=5.0"])]
    client = RosClient(DOMAIN, "test_ros_learner")
    status: list[LearnerStatus] = []
    client.node.create_subscription(LearnerStatus, "/learner_node/status", status.append, 10)
    action = ThreadSafeActionClient(client.node, Train, names.private("/", names.LEARNER_NODE, names.TRAIN))
    try:
        assert action.wait_for_server(timeout_sec=30), procs[2].log()
        yield action, status, run_root, procs
    finally:
        client.on_executor(action.destroy)
        client.close()
        codes = [p.stop() for p in procs]
        assert codes == [0, 0, 0], "\n".join(p.log()[-2000:] for p in procs)


def test_train_gives_feedback_run_dir_and_artifact(learner):
    action, status, run_root, _ = learner
    feedback = []
    goal = Train.Goal(algorithm="sac", env_id="DrlControl/IiwaReach-v0", timesteps=300, seed=3,
                      run_dir=str(run_root / "run"), overrides=QUICK)
    handle = wait_future(action.send_goal_async(goal, feedback_callback=lambda m: feedback.append(m.feedback)), 30)
    assert handle.accepted
    wrapped = wait_future(handle.get_result_async(), 120)
    assert wrapped.status == GoalStatus.STATUS_SUCCEEDED, wrapped.result.message
    result = wrapped.result
    assert result.success and result.run_dir == str(run_root / "run")
    assert (run_root / "run" / "episodes.csv").is_file() and (run_root / "run" / "eval.json").is_file()
    assert result.artifact_dir and (run_root / "run" / "artifact" / "policy.json").is_file()
    meta = json.loads((run_root / "run" / "artifact" / "policy.json").read_text())
    assert meta["training"]["config"]["n_envs"] == 2  # one env on each worker
    assert 0.0 <= result.success_rate <= 1.0
    wait_until(lambda: len(feedback) >= 3, 5.0, what="feedback")
    assert [f.timesteps for f in feedback] == sorted(f.timesteps for f in feedback)
    assert feedback[-1].timesteps == 300 and feedback[-1].env_steps_per_second > 0
    assert not math.isnan(feedback[-1].mean_return)
    wait_until(lambda: any(s.state == "training" for s in status), 5.0, what="a 'training' status")
    last = status[-1]
    assert list(last.workers) == ["/w0", "/w1"] and list(last.workers_alive) == [True, True]


def test_an_existing_run_is_refused_unless_the_goal_resumes_it(learner):
    """Issue 14 item 2: a goal naming an existing run is rejected and the run is untouched;
    with the override resume=true it goes on from the run's checkpoint."""
    action, _, run_root, _ = learner
    run = run_root / "run"
    if not (run / "checkpoints" / "LATEST").is_file():
        pytest.skip("needs the run of test_train_gives_feedback_run_dir_and_artifact")
    files = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    goal = Train.Goal(algorithm="sac", env_id="DrlControl/IiwaReach-v0", timesteps=400, seed=3,
                      run_dir=str(run), overrides=QUICK)
    assert not wait_future(action.send_goal_async(goal), 30).accepted
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == files
    goal.overrides = [*QUICK, "resume=true"]
    handle = wait_future(action.send_goal_async(goal), 30)
    assert handle.accepted
    wrapped = wait_future(handle.get_result_async(), 120)
    assert wrapped.status == GoalStatus.STATUS_SUCCEEDED, wrapped.result.message
    assert wrapped.result.run_dir == str(run) and wrapped.result.message.startswith("trained 400 steps")


def test_cancel_checkpoints_and_stops(learner):
    action, status, run_root, procs = learner
    feedback = []
    goal = Train.Goal(algorithm="sac", timesteps=1_000_000, seed=-1, run_dir=str(run_root / "c"), overrides=QUICK)
    handle = wait_future(action.send_goal_async(goal, feedback_callback=lambda m: feedback.append(m.feedback)), 30)
    assert handle.accepted
    wait_until(lambda: len(feedback) >= 2, 60.0, what="training feedback")
    t0 = time.monotonic()
    wait_future(handle.cancel_goal_async())
    wrapped = wait_future(handle.get_result_async(), 30)
    assert wrapped.status == GoalStatus.STATUS_CANCELED
    assert time.monotonic() - t0 < 10.0
    result = wrapped.result
    assert not result.success and "cancelled" in result.message and result.artifact_dir == ""
    latest = (run_root / "c" / "checkpoints" / "LATEST").read_text().strip()
    assert (run_root / "c" / "checkpoints" / latest).is_dir()
    wait_until(lambda: status and status[-1].state == "cancelled", 5.0, what="'cancelled' status")
    assert all(p.alive() for p in procs)
    # The learner takes the next goal after a cancel.
    handle = wait_future(action.send_goal_async(Train.Goal(algorithm="nope", timesteps=10)), 30)
    assert not handle.accepted


def test_a_bad_override_is_refused_even_where_a_goal_field_replaces_it():
    # Found by the goal fuzz (test_faults_messages): "total_timesteps=-5" beside timesteps=335 was
    # accepted, because the goal field overwrote the bad value before validation.
    from drl_control.ros.learner_node import goal_overrides

    goal = Train.Goal(algorithm="sac", overrides=["total_timesteps=-5"], timesteps=335, seed=3)
    with pytest.raises(ValueError, match="total_timesteps"):
        goal_overrides(goal, "sac", None)
    ok = goal_overrides(Train.Goal(overrides=["total_timesteps=50"], timesteps=335, seed=3), "sac", None)
    assert ok["total_timesteps"] == 335 and ok["seed"] == 3


def test_ctrl_c_mid_training_checkpoints_and_exits_0(tmp_path):
    """SIGINT to learner_node (Ctrl-C on `drl-control launch train`): rclpy shuts the ROS context
    down under the step in flight; the run still stops before storing it, checkpoints, and the
    node exits 0."""
    from drl_control.learn.checkpoint import checked_latest, read_state

    domain = domain_id(71)
    procs = [sim_node(domain, "/c0"), sim_node(domain, "/c1"),
             NodeProcess("drl_control.ros.learner_node", domain,
                         ["-p", "workers:=['/c0', '/c1']", "-p", f"run_root:={tmp_path}", "-p", "status_rate:=5.0"])]
    learner = procs[2]
    client = RosClient(domain, "test_ros_learner_ctrl_c")
    status: list[LearnerStatus] = []
    client.node.create_subscription(LearnerStatus, "/learner_node/status", status.append, 10)
    action = ThreadSafeActionClient(client.node, Train, names.private("/", names.LEARNER_NODE, names.TRAIN))
    run = tmp_path / "run"
    try:
        assert action.wait_for_server(timeout_sec=30), learner.log()
        goal = Train.Goal(algorithm="sac", timesteps=1_000_000, seed=0, run_dir=str(run), overrides=QUICK)
        assert wait_future(action.send_goal_async(goal), 30).accepted
        wait_until(lambda: status and status[-1].state == "training" and status[-1].timesteps >= 300, 60,
                   what=f"training past 300 steps\n{learner.log()[-2000:]}")
        learner.interrupt()
        assert learner.wait(60) == 0, learner.log()[-3000:]
    finally:
        client.on_executor(action.destroy)
        client.close()
        learner.stop()
        for p in procs[:2]:
            p.stop()
    state = read_state(checked_latest(run))  # LATEST names a complete checkpoint, every file hashed
    assert state["num_timesteps"] >= 300
    assert "Traceback" not in learner.log(), learner.log()[-3000:]
