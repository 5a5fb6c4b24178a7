"""launch/deploy.launch.py and rviz/iiwa14.rviz, checked without launch_ros (not installable here):
the launch file runs against minimal stand-ins of `launch`/`launch_ros` and must turn the stack
description config/stacks/deploy.yaml into Node actions; the rviz config must show the robot
model, the markers and use iiwa_link_0 as fixed frame."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from launch_util import declared_arguments, load_launch_file

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("overrides,expected", [
    ({"sim": "true"}, {"sim_node", "controller_node", "robot_state_publisher", "rviz2"}),
    ({"sim": "false", "interface": "true", "robot_ns": "/drl", "profile": "lbr", "rviz": "false"},
     {"controller_node", "robot_interface_node", "robot_state_publisher"}),
    ({"sim": "true", "interface": "true", "robot_ns": "/drl", "sim_ns": "/sim_robot", "profile": "sim",
      "rviz": "false"}, {"sim_node", "controller_node", "robot_interface_node", "robot_state_publisher"}),
])
def test_launch_file_builds_nodes_from_the_stack(launch_stubs, overrides, expected):
    Node, OpaqueFunction = launch_stubs
    module = load_launch_file("deploy.launch.py")
    module._package_available = lambda package: True
    description = module.generate_launch_description()
    declared = declared_arguments(description)
    assert {"artifact", "sim", "command_interface", "autostart", "rviz"} <= set(declared)
    opaque = next(a for a in description if isinstance(a, OpaqueFunction))
    context = {**declared, "artifact": "/tmp/artifact", **overrides}
    nodes = opaque.kwargs["function"](context, *opaque.kwargs["args"])
    by_exec = {n.kwargs["executable"]: n for n in nodes if isinstance(n, Node)}
    assert set(by_exec) == expected
    controller = by_exec["controller_node"].kwargs
    assert controller["parameters"][0]["artifact"] == "/tmp/artifact"
    assert controller["parameters"][0]["autostart"] is False
    rsp = by_exec["robot_state_publisher"].kwargs["parameters"][0]
    assert "<robot" in rsp["robot_description"] and "iiwa_joint_7" in rsp["robot_description"]
    if "rviz2" in by_exec:
        args = by_exec["rviz2"].kwargs["arguments"]
        assert args[0] == "-d" and Path(args[1]).name == "iiwa14.rviz" and Path(args[1]).is_file()
    if "robot_interface_node" in by_exec:
        assert by_exec["robot_interface_node"].kwargs["parameters"][0]["profile"] == overrides["profile"]
        ours = [n for e, n in by_exec.items() if e != "sim_node"]
        assert all(n.kwargs["namespace"] == "/drl" for n in ours)
        if "sim_node" in by_exec:  # the sim arm where the `sim` profile looks for its driver
            from drl_control.deploy.profiles import load_profile

            assert load_profile("sim").joint_states.startswith(by_exec["sim_node"].kwargs["namespace"] + "/")


def test_rviz_config_shows_robot_and_markers_in_base_frame():
    config = yaml.safe_load((ROOT / "rviz" / "iiwa14.rviz").read_text())
    manager = config["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == "iiwa_link_0"
    displays = {d["Class"]: d for d in manager["Displays"]}
    robot = displays["rviz_default_plugins/RobotModel"]
    assert robot["Description Source"] == "Topic" and robot["Description Topic"]["Value"] == "robot_description"
    assert robot["Description Topic"]["Durability Policy"] == "Transient Local"
    from drl_control.ros import names

    marker_topics = {d["Topic"]["Value"]: d for d in manager["Displays"]
                     if d["Class"] == "rviz_default_plugins/MarkerArray"}
    from drl_control.ros.stack import load_stack

    sim = next(n for n in load_stack("deploy").resolve() if n.executable == "sim_node")
    assert set(marker_topics) == {names.MARKERS, sim.remappings[names.MARKERS]}  # the controller's, the sim arm's
    assert marker_topics["sim_markers"]["Namespaces"]["object"] is True  # an object task's cube


def test_deploy_stack_points_the_controller_at_the_sim_arms_object_pose():
    from drl_control.ros import names
    from drl_control.ros.stack import load_stack

    stack = load_stack("deploy")
    same_ns = next(n for n in stack.resolve() if n.executable == "controller_node")
    assert same_ns.remappings[names.OBJECT_POSE] == names.OBJECT_POSE  # sim and controller share a namespace
    nodes = stack.resolve({"interface": "true", "profile": "sim", "robot_ns": "/drl", "sim_ns": "/sim_robot",
                           "object_pose": "/sim_robot/object_pose"})
    controller = next(n for n in nodes if n.executable == "controller_node")
    sim = next(n for n in nodes if n.executable == "sim_node")
    assert controller.namespace == "/drl" and sim.namespace == "/sim_robot"
    assert controller.remappings[names.OBJECT_POSE] == f"{sim.namespace}/{names.OBJECT_POSE}"


def test_deploy_stack_gives_controller_node_the_driver_profile_it_commands():
    from drl_control.ros.stack import load_stack

    stack = load_stack("deploy")
    default = next(n for n in stack.resolve() if n.executable == "controller_node")
    assert default.parameters["profile"] == ""  # no profile: no tracking check, 100 Hz bound
    direct = next(n for n in stack.resolve({"sim": "false", "controller_profile": "lbr"})
                  if n.executable == "controller_node")
    assert direct.parameters["profile"] == "lbr"
