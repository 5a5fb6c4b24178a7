"""Full ROS 2 message definitions (`ros2msg` schemas) for MCAP, read from the packages' own .msg files.

rosbag2 stores each channel's schema as the type's .msg text followed by every type it uses, each
after a line of 80 '=' and `MSG: pkg/msg/Type`. Nothing is retyped here: the text comes from the
installed interface packages (`share/<pkg>/msg/<Type>.msg` under the venv / ament prefixes) or from
this repository's ros2_ws/ (our own interfaces, and tf2_msgs, which no PyPI wheel ships).
"""

from __future__ import annotations

import functools
import os
import re
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
_PRIMITIVES = {"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32",
               "uint32", "int64", "uint64", "string", "wstring"}
SEPARATOR = "=" * 80


def _roots() -> list[Path]:
    prefixes = [Path(sys.prefix)] + [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    roots = [p / "share" for p in prefixes]
    roots += sorted((_REPO / "ros2_ws").glob("*/"))  # ros2_ws/src, ros2_ws/vendor: <pkg>/msg/<Type>.msg
    return roots


@functools.cache
def message_text(type_name: str) -> str:
    """The .msg text of `pkg/msg/Type` (or `pkg/Type`)."""
    pkg, _, name = type_name.replace("/msg/", "/").partition("/")
    for root in _roots():
        path = root / pkg / "msg" / f"{name}.msg"
        if path.is_file():
            return path.read_text()
    raise LookupError(f"no definition of {type_name} found under {[str(r) for r in _roots()]}")


def _field_types(text: str, pkg: str) -> list[str]:
    """Non-primitive types used by the fields of one .msg text, as pkg/msg/Type, in order."""
    used = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        field_type, *rest = line.split()
        if rest and "=" in rest[0] or (len(rest) > 1 and rest[1].startswith("=")):
            continue  # a constant (`int8 ADD=0` or `int8 ADD = 0`): primitives only
        base = re.sub(r"\[.*\]$", "", field_type)
        base = re.sub(r"<=\d+$", "", base)
        if base in _PRIMITIVES:
            continue
        if base == "Header":
            used.append("std_msgs/msg/Header")
        elif "/" in base:
            dep_pkg, _, dep_name = base.replace("/msg/", "/").partition("/")
            used.append(f"{dep_pkg}/msg/{dep_name}")
        else:
            used.append(f"{pkg}/msg/{base}")
    return used


@functools.cache
def full_definition(type_name: str) -> str:
    """The schema text rosbag2 writes for `pkg/msg/Type`: its .msg and every dependency, once each."""
    order: list[str] = []

    def visit(name: str) -> None:
        for dep in _field_types(message_text(name), name.partition("/")[0]):
            if dep not in order and dep != type_name:
                order.append(dep)
                visit(dep)

    visit(type_name)
    parts = [message_text(type_name).rstrip("\n")]
    parts += [f"{SEPARATOR}\nMSG: {dep}\n{message_text(dep).rstrip(chr(10))}" for dep in order]
    return "\n".join(parts) + "\n"
