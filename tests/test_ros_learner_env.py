"""Training over ROS and the config's `env:` section (driver model, domain randomization; issue 9).

In-process training builds its envs with the `env:` section; over ROS the sim workers build theirs
at start (sim_node -p driver:=... -p randomization:=...). Real processes on a private domain: a
nominal worker, a sim2real one (driver lbr, randomization sim2real) and a learner over the latter.

- the sim2real worker applies and reports its options (EnvSpec), and its seeded reset differs from
  the nominal worker's; a RosVecEnv over both is refused;
- a goal asking for an env section the workers do not run (another driver, other noise) is
  refused, naming the keys; nothing is written;
- a goal without an `env:` section trains on the workers' envs, and the run's config.yaml records
  the workers' section;
- a worker started with an unknown driver or preset: one line naming it, exit 2;
- env_section itself (no ROS): the rule for every combination, sim2real asked of nominal workers
  included.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from ros_util import NodeProcess, RosClient, domain_id, ros_env, sim_node, stop_all, wait_future

rclpy = pytest.importorskip("rclpy")

from action_msgs.msg import GoalStatus

from drl_control.learn.config import randomization_preset
from drl_control.ros import names
from drl_control.ros.learner_goals import env_section
from drl_control.ros.spin import ThreadSafeActionClient
from drl_control_interfaces.action import Train
from drl_control_interfaces.srv import EnvReset, EnvSpec

DOMAIN = domain_id(71)
QUICK = ["algorithm.learning_starts=100", "eval.episodes=1", "train.progress_every=100"]
SIM2REAL = randomization_preset("sim2real")
OTHER = ["env.driver=iiwa_ros2", f"env.randomization={json.dumps({**SIM2REAL, 'observation_noise': 0.02})}"]


@pytest.fixture(scope="module")
def ros(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    procs = [sim_node(DOMAIN, "/le_nom", seed=0),
             sim_node(DOMAIN, "/le_s2r", seed=0, driver="lbr", randomization="sim2real")]
    procs.append(NodeProcess("drl_control.ros.learner_node", DOMAIN, ["-p", "workers:=['/le_s2r']",
                                                                      "-p", f"run_root:={runs}", "-p", "export:=false"]))
    client = RosClient(DOMAIN, "test_ros_learner_env")
    action = ThreadSafeActionClient(client.node, Train, names.private("/", names.LEARNER_NODE, names.TRAIN))
    try:
        assert action.wait_for_server(timeout_sec=60), "\n".join(p.log()[-2000:] for p in procs)
        yield client, action, runs, procs
    finally:
        client.on_executor(action.destroy)
        client.close()
        codes = stop_all(procs)
        assert codes == [0] * len(procs), "\n".join(p.log()[-2000:] for p in procs)


def _train(action, goal: Train.Goal, procs) -> Train.Result:
    handle = wait_future(action.send_goal_async(goal), 30)
    assert handle.accepted
    return wait_future(handle.get_result_async(), 120, what="\n".join(p.log()[-2000:] for p in procs))


def test_a_worker_applies_and_reports_its_driver_and_randomization(ros):
    client = ros[0]
    spec = json.loads(client.call(EnvSpec, names.private("/le_s2r", names.SIM_NODE, names.SPEC), EnvSpec.Request())
                      .deploy_spec_json)
    assert spec[names.ENV_KWARGS] == {"driver": "lbr", "randomization": SIM2REAL}
    nominal = json.loads(client.call(EnvSpec, names.private("/le_nom", names.SIM_NODE, names.SPEC), EnvSpec.Request())
                         .deploy_spec_json)
    assert nominal[names.ENV_KWARGS] == {}
    obs = [client.call(EnvReset, names.private(ns, names.SIM_NODE, names.RESET), EnvReset.Request(seeds=[5])).batch
           for ns in ("/le_nom", "/le_s2r")]
    assert obs[0].keys == obs[1].keys and not np.array_equal(obs[0].data, obs[1].data)  # the same seed, a randomized world
    from drl_control.ros.vec_env import RosVecEnv

    with pytest.raises(ValueError, match=r"sim worker /le_s2r: env options .*'driver': 'lbr'.* differ from worker "
                                         r"/le_nom's \{\}"):  # one VecEnv over workers that differ: refused
        RosVecEnv(["/le_nom", "/le_s2r"], context=client.context, node_name="mixed", timeout=10.0)


def test_a_goal_asking_for_an_env_the_workers_do_not_run_is_refused(ros):
    _, action, runs, procs = ros
    goal = Train.Goal(algorithm="sac", timesteps=300, seed=0, run_dir="asked", overrides=QUICK + OTHER)
    wrapped = _train(action, goal, procs)
    assert wrapped.status == GoalStatus.STATUS_ABORTED and not wrapped.result.success
    message = wrapped.result.message
    assert "do not apply the goal's env section" in message, message
    assert "env.driver (goal 'iiwa_ros2', workers 'lbr')" in message, message
    assert "env.randomization.observation_noise (goal 0.02, workers 0.001)" in message, message
    assert not (runs / "asked").exists()  # refused before the run directory is made


def test_a_goal_without_env_section_trains_on_the_workers_envs_and_records_them(ros):
    _, action, runs, procs = ros
    goal = Train.Goal(algorithm="sac", timesteps=300, seed=0, run_dir="workers", overrides=QUICK)
    wrapped = _train(action, goal, procs)
    assert wrapped.status == GoalStatus.STATUS_SUCCEEDED, wrapped.result.message
    cfg = yaml.safe_load((runs / "workers" / "config.yaml").read_text())
    assert cfg["env"] == {"driver": "lbr", "randomization": SIM2REAL}


def test_env_section_rule():
    workers = {"driver": "lbr", "randomization": SIM2REAL}
    assert env_section(None, workers) == workers  # none asked: the workers'
    assert env_section({"driver": None}, {}) == {}
    with pytest.raises(ValueError, match=r"env\.driver \(goal 'lbr', workers 'ideal'\).*joint_damping \(goal \(0\.0, 1\.0\), "
                                         r"workers None\)"):  # sim2real asked of nominal workers
        env_section(dict(workers), {})
    assert env_section(dict(workers), workers) == workers  # the same, asked explicitly
    assert env_section({"driver": "ideal", "randomization": {}}, {}) == {"driver": "ideal", "randomization": {}}
    with pytest.raises(ValueError, match=r"env\.randomization\.observation_noise \(goal 0\.02, workers 0\.001\)"):
        env_section({"driver": "lbr", "randomization": {**SIM2REAL, "observation_noise": 0.02}}, workers)
    with pytest.raises(ValueError, match=r"env\.driver \(goal 'ideal', workers 'lbr'\)"):
        env_section({"driver": "ideal", "randomization": SIM2REAL}, workers)
    assert env_section({"driver": "ideal"}, None) == {"driver": "ideal"}  # nominal needs no report
    with pytest.raises(ValueError, match="do not"):
        env_section({"randomization": SIM2REAL}, None)


def test_a_worker_refuses_an_unknown_driver_or_preset_at_start():
    runs = [subprocess.Popen([sys.executable, "-m", "drl_control.ros.sim_node", "--ros-args", "-p", param],
                             env=ros_env(DOMAIN), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for param in ("driver:=kuka", "randomization:=nope")]
    out = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [2, 2], out
    errors = [err.strip().splitlines()[-1] for _, err in out]  # (pybullet may print its build time first)
    assert errors[0] == "sim_node: error: driver must be one of ['ideal', 'iiwa_ros2', 'lbr'], got 'kuka'"
    assert errors[1].startswith("sim_node: error: randomization preset 'nope' not found; presets: sim2real")
