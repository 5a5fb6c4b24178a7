"""Stack descriptions (config/stacks/*.yaml), `drl-control launch`, and launch/*.launch.py.

`drl-control launch train` runs as a real process tree on a private ROS domain: the graph comes
up (services discoverable), SIGTERM stops every node cleanly and the launcher exits 0.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from launch_util import declared_arguments, load_launch_file
from ros_util import RosClient, domain_id, ros_env, wait_until

pytest.importorskip("rclpy")

from drl_control.ros import stack as st

ROOT = Path(__file__).resolve().parents[1]
DOMAIN = domain_id(83)


def test_stacks_resolve():
    nodes = st.load_stack("train").resolve({"workers": "[/a, /b, /c]", "num_envs": "2"})
    assert [n.label for n in nodes] == ["/a/sim_node", "/b/sim_node", "/c/sim_node", "learner_node"]
    assert nodes[0].parameters["num_envs"] == 2
    assert nodes[-1].parameters["workers"] == ["/a", "/b", "/c"]
    args = st.ros_args(nodes[-1])
    assert "workers:=[/a, /b, /c]" in " ".join(args) and "__ns:=/" in args
    with pytest.raises(st.StackError, match="unknown argument 'nope'"):
        st.load_stack("train").resolve({"nope": "1"})
    deploy = st.load_stack("deploy")
    labels = {n.executable: n for n in deploy.resolve({"sim": "false", "rviz": "false"})}
    assert "sim_node" not in labels and "rviz2" not in labels and "controller_node" in labels
    assert labels["robot_state_publisher"].optional
    assert "<robot" in labels["robot_state_publisher"].parameters["robot_description"]
    assert set(st.available_stacks()) >= {"train", "deploy"}


def test_format_param_round_trips_through_yaml():
    import yaml

    for value in ([1, 2], ["/a", "/b"], True, 3, 0.5, "x y", "", "true", "[1]", "a: b"):
        assert yaml.safe_load(st.format_param(value)) == value, value


def test_launch_file_builds_nodes_from_the_stack(launch_stubs):
    """launch/train.launch.py against stand-ins of launch/launch_ros (not installable here)."""
    Node, OpaqueFunction = launch_stubs
    description = load_launch_file("train.launch.py").generate_launch_description()
    declared = declared_arguments(description)
    assert "workers" in declared
    opaque = description[-1]
    assert isinstance(opaque, OpaqueFunction)
    nodes = opaque.kwargs["function"]({**declared, "workers": "[/x]"})
    assert all(isinstance(n, Node) for n in nodes)
    assert [(n.kwargs["executable"], n.kwargs["namespace"]) for n in nodes] == [("sim_node", "/x"),
                                                                                ("learner_node", "/")]
    assert nodes[1].kwargs["parameters"][0]["workers"] == ["/x"]


def test_drl_control_launch_starts_and_stops_the_train_graph(tmp_path):
    cmd = [sys.executable, "-m", "drl_control.cli", "launch", "train", "workers:=[/lw0, /lw1]",
           f"run_root:={tmp_path}", "--grace", "10"]
    proc = subprocess.Popen(cmd, env=ros_env(DOMAIN), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    client = RosClient(DOMAIN, "test_ros_launch")
    try:
        wait_until(lambda: sum("env mode" in line for line in lines) == 2 and any("ready" in x for x in lines),
                   30.0, what="both sim nodes and the learner up")
        services = {"/lw0/sim_node/step", "/lw1/sim_node/step", "/learner_node/train/_action/send_goal"}
        wait_until(lambda: services <= {s for s, _ in client.node.get_service_names_and_types()}, 15.0,
                   what="the graph's services")
        pids = [int(m.group(1)) for line in lines for m in [re.search(r"started .* \(pid (\d+)\)", line)] if m]
        assert len(pids) == 3
        assert all(line.startswith("[") for line in lines if line.strip())  # every line is prefixed
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, "".join(lines)
        assert time.monotonic() - t0 < 15
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    text = "".join(lines)
    assert text.count("stopped (status 0)") == 3, text
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
