"""ament_python package: `pip install -e .` in the venv, or `colcon build` in a full ROS 2 install."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "drl_control"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/urdf", glob("urdf/*.urdf")),
        (f"share/{PACKAGE}/urdf/tools", glob("urdf/tools/*.urdf")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/config/stacks", glob("config/stacks/*.yaml")),
        (f"share/{PACKAGE}/config/randomization", glob("config/randomization/*.yaml")),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/rviz", glob("rviz/*.rviz")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="drl_control maintainers",
    maintainer_email="maintainers@drl-control.dev",
    description="Learning manipulator control (KUKA LBR iiwa 14) with PyBullet, SB3 and ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "drl-control = drl_control.cli:main",
            "sim_node = drl_control.ros.sim_node:main",
            "learner_node = drl_control.ros.learner_node:main",
            "controller_node = drl_control.ros.controller_node:main",
            "robot_interface_node = drl_control.ros.robot_interface_node:main",
        ],
    },
)
