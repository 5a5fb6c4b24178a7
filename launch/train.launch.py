"""ros2 launch drl_control train.launch.py [workers:="[/sim0, /sim1]"] [num_envs:=2] ...

Distributed training: sim_node workers + learner_node. The node graph lives in
config/stacks/train.yaml, shared with `drl-control launch train` (drl_control/ros/stack.py).
"""

STACK = "train"


def generate_launch_description():
    from drl_control.ros.stack import launch_description

    return launch_description(STACK)
