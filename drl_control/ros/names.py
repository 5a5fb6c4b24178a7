"""ROS names used by every node (contract): the ONE place topic, service and action names live.

Topic names are relative, so they resolve inside a node's namespace (`/sim0/joint_states`);
names starting with `~/` are private to a node (`/sim0/sim_node/step`). A launch or a user
remaps them (`-r joint_states:=/lbr/joint_states`) instead of code changing.

No rclpy import here: pure strings, importable anywhere in drl_control.ros and in tests.
"""

from __future__ import annotations

# --- node names (defaults; a launch may rename with __node:=) --------------------------------
SIM_NODE = "sim_node"
LEARNER_NODE = "learner_node"
CONTROLLER_NODE = "controller_node"
ROBOT_INTERFACE_NODE = "robot_interface_node"

# --- default namespaces ----------------------------------------------------------------------
DEFAULT_SIM_NAMESPACE = "/sim0"  # first sim worker; more workers: /sim1, /sim2, ...
DEFAULT_LEARNER_NAMESPACE = "/"
DEFAULT_ROBOT_NAMESPACE = "/"  # deployment: the arm's namespace (sim robot mode or real driver)

# --- robot state / description / visualization (topics, relative) -----------------------------
JOINT_STATES = "joint_states"  # sensor_msgs/JointState (joint_state_broadcaster)
ROBOT_DESCRIPTION = "robot_description"  # std_msgs/String, transient-local (URDF text)
MARKERS = "markers"  # visualization_msgs/MarkerArray (goal, end-effector trajectory)
GOAL = "goal"  # geometry_msgs/PointStamped: end-effector goal in the base frame
OBJECT_POSE = "object_pose"  # geometry_msgs/PoseStamped: the task object in the base frame (perception / mocap / sim)

# --- ros2_control command contract (topics, relative) -----------------------------------------
FORWARD_POSITION_CONTROLLER = "forward_position_controller"
JOINT_TRAJECTORY_CONTROLLER = "joint_trajectory_controller"
FORWARD_POSITION_COMMANDS = f"{FORWARD_POSITION_CONTROLLER}/commands"  # std_msgs/Float64MultiArray
JOINT_TRAJECTORY = f"{JOINT_TRAJECTORY_CONTROLLER}/joint_trajectory"  # trajectory_msgs/JointTrajectory

# --- sim_node env services (private) -----------------------------------------------------------
RESET = "~/reset"  # drl_control_interfaces/srv/EnvReset (robot mode too: a new episode of its task)
STEP = "~/step"  # drl_control_interfaces/srv/EnvStep
SPEC = "~/spec"  # drl_control_interfaces/srv/EnvSpec
STEP_COUNT = "sim_env_steps"  # EnvStep info key: steps this env executed since its sim_node started
ENV_KWARGS = "env_kwargs"  # EnvSpec deploy_spec_json key: the envs' driver and randomization (sim_node parameters)

# --- learner_node (private) --------------------------------------------------------------------
TRAIN = "~/train"  # drl_control_interfaces/action/Train
STATUS = "~/status"  # LearnerStatus (learner_node) / ControllerStatus (controller_node)

# --- controller_node / robot_interface_node (private) -------------------------------------------
LOAD_POLICY = "~/load_policy"  # drl_control_interfaces/srv/LoadPolicy
ENABLE = "~/enable"  # std_srvs/SetBool
SET_GOAL = "~/set_goal"  # drl_control_interfaces/srv/SetGoal

# --- frames ------------------------------------------------------------------------------------
BASE_FRAME = "iiwa_link_0"


def join(namespace: str, *parts: str) -> str:
    """Absolute name from a namespace and relative parts: join("/sim0", "sim_node", "step") -> /sim0/sim_node/step."""
    items = [p.strip("/") for p in (namespace, *parts) if p and p.strip("/")]
    return "/" + "/".join(items)


def private(namespace: str, node: str, name: str) -> str:
    """Absolute name of a node's private (`~/x`) service/topic/action, seen from outside the node."""
    if not name.startswith("~/"):
        raise ValueError(f"{name!r} is not a private name (expected '~/...')")
    return join(namespace, node, name[2:])


def sim_service(worker: str, name: str) -> str:
    """Service of a sim worker. `worker` is a sim_node namespace ("/sim0") or a full node name
    ("/sim0/my_sim" when the node was renamed; recognised by a last component ending in "sim_node"
    or given as "ns:node")."""
    namespace, node = split_worker(worker)
    return private(namespace, node, name)


def split_worker(worker: str) -> tuple[str, str]:
    """("/sim0", "sim_node") from "/sim0", "sim0", "/sim0:sim_node" or "/sim0/sim_node"."""
    worker = worker.strip()
    if ":" in worker:
        namespace, node = worker.split(":", 1)
    else:
        head, _, tail = worker.rstrip("/").rpartition("/")
        namespace, node = (head or "/", tail) if tail.endswith(SIM_NODE) else (worker, SIM_NODE)
    return join(namespace), node
