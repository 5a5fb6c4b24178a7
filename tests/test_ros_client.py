"""`drl-control ros ...` as a user runs it: the CLI in its own process against real nodes in theirs.

One stack on a private domain: a robot-mode sim_node and a controller_node (as `launch deploy`
starts them, no artifact yet), a sim worker and a learner_node. The chain a README reader follows:
list the nodes, train over ROS (progress bar), load the new artifact, enable, give a goal, watch
the status, echo a topic, disable; and the refusals: a missing node, a node of the wrong kind, a
goal outside the workspace, a bad artifact, a bad train goal (one line each, exit 2); Ctrl-C during
`ros train` cancels the goal, waits for the checkpoint and exits 130.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ros_util import RosHarness, domain_id, wait_for, wait_until  # noqa: E402

QUICK = ["algorithm.learning_starts=100", "eval.episodes=2", "train.progress_every=100"]
REACH = "DrlControl/IiwaReach-v0"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    harness = RosHarness(domain_id(37), tmp_path_factory.mktemp("ros_client_logs"))
    harness.start("drl_control.ros.sim_node", "-p", "mode:=robot", "-r", "markers:=sim_markers", name="sim_robot")
    harness.start("drl_control.ros.controller_node", name="controller")
    harness.start("drl_control.ros.sim_node", "-r", "__ns:=/w0", name="worker")
    harness.run_root = tmp_path_factory.mktemp("runs").resolve()  # the learner's: goals' run_dirs lie in it
    harness.start("drl_control.ros.learner_node", "-p", "workers:=['/w0']", "-p", "status_rate:=5.0",
                  "-p", f"run_root:={harness.run_root}", name="learner")
    try:
        yield harness
    finally:
        harness.close()


def ros(stack: RosHarness, *args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "drl_control.cli", "ros", *args], env=stack.env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def refused(result: subprocess.CompletedProcess, *words: str) -> None:
    """Exit 2, one error line naming `words`, nothing on stdout."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drl-control ros: error:"), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert result.stdout == ""


def test_nodes_lists_the_stack_with_roles_and_states(stack):
    rows: dict[str, str] = {}

    def listed() -> bool:
        out = ros(stack, "nodes")
        rows.clear()
        rows.update({line.split()[0]: line for line in out.stdout.splitlines()[1:]})
        return len(rows) == 4

    assert wait_for(listed, 90, period=1.0), (rows, stack.logs())
    assert "controller" in rows["/controller_node"] and "policy no" in rows["/controller_node"]
    assert "learner" in rows["/learner_node"] and "idle" in rows["/learner_node"]
    assert "sim worker" in rows["/w0/sim_node"] and REACH in rows["/w0/sim_node"]
    assert "sim (robot mode)" in rows["/sim_node"]


def test_a_missing_node_or_one_of_the_wrong_kind_is_one_line_and_exit_2(stack):
    refused(ros(stack, "enable", "no_such_node", "--timeout", "2"), "no_such_node", "domain")
    wait_until(lambda: ros(stack, "status", "/w0/sim_node").returncode == 0, 60, what="the sim worker")
    refused(ros(stack, "enable", "/w0/sim_node"), "/w0/sim_node is a sim worker")
    refused(ros(stack, "load-policy", "controller_node", "no/such/artifact"), "/controller_node refused")
    refused(ros(stack, "echo", "/no_such_topic", "--timeout", "1"), "/no_such_topic")
    # checked here before anything is sent: the learner's refusal carries no reason
    refused(ros(stack, "train", "learner_node", "--algo", "sac", "--env", "DrlControl/IiwaRech-v0"), "IiwaReach")


def test_train_over_ros_then_deploy_the_artifact(stack, tmp_path):
    trained = ros(stack, "train", "learner_node", "--algo", "sac", "--env", REACH, "--timesteps", "300",
                  "--seed", "1", "--run-dir", "run", *QUICK, cwd=tmp_path, timeout=240)
    assert trained.returncode == 0, (trained.stdout, trained.stderr, stack.logs())
    assert f"run directory: {stack.run_root / 'run'}" in trained.stdout  # relative to the learner's run_root
    assert "success (last 100 ep.)" in trained.stderr and "300/300" in trained.stderr
    artifact = stack.run_root / "run" / "artifact"
    assert (artifact / "policy.json").is_file()

    loaded = ros(stack, "load-policy", "controller_node", str(artifact), cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    refused(ros(stack, "goal", "controller_node", "3", "3", "3"), "refused the goal")
    assert ros(stack, "goal", "controller_node", "0.5", "0.0", "0.4").returncode == 0
    assert ros(stack, "enable", "controller_node").returncode == 0

    def status() -> str:
        return ros(stack, "status", "controller_node", "--follow", "--count", "2").stdout

    wait_until(lambda: "enabled yes  policy yes" in status(), 30, what="an enabled controller with a policy")
    echoed = ros(stack, "echo", "/controller_node/status", "--count", "1")
    assert echoed.returncode == 0 and "policy_loaded: True" in echoed.stdout and echoed.stdout.endswith("---\n")

    assert ros(stack, "disable", "controller_node").returncode == 0
    wait_until(lambda: "enabled no" in status(), 30, what="a disabled controller")


def test_ctrl_c_cancels_the_train_goal_after_its_checkpoint_and_exits_130(stack, tmp_path):
    err = tmp_path / "stderr.txt"
    with open(err, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "drl_control.cli", "ros", "train", "learner_node",
                                 "--algo", "sac", "--timesteps", "1000000", "--run-dir", "c", *QUICK],
                                env=stack.env, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                # Ctrl-C reaches it even where pytest runs with SIGINT ignored (a
                                # background job of a shell), which a child would inherit
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_until(lambda: "step/s" in err.read_text(), 120, what=f"training progress\n{stack.logs()}")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (out, err.read_text())
    assert "cancelled" in out and f"run directory: {stack.run_root / 'c'}" in out
    latest = (stack.run_root / "c" / "checkpoints" / "LATEST").read_text().strip()
    assert (stack.run_root / "c" / "checkpoints" / latest).is_dir()
    # the learner is free again
    wait_until(lambda: "cancelled" in ros(stack, "status", "learner_node").stdout, 30, what="a cancelled learner")
