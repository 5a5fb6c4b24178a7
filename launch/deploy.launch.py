"""Deploy a trained policy on the simulated or the real arm, with robot_state_publisher and rviz2.

    ros2 launch drl_control deploy.launch.py artifact:=/path/to/artifact
    ros2 launch drl_control deploy.launch.py sim:=false profile:=lbr artifact:=... dry_run:=true

The node graph and the launch arguments are NOT written here: they come from the stack
description config/stacks/deploy.yaml (drl_control.ros.stack), the same file that
`drl-control launch deploy [arg:=value ...]` runs without launch_ros. Optional nodes of packages
that are not installed (rviz2, robot_state_publisher) are skipped with a log line.
"""

from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from drl_control.ros.stack import load_stack
from launch import LaunchDescription

STACK = "deploy"


def _package_available(package: str) -> bool:
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    except ImportError:
        return True
    try:
        get_package_prefix(package)
        return True
    except PackageNotFoundError:
        return False


def _nodes(context, stack):
    values = {name: LaunchConfiguration(name).perform(context) for name in stack.args}
    actions = []
    for spec in stack.resolve(values):
        if spec.optional and not _package_available(spec.package):
            actions.append(LogInfo(msg=f"{STACK}: skipping {spec.label} ({spec.package} is not installed)"))
            continue
        actions.append(Node(
            package=spec.package,
            executable=spec.executable,
            name=spec.name,
            namespace=spec.namespace,
            parameters=[spec.parameters] if spec.parameters else [],
            remappings=list(spec.remappings.items()),
            arguments=list(spec.arguments),
            output="screen",
        ))
    return actions


def generate_launch_description():
    stack = load_stack(STACK)
    arguments = [
        DeclareLaunchArgument(name, default_value=str(arg.get("default", "")),
                              description=str(arg.get("description", "")))
        for name, arg in stack.args.items()
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes, args=[stack])])
