"""Reading YAML and JSON that may come from anyone: bounded, and never constructing objects.

One place for the rules every file, override and goal the package reads goes through:
- YAML: the safe loader (no Python tags) with anchors and aliases refused -- an alias is the
  "billion laughs" expansion (7 nested aliases in a few hundred bytes take gigabytes), and no
  config of this package needs one -- and nesting depth bounded before it is built.
- JSON: size and nesting depth bounded (a 200,000-deep document would otherwise end the
  standard decoder with RecursionError).
Both raise `DataError` (a UserError and a ValueError) whose message names the source.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from drl_control.errors import UserError

MAX_DEPTH = 32  # nesting levels of a config, a policy.json, a normalizer state (real files: <= 6)
MAX_YAML_BYTES = 1 << 20  # 1 MiB: the largest config is a few KiB
MAX_JSON_BYTES = 64 << 20  # 64 MiB: policy.json and normalizer states are KiB to a few MiB


class DataError(UserError, ValueError):
    """A data file or text (YAML, JSON, CSV) is refused; the message names where it came from and why."""


class BoundedSafeLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses anchors/aliases and nesting deeper than MAX_DEPTH.

    The pure-Python loader on purpose: the C loader composes nodes in C, out of reach of these checks.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(None, None, "YAML anchors and aliases (&, *) are not accepted",
                                              event.start_mark)
        if self._depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"not valid YAML{where}: {problem}"


def load_yaml_text(text: str, source: str, *, max_bytes: int = MAX_YAML_BYTES) -> Any:
    """The value of a YAML text (any type); DataError names `source` when it is refused."""
    if len(text) > max_bytes:
        raise DataError(f"{source}: {len(text)} bytes, more than the {max_bytes} accepted")
    try:
        return yaml.load(text, Loader=BoundedSafeLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise DataError(f"{source}: {_yaml_problem(exc)}") from None
    except ValueError as exc:  # a constructor's own refusal, e.g. an integer of more than 4,300 digits
        raise DataError(f"{source}: not valid YAML: {str(exc)[:120]}") from None
    except RecursionError:  # a scanner/parser path not bounded above
        raise DataError(f"{source}: nested too deeply") from None


def _depth(value: Any) -> int:
    """Nesting depth of a decoded JSON value (0 for a scalar), level by level, without recursion.
    Only containers are carried to the next level: a step's infos (mostly numbers) are checked on
    every step round of a RosVecEnv."""
    depth, level = 0, [value]
    while True:
        level = [node for node in level if isinstance(node, (dict, list))]
        if not level:
            return depth
        depth += 1
        children: list[Any] = []
        for node in level:
            children.extend(node.values() if isinstance(node, dict) else node)
        level = children


def load_json_text(text: str | bytes, source: str, *, max_bytes: int = MAX_JSON_BYTES,
                   max_depth: int = MAX_DEPTH) -> Any:
    """The value of a JSON text; DataError (naming `source`) when too big, too deep or not JSON."""
    if len(text) > max_bytes:
        raise DataError(f"{source}: {len(text)} bytes, more than the {max_bytes} accepted")
    try:
        value = json.loads(text)
    except RecursionError:  # deeper than the interpreter's recursion limit (~1000)
        raise DataError(f"{source}: JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
        raise DataError(f"{source}: not valid JSON ({exc})") from None
    if _depth(value) > max_depth:
        raise DataError(f"{source}: JSON nested deeper than {max_depth} levels")
    return value


def read_json(path: str | Path, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """A JSON file's value; OSError when unreadable, DataError when refused (size checked before reading)."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise DataError(f"{path}: {size} bytes, more than the {max_bytes} accepted")
    return load_json_text(path.read_bytes(), str(path), max_bytes=max_bytes, max_depth=max_depth)
