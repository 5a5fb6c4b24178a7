"""drl_control: learning manipulator control for the KUKA LBR iiwa 14 in PyBullet and ROS 2.

Importing the package registers the gymnasium env ids; it does not import PyBullet, torch or rclpy.
"""

from drl_control.sim.registration import ENV_IDS, register_envs

__version__ = "0.1.0"
register_envs()

__all__ = ["ENV_IDS", "__version__"]
