"""Composition of the bare arm URDF with a task tool, at load time.

The arm file stays the robot; a tool URDF's root link is bolted to `iiwa_link_ee` by a fixed
joint and the merged file is written to a cache directory once per process.
"""

from __future__ import annotations

import functools
import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from drl_control.robot.description import arm_urdf_path, urdf_dir

TOOLS = ("pusher", "gripper")


def tool_urdf_path(tool: str) -> Path:
    if tool not in TOOLS:
        raise ValueError(f"tool: unknown tool {tool!r}, expected one of {TOOLS}")
    return urdf_dir() / "tools" / f"{tool}.urdf"


def tool_tip_offset(tool: str | None) -> float:
    """Flange-to-TCP distance, read from the tool URDF's fixed joints."""
    if tool is None:
        return 0.0
    root = ET.parse(tool_urdf_path(tool)).getroot()
    for joint in root.findall("joint"):
        if joint.find("child").get("link") == "tool_tip":
            return float(joint.find("origin").get("xyz").split()[2])
    raise ValueError(f"{tool_urdf_path(tool)} has no tool_tip frame")


@functools.cache
def composed_urdf_path(tool: str | None) -> Path:
    """Path of a URDF with the arm and `tool` (None: the bare arm)."""
    if tool is None:
        return arm_urdf_path()
    arm = ET.parse(arm_urdf_path()).getroot()
    tool_root = ET.parse(tool_urdf_path(tool)).getroot()
    children = {j.find("child").get("link") for j in tool_root.findall("joint")}
    links = [el.get("name") for el in tool_root.findall("link")]
    mount = next(name for name in links if name not in children)
    for element in tool_root:
        if element.tag == "material" and arm.find(f"material[@name='{element.get('name')}']") is not None:
            continue
        arm.append(element)
    ET.SubElement(arm, "joint", name=f"{tool}_mount_joint", type="fixed")
    joint = arm[-1]
    ET.SubElement(joint, "parent", link="iiwa_link_ee")
    ET.SubElement(joint, "child", link=mount)
    ET.SubElement(joint, "origin", xyz="0 0 0", rpy="0 0 0")
    out_dir = Path(tempfile.gettempdir()) / f"drl_control_urdf_{os.getuid()}"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"iiwa14_{tool}_{os.getpid()}.urdf"
    ET.ElementTree(arm).write(out, xml_declaration=True, encoding="utf-8")
    return out
