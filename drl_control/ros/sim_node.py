"""`sim_node`: K gymnasium envs (env mode) or one real-time arm (robot mode) behind ROS 2.

    ros2 run drl_control sim_node --ros-args -r __ns:=/sim0 -p num_envs:=4 -p seed:=0
    ros2 run drl_control sim_node --ros-args -p mode:=robot

The `mode` parameter (env, the default, or robot) chooses the node class; each role is its own
module on a shared base (drl_control.ros.sim_base):
- env mode, sim_env_worker.EnvWorkerNode: `~/spec`, `~/reset` and `~/step` (batched over the K
  envs, SB3 VecEnv auto-reset semantics) for a RosVecEnv;
- robot mode, sim_robot.RobotSimNode: a real arm's ros2_control contract (drl_control.sim.emulator),
  in the world of `env_id`'s task: an object task's cube on `object_pose` (PoseStamped, base
  frame, at the joint_states rate), and `~/reset` (EnvReset, one seed or none) for an episode as
  the goal env samples it (arm home, goal and object from the seed; reply: achieved_goal, desired_goal).
Both publish `joint_states`, `robot_description` (transient local) and `markers`. Parameters are
fixed after start, but env mode's `num_envs` (bounded by `max_num_envs`).

All physics, rewards and resets are in drl_control.sim; these nodes convert messages only.
"""

from __future__ import annotations

import sys
from typing import Any

from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node

from drl_control.ros import names
from drl_control.ros.sim_base import DEFAULT_ENV_ID, LATCHED, VIS_RATE, SimNodeBase
from drl_control.ros.sim_env_worker import IDLE_VIS_PERIOD, MAX_NUM_ENVS, EnvWorkerNode
from drl_control.ros.sim_robot import RobotSimNode
from drl_control.ros.spin import run_node

__all__ = ["DEFAULT_ENV_ID", "IDLE_VIS_PERIOD", "LATCHED", "MAX_NUM_ENVS", "MODES", "VIS_RATE", "SimNode", "main"]

MODES = ("env", "robot")


def _mode(**kwargs: Any) -> str:
    """The `mode` parameter as the command line / params file set it: read by a bare node of the
    same name (no services, no rosout), so rcl resolves every way of setting it."""
    probe = Node(names.SIM_NODE, start_parameter_services=False, enable_rosout=False, **kwargs)
    try:
        return probe.declare_parameter("mode", "env").value
    finally:
        probe.destroy_node()


def SimNode(**kwargs: Any) -> SimNodeBase:  # noqa: N802 - the node "class" of the console script
    """The sim node of the mode the parameters ask for."""
    mode = _mode(**kwargs)
    if mode == "env":
        return EnvWorkerNode(**kwargs)
    if mode == "robot":
        return RobotSimNode(**kwargs)
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


# `sim_node --help`: both roles' parameters, each once.
SimNode.PARAMETERS = tuple({p.name: p for cls in (EnvWorkerNode, RobotSimNode) for p in cls.PARAMETERS}.values())


def main(args: list[str] | None = None) -> int:
    # bad parameters: one line on stderr, status 2
    return run_node(SimNode, args, on_shutdown=lambda node: node.close(), prog="sim_node",
                    usage_errors=(ValueError, InvalidParameterTypeException, InvalidParameterValueException))


if __name__ == "__main__":
    sys.exit(main())
