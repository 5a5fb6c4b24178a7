"""Facts about the KUKA LBR iiwa 14 R820: names, limits (from the URDF) and kinematics."""

from drl_control.robot.description import RobotSpec, arm_urdf_path, iiwa14, urdf_dir
from drl_control.robot.kinematics import forward, inverse, jacobian

__all__ = ["RobotSpec", "arm_urdf_path", "forward", "iiwa14", "inverse", "jacobian", "urdf_dir"]
