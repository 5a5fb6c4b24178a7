"""ROS 2 adapters: nodes, msg conversions, RosVecEnv, stack launcher. The only package that imports rclpy
(names.py and stack.py do not, so launch files and tests can read them without ROS)."""
